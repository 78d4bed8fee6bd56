"""Which components should run the network on a residual level? (issue 22, items 2 and 3)

For every 256 x 256 tile of the scenes given (at least two bands) and every residual level that runs the network
under ``'auto'`` (levels 2-6 of the shipped ladder), per component coded at the level's latent level: its cost
``D + lambda R`` with its latents and the residual of their synthesis, against the residual alone (the latents'
bits from the planner's tables, the residuals' bits coded, each component on its own, as the planner decides).
Then each policy's total cost, as a change against the residual alone everywhere, per scene:

- ``tile (before)``: the tile-level choice 'auto' made before (every coded component with latents, or none), behind
  the tile gate (:meth:`Planner.network_pays`);
- ``component (oracle)``: each component with latents only where they pay, every coded component analysed;
- ``component, first K``: the same among the first K components (the KLT's strongest) of gated tiles only, the
  others run no network;
- ``component, first or variance > T step^2``: the first component and those whose variance exceeds T times the
  step squared, of gated tiles;
- ``shipped``: the first max(``plan.NETWORK_COMPONENTS``, C // 4) components of gated tiles;

and the share of coded components each policy runs the analysis and synthesis networks on.

    python benchmarks/experiments/network_components.py .dev/val/*.tif

**Conclusion** (2026-12-06, decided on these 8 scenes, so in-sample; ``network_components.md``): the choice per
component keeps about twice the network's gain of the choice per tile; limited to the first max(2, C // 4)
components it keeps nearly all of it while running the networks on about 60% of the components of the 4-band
Sentinel-2 scene and a quarter of the 12-band one's. A floor on the variance against the step keeps less (at coarse
steps the latents pay on components weaker than the step): shipped as ``plan.NETWORK_COMPONENTS``. Since
2026-12-07 the first max(1, C // 4) (``network_budget.py``): at levels 2-3, the only ones 'auto' runs the network
on now, that costs 0.03 point of BD-rate on T33NZA 10 m for a third of those levels' time; this table, over
levels 2-6, then gives it -0.81% against -1.33% for the first two there (rerun 2026-12-07).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import analysed_tiles, machine_info, scenes_main, utc_now  # noqa: E402


def run(scenes: list[Path], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import coefs
    from cvae.edge.codec.plan import Planner, rd_lambda

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    model = codec.hybrid.model
    full = Planner(model, "full")  # weighs every coded component (no component limit)
    levels = [lv for lv in range(codec.levels)
              if codec.ladder.step[lv] > 0 and not codec.hybrid.planner.network_free(lv)]
    tiles = []  # per tile-level: scene, gate, bands, and per coded component (index, cost with latents, alone)
    for path in scenes:
        for _, _, a in analysed_tiles(path, codec):
            c = a.shape[0]
            if c < 2:
                break
            gate = full.network_pays(a)
            for level in levels:
                step = model.preset_step(level)
                lam, lat = rd_lambda(step), model.latent_level(level)
                lp, rp = full.latent_part(a, lat), full.residual_part(a, level, lat, step)
                ap = full.residual_part(a, level, None, step)

                def coded(part, i):
                    return 8.0 * len(coefs.encode([part.arrays[i]], a.shape[1], a.shape[2], full.mixed))

                without = [float(ap.comp_err[i] + lam * coded(ap, i)) for i in range(c)]
                comps = [(i, float(rp.comp_err[i] + lam * (lp.comp_bits[i] + coded(rp, i))), without[i],
                          float(a.variance[i] / step ** 2)) for i in np.flatnonzero(lp.present)]
                tiles.append({"scene": path.stem, "level": level, "gate": bool(gate), "bands": c,
                              "alone": sum(without), "comps": comps})
        log(f"{path.stem}: {sum(t['scene'] == path.stem for t in tiles)} tile-levels")
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "levels": levels,
            "tiles": tiles, "policies": policies(tiles)}


def policies(tiles: list[dict]) -> list[dict]:
    """Per policy: per scene the change of the summed cost against the residual alone, and the share of coded
    components the networks run on."""
    def tile(t):
        with_latents = sum(j for _, j, _, _ in t["comps"]) + t["alone"] - sum(q for _, _, q, _ in t["comps"])
        return (min(with_latents, t["alone"]), len(t["comps"])) if t["gate"] else (t["alone"], 0)

    def component(weighed):
        def cost(t):
            run_on = [(j, q) for i, j, q, snr in t["comps"] if weighed is None or (t["gate"] and weighed(i, snr, t["bands"]))]
            return t["alone"] - sum(max(0.0, q - j) for j, q in run_on), len(run_on)
        return cost

    from cvae.edge.codec.plan import NETWORK_COMPONENTS

    out = []
    named = [("tile (before)", tile), ("component (oracle: every coded component)", component(None))]
    named += [(f"component, first {k}", component(lambda i, snr, c, k=k: i < k)) for k in (1, 2, 3)]
    named += [(f"component, first or variance > {x:g} step^2", component(lambda i, snr, c, x=x: i == 0 or snr > x))
              for x in (0.1, 0.25, 0.5, 1.0)]
    named += [(f"shipped: component, first max({NETWORK_COMPONENTS}, C // 4)",
               component(lambda i, snr, c: i < max(NETWORK_COMPONENTS, c // 4)))]
    for name, f in named:
        per: dict[str, list[float]] = {}
        for t in tiles:
            cost, ran = f(t)
            p = per.setdefault(t["scene"], [0.0, 0.0, 0.0, 0.0])
            p[0] += cost
            p[1] += t["alone"]
            p[2] += ran
            p[3] += len(t["comps"])
        out.append({"policy": name, "scenes": {s: {"change": 100 * (p[0] - p[1]) / p[1],
                                                   "networks_on": p[2] / max(p[3], 1)} for s, p in per.items()}})
    return out


def markdown(rec: dict, command: str) -> str:
    scenes = list(rec["policies"][0]["scenes"])
    lines = [f"# Which components run the network on a residual level? (bundle {rec['bundle']}, {rec['date'][:10]})",
             "", f"`{command}`", "",
             f"Levels {rec['levels']}, {len(rec['tiles'])} tile-levels of the scenes with at least 2 bands. Per scene: "
             "the change of the summed D + lambda R against the residual alone everywhere (negative: the network "
             "gains), and in brackets the share of coded components the analysis and synthesis networks run on.", "",
             "| policy | " + " | ".join(scenes) + " |", "|---|" + "---|" * len(scenes)]
    for p in rec["policies"]:
        lines.append(f"| {p['policy']} | " + " | ".join(
            f"{p['scenes'][s]['change']:+.2f}% ({100 * p['scenes'][s]['networks_on']:.0f}%)" for s in scenes) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "network_components", run, markdown)


if __name__ == "__main__":
    sys.exit(main())
