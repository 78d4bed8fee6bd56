"""Would mixing several contexts' predictions code the residual's coefficients in fewer bits than v5's coder? (issue 22, item 6)

Every 256 x 256 tile of the scenes, coded as the residual alone at the given levels (the encoder's own quantised
coefficients, as ``coef_coder.py`` gets them), then coded by the shipped coder (tile formats v5 to v7,
``edge/codec/_coefs.c``) and by the candidates of ``coef_mixing.c`` (compiled here with ``cc -O3``, loaded with
ctypes): v5's layout, contexts and binarisation, with the zero flag, the first unary bits of the magnitude class and the
bit below the leading one coded by an integer logistic mixer (lpaq-style) of five adaptive models under differently
formed contexts (v5's; the causal neighbourhood alone; the parent's 3 x 3 neighbourhood; the previous component's 3 x 3
neighbourhood; the small magnitudes of W, N, B), and the sign's context with the previous component's sign. Variants:

- ``full``: every zero flag, unary positions 0-10 and the bit below the leading one for k = 1-4 mixed;
- ``gated``: as ``full``, but the zero flag of a coefficient whose every context is 0 coded with one plain model;
- ``lean``: ``gated`` with only the zero flag and unary positions 0-1 mixed;
- ``zero``: ``gated`` with only the zero flag mixed.

Exact byte counts (every stream decoded back and compared), per scene and level, and encode + decode speed of each
coder on this machine (one thread; million coefficients per second over all tiles and levels, ctypes and C API calls
alike). The candidates were tuned on these same scenes (a few dozen variants of contexts, learning rates, weight
sets, an APM stage, learned initial states: the best kept here), so the figures are optimistic for unseen imagery.

    python benchmarks/experiments/coef_mixing.py .dev/val/*.tif --levels 3 6 8 11

**Conclusion** (decided; one-off, not rerun by reproduce_readme.sh; 3 min on 2 cores): it does not pay enough for its
time. ``gated`` needs a median 2.36% / 1.92% / 1.68% / 1.29% fewer coefficient bytes at levels 3 / 6 / 8 / 11 (no
scene worse at any level; 4.4-5.0% on the 4-band aerial scene, where the previous component's sign helps most), but
encode + decode run 3.1x slower than v5's coder (8.1 against 25.1 million coefficients per second); mixing only the
zero flag (``zero``) still costs 2.1x for 0.8-1.2%. The bar (>= 1.5% at every level, and a 2x slowdown only for
> 3%) is not met: no tile format v10. Bits by kind (v5, all tiles): signs 20-21% at every level (the previous
component's sign saves 0.3% of all bits, median), zero flags 53% at level 3 and 20% at level 11, unary 19-35%; a
tile-specific oracle of learned initial model states would save only 0.25-0.75%; an APM stage after the mixer, a higher
learning rate, orientation-weighted neighbours and other summed-context weightings lost.
Result: ``benchmarks/results/782c7ed21f22/coef_mixing.md``.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import ROOT, scenes_main, utc_now  # noqa: E402

VARIANTS = {"full": ["-DMX_GATE=0"], "gated": [], "lean": ["-DMX_UNARY=2", "-DMX_MANT=0"],
            "zero": ["-DMX_UNARY=0", "-DMX_MANT=0"]}


def build(folder: Path) -> dict[str, ctypes.CDLL]:
    """Each variant of coef_mixing.c compiled into ``folder`` and loaded."""
    src = Path(__file__).with_suffix(".c")
    libs = {}
    for name, flags in VARIANTS.items():
        so = folder / f"coef_mixing_{name}.so"
        subprocess.run(["cc", "-O3", "-std=c99", "-shared", "-fPIC", f"-I{ROOT / 'edge' / 'codec'}", *flags,
                        str(src), "-o", str(so)], check=True)
        lib = ctypes.CDLL(str(so))
        lib.cm_encode.restype = ctypes.c_long
        lib.cm_encode.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.POINTER(ctypes.c_void_p)]
        lib.cm_decode.restype = ctypes.c_int
        lib.cm_decode.argtypes = [ctypes.c_char_p, ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_void_p]
        lib.cm_free.argtypes = [ctypes.c_void_p]
        libs[name] = lib
    return libs


def code(lib: ctypes.CDLL, q: np.ndarray, comps: int, geom: np.ndarray) -> tuple[int, float]:
    """(stream bytes without the coder's leading 0 byte, as v5's, encode + decode seconds); the decode must be exact."""
    out = ctypes.c_void_p()
    t = time.perf_counter()
    n = lib.cm_encode(q.ctypes.data, comps, geom.ctypes.data, len(geom), ctypes.byref(out))
    data = ctypes.string_at(out, n)
    lib.cm_free(out)
    back = np.zeros_like(q)
    st = lib.cm_decode(data, n, comps, geom.ctypes.data, len(geom), back.ctypes.data)
    dt = time.perf_counter() - t
    if n < 1 or st != 0 or not np.array_equal(back, q):
        raise AssertionError(f"candidate stream does not round-trip (status {st})")
    return n - 1, dt


def scene_bits(path: Path, codec, levels: list[int], libs: dict, clock: dict) -> dict:
    """{level: {coder: bytes}} over the scene's tiles; ``clock[coder]`` accumulates [seconds, coefficients]."""
    from cvae.edge.codec import _coefs, coefs
    from cvae.edge.io.raster import read_raster
    from cvae.edge.io.tiling import tile_grid

    planner = codec.hybrid.planner
    r = read_raster(path)
    px = r.pixels
    if px.dtype.kind == "f":
        px = px.astype(np.uint16)
    out = {lv: dict.fromkeys(["v5", *libs], 0) for lv in levels}
    for win in tile_grid(px.shape[1], px.shape[2], 256):
        a = codec.analyze(px[:, win.slices[0], win.slices[1]], r.valid[win.slices])
        c, h, w = a.shape
        _, geom = coefs.coding_order(h, w)
        geom = np.ascontiguousarray(geom)
        for lv in levels:
            q = np.ascontiguousarray(coefs.flatten(list(planner.residual_part(a, lv, None).arrays), h, w), np.int32)
            t = time.perf_counter()
            data = _coefs.encode(q, c, geom)
            back = np.zeros_like(q)
            st = _coefs.decode(data, c, geom, back)
            clock["v5"][0] += time.perf_counter() - t
            if st != (0, 0) or not np.array_equal(back, q):
                raise AssertionError(f"{path.name} level {lv}: the v5 stream does not round-trip")
            out[lv]["v5"] += len(data)
            clock["v5"][1] += len(q)
            for name, lib in libs.items():
                n, dt = code(lib, q, c, geom)
                out[lv][name] += n
                clock[name][0] += dt
                clock[name][1] += len(q)
    return out


