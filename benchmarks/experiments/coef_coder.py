"""The v5 context coder against v3's blocks with sent scale indexes, on the same integers.

Every 256 x 256 tile of the scenes, coded as the residual alone at the given levels: the encoder's own choice of
quantised coefficients (the rounding offset per component chosen as the encoder does), then their size in bits
both ways: version 3's estimate (the block model's ideal code length of the symbols plus the scale indexes, what
``adaptive.choose`` returns; the range coder adds a few bytes per stream) and version 5's actual stream (every
byte). The v5 stream is also decoded and compared: the round trip must be exact.

    python benchmarks/experiments/coef_coder.py .dev/val/*.tif --levels 4 8 11

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): the v5 context coder needs 3-10%
fewer bits than v3's blocks with sent scale indexes on the same integers (median -4.1% / -4.6% / -3.7% at levels 4 /
8 / 11), every stream decoded back exactly: tile format v5 codes the residual with it (and v6 keeps it).
Result: ``benchmarks/results/782c7ed21f22/coef_coder.md``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import scenes_main, utc_now  # noqa: E402


def scene_bits(path: Path, codec, levels: list[int]) -> dict:
    """{level: (v3 bits, v5 bits)} over the scene's tiles."""
    from cvae.edge.codec import coefs
    from cvae.edge.io.raster import read_raster
    from cvae.edge.io.tiling import tile_grid

    planner = codec.hybrid.planner
    r = read_raster(path)
    px = r.pixels
    if px.dtype.kind == "f":
        px = px.astype(np.uint16)
    out = {lv: [0.0, 0] for lv in levels}
    for win in tile_grid(px.shape[1], px.shape[2], 256):
        a = codec.analyze(px[:, win.slices[0], win.slices[1]], r.valid[win.slices])
        c, h, w = a.shape
        for lv in levels:
            part = planner.residual_part(a, lv, None)  # the encoder's coefficients and v3's bits for them
            data = coefs.encode(list(part.arrays), h, w)
            back = coefs.decode(data, c, h, w)
            if not all(np.array_equal(x, y) for cp, bp in zip(part.arrays, back) for x, y in zip(cp, bp)):
                raise AssertionError(f"{path.name} level {lv}: the v5 coefficient stream does not round-trip")
            out[lv][0] += part.bits
            out[lv][1] += 8 * len(data)
    return out


def run(scenes: list[Path], levels: list[int], log=print) -> dict:
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", mode_search="residual", threads=1)
    records, total = [], {lv: [0.0, 0] for lv in levels}
    for path in scenes:
        bits = scene_bits(path, codec, levels)
        records.append({"scene": path.stem, "levels": {str(lv): {"v3_bits": b[0], "v5_bits": b[1],
                                                                 "change": b[1] / b[0] - 1} for lv, b in bits.items()}})
        for lv, b in bits.items():
            total[lv][0] += b[0]
            total[lv][1] += b[1]
        log(f"{path.stem}: " + " ".join(f"L{lv} {100 * (b[1] / b[0] - 1):+.1f}%" for lv, b in bits.items()))
    return {"date": utc_now(), "bundle": bundle.model_id[:12], "scenes": records,
            "all": {str(lv): b[1] / b[0] - 1 for lv, b in total.items()}}


def markdown(rec: dict, command: str) -> str:
    levels = list(rec["all"])
    lines = [f"# v5 context-coded coefficients against v3 blocks, same integers (bundle {rec['bundle']}, "
             f"{rec['date'][:10]})", "", f"`{command}`", "",
             "Bits of the residual-only tiles' coefficients, v5 stream (every byte) / v3 estimate (block model with "
             "its scale indexes) - 1; all tiles of a scene together. Every v5 stream decoded back exactly.", "",
             "| scene | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for s in rec["scenes"]:
        lines.append(f"| {s['scene']} | " + " | ".join(f"{100 * s['levels'][lv]['change']:+.1f}%" for lv in levels) + " |")
    lines.append("| **all** | " + " | ".join(f"**{100 * rec['all'][lv]:+.1f}%**" for lv in levels) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "coef_coder", run, markdown, [("--levels", {"nargs": "+", "type": int, "default": [4, 8, 11]})])

if __name__ == "__main__":
    sys.exit(main())
