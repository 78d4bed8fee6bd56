"""Regenerate the golden tiles of bitstream version 5 (context-coded residual) as the shipped bundle writes them.

The same three 4-band 64 x 64 uint16 inputs and levels as the version 3 goldens (make_tile_v3_golden.py, whose
files stay as decode-only goldens: the encoder writes version 5 now), encoded with the full mode search:

``tile_v5_residual.bin``  a residual-only tile (no component present): the coefficients in the v5 stream
``tile_v5_hybrid.bin``    latents of some component(s) in side/main plus the context-coded residual
``tile_v5_masked.bin``    a valid mask and per-band fill masks
``tile_v5_integers.json`` header fields and SHA-256 of the integers (``TileCodec.parse_integers``: latent values,
                          then the residual's coefficients in v5 coding order) and, without latents, of the pixels

Run ``python tests/edge/codec/golden/make_tile_v5_golden.py`` (or the test with ``UPDATE_GOLDENS=1``) after an
intended change of the format, of the encoder's choices or of the shipped bundle.
"""
from __future__ import annotations

import json
import sys

from make_tile_v3_golden import (BANDS, CASES, FILL, HEIGHT, HERE, WIDTH, analyzed, describe,  # noqa: F401
                                 encode_all, masked_inputs, sha, walk_tile)

from cvae.edge.bundle import Bundle
from cvae.edge.codec.tile import TileCodec

FILES = {name: HERE / f"tile_v5_{name}.bin" for name in ("residual", "hybrid", "masked")}
INTEGERS = HERE / "tile_v5_integers.json"


def write(codec: TileCodec) -> dict[str, bytes]:
    tiles = encode_all(codec)
    for name, data in tiles.items():
        FILES[name].write_bytes(data)
    INTEGERS.write_text(json.dumps({name: describe(codec, data) for name, data in tiles.items()}, indent=1) + "\n")
    return tiles


def main() -> int:
    tiles = write(Bundle.load().codec("onnxruntime", mode_search="full"))
    for name, data in tiles.items():
        print(f"wrote {FILES[name]} ({len(data)} B)")
    print(f"wrote {INTEGERS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
