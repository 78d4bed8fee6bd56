"""How much network do the levels that run it need? (issue 22, item 3: every level at most 1.5x OpenJPEG's time)

'auto' runs the analysis and synthesis networks only on the residual levels above ``plan.NETWORK_FREE_STEP`` (2-3
of the shipped ladder), on tiles the gate passes (``plan.GATE_MIN_BANDS`` bands, under ``plan.GATE_FINE_SHARE`` of
the wavelet energy in the finest subbands) and there on the first ``max(plan.NETWORK_COMPONENTS, C // 4)``
components. The networks are 70% of those levels' encode time on a 4-band Sentinel-2 scene (level_speed.md). Each
policy below sets those two knobs; every scene is encoded at every level in-process (one core, ONNX Runtime on one
thread), decoded by the ground decoder and scored with the scorer's PSNR, and the BD-rate taken against the
strongest JPEG 2000 curve of a scorer ``rd.json`` of the same scenes (as ``latent_levels.py``). Levels the policies
do not touch are encoded once and shared. Also the encode CPU seconds of the network levels under each policy.

    python benchmarks/experiments/network_budget.py .dev/val/*.tif --rd benchmarks/results/782c7ed21f22/scorer_validation_rd.json

Writes ``network_budget.json`` and ``network_budget.md``.

**Conclusion** (2026-12-07, the 8 validation scenes, so in-sample; ``network_budget.md``): one component instead of
two keeps nearly all of the networks' gain (-9.41% against -9.44% on T33NZA 10 m, -12.81% against -12.84% on
Landsat-5, the same elsewhere; the 12-band scene weighs C // 4 = 3 either way) for a third less CPU time on levels
2-3 of T33NZA 10 m (3.78 -> 2.53 s): shipped as ``plan.NETWORK_COMPONENTS = 1``. A stricter gate saves little more there (T33NZA 10 m's
tiles are all smooth, and its gain does not fall with the fine share: a tile at 0.026 gains 7.5%) and drops all of
T33NZA 20 m's gain at 0.02: not shipped. Levels 2-3 of T33NZA 10 m remain above 1.5x OpenJPEG's time
(``level_speed.md``): the networks themselves (about 9,000 multiply-accumulates per pixel each way, near the core's
peak in ONNX Runtime) are the cost, and only a smaller network trained on a GPU would cut it.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402

points = sibling("shortcut_eval").points  # per level: bpp, the scorer's PSNR, encode CPU seconds
_bd_rate, scene_bd = sibling("ablation_scorer")._bd_rate, sibling("ablation_scorer").scene_bd
policy_table = sibling("latent_levels").policy_table  # the same table of BD-rates and seconds per policy
#: (name, NETWORK_COMPONENTS, GATE_FINE_SHARE); None: no network on any level (mode_search 'residual')
POLICIES: tuple[tuple[str, int | None, float | None], ...] = (
    ("2 components, fine < 0.05", 2, 0.05),
    ("1 component, fine < 0.05", 1, 0.05),
    ("1 component, fine < 0.03", 1, 0.03),
    ("1 component, fine < 0.02", 1, 0.02),
    ("no network", None, None),
)


def run(scenes: list[Path], rd: Path, log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import plan as plan_mod

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    without = bundle.codec("onnxruntime", threads=1, mode_search="residual", transforms=codec.transforms)
    planner = codec.hybrid.planner
    network_levels = [i for i in range(codec.levels)
                      if codec.has_residual(i) and planner.searched_modes(i) and not planner.network_free(i)]
    curves, bd_rate = json.loads(Path(rd).read_text()), _bd_rate()
    shipped = plan_mod.NETWORK_COMPONENTS, plan_mod.GATE_FINE_SHARE
    out = []
    try:
        for path in scenes:
            row = {"scene": path.stem, "policies": {}}
            rest = points(path, bundle, codec, [i for i in range(codec.levels) if i not in network_levels])
            for name, comps, fine in POLICIES:
                if comps is not None:
                    plan_mod.NETWORK_COMPONENTS, plan_mod.GATE_FINE_SHARE = comps, fine
                pts = points(path, bundle, without if comps is None else codec, network_levels)
                plan_mod.NETWORK_COMPONENTS, plan_mod.GATE_FINE_SHARE = shipped
                curve = [(p["bpp"], p["psnr"]) for p in sorted(rest + pts, key=lambda p: p["level"])]
                bd = scene_bd(bd_rate, dict(curves[path.stem], ours=curve), None)
                row["policies"][name] = {"bd_rate": bd, "points": curve,
                                         "network_levels_cpu_s": sum(p["seconds"] for p in pts)}
            log(f"{path.stem}: " + ", ".join(f"{n} {row['policies'][n]['bd_rate']:+.2f}% "
                                            f"({row['policies'][n]['network_levels_cpu_s']:.2f} s)"
                                            for n, _, _ in POLICIES))
            out.append(row)
    finally:
        plan_mod.NETWORK_COMPONENTS, plan_mod.GATE_FINE_SHARE = shipped
    names = [n for n, _, _ in POLICIES]
    median = {n: statistics.median(r["policies"][n]["bd_rate"] for r in out) for n in names}
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "rd": str(rd),
            "network_levels": network_levels, "policies": [list(p) for p in POLICIES], "scenes": out,
            "median": median}


def markdown(rec: dict, command: str) -> str:
    levels = ", ".join(map(str, rec["network_levels"]))
    names = [p[0] for p in rec["policies"]]
    lines = [f"# How much network do levels {levels} need? (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             f"BD-rate against the strongest JPEG 2000 of `{rec['rd']}` over all levels, as ladder_eval computes it "
             f"(negative: fewer bits); only levels {levels} change between policies. In brackets the encode CPU "
             f"seconds of levels {levels} (one core, the same run). 'N components': the network on the first "
             "max(N, C // 4) components of tiles with 4+ bands and under that share of wavelet energy in the finest "
             "subbands.", "",
             *policy_table(rec, names, "network_levels_cpu_s")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "network_budget", run, markdown,
                       options=[("--rd", {"type": Path, "required": True})])


if __name__ == "__main__":
    sys.exit(main())
