"""Where ``--psnr DB`` lands, and what it costs against one fixed-level encode (issue 22's exact quality targets).

For each scene and target: the whole encode with ``psnr`` (``encode_scene``, what ``cvae-encode --psnr`` and the
daemon's ``psnr`` run, one core: tiles one at a time, ONNX Runtime on one thread), decoded by the ground
(``decode_streams``), and the scene's PSNR as the independent scorer defines it (``rd_vs_jpeg2000.py``: per band
over valid pixels (not nodata; zeros in uint16 scenes with more than 1% zeros), peak = the band's valid range, mean
over bands). The overshoot is that PSNR minus the target (the issue asks 0 .. 0.2 dB). The cost: the median encode
time of ``--repeats`` runs with the target against the same number of fixed-level encodes at the level most of its
tiles name, alternated so both see the same machine load (the issue asks at most 2x); on small scenes each timed
sample repeats the encode until the fixed level's fills ``MIN_SAMPLE_S``.

    python benchmarks/harness/psnr_targets.py .dev/val/*.tif --targets 35 40 45
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # numpy's pools: one core means one core

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402


def scorer_psnr(orig: np.ndarray, rec: np.ndarray, nodata) -> float:
    """The scorer's scene PSNR (rd_vs_jpeg2000.py's valid_mask and psnr, mean over bands)."""
    out = []
    for o, r in zip(orig, rec):
        m = o != nodata if nodata is not None else (o != 0 if o.dtype == np.uint16 and (o == 0).mean() > 0.01
                                                    else np.ones(o.shape, bool))
        v = o[m].astype(np.float64)
        peak = v.max() - v.min()
        mse = np.mean((v - r[m].astype(np.float64)) ** 2)
        out.append(10 * math.log10(peak ** 2 / max(mse, 1e-12)) if peak > 0 else float("nan"))
    return float(np.nanmean(out))


#: each timed sample runs the encode as many times as the fixed level takes to fill this many seconds (a 120 x 120
#: scene encodes in 10 ms: one run alone is mostly the machine's noise)
MIN_SAMPLE_S = 0.3


def target_row(path: Path, bundle, codec, orig: np.ndarray, nodata, target: float, repeats: int) -> dict:
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    opts = EncodeOptions(psnr=target, scene_id=1, threads=1)
    enc = encode_scene(path, bundle, codec, opts)
    [scene], _ = decode_streams([b"".join(enc.packets)], bundle, codec)
    got = scorer_psnr(orig, scene.pixels, nodata)
    level = Counter(enc.levels).most_common(1)[0][0]
    fixed = EncodeOptions(level=level, scene_id=1, threads=1)
    t0 = time.perf_counter()
    encode_scene(path, bundle, codec, fixed)
    loops = max(1, math.ceil(MIN_SAMPLE_S / max(time.perf_counter() - t0, 1e-6)))  # small scenes: encodes per sample
    t: dict[str, list[float]] = {"psnr": [], "level": [], "psnr_cpu": [], "level_cpu": []}
    for _ in range(repeats):
        for key, o in (("psnr", opts), ("level", fixed)):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(loops):
                encode_scene(path, bundle, codec, o)
            t[key].append((time.perf_counter() - t0) / loops)
            t[key + "_cpu"].append((time.process_time() - c0) / loops)
    med = {k: statistics.median(v) for k, v in t.items()}
    return {"target": target, "psnr": got, "over": got - target, "bpp": 8 * enc.nbytes / orig.size,
            "tiles": enc.tiles, "bounded": enc.bounded, "levels": dict(Counter(enc.levels)), "fixed_level": level,
            "seconds": med, "repeats": t, "cost": med["psnr"] / med["level"],
            "cost_cpu": med["psnr_cpu"] / med["level_cpu"], "loops": loops}


def run(scenes: list[Path], targets: list[float], repeats: int, log=print) -> dict:
    import rasterio

    from cvae.edge.bundle import Bundle

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1)
    records = []
    for path in scenes:
        with rasterio.open(path) as d:
            orig, nodata = d.read(), d.nodata
        rows = []
        for target in targets:
            r = target_row(path, bundle, codec, orig, nodata, target, repeats)
            rows.append(r)
            log(f"{path.stem} --psnr {target:g}: {r['psnr']:.3f} dB ({r['over']:+.3f}), {r['bpp']:.3f} bpp, "
                f"{r['seconds']['psnr']:.2f} s = {r['cost']:.2f}x level {r['fixed_level']} (CPU time {r['cost_cpu']:.2f}x)")
        records.append({"scene": path.stem, "shape": list(orig.shape), "dtype": str(orig.dtype), "targets": rows})
    overs = [r["over"] for s in records for r in s["targets"]]
    costs = [r["cost"] for s in records for r in s["targets"]]
    cpu = [r["cost_cpu"] for s in records for r in s["targets"]]
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "repeats": repeats,
            "scenes": records, "over": {"min": min(overs), "median": statistics.median(overs), "max": max(overs)},
            "cost": {"median": statistics.median(costs), "max": max(costs)},
            "cost_cpu": {"median": statistics.median(cpu), "max": max(cpu)}}


def markdown(rec: dict, command: str) -> str:
    o, c = rec["over"], rec["cost"]
    lines = [f"# Where --psnr lands, and its cost (bundle {rec['bundle']}, {rec['date'][:10]})", "", f"`{command}`", "",
             "Scene PSNR as the independent scorer defines it, after the ground's decode; over = PSNR - target (asked: "
             "0 .. 0.2 dB). Cost = median encode time with the target / with the fixed level most of its tiles name "
             f"({rec['repeats']} alternated runs each, one core; each run repeated until the fixed level's takes "
             f"{MIN_SAMPLE_S:g} s on small scenes; asked: at most 2x); CPU: the same runs timed by the "
             "process's CPU time (less sensitive to other jobs on a shared machine).", "",
             f"Over the target: min {o['min']:+.3f}, median {o['median']:+.3f}, max {o['max']:+.3f} dB. Cost: median "
             f"{c['median']:.2f}x, max {c['max']:.2f}x; by CPU time median {rec['cost_cpu']['median']:.2f}x, max "
             f"{rec['cost_cpu']['max']:.2f}x.", "",
             "| scene | target | PSNR | over | bpp | tiles (bounded) | levels | cost (s / fixed-level s) | cost, CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in rec["scenes"]:
        for r in s["targets"]:
            lv = ", ".join(f"{k}: {v}" for k, v in sorted(r["levels"].items()))
            lines.append(f"| {s['scene']} | {r['target']:g} | {r['psnr']:.3f} | {r['over']:+.3f} | {r['bpp']:.3f} | "
                         f"{r['tiles']} ({r['bounded']}) | {lv} | {r['cost']:.2f}x ({r['seconds']['psnr']:.2f} / "
                         f"{r['seconds']['level']:.2f}, level {r['fixed_level']}) | {r['cost_cpu']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "psnr_targets", run, markdown,
                       [("--targets", {"type": float, "nargs": "+", "default": [35.0, 40.0, 45.0]}),
                        ("--repeats", {"type": int, "default": 3})])


if __name__ == "__main__":
    sys.exit(main())
