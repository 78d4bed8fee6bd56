"""A scene-wide KLT instead of each tile's own: does sending one rotation per scene pay? (issue 17: side information)

Each tile of a multiband scene carries its own int8 KLT (C x C bytes; 144 for 12 bands). The alternative codes
every tile with the KLT fitted on the whole scene (which the metadata would send once) and saves those bytes. For
each scene and level, both are coded tile by tile in the same run (the scene's band ranges, ``TileCodec.analyze`` /
``encode`` / ``decompress``), the scene variant's bytes counted without its matrices, and scored with the
independent scorer's PSNR; then the BD-rate of the scene-KLT curve against the tiles' own.

    python benchmarks/experiments/scene_klt.py .dev/val/*.tif --levels 0 1 2 3 4 6 8

Writes ``scene_klt.json`` and ``scene_klt.md``. One-band scenes and one-tile scenes are skipped (nothing to compare).

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): one scene-wide KLT instead of each
tile's own costs a median +3.8% BD-rate (worst scene +10.4%) even with the tiles' matrices not counted: each tile
keeps its own KLT.
Result: ``benchmarks/results/782c7ed21f22/scene_klt.md``.
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402

_psnr, _valid = sibling("ladder_eval")._psnr, sibling("ladder_eval")._valid


def curve(codec, r, br, windows, orig, masks, levels, matrix) -> list[dict]:
    c = orig.shape[0]
    out = []
    for level in levels:
        rec = np.zeros(orig.shape, orig.dtype)
        nbytes = 0
        for w in windows:
            px = r.pixels[:, w.slices[0], w.slices[1]]
            a = codec.analyze(px, r.valid[w.slices], band_range=br, matrix=matrix)
            data = codec.encode(a, level)
            nbytes += len(data) - (c * c if matrix is not None else 0)  # the scene's matrix travels once
            rec[:, w.slices[0], w.slices[1]] = codec.decompress(data).pixels
        out.append({"level": level, "bpp": nbytes * 8 / orig.size,
                    "psnr": float(np.mean([_psnr(orig[k], rec[k], masks[k]) for k in range(c)]))})
    return out


def run(scenes: list[Path], levels: list[int], log=print) -> dict:
    _bd_rate = sibling("ablation_scorer")._bd_rate

    from cvae.edge.bundle import Bundle
    from cvae.edge.codec.spectral import SpectralTransform
    from cvae.edge.io.raster import band_ranges, read_raster
    from cvae.edge.io.tiling import tile_grid

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    bd_rate = _bd_rate()
    records = []
    for path in scenes:
        r = read_raster(path)
        c, h, w = r.pixels.shape
        windows = list(tile_grid(h, w, 256))
        if c == 1 or len(windows) == 1:
            continue
        br = band_ranges(r.pixels, r.valid, r.nodata)
        scene = SpectralTransform.fit(r.pixels, r.valid, band_range=br).matrix
        orig = r.pixels
        masks = [_valid(orig[k], r.nodata) for k in range(c)]
        own = curve(codec, r, br, windows, orig, masks, levels, None)
        shared = curve(codec, r, br, windows, orig, masks, levels, scene)
        bd = bd_rate([p["bpp"] for p in own], [p["psnr"] for p in own],
                     [p["bpp"] for p in shared], [p["psnr"] for p in shared])
        records.append({"scene": path.stem, "bands": c, "tiles": len(windows), "own": own, "scene_klt": shared,
                        "bd_rate": bd})
        log(f"{path.stem}: scene KLT {bd:+.2f}% BD-rate; " + " ".join(
            f"L{o['level']} {100 * (s['bpp'] / o['bpp'] - 1):+.1f}%b {s['psnr'] - o['psnr']:+.2f}dB"
            for o, s in zip(own, shared)))
    ok = [x["bd_rate"] for x in records if x["bd_rate"] == x["bd_rate"]]
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "levels": levels,
            "scenes": records, "bd_rate_median": statistics.median(ok) if ok else None,
            "bd_rate_worst": max(ok) if ok else None}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# A scene-wide KLT against each tile's own (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             "Tile bytes (the scene variant without its per-tile matrices) and the scorer's PSNR, per level; BD-rate of "
             f"the scene KLT against the tiles' own over levels {rec['levels']}: median {rec['bd_rate_median']:+.2f}%, "
             f"worst scene {rec['bd_rate_worst']:+.2f}% (positive: the scene KLT needs more bytes).", "",
             "| scene | bands | tiles | BD-rate | " + " | ".join(f"L{lv} bytes, dB" for lv in rec["levels"]) + " |",
             "|---|---|---|---|" + "---|" * len(rec["levels"])]
    for r in rec["scenes"]:
        cells = [f"{100 * (s['bpp'] / o['bpp'] - 1):+.1f}%, {s['psnr'] - o['psnr']:+.2f}"
                 for o, s in zip(r["own"], r["scene_klt"])]
        lines.append(f"| {r['scene']} | {r['bands']} | {r['tiles']} | {r['bd_rate']:+.2f}% | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "scene_klt", run, markdown, [("--levels", {"nargs": "+", "type": int, "default": [0, 1, 2, 3, 4, 6, 8]})])

if __name__ == "__main__":
    sys.exit(main())