def run(scenes: list[Path], levels: list[int], log=print) -> dict:
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", mode_search="residual", threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        libs = build(Path(tmp))
        clock = {name: [0.0, 0] for name in ["v5", *libs]}
        records = []
        for path in scenes:
            b = scene_bits(path, codec, levels, libs, clock)
            records.append({"scene": path.stem, "levels": {str(lv): b[lv] for lv in levels}})
            log(f"{path.stem}: " + " ".join(f"L{lv} {100 * (b[lv]['gated'] / b[lv]['v5'] - 1):+.2f}%" for lv in levels))
    change = {name: {str(lv): [s["levels"][str(lv)][name] / s["levels"][str(lv)]["v5"] - 1 for s in records]
                     for lv in levels} for name in VARIANTS}
    return {"date": utc_now(), "bundle": bundle.model_id[:12], "levels": levels, "scenes": records,
            "median": {n: {lv: float(np.median(v)) for lv, v in c.items()} for n, c in change.items()},
            "worst": {n: {lv: float(max(v)) for lv, v in c.items()} for n, c in change.items()},
            "mcoef_per_s": {n: c[1] / c[0] / 1e6 for n, c in clock.items()}}


def markdown(rec: dict, command: str) -> str:
    levels = [str(lv) for lv in rec["levels"]]
    speed = rec["mcoef_per_s"]
    lines = [f"# Mixed-context coefficient coding against v5's coder, same integers (bundle {rec['bundle']}, "
             f"{rec['date'][:10]})", "", f"`{command}`", "",
             "Bytes of the residual-only tiles' coefficient streams, candidate / v5 - 1, all tiles of a scene together; "
             "every stream decoded back exactly. Speed: encode + decode, million coefficients per second, one thread.",
             "", "| variant | " + " | ".join(f"median L{lv}" for lv in levels) + " | "
             + " | ".join(f"worst L{lv}" for lv in levels) + " | Mcoef/s | time / v5 |",
             "|---|" + "---|" * (2 * len(levels) + 2),
             "| v5 | " + " | ".join("0" for _ in 2 * levels) + f" | {speed['v5']:.1f} | 1.00x |"]
    for n in VARIANTS:
        lines.append(f"| {n} | " + " | ".join(f"{100 * rec['median'][n][lv]:+.2f}%" for lv in levels) + " | "
                     + " | ".join(f"{100 * rec['worst'][n][lv]:+.2f}%" for lv in levels)
                     + f" | {speed[n]:.1f} | {speed['v5'] / speed[n]:.2f}x |")
    lines += ["", "Per scene, variant `gated`:", "", "| scene | " + " | ".join(f"L{lv}" for lv in levels) + " |",
              "|---|" + "---|" * len(levels)]
    for s in rec["scenes"]:
        lines.append(f"| {s['scene']} | " + " | ".join(
            f"{100 * (s['levels'][lv]['gated'] / s['levels'][lv]['v5'] - 1):+.2f}%" for lv in levels) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "coef_mixing", run, markdown,
                       [("--levels", {"nargs": "+", "type": int, "default": [3, 6, 8, 11]})])


if __name__ == "__main__":
    sys.exit(main())
