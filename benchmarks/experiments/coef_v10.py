"""Tile format v10's coefficient coder (the mixing coder, ``edge/codec/_coefmix.h``) against v7's (v5's coder,
``edge/codec/_coefs.c``) on the residual-only tiles of the scenes (issue 22, item 6).

Every 256 x 256 tile of the scenes (read and analysed as ``cvae-encode`` does), its components' wavelet subbands over
the level's preset step rounded to the nearest, at each level, coded two ways by both flight coders:

- **same integers**: the integers v7's encoder chooses (its greedy rate-distortion choice, ``coefs.encode_rdo``)
  coded by both coders with no choice: the measure of ``coef_mixing.py`` (whose ``gated`` variant v10 ships);
- **as written**: each coder with its own rate-distortion choice at the encoder's slope (``coefs.encode_rdo``, what
  the encoder writes for each format), with the change of the squared error over the coefficients that comes with it
  (in steps^2; the bits are the stream's bytes, exact).

Every stream is decoded back by the flight decoder and compared. Speed: encode (with the choice) + decode, million
coefficients per second, one thread, all tiles and levels; and encode alone. Bytes are all tiles of a scene
together, v10 / v7 - 1.

    python benchmarks/experiments/coef_v10.py .dev/val/*.tif --levels 3 6 8 11

**Conclusion** (decided; 1 min on 2 cores): shipped as tile format v10. The same integers need a median 2.15% /
1.67% / 1.50% / 1.29% fewer coefficient bytes at levels 3 / 6 / 8 / 11 (every scene smaller: worst -1.54% / -1.06% /
-0.92% / -0.71%; NAIP -3.8% to -4.2%); as written (each coder with its own rate-distortion choice) 3.10% / 2.08% /
1.81% / 1.49% fewer, the squared error within -0.4% .. +0.3% at the median. The coder encodes (with the choice) in
1.8x and decodes in 2.2x v7's time on a loaded 2-core machine; the whole encode at levels 7-11 is in
``level_speed_v10.md`` against ``level_speed_v7.md``.
Result: ``benchmarks/results/782c7ed21f22/coef_v10.md``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import analysed_tiles, scenes_main, utc_now  # noqa: E402

CODERS = {"v7": False, "v10": True}


def _timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t


def tile_level(planner, a, level: int, clock: dict) -> dict:
    """The four byte counts and two squared errors of one tile at ``level``; ``clock[coder]`` accumulates
    [encode seconds, decode seconds, coefficients]."""
    from cvae.edge.codec import coefs
    from cvae.edge.codec.plan import rd_lambda

    c, h, w = a.shape
    step = planner.model.preset_step(level)
    scaled = [[x.astype(np.float64) / step for x in bands] for bands in planner.z_subbands(a)]
    nearest = [[(np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) for x in bands] for bands in scaled]
    flat = coefs.flatten(scaled, h, w, np.float64)
    lam = rd_lambda(step) / (step * step)
    out = {}
    for name, mixed in CODERS.items():
        (stream, chosen), te = _timed(coefs.encode_rdo, nearest, scaled, h, w, lam, mixed)
        values = coefs.flatten(chosen, h, w)
        back, td = _timed(coefs.decode_values, stream, c, h, w, mixed)
        if not np.array_equal(back, values):
            raise AssertionError(f"level {level}: the {name} stream does not decode to what it coded")
        clock[name][0] += te
        clock[name][1] += td
        clock[name][2] += len(values)
        out[f"{name}_written"] = len(stream)
        out[f"{name}_err"] = float(np.sum((flat - values) ** 2))
        if name == "v7":
            same = chosen
    for name, mixed in CODERS.items():
        stream = coefs.encode(same, h, w, mixed)
        if not np.array_equal(coefs.decode_values(stream, c, h, w, mixed), coefs.flatten(same, h, w)):
            raise AssertionError(f"level {level}: the {name} stream of v7's integers does not round-trip")
        out[f"{name}_same"] = len(stream)
    return out


def run(scenes: list[Path], levels: list[int], log=print) -> dict:
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", mode_search="residual", threads=1)
    planner = codec.hybrid.planner
    clock = {name: [0.0, 0.0, 0] for name in CODERS}
    records = []
    for path in scenes:
        sums = {lv: {} for lv in levels}
        for _, _, a in analysed_tiles(path, codec):
            for lv in levels:
                for key, v in tile_level(planner, a, lv, clock).items():
                    sums[lv][key] = sums[lv].get(key, 0) + v
        records.append({"scene": path.stem, "levels": {str(lv): sums[lv] for lv in levels}})
        log(f"{path.stem}: " + " ".join(
            f"L{lv} {100 * (sums[lv]['v10_same'] / sums[lv]['v7_same'] - 1):+.2f}%" for lv in levels))

    def change(kind: str) -> dict:
        return {str(lv): [s["levels"][str(lv)][f"v10_{kind}"] / s["levels"][str(lv)][f"v7_{kind}"] - 1
                          for s in records] for lv in levels}

    summary = {kind: {lv: {"median": float(np.median(v)), "worst": float(max(v)), "best": float(min(v))}
                      for lv, v in change(kind).items()} for kind in ("same", "written", "err")}
    speed = {name: {"encode_decode_mcoef_s": c[2] / (c[0] + c[1]) / 1e6, "encode_mcoef_s": c[2] / c[0] / 1e6,
                    "decode_mcoef_s": c[2] / c[1] / 1e6} for name, c in clock.items()}
    return {"date": utc_now(), "bundle": bundle.model_id[:12], "levels": levels, "scenes": records,
            "summary": summary, "speed": speed}


def markdown(rec: dict, command: str) -> str:
    levels = [str(lv) for lv in rec["levels"]]
    s, sp = rec["summary"], rec["speed"]
    lines = [f"# Tile format v10's coefficient coder against v7's (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             "Residual-only tiles at each level's preset step; bytes of the coefficient streams, v10 / v7 - 1, all "
             "tiles of a scene together (median, best and worst scene). *Same integers*: v7's encoder's choice coded "
             "by both coders; *as written*: each coder with its own rate-distortion choice, with the change of the "
             "squared error that comes with it. Every stream decoded back by the flight decoder.", "",
             "| measure | " + " | ".join(f"L{lv} median" for lv in levels) + " | "
             + " | ".join(f"L{lv} best / worst" for lv in levels) + " |",
             "|---|" + "---|" * (2 * len(levels))]
    for kind, label in (("same", "bytes, same integers"), ("written", "bytes, as written"),
                        ("err", "squared error, as written")):
        lines.append(f"| {label} | " + " | ".join(f"{100 * s[kind][lv]['median']:+.2f}%" for lv in levels) + " | "
                     + " | ".join(f"{100 * s[kind][lv]['best']:+.2f}% / {100 * s[kind][lv]['worst']:+.2f}%"
                                  for lv in levels) + " |")
    lines += ["", "Speed (one thread, million coefficients per second over all tiles and levels):", "",
              "| coder | encode (with the choice) | decode | encode + decode |", "|---|---|---|---|"]
    for name in CODERS:
        lines.append(f"| {name} | {sp[name]['encode_mcoef_s']:.1f} | {sp[name]['decode_mcoef_s']:.1f} | "
                     f"{sp[name]['encode_decode_mcoef_s']:.1f} |")
    lines.append(f"| v10 / v7 time | {sp['v7']['encode_mcoef_s'] / sp['v10']['encode_mcoef_s']:.2f}x | "
                 f"{sp['v7']['decode_mcoef_s'] / sp['v10']['decode_mcoef_s']:.2f}x | "
                 f"{sp['v7']['encode_decode_mcoef_s'] / sp['v10']['encode_decode_mcoef_s']:.2f}x |")
    lines += ["", "Per scene, same integers / as written:", "",
              "| scene | " + " | ".join(f"L{lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for r in rec["scenes"]:
        cells = []
        for lv in levels:
            v = r["levels"][lv]
            cells.append(f"{100 * (v['v10_same'] / v['v7_same'] - 1):+.2f}% / "
                         f"{100 * (v['v10_written'] / v['v7_written'] - 1):+.2f}%")
        lines.append(f"| {r['scene']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "coef_v10", run, markdown,
                       [("--levels", {"nargs": "+", "type": int, "default": [3, 6, 8, 11]})])


if __name__ == "__main__":
    sys.exit(main())
