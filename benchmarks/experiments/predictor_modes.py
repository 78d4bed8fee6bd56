"""Tile format v8's predictor per band against v4's predictor alone, at every error bound (issue 25).

Per scene and bound E: the error-bounded tiles of the scene (256 x 256, valid mask and band fill as the encoder
sends them) coded by this release's encoder (v8: each candidate band in v4's mode or the replication mode, whichever
is smaller) and by the same encoder with no band a candidate (v4's predictor everywhere: v4's bytes plus one mode
byte per band). Tile bytes only (no packets), bits per sample over all samples, encode MSamples/s of the tile coder
(best of two, one thread), the share of (tile, band) pairs coded in the replication mode; every tile decoded and
checked against its bound.

    python benchmarks/experiments/predictor_modes.py .dev/val_resampled/*.tif .dev/val/*.tif --bounds 0 1 2 4 8 16 32

Writes ``predictor_modes.json`` and ``predictor_modes.md``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402

TILE = 256


def _tiles(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], int]:
    """The scene's tiles as the encoder codes them: ``(pixels, valid, band_fill)``, and its sample count."""
    from cvae.edge.io.raster import as_integers, band_fill_mask, read_raster
    from cvae.edge.io.tiling import tile_grid

    r = read_raster(path)
    px = as_integers(r.pixels)
    out = []
    for win in tile_grid(px.shape[1], px.shape[2], TILE):
        t, v = np.ascontiguousarray(px[:, win.slices[0], win.slices[1]]), r.valid[win.slices]
        out.append((t, v, band_fill_mask(t, v, r.nodata)))
    return out, px.size


def _code(codec, tiles, e: int) -> tuple[int, float, float]:
    """(bytes, seconds (best of two), share of bands in mode 1), every tile checked against its bound."""
    from cvae.edge.codec import bitstream

    best, datas = float("inf"), []
    for _ in range(2):
        t0 = time.perf_counter()
        datas = [codec.compress_bounded(t, e, v, f) for t, v, f in tiles]
        best = min(best, time.perf_counter() - t0)
    modes = []
    for (t, v, f), data in zip(tiles, datas):
        d = codec.decompress(data)
        coded = np.broadcast_to(v, t.shape) & (~f if f is not None else True)
        if (np.abs(d.pixels.astype(np.int64) - t.astype(np.int64))[coded] > e).any():
            raise AssertionError(f"bound {e} broken")
        modes += bitstream.unpack_tile(data)[0].modes.tolist()
    return sum(map(len, datas)), best, float(np.mean(modes))


def run(scenes: list[Path], bounds: list[int], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import predictive

    bundle = Bundle.load(None)
    codec = bundle.codec()
    rows = []
    for path in scenes:
        tiles, n = _tiles(path)
        for e in bounds:
            row = {"scene": path.stem, "E": e}
            for name, cand in (("v4_predictor", 2.0), ("v8", predictive.REPLICATION_CANDIDATE)):
                keep = predictive.REPLICATION_CANDIDATE
                predictive.REPLICATION_CANDIDATE = cand  # above 1: no band is a candidate
                try:
                    nbytes, sec, share = _code(codec, tiles, e)
                finally:
                    predictive.REPLICATION_CANDIDATE = keep
                row[name] = {"bits_per_sample": 8 * nbytes / n, "msamples_per_s": n / sec / 1e6, "mode1_share": share}
            rows.append(row)
            log(f"{path.stem} E={e}: v4 predictor {row['v4_predictor']['bits_per_sample']:.3f}, v8 "
                f"{row['v8']['bits_per_sample']:.3f} bps ({row['v8']['mode1_share']:.2f} of bands in mode 1)")
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "tile": TILE,
            "bounds": bounds, "rows": rows}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Tile format v8's predictor per band against v4's predictor alone (issue 25, bundle {rec['bundle']}, "
             f"{rec['date'][:10]})", "", "```bash", command, "```", "",
             f"Tile bytes of {rec['tile']} x {rec['tile']} tiles (no packets), bits per sample over all samples; "
             "MS/s: the tile coder's encode, best of two, one thread, on a shared machine; mode 1: share of (tile, "
             "band) pairs in the replication mode. v4 predictor: the same encoder with no band a candidate (v4's "
             "bytes plus one mode byte per band). Every tile decoded within its bound.", "",
             "| scene | E | v4 predictor bps | v8 bps | v8 / v4 | mode 1 | v4 MS/s | v8 MS/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        a, b = r["v4_predictor"], r["v8"]
        lines.append(f"| {r['scene']} | {r['E']} | {a['bits_per_sample']:.3f} | {b['bits_per_sample']:.3f} | "
                     f"{b['bits_per_sample'] / a['bits_per_sample']:.3f} | {b['mode1_share']:.2f} | "
                     f"{a['msamples_per_s']:.2f} | {b['msamples_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "predictor_modes", run, markdown,
                       [("--bounds", {"nargs": "+", "type": int, "default": [0, 1, 2, 4, 8, 16, 32]})])


if __name__ == "__main__":
    sys.exit(main())
