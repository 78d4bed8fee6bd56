"""Tile format v11's rotations per wavelet detail level against the same encoder without them (v10), every level.

Each scene is encoded at every level of the bundle twice in one process, with the detail levels' own rotations
(:mod:`cvae.edge.codec.levels`, the shipped encoder) and without (``levels.rotations`` returning None: every tile
v10, as before), decoded by the ground decoder, and scored as ``../shared/tools/rd_vs_jpeg2000.py`` scores (every
packet byte; the mean over bands of each band's PSNR over its valid samples). BD-rate with the scorer's own
function (negative: v11 needs fewer bytes); per level the bytes and PSNR change, the share of tiles written as v11,
and the CPU time of the encode (GeoTIFF read to packets, one thread, the two alternated, best of ``--repeats``).

    python benchmarks/experiments/level_rotations.py .dev/val/*.tif --out benchmarks/results/782c7ed21f22

Writes ``level_rotations.json`` and ``level_rotations.md``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402


def _v11_share(packets: list[bytes]) -> float:
    """Share of the scene's tiles written as version 11."""
    from cvae.edge.codec import bitstream
    from cvae.ground.decoder import collect

    parts = next(iter(collect([b"".join(packets)], {}).values()))
    side = parts.meta.side()
    versions = [bitstream.unpack_tile(parts.body(k), side)[0].version for k in sorted(parts.segments)]
    return float(np.mean([v == bitstream.VERSION_LEVELS for v in versions])) if versions else 0.0


def run(scenes: list[Path], repeats: int, log=print) -> dict:
    import rasterio

    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import levels
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams
    from cvae.metrics import psnr_bands

    valid_of = sibling("ladder_eval")._valid
    bd_rate = sibling("ablation_scorer")._bd_rate()
    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1)
    shipped = levels.rotations
    variants = {"v10": lambda *a, **k: None, "v11": shipped}
    rows = []
    try:
        for path in scenes:
            with rasterio.open(path) as ds:
                px, nodata = ds.read(), ds.nodata
            masks = np.stack([valid_of(px[k], nodata) for k in range(px.shape[0])])
            row: dict = {"scene": path.stem, "bands": int(px.shape[0]), "levels": []}
            for level in range(codec.levels):
                point = {"level": level}
                for name, fn in variants.items():
                    levels.rotations = fn
                    best = float("inf")
                    for _ in range(repeats):
                        c0 = time.process_time()
                        enc = encode_scene(path, bundle, codec, EncodeOptions(level=level, scene_id=1, threads=1))
                        best = min(best, time.process_time() - c0)
                    [scene], _ = decode_streams([b"".join(enc.packets)], bundle, codec)
                    point[name] = {"bytes": enc.nbytes, "bpp": 8 * enc.nbytes / px.size,
                                   "psnr": float(psnr_bands(px, scene.pixels, masks)), "cpu_s": best,
                                   "v11_share": _v11_share(enc.packets)}
                row["levels"].append(point)
                log(f"{path.stem} L{level}: v10 {point['v10']['bytes']} B {point['v10']['psnr']:.2f} dB, v11 "
                    f"{point['v11']['bytes']} B {point['v11']['psnr']:.2f} dB ({100 * point['v11']['v11_share']:.0f}% "
                    f"of tiles), CPU {point['v11']['cpu_s'] / point['v10']['cpu_s']:.2f}x")
            a = [(p["v10"]["bpp"], p["v10"]["psnr"]) for p in row["levels"]]
            b = [(p["v11"]["bpp"], p["v11"]["psnr"]) for p in row["levels"]]
            row["bd_rate"] = float(bd_rate([x for x, _ in a], [y for _, y in a], [x for x, _ in b], [y for _, y in b]))
            log(f"{path.stem}: BD-rate v11 vs v10 {row['bd_rate']:+.2f}%")
            rows.append(row)
    finally:
        levels.rotations = shipped
    return {"date": utc_now(), "machine": machine_info(), "repeats": repeats, "rows": rows,
            "median_bd_rate": float(np.median([r["bd_rate"] for r in rows]))}


def markdown(rec: dict, command: str) -> str:
    rows = sorted(rec["rows"], key=lambda r: -r["bd_rate"])  # losses first
    cpu = [p["v11"]["cpu_s"] / p["v10"]["cpu_s"] for r in rows for p in r["levels"]]
    lines = [f"# Rotations per wavelet detail level (tile format v11) against v10 ({rec['date'][:10]})", "",
             f"`{command}`", "",
             "Every level of the bundle, each scene encoded with the detail levels' own rotations (v11 where a tile "
             "gains) and without (v10), decoded, scored as the scorer scores (every packet byte, mean band PSNR). "
             f"BD-rate v11 against v10 (negative: fewer bytes), losses first. Median **{rec['median_bd_rate']:+.2f}%**. "
             f"CPU time of the whole encode v11 / v10 (one thread, best of {rec['repeats']}): median "
             f"{np.median(cpu):.2f}x, max {max(cpu):.2f}x.", "",
             "| scene | bands | BD-rate | v11 tiles (median over levels) | bytes change per level (L0 .. L11) | PSNR change (dB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ps = r["levels"]
        lines.append(f"| {r['scene']} | {r['bands']} | {r['bd_rate']:+.2f}% | "
                     f"{100 * np.median([p['v11']['v11_share'] for p in ps]):.0f}% | " +
                     " ".join(f"{100 * (p['v11']['bytes'] / p['v10']['bytes'] - 1):+.1f}" for p in ps) + " | " +
                     " ".join(f"{p['v11']['psnr'] - p['v10']['psnr']:+.2f}" for p in ps) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "level_rotations", run, markdown,
                       [("--repeats", {"type": int, "default": 1})])


if __name__ == "__main__":
    sys.exit(main())
