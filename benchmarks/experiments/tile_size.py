"""Tile size against rate: 256- and 512-pixel tiles at every level, and the default rule (512 on latent-only levels).

Every tile carries fixed costs (CCSDS framing, a header with means and KLT, range-coder final states, mask restarts,
a share of the repeated metadata); bigger tiles amortise them but share one KLT and one set of scale indexes over
more pixels. For each scene and level this encodes with both tile sizes in the same run (``encode_scene``, one
thread), decodes with the ground decoder and scores the independent scorer's PSNR over every packet byte; then the
BD-rate of the 512 curve and of the default rule (:func:`cvae.edge.encoder.tile_size_for`) against 256 everywhere.

    python benchmarks/experiments/tile_size.py .dev/val/*.tif

Writes ``tile_size.json`` and ``tile_size.md``.

**Conclusion** (decided; rerun by reproduce_readme.sh, as README.md quotes it): 512-pixel tiles everywhere: median
+0.05%, worst scene +5.04% against 256 everywhere; the rule 512 on the latent-only levels 0-1 and 256 elsewhere:
median -0.02%, worst +0.63%: shipped as :func:`cvae.edge.encoder.tile_size_for` (``cvae-encode``'s default;
``--tile-size`` overrides).
Result: ``benchmarks/results/782c7ed21f22/tile_size.md``.
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

_valid = sibling("ladder_eval")._valid

SIZES = (256, 512)


def points(scene: Path, bundle, codec, tile: int) -> list[dict]:
    """Per level: bits per sample (every packet byte), tiles, the scorer's PSNR."""
    import rasterio

    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams
    from cvae.metrics import psnr_bands

    with rasterio.open(scene) as ds:
        orig, nodata = ds.read(), ds.nodata
    masks = [_valid(orig[k], nodata) for k in range(orig.shape[0])]
    out = []
    for level in range(codec.levels):
        enc = encode_scene(scene, bundle, codec, EncodeOptions(level=level, tile_size=tile, scene_id=1, threads=1))
        data = b"".join(enc.packets)
        (dec,), _ = decode_streams([data], bundle, codec)
        out.append({"level": level, "bytes": len(data), "bpp": len(data) * 8 / orig.size, "tiles": enc.tiles,
                    "psnr": psnr_bands(orig, dec.pixels, np.stack(masks))})  # the scorer's: a mask per band
    return out


def run(scenes: list[Path], log=print) -> dict:
    _bd_rate = sibling("ablation_scorer")._bd_rate

    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, tile_size_for

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    bd_rate = _bd_rate()
    rule = [tile_size_for(codec, EncodeOptions(level=lv)) for lv in range(codec.levels)]
    records = []
    for path in scenes:
        rec = {"scene": path.stem, **{str(t): points(path, bundle, codec, t) for t in SIZES}}
        base, big = rec["256"], rec["512"]
        rec["default"] = [b if t == 512 else a for a, b, t in zip(base, big, rule)]
        for key in ("512", "default"):
            rec[f"bd_{key}"] = bd_rate([p["bpp"] for p in base], [p["psnr"] for p in base],
                                       [p["bpp"] for p in rec[key]], [p["psnr"] for p in rec[key]])
        records.append(rec)
        log(f"{path.stem}: 512 everywhere {rec['bd_512']:+.2f}%, default rule {rec['bd_default']:+.2f}%; level 0 "
            f"{100 * (big[0]['bytes'] / base[0]['bytes'] - 1):+.1f}% bytes {big[0]['psnr'] - base[0]['psnr']:+.2f} dB")
    ok = {k: [r[f"bd_{k}"] for r in records if r[f"bd_{k}"] == r[f"bd_{k}"]] for k in ("512", "default")}
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "rule": rule,
            "scenes": records, **{f"bd_{k}_median": statistics.median(v) if v else None for k, v in ok.items()},
            **{f"bd_{k}_worst": max(v) if v else None for k, v in ok.items()}}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Tile size against rate (bundle {rec['bundle']}, {rec['date'][:10]})", "", f"`{command}`", "",
             "BD-rate against 256-pixel tiles at every level (every packet byte, the scorer's PSNR; negative: fewer "
             f"bytes). Default rule (`tile_size_for`): tile edge per level {rec['rule']}. 512 everywhere: median "
             f"{rec['bd_512_median']:+.2f}%, worst scene {rec['bd_512_worst']:+.2f}%; the default rule: median "
             f"{rec['bd_default_median']:+.2f}%, worst scene {rec['bd_default_worst']:+.2f}%.", "",
             "| scene | 512 everywhere | default rule | L0 tiles 256/512 | L0 bytes 256 | L0 bytes 512 | L0 PSNR 256 | "
             "L0 PSNR 512 | L1 bytes 256 | L1 bytes 512 | L1 PSNR 256 | L1 PSNR 512 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rec["scenes"]:
        a, b = r["256"], r["512"]
        lines.append(f"| {r['scene']} | {r['bd_512']:+.2f}% | {r['bd_default']:+.2f}% | {a[0]['tiles']}/{b[0]['tiles']} | "
                     f"{a[0]['bytes']} | {b[0]['bytes']} | {a[0]['psnr']:.2f} | {b[0]['psnr']:.2f} | {a[1]['bytes']} | "
                     f"{b[1]['bytes']} | {a[1]['psnr']:.2f} | {b[1]['psnr']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "tile_size", run, markdown, ())

if __name__ == "__main__":
    sys.exit(main())
