"""Regenerate the golden tiles of bitstream version 10 (the mixing coefficient coder) as the shipped bundle writes them.

The inputs, levels and step of the version 7 goldens (make_tile_v7_golden.py, whose files stay as decode-only
goldens): three 4-band 64 x 64 uint16 tiles of the version 3 goldens (make_tile_v3_golden.py), encoded with the full
mode search, and a fourth at a step between the ladder's presets. Version 10 is version 7's layout whose residual
coefficients are coded by the mixing coder (docs/bitstream.md, "Version 10"); the hybrid tile refers to its scene's
band ranges (``SCENE``) as in versions 6 and 7.

``tile_v10_residual.bin``  a residual-only tile (no component present), level 8's preset step
``tile_v10_hybrid.bin``    latents plus the residual (level 8); band ranges from ``SCENE`` (flag bit 3)
``tile_v10_masked.bin``    a valid mask and per-band fill masks
``tile_v10_stepped.bin``   a residual-only tile at step ``STEPS['stepped']`` (not a preset: its code says it)
``tile_v10_integers.json`` header fields (the step code among them) and SHA-256 of the integers
                           (``TileCodec.parse_integers``) and, without latents, of the pixels; ``scene_band_range``:
                           the hex the hybrid tile decodes with

Run ``python tests/edge/codec/golden/make_tile_v10_golden.py`` (or the test with ``UPDATE_GOLDENS=1``) after an
intended change of the format, of the encoder's choices or of the shipped bundle, then ``make_golden_expected.py``.
"""
from __future__ import annotations

import json
import sys

from make_tile_v7_golden import (BANDS, CASES, FILL, HEIGHT, HERE, SCENE, STEPS, WIDTH, analyzed,  # noqa: F401
                                 describe, hybrid_band_range, masked_inputs, scene_for, sha, walk_tile)

from cvae.edge.bundle import Bundle
from cvae.edge.codec.tile import TileCodec

FILES = {name: HERE / f"tile_v10_{name}.bin" for name in CASES}
INTEGERS = HERE / "tile_v10_integers.json"


def encode_all(codec: TileCodec) -> dict[str, bytes]:
    """The golden tiles' bytes as this machine's encoder writes them."""
    return {name: codec.encode(analyzed(codec, name, scene_for(name)), level, STEPS.get(name))
            for name, level in CASES.items()}


def write(codec: TileCodec) -> dict[str, bytes]:
    tiles = encode_all(codec)
    for name, data in tiles.items():
        FILES[name].write_bytes(data)
    out = {name: describe(codec, data, scene_for(name)) for name, data in tiles.items()}
    out["scene_band_range"] = SCENE.to_metadata()["band_range"]
    INTEGERS.write_text(json.dumps(out, indent=1) + "\n")
    return tiles


def main() -> int:
    tiles = write(Bundle.load().codec("onnxruntime", mode_search="full"))
    for name, data in tiles.items():
        print(f"wrote {FILES[name]} ({len(data)} B)")
    print(f"wrote {INTEGERS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
