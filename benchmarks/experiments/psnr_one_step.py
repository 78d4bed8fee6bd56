"""What ``--psnr`` spends against one quantiser step for the whole scene, at the same scene PSNR.

``--psnr`` once gave each tile its share of the scene's target as a PSNR (:class:`cvae.edge.quality.SceneTarget`) and
searched the tile's step to it. The fewest bits for a scene's error spend them at equal rate-distortion slopes, which
one step for every tile gives (the planner's multiplier goes with the step). This runs, per scene and target, the
real ``--psnr`` encode, and the same scene with every tile coded at one step (the tile weighted for it, planned once,
networks as the default search), over ``STEPS`` steps spanning the ladder; the one-step curve is interpolated (log
bytes against PSNR, linear) at the PSNR ``--psnr`` reached. Both decoded by the ground and measured as the scorer does
(:func:`psnr_targets.scorer_psnr`). Positive: ``--psnr`` spends more.

    python benchmarks/experiments/psnr_one_step.py .dev/val/*.tif --targets 35 40 45

The one step is found here by sweeping (tens of encodes); the encoder finds it in one pass over the scene's
error curves (:meth:`cvae.edge.quality.SceneTarget.scene_step`, scenes of more than 2 SceneTarget.LAG tiles; the last
LAG tiles are searched to their PSNR shares to land the scene). Before it (a PSNR share per tile), ``--psnr`` spent
+4.9% to +16.5% more on the Landsat-8 scenes (commit 493f465's psnr_one_step.md).
"""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402
from psnr_targets import scorer_psnr  # noqa: E402

#: the one-step sweep: log-spaced steps from STEP_LO to STEP_HI (normalised units), STEPS of them
STEP_LO, STEP_HI, STEPS = 0.003, 0.3, 25


def run(scenes: list[Path], targets: list[float]) -> dict:
    import rasterio

    import cvae.edge.quality as quality
    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1)
    real = quality.choose_for_psnr
    step = [0.0]

    def one_step(codec_, px, valid, fill, band_range, target, scene=None, state=None, unit=0):
        """Every tile at ``step[0]``: weighted for it, the planner's own modes (what a fixed level codes)."""
        a = codec_.analyze(px, valid, band_range=band_range, band_fill=fill, scene=scene)
        w = codec_.weighted(a, None, step[0])
        if state is not None:
            state.commit(unit)
        return dataclasses.replace(w, step=step[0]), codec_.level_for_step(step[0]), 0.0

    records = []
    for path in scenes:
        with rasterio.open(path) as d:
            orig, nodata = d.read(), d.nodata

        def measure(target: float) -> tuple[float, float]:
            enc = encode_scene(path, bundle, codec, EncodeOptions(psnr=target, scene_id=1, threads=1))
            [scene], _ = decode_streams([b"".join(enc.packets)], bundle, codec)
            return scorer_psnr(orig, scene.pixels, nodata), 8 * enc.nbytes / orig.size

        try:
            quality.choose_for_psnr = one_step
            curve = []
            for s in np.exp(np.linspace(math.log(STEP_LO), math.log(STEP_HI), STEPS)):
                step[0] = float(s)
                curve.append((*measure(40.0), float(s)))  # the target is ignored: every tile at step[0]
        finally:
            quality.choose_for_psnr = real
        curve.sort()
        qs, lb = np.array([c[0] for c in curve]), np.log([c[1] for c in curve])
        rows = []
        for target in targets:
            q, bpp = measure(target)
            one = math.exp(float(np.interp(q, qs, lb)))
            rows.append({"target": target, "psnr": q, "bpp": bpp, "one_step_bpp": one, "extra": bpp / one - 1})
            print(f"{path.stem} --psnr {target:g}: {q:.3f} dB {bpp:.4f} bpp; one step {one:.4f} bpp "
                  f"({100 * (bpp / one - 1):+.1f}%)", flush=True)
        records.append({"scene": path.stem, "curve": curve, "targets": rows})
    extra = [r["extra"] for s in records for r in s["targets"]]
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "scenes": records,
            "extra": {"median": statistics.median(extra), "min": min(extra), "max": max(extra)}}


def markdown(rec: dict, command: str) -> str:
    e = rec["extra"]
    lines = [f"# --psnr against one step for the scene (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             "Bits per sample of the real `--psnr` encode against the same scene with every tile at one step, "
             "interpolated at the PSNR `--psnr` reached (the scorer's PSNR after the ground's decode); positive: "
             f"`--psnr` spends more. Median {100 * e['median']:+.1f}%, from {100 * e['min']:+.1f}% to "
             f"{100 * e['max']:+.1f}%.", "",
             "| scene | target | PSNR | bpp | one step, bpp | --psnr spends |", "|---|---|---|---|---|---|"]
    for s in rec["scenes"]:
        for r in s["targets"]:
            lines.append(f"| {s['scene']} | {r['target']:g} | {r['psnr']:.3f} | {r['bpp']:.4f} | "
                         f"{r['one_step_bpp']:.4f} | {100 * r['extra']:+.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "psnr_one_step", run, markdown,
                       [("--targets", {"type": float, "nargs": "+", "default": [35.0, 40.0, 45.0]})])


if __name__ == "__main__":
    sys.exit(main())
