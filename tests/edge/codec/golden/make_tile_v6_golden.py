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

import sys

from make_tile_v3_golden import BANDS, CASES, HERE  # noqa: F401 (the inputs' shape and levels, as the test reads them)

FILES = {name: HERE / f"tile_v6_{name}.bin" for name in ("residual", "hybrid", "masked")}
INTEGERS = HERE / "tile_v6_integers.json"


def main() -> int:
    print("the version 6 goldens are frozen (the encoder writes version 7): use make_tile_v7_golden.py")
    return 1


if __name__ == "__main__":
    sys.exit(main())
