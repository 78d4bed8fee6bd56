"""Should the latent-only levels run the network? (issue 22, item 2: no level is latents-only)

Each scene is encoded at every level of the shipped ladder in-process (one core, ONNX Runtime on one thread),
decoded by the ground decoder and scored with the independent scorer's PSNR; the BD-rate against the strongest
JPEG 2000 curve of a scorer ``rd.json`` of the same scenes, as ``benchmarks/tools/ladder_eval.py`` computes it.
Three policies for ``mode_search='auto'`` on the latent-only levels (0-1; every other level as shipped),
``plan.LATENT_LEVELS``:

- ``gate``: the latents where the tile gate passes (``Planner.network_pays``: 4+ smooth bands), the residual alone
  at a coarse step (``HybridModel.coarse_step``) elsewhere: the default until 2026-12-06;
- ``hybrid``: every tile planned at the coarse step with its named residual level's search (the network weighed per
  component where the gate passes);
- ``residual``: the coarse residual alone on every tile, no network;
- ``no network``: ``residual``, and ``mode_search='residual'`` on levels 2-3 too (the codec without its networks):
  against ``residual``, what the networks still earn where ``auto`` runs them.

Also the encode CPU time of levels 0 and 1 under each policy (the same run).

    python benchmarks/experiments/latent_levels.py .dev/val/*.tif --rd benchmarks/results/782c7ed21f22/scorer_validation_rd.json

Writes ``latent_levels.json`` and ``latent_levels.md``.

**Conclusion** (2026-12-06, the 8 validation scenes, so in-sample; ``latent_levels.md``): tile format v10's residual
coder beats the latents at the lowest rates. ``residual`` scores -9.34% against the gate's -7.77% on the Sentinel-2
patch, -9.54% against -9.06% on T33NZA 20 m, -12.84% against -12.56% on Landsat-5, -9.44% against -9.41% on T33NZA
10 m, the same on the four scenes whose tiles never passed the gate; ``hybrid`` gains 0.2 point more on T33NZA 10 m
only, for twice the gate's time. ``residual`` takes levels 0-1 of T33NZA 10 m from 1.8 to 0.5 CPU seconds:
shipped as ``plan.LATENT_LEVELS = 'residual'``. What the networks still earn on levels 2-3 (``no network``
against ``residual``): 0.2 point on the T33NZA scenes, 0.1 on Landsat-5, nothing elsewhere.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402

points = sibling("shortcut_eval").points  # per level: bpp, the scorer's PSNR, encode CPU seconds
_bd_rate, scene_bd = sibling("ablation_scorer")._bd_rate, sibling("ablation_scorer").scene_bd
POLICIES = ("gate", "hybrid", "residual", "no network")


def run(scenes: list[Path], rd: Path, log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import plan as plan_mod

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    without = bundle.codec("onnxruntime", threads=1, mode_search="residual")
    latent_only = [int(v) for v in np.flatnonzero(codec.ladder.step == 0)]
    curves, bd_rate = json.loads(Path(rd).read_text()), _bd_rate()
    shipped = plan_mod.LATENT_LEVELS
    out = []
    try:
        for path in scenes:
            row = {"scene": path.stem, "policies": {}}
            for policy in POLICIES:
                plan_mod.LATENT_LEVELS = "residual" if policy == "no network" else policy
                pts = points(path, bundle, without if policy == "no network" else codec)
                curve = [(p["bpp"], p["psnr"]) for p in pts]
                bd = scene_bd(bd_rate, dict(curves[path.stem], ours=curve), None)
                row["policies"][policy] = {"bd_rate": bd, "points": curve, "latent_levels_cpu_s":
                                           sum(p["seconds"] for p in pts if p["level"] in latent_only)}
            log(f"{path.stem}: " + ", ".join(f"{p} {row['policies'][p]['bd_rate']:+.2f}% "
                                            f"({row['policies'][p]['latent_levels_cpu_s']:.2f} s)" for p in POLICIES))
            out.append(row)
    finally:
        plan_mod.LATENT_LEVELS = shipped
    median = {p: statistics.median(r["policies"][p]["bd_rate"] for r in out) for p in POLICIES}
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "rd": str(rd),
            "latent_only_levels": latent_only, "scenes": out, "median": median}


def markdown(rec: dict, command: str) -> str:
    levels = ", ".join(map(str, rec["latent_only_levels"]))
    lines = [f"# Latent-only levels: the network or a coarse residual? (bundle {rec['bundle']}, {rec['date'][:10]})",
             "", f"`{command}`", "",
             f"BD-rate against the strongest JPEG 2000 of `{rec['rd']}` over all levels, as ladder_eval computes it "
             f"(negative: fewer bits); only levels {levels} change between the first three policies. In brackets the encode CPU "
             f"seconds of levels {levels} (one core, the same run).", "",
             *policy_table(rec, POLICIES, "latent_levels_cpu_s")]
    return "\n".join(lines) + "\n"


def policy_table(rec: dict, names, seconds: str) -> list[str]:
    """Markdown rows of a record whose scenes each hold ``policies[name]`` with ``bd_rate`` and CPU seconds under
    the key ``seconds``: per scene each policy's BD-rate (seconds in brackets), then the medians (``rec['median']``).
    Shared with ``network_budget.py``."""
    lines = ["| scene | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in rec["scenes"]:
        lines.append(f"| {r['scene']} | " + " | ".join(
            f"{r['policies'][n]['bd_rate']:+.2f}% ({r['policies'][n][seconds]:.2f} s)" for n in names) + " |")
    lines.append("| **median** | " + " | ".join(f"**{rec['median'][n]:+.2f}%**" for n in names) + " |")
    return lines


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "latent_levels", run, markdown,
                       options=[("--rd", {"type": Path, "required": True})])


if __name__ == "__main__":
    sys.exit(main())
