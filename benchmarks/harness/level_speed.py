"""Whole encode at every asked level against OpenJPEG at the same rate, one core and all cores, same run.

Ours: ``encode_scene`` (what cvae-encode and the daemon run: GeoTIFF read to CCSDS packets) on one core (tiles one
at a time, ONNX Runtime on one thread) and on all cores (``--threads`` = the cores, tiles in parallel, each network
run on one thread: what cvae-encode and the daemon do with more than one thread).
OpenJPEG (imagecodecs): each band at the quality whose rate is nearest ours, pixels in memory (it is spared the
GeoTIFF read), one thread and all threads. Medians of ``--repeats`` runs, alternated so both see the same machine
load; MSamples/s and the ratio of times (ours / OpenJPEG: below 1, ours is faster). The per-stage split of one
one-core encode (``bench_speed.time_pipeline``: read and packets, spectral transform, network, coding) comes with it.

    python benchmarks/harness/level_speed.py .dev/val/s2_t33nza_10m_b2348.tif .dev/val/l8_lc81210442015044_b234.tif

Levels default to 0, N/3, 2N/3 and N - 1 of the bundle (the issue's done-when); ``--levels all`` for every one.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # numpy's pools: one core means one core

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, native_pixels, scenes_main, utc_now  # noqa: E402


def _openjpeg(bands: list[np.ndarray], quality: int, threads: int) -> float:
    import imagecodecs

    t0 = time.perf_counter()
    for b in bands:
        imagecodecs.jpeg2k_encode(b, level=quality, numthreads=threads)
    return time.perf_counter() - t0


def _matched_quality(bands: list[np.ndarray], samples: int, bpp: float) -> tuple[int, float]:
    """The OpenJPEG quality (its PSNR target) whose rate is nearest ``bpp``: coarse steps, then the neighbours."""
    import imagecodecs

    rate = lambda q: 8 * sum(len(imagecodecs.jpeg2k_encode(b, level=q)) for b in bands) / samples
    rates = {q: rate(q) for q in range(20, 101, 5)}
    near = min(rates, key=lambda k: abs(np.log(rates[k] / bpp)))
    rates.update({k: rate(k) for k in range(max(1, near - 4), min(100, near + 4) + 1) if k not in rates})
    q = min(rates, key=lambda k: abs(np.log(rates[k] / bpp)))
    return q, rates[q]


def level_row(path: Path, bundle, one, every, level: int, repeats: int, cores: int, bands, samples: int) -> dict:
    import bench_speed

    from cvae.edge.encoder import EncodeOptions, encode_scene

    opt1 = EncodeOptions(level=level, scene_id=1, threads=1)
    optn = EncodeOptions(level=level, scene_id=1, threads=cores)
    enc = encode_scene(path, bundle, one, opt1)  # warm-up, and the rate OpenJPEG is matched to
    bpp = 8 * enc.nbytes / samples
    q, j_bpp = _matched_quality(bands, samples, bpp)
    t = {"ours_1": [], "ours_n": [], "j2k_1": [], "j2k_n": [], "ours_1_cpu": [], "j2k_1_cpu": []}
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        encode_scene(path, bundle, one, opt1)
        t["ours_1"].append(time.perf_counter() - t0)
        t["ours_1_cpu"].append(time.process_time() - c0)
        c0 = time.process_time()
        t["j2k_1"].append(_openjpeg(bands, q, 1))
        t["j2k_1_cpu"].append(time.process_time() - c0)
        t0 = time.perf_counter()
        encode_scene(path, bundle, every, optn)
        t["ours_n"].append(time.perf_counter() - t0)
        t["j2k_n"].append(_openjpeg(bands, q, cores))
    med = {k: statistics.median(v) for k, v in t.items()}
    with tempfile.TemporaryDirectory(prefix="cvae-level-speed-") as d:
        stages = bench_speed.time_pipeline(path, bundle, one, level, 256, Path(d), threads=1)["stages_s"]
    return {"level": level, "step": float(one.ladder.step[level]), "network_free": not one.hybrid.planner.searched_modes(level),
            "bpp": bpp, "j2k_quality": q, "j2k_bpp": j_bpp, "seconds": med, "repeats": t,
            "msamples_per_s": {k: samples / v / 1e6 for k, v in med.items()},
            "ratio_1": med["ours_1"] / med["j2k_1"], "ratio_n": med["ours_n"] / med["j2k_n"],
            "ratio_1_cpu": med["ours_1_cpu"] / med["j2k_1_cpu"], "stages_s": stages}


def run(scenes: list[Path], levels: str, repeats: int, log=print, mode_search: str = "default") -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.io.raster import read_raster

    bundle = Bundle.load()
    cores = len(os.sched_getaffinity(0))
    asked_search = None if mode_search == "default" else mode_search  # default: cvae-encode's for this backend
    one = bundle.codec("onnxruntime", threads=1, mode_search=asked_search)
    # as cvae-encode --threads N > 1: one network thread per tile thread (ONNX Runtime's own pool would fight them)
    every = bundle.codec("onnxruntime", threads=1 if cores > 1 else 0, mode_search=asked_search)
    mode_search = one.mode_search
    n = one.levels
    asked = list(range(n)) if levels == "all" else sorted({0, n // 3, 2 * n // 3, n - 1}) if levels == "done-when" \
        else [int(v) for v in levels.split(",")]
    records = []
    for path in scenes:
        px = native_pixels(read_raster(path).pixels)
        bands = [np.ascontiguousarray(b) for b in px]
        rows = []
        for level in asked:
            r = level_row(path, bundle, one, every, level, repeats, cores, bands, px.size)
            rows.append(r)
            log(f"{path.stem} L{level}: {r['bpp']:.3f} bpp, ours {r['seconds']['ours_1']:.3f} s / OpenJPEG "
                f"{r['seconds']['j2k_1']:.3f} s = {r['ratio_1']:.2f}x one core (CPU time {r['ratio_1_cpu']:.2f}x); "
                f"{r['ratio_n']:.2f}x on {cores}")
        records.append({"scene": path.stem, "shape": list(px.shape), "dtype": str(px.dtype), "levels": rows})
    ratios = {k: [r[k] for s in records for r in s["levels"]] for k in ("ratio_1", "ratio_n", "ratio_1_cpu")}
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "cores": cores,
            "repeats": repeats, "mode_search": mode_search, "scenes": records,
            "median_ratio": {k: statistics.median(v) for k, v in ratios.items() if v}}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Whole encode against OpenJPEG at the same rate, per level (bundle {rec['bundle']}, {rec['date'][:10]})",
             "", f"`{command}`", "",
             f"Ours: GeoTIFF read to packets. OpenJPEG: per band at the nearest rate, pixels in memory. Medians of "
             f"{rec['repeats']} alternated runs; mode search {rec.get('mode_search', 'auto')!r} (cvae-encode "
             f"--mode-search); ratio = our time / OpenJPEG's (below 1: ours faster); 'all' = "
             f"{rec['cores']} cores. Median ratio over the rows: one core "
             f"{rec['median_ratio'].get('ratio_1', float('nan')):.2f}x, all cores "
             f"{rec['median_ratio'].get('ratio_n', float('nan')):.2f}x. 'CPU': the same one-core runs timed by the "
             f"process's CPU time instead of the clock (less sensitive to other jobs on a shared machine; median "
             f"{rec['median_ratio'].get('ratio_1_cpu', float('nan')):.2f}x).", "",
             "| scene | level | network | bpp (OpenJPEG) | ours MS/s 1 core | OpenJPEG MS/s 1 | ratio 1 core | "
             "ratio 1 core, CPU | ours MS/s all | OpenJPEG MS/s all | ratio all | stages ms (read+packets / spectral / "
             "network / code) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in rec["scenes"]:
        for r in s["levels"]:
            m, st = r["msamples_per_s"], r["stages_s"]
            lines.append(f"| {s['scene']} | {r['level']} | {'none' if r['network_free'] else 'yes'} | "
                         f"{r['bpp']:.3f} ({r['j2k_bpp']:.3f}) | {m['ours_1']:.2f} | {m['j2k_1']:.2f} | "
                         f"{r['ratio_1']:.2f}x | {r.get('ratio_1_cpu', float('nan')):.2f}x | {m['ours_n']:.2f} | "
                         f"{m['j2k_n']:.2f} | {r['ratio_n']:.2f}x | "
                         f"{1e3 * st['read_packetize']:.0f} / {1e3 * st['spectral']:.0f} / {1e3 * st['network']:.0f}"
                         f" / {1e3 * st['code']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import argparse

    name = argparse.ArgumentParser(add_help=False)
    name.add_argument("--name", default="level_speed")
    known, _ = name.parse_known_args(argv)  # the result files' name (e.g. a before/after pair in one folder)
    return scenes_main(argv, __doc__, __file__, known.name,
                       lambda scenes, levels, repeats, _name, mode: run(scenes, levels, repeats, mode_search=mode),
                       markdown, [("--levels", {"default": "done-when", "help": "'done-when' (0, N/3, 2N/3, N-1), 'all', or a list 0,4,8"}),
                                  ("--repeats", {"type": int, "default": 3}),
                                  ("--name", {"default": "level_speed", "help": "result files NAME.json, NAME.md"}),
                                  ("--mode-search", {"default": "default", "choices": ["default", "auto", "full", "ladder", "residual"],
                                                     "help": "the encoder's search on residual levels (cvae-encode "
                                                             "--mode-search; default: cvae-encode's for ONNX Runtime here)"})])

if __name__ == "__main__":
    sys.exit(main())
