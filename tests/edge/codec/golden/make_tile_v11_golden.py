"""Regenerate the golden tile of bitstream version 11 (rotations of the residual's detail levels) as the shipped
bundle writes it.

``tile_v11_residual.bin``   a residual-only 4-band 64 x 64 uint16 tile (``texture_tile``: a texture a few pixels
                            across that mixes the bands one way, pixel-scale noise that mixes them another) at level
                            6, coded with the residual mode search: its finest detail level has its own rotation
``tile_v11_integers.json``  header fields (the level rotations among them) and SHA-256 of the integers
                            (``TileCodec.parse_integers``) and of the pixels (no network runs)

Run ``python tests/edge/codec/golden/make_tile_v11_golden.py`` (or the test with ``UPDATE_GOLDENS=1``) after an
intended change of the format, of the encoder's choices or of the shipped bundle.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from make_tile_v3_golden import describe

from cvae.edge.bundle import Bundle
from cvae.edge.codec import bitstream
from cvae.edge.codec.tile import TileCodec

HERE = Path(__file__).parent
FILE = HERE / "tile_v11_residual.bin"
INTEGERS = HERE / "tile_v11_integers.json"
LEVEL = 6


def texture_tile(seed: int = 5, n: int = 64) -> np.ndarray:
    """uint16[4, n, n]: a texture a few pixels across (the middle wavelet levels) that mixes the bands one way,
    strong enough to set the tile's rotation, and weaker pixel-scale noise (most of the finest level) that mixes
    them another, as NAIP's and the 12-band Sentinel-2 validation scenes do."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    s1, s2 = (gaussian_filter(rng.normal(size=(n, n)), 2.0) * 4 for _ in range(2))
    t1, t2 = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    bands = [s1 * 400 + t1 * 40, s1 * 320 + s2 * 120 - t1 * 40, s2 * 400 + t2 * 40, (s1 + s2) * 200 - t2 * 40]
    return (np.stack(bands) + 3000).astype(np.uint16)


def encode(codec: TileCodec) -> bytes:
    return codec.encode(codec.weighted(codec.analyze(texture_tile()), LEVEL), LEVEL)


def describe_v11(codec: TileCodec, data: bytes) -> dict:
    """``{"residual": describe(...)}`` with the level rotations, keyed as the other versions' integers files."""
    header = bitstream.unpack_tile(data).header
    out = describe(codec, data)
    out["level_matrices"] = [None if m is None else m.astype(int).tolist() for m in header.level_matrices]
    return {"residual": out}


def write(codec: TileCodec) -> bytes:
    data = encode(codec)
    FILE.write_bytes(data)
    INTEGERS.write_text(json.dumps(describe_v11(codec, data), indent=1) + "\n")
    return data


def main() -> int:
    data = write(Bundle.load().codec("onnxruntime", mode_search="residual"))
    print(f"wrote {FILE} ({len(data)} B) and {INTEGERS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
