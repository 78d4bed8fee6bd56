"""The golden tiles of bitstream version 5 (context-coded residual), as the shipped bundle wrote them before version 6.

Frozen: the encoder writes version 6 now (make_tile_v6_golden.py codes the same inputs), so these files are
decode-only goldens (version 5 keeps decoding). The same three 4-band 64 x 64 uint16 inputs and levels as the
version 3 goldens (make_tile_v3_golden.py), encoded with the full mode search:

``tile_v5_residual.bin``  a residual-only tile (no component present): the coefficients in the v5 stream
``tile_v5_hybrid.bin``    latents of some component(s) in side/main plus the context-coded residual
``tile_v5_masked.bin``    a valid mask and per-band fill masks
``tile_v5_integers.json`` header fields and SHA-256 of the integers (``TileCodec.parse_integers``: latent values,
                          then the residual's coefficients in v5 coding order) and, without latents, of the pixels

They were made with this script before version 6; running it now refuses (it would write version 6 bytes).
"""
from __future__ import annotations

import sys

from make_tile_v3_golden import HERE

FILES = {name: HERE / f"tile_v5_{name}.bin" for name in ("residual", "hybrid", "masked")}
INTEGERS = HERE / "tile_v5_integers.json"


def main() -> int:
    print("the version 5 goldens are frozen (the encoder writes version 6): use make_tile_v6_golden.py")
    return 1


if __name__ == "__main__":
    sys.exit(main())
