"""Lossless whole-encode speed of tile format v9 against v8 and OpenJPEG lossless, alternated in one process (issue 25).

``bounded_bench.py`` times each coder once per scene, one after the other, on a shared machine whose load moves by 2x
within minutes. Here, per scene, each round runs our whole encode at E = 0 (GeoTIFF read to packets,
``encode_scene``) writing v9, the same writing v8 (:class:`PredictiveKind` set to version 8), and OpenJPEG lossless
(``lossless_peers.measure``, pixels in memory, one thread), in turn; each keeps its fastest of ``--rounds`` rounds.
Ratios are ours / OpenJPEG's MSamples/s, on pixels in memory and with the scene's GeoTIFF read (fastest of the
rounds) added to OpenJPEG's time. Our bytes are checked against the v9 / v8 rows of ``predictor_v9`` only by size
order (v9 < v8); every decode bound is checked in ``bounded_bench.py``.

    python benchmarks/experiments/bounded_speed_v9.py .dev/val/*.tif --rounds 3

Writes ``bounded_speed_v9.json`` and ``bounded_speed_v9.md``.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402


def run(scenes: list[Path], rounds: int, log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import predictive
    from cvae.edge.encoder import EncodeOptions, encode_scene

    bench = sibling("bounded_bench")
    lp = sibling("lossless_peers")
    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime")
    keep = predictive.PredictiveKind.version
    rows = []
    for path in scenes:
        best = {"v9": float("inf"), "v8": float("inf"), "openjpeg": float("inf"), "read": float("inf")}
        nbytes = {}
        for _ in range(rounds):
            t0 = time.perf_counter()
            pixels, _ = bench._scene(path)
            best["read"] = min(best["read"], time.perf_counter() - t0)
            for name, version in (("v9", 9), ("v8", 8)):
                predictive.PredictiveKind.version = version
                try:
                    t0 = time.perf_counter()
                    enc = encode_scene(path, bundle, codec, EncodeOptions(max_error=(0,), scene_id=1))
                    best[name] = min(best[name], time.perf_counter() - t0)
                finally:
                    predictive.PredictiveKind.version = keep
                nbytes[name] = enc.nbytes
            m = lp.measure("jpeg2000_lossless", pixels, 0, 1)
            best["openjpeg"] = min(best["openjpeg"], m["encode_seconds_median"])
        n = pixels.size
        row = {"scene": path.stem, "samples": n, "seconds": best, "bits_per_sample": {k: 8 * v / n for k, v in
                                                                                    nbytes.items()},
               "msamples_per_s": {k: n / best[k] / 1e6 for k in ("v9", "v8", "openjpeg")},
               "v9_over_openjpeg": best["openjpeg"] / best["v9"],
               "v9_over_openjpeg_with_read": (best["openjpeg"] + best["read"]) / best["v9"],
               "v9_over_v8": best["v8"] / best["v9"]}
        rows.append(row)
        log(f"{path.stem}: v9 {row['msamples_per_s']['v9']:.2f}, v8 {row['msamples_per_s']['v8']:.2f}, OpenJPEG "
            f"{row['msamples_per_s']['openjpeg']:.2f} MS/s; v9/OpenJPEG {row['v9_over_openjpeg']:.2f}x "
            f"({row['v9_over_openjpeg_with_read']:.2f}x with the read), v9/v8 {row['v9_over_v8']:.2f}x")
    med = {k: statistics.median(r[k] for r in rows) for k in ("v9_over_openjpeg", "v9_over_openjpeg_with_read",
                                                             "v9_over_v8")}
    return {"date": utc_now(), "machine": machine_info(), "rounds": rounds, "rows": rows, "median": med}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Lossless whole-encode speed: v9 against v8 and OpenJPEG lossless ({rec['date'][:10]})", "",
             "```bash", command, "```", "",
             f"Fastest of {rec['rounds']} alternated rounds per coder, one thread, on a shared 2-core machine. Ours: "
             "GeoTIFF read to packets at E = 0; OpenJPEG: pixels in memory (\"+ read\": the scene's read time added "
             "to OpenJPEG's).", "",
             "| scene | samples | v9 MS/s | v8 MS/s | OpenJPEG MS/s | v9 / OpenJPEG | v9 / OpenJPEG + read | v9 / v8 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        m = r["msamples_per_s"]
        lines.append(f"| {r['scene']} | {r['samples']} | {m['v9']:.2f} | {m['v8']:.2f} | {m['openjpeg']:.2f} | "
                     f"{r['v9_over_openjpeg']:.2f} | {r['v9_over_openjpeg_with_read']:.2f} | {r['v9_over_v8']:.2f} |")
    md = rec["median"]
    lines.append(f"| **median** | | | | | **{md['v9_over_openjpeg']:.2f}** | **{md['v9_over_openjpeg_with_read']:.2f}** "
                 f"| {md['v9_over_v8']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "bounded_speed_v9", run, markdown,
                       [("--rounds", {"type": int, "default": 3})])


if __name__ == "__main__":
    sys.exit(main())
