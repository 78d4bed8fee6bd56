"""The golden tiles of bitstream version 6 (scene side information), as the shipped bundle wrote them before version 7.

Frozen: the encoder writes version 7 now (make_tile_v7_golden.py codes the same inputs), so these files are
decode-only goldens (version 6 keeps decoding); what follows describes how they were made.

The same three 4-band 64 x 64 uint16 inputs and levels as the version 3 and 5 goldens (make_tile_v3_golden.py;
those files stay as decode-only goldens), encoded with the full mode search. Version 6 is version 5's layout where
a tile may leave its band ranges to the scene's metadata (header flag bit 3): the hybrid tile here does (its
scene-wide band range is ``SCENE``, what the metadata's ``band_range`` key would carry), the other two carry their
own, which makes them version 5's bytes but for the version byte.

``tile_v6_residual.bin``  a residual-only tile (no component present): the coefficients in the v5/v6 stream
``tile_v6_hybrid.bin``    latents plus the context-coded residual; band ranges from ``SCENE`` (flag bit 3)
``tile_v6_masked.bin``    a valid mask and per-band fill masks
``tile_v6_integers.json`` header fields and SHA-256 of the integers (``TileCodec.parse_integers``) and, without
                          latents, of the pixels; ``scene_band_range``: the hex the hybrid tile decodes with

They were made with ``python tests/edge/codec/golden/make_tile_v6_golden.py`` before version 7 (an
encoder that writes version 7 now refuses to).
"""
from __future__ import annotations

import json
import sys

from make_tile_v3_golden import (BANDS, CASES, FILL, HEIGHT, HERE, WIDTH, analyzed, describe,  # noqa: F401
                                 hybrid_band_range, masked_inputs, sha, walk_tile)

from cvae.edge.codec import bitstream
from cvae.edge.codec.tile import TileCodec

FILES = {name: HERE / f"tile_v6_{name}.bin" for name in ("residual", "hybrid", "masked")}
INTEGERS = HERE / "tile_v6_integers.json"
#: the hybrid tile's scene side information (its scene metadata's ``band_range``)
SCENE = bitstream.SceneSide(*hybrid_band_range())


def scene_for(name: str) -> bitstream.SceneSide | None:
    return SCENE if name == "hybrid" else None


def encode_all(codec: TileCodec) -> dict[str, bytes]:
    """The golden tiles' bytes as this machine's encoder writes them."""
    return {name: codec.encode(analyzed(codec, name, scene_for(name)), level) for name, level in CASES.items()}


def write(codec: TileCodec) -> dict[str, bytes]:
    tiles = encode_all(codec)
    for name, data in tiles.items():
        FILES[name].write_bytes(data)
    out = {name: describe(codec, data, scene_for(name)) for name, data in tiles.items()}
    out["scene_band_range"] = SCENE.to_metadata()["band_range"]
    INTEGERS.write_text(json.dumps(out, indent=1) + "\n")
    return tiles


def main() -> int:
    print("the version 6 goldens are frozen (the encoder writes version 7): use make_tile_v7_golden.py")
    return 1


if __name__ == "__main__":
    sys.exit(main())
