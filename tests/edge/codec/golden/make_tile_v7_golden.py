"""The golden tiles of bitstream version 7 (a signalled residual step), as the shipped bundle wrote them before
version 10.

Frozen: the encoder writes version 10 now (make_tile_v10_golden.py codes the same inputs, levels and step, and imports
them from here), so these files are decode-only goldens (version 7 keeps decoding); what follows describes how they
were made.

The same three 4-band 64 x 64 uint16 inputs and levels as the version 3, 5 and 6 goldens (make_tile_v3_golden.py,
make_tile_v6_golden.py; those files stay as decode-only goldens), encoded with the full mode search, plus a fourth
tile coded at a step between the ladder's presets. Version 7 is version 6's layout where a tile with a residual
carries its step as a 16-bit code after the mode bytes (cvae.edge.codec.stepcode); the preset levels code their
ladder step on the code's grid. The hybrid tile refers to its scene's band ranges (``SCENE``) as in version 6.

``tile_v7_residual.bin``  a residual-only tile (no component present), level 8's preset step
``tile_v7_hybrid.bin``    latents plus the context-coded residual (level 8); band ranges from ``SCENE`` (flag bit 3)
``tile_v7_masked.bin``    a valid mask and per-band fill masks
``tile_v7_stepped.bin``   a residual-only tile at step ``STEPS['stepped']`` (not a preset: its code says it)
``tile_v7_integers.json`` header fields (the step code among them) and SHA-256 of the integers
                          (``TileCodec.parse_integers``) and, without latents, of the pixels; ``scene_band_range``:
                          the hex the hybrid tile decodes with

They were made with ``python tests/edge/codec/golden/make_tile_v7_golden.py`` before version 10 (an encoder that
writes version 10 now refuses to).
"""
from __future__ import annotations

import sys

from make_tile_v3_golden import CASES as CASES_V3
from make_tile_v3_golden import (BANDS, FILL, HEIGHT, HERE, WIDTH, describe, hybrid_band_range,  # noqa: F401
                                 masked_inputs, sha, walk_tile)
from make_tile_v3_golden import analyzed as analyzed_v3

from cvae.edge.codec import bitstream
from cvae.edge.codec.tile import TileCodec

#: the tile coded at a step of its own, between the ladder's presets (level 8's is 0.025, level 7's 0.035)
STEPS = {"stepped": 0.0293}
#: name -> level (the stepped tile names the residual level whose preset step is nearest its own: 8); the hybrid tile
#: at level 8, where the full search codes latents and the residual (at level 9, where the earlier goldens have it, it
#: codes the residual alone since the rounding offsets are chosen per subband)
CASES = {**CASES_V3, "hybrid": 8, "stepped": 8}
FILES = {name: HERE / f"tile_v7_{name}.bin" for name in CASES}
INTEGERS = HERE / "tile_v7_integers.json"
#: the hybrid tile's scene side information (its scene metadata's ``band_range``)
SCENE = bitstream.SceneSide(*hybrid_band_range())


def scene_for(name: str) -> bitstream.SceneSide | None:
    return SCENE if name == "hybrid" else None


def analyzed(codec: TileCodec, name: str, scene: bitstream.SceneSide | None = None):
    """The v3 goldens' inputs, and for the stepped tile a third random walk."""
    return codec.analyze(walk_tile(2)) if name == "stepped" else analyzed_v3(codec, name, scene)


def main() -> int:
    print("the version 7 goldens are frozen (the encoder writes version 10): use make_tile_v10_golden.py")
    return 1


if __name__ == "__main__":
    sys.exit(main())
