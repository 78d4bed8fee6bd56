"""Regenerate the golden tile of bitstream version 2 (adaptive entropy model): ``tile_v2.bin``.

A 2-band 40 x 30 tile at a residual level of the shipped bundle, built from fixed integers only (scale indexes,
latent symbols, residual symbols) with the bundle's frozen integer tables: no floating-point computation that
could differ between machines. Run ``python tests/edge/codec/golden/make_tile_v2_golden.py`` after an intended
change of the format or of the shipped bundle's tables (bump the format version for a format change).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, rangecoder

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "tile_v2.bin"
BANDS, HEIGHT, WIDTH = 2, 30, 40


def golden_integers(bundle: Bundle) -> dict:
    """Indexes and symbols of the golden tile: latents of level ``level`` for both components, residual blocks."""
    level = int(np.flatnonzero(bundle.ladder.step > 0)[0])       # the first residual level
    lat = int(bundle.ladder.latent[level])
    m = bundle.gain.shape[1]
    hl, wl = -(-HEIGHT // 16), -(-WIDTH // 16)
    rng = np.random.default_rng(20261201)                          # integers only
    lat_idx = rng.choice([am.ZERO, am.FACTORIZED, 10, 20, 30], size=BANDS * m).astype(np.int32)
    blocks = 2 * 1 * BANDS                                        # 40 x 30 -> 2 x 1 blocks of 32 px per band
    res_idx = np.array([5, am.ZERO, 12, 25], np.int32)[:blocks]
    counts = np.tile([32 * 30, 8 * 30], BANDS)
    latents = [np.zeros(hl * wl, np.int32) if k == am.ZERO else rng.integers(-6, 7, hl * wl).astype(np.int32)
               for k in lat_idx]
    residual = [np.zeros(n, np.int32) if k == am.ZERO else rng.integers(-3, 4, n).astype(np.int32)
                for k, n in zip(res_idx, counts)]
    return {"level": level, "lat": lat, "m": m, "lat_idx": lat_idx, "res_idx": res_idx, "latents": latents,
            "residual": residual}


def tile_bytes(bundle: Bundle) -> bytes:
    g = golden_integers(bundle)
    model = bundle.adaptive
    m, lat = g["m"], g["lat"]
    channel = np.tile(np.arange(m, dtype=np.int32), BANDS)
    rank = int(bundle.ladder.residual_rank[g["level"]])
    side = np.concatenate([g["lat_idx"], g["res_idx"]])
    ctx = np.concatenate([lat * m + channel, np.full(len(g["res_idx"]), len(bundle.tables) * m + rank)]).astype(np.int32)
    it = model.index_tables
    side_bytes = rangecoder.encode(side, ctx, it.cdf, it.cdf_length, it.offset, it.precision)
    rows = np.concatenate([model.rows(g["lat_idx"], channel), model.rows(g["res_idx"], None)])
    groups = g["latents"] + g["residual"]
    coded = side != am.ZERO
    main = np.concatenate([v for v, c in zip(groups, coded) if c]).astype(np.int32)
    main_rows = np.concatenate([np.full(len(v), r) for v, r, c in zip(groups, rows, coded) if c]).astype(np.int32)
    t = model.combined(bundle.tables[lat])
    main_bytes = rangecoder.encode(main, main_rows, t.cdf, t.cdf_length, t.offset, t.precision)
    header = bitstream.TileHeader(model_id=bytes.fromhex(bundle.model_id)[:4], level=g["level"],
                                  dtype=np.dtype(np.uint16), bands=BANDS, height=HEIGHT, width=WIDTH,
                                  lo=np.array([100, 5], np.float32), hi=np.array([4000, 900], np.float32),
                                  mean=np.array([0.25, 0.5], np.float32),
                                  matrix=np.array([[90, 90], [-90, 90]], np.int8), version=2, latent=lat,
                                  residual=True)
    return bitstream.pack_tile(header, np.ones(BANDS, bool), (side_bytes, main_bytes), None)


if __name__ == "__main__":
    GOLDEN.write_bytes(tile_bytes(Bundle.load()))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
