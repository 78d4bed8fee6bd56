"""The bytes tile format v11 adds to v10: the rotations of the residual's wavelet detail levels (docs/bitstream.md,
"Version 11"). Owned by :mod:`cvae.edge.codec.bitstream`, which calls these two functions after the tile's matrix;
:mod:`cvae.edge.codec.levels` says what the rotations mean."""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import wavelet
from cvae.edge.codec.wire import Reader
from cvae.edge.errors import CorruptTileError

__all__ = ["pack", "unpack", "MIN_DET"]

#: a rotation whose |det| (of its rows / 127) is under this is refused: the tile's own matrix (bitstream) and its levels
MIN_DET = 0.25


def pack(matrices: tuple | None, c: int, h: int, w: int) -> bytes:
    """A byte whose bit ``j - 1`` says detail level ``j`` has its own rotation, then those int8[C, C] in level
    order. ``matrices``: per detail level (index ``j - 1``) int8[C, C] or None; None or all None: the byte 0."""
    ms = tuple(matrices) if matrices is not None else ()
    levels = wavelet.levels_for(h, w)
    if len(ms) > levels and any(m is not None for m in ms[levels:]):
        raise ValueError(f"pack_tile: level rotations beyond the tile's {levels} wavelet levels")
    mask, out = 0, bytearray()
    for j, m in enumerate(ms[:levels]):
        if m is not None:
            m = np.asarray(m)
            if m.shape != (c, c) or m.dtype != np.int8:
                raise ValueError(f"pack_tile: the rotation of detail level {j + 1} must be int8[{c}, {c}]")
            mask |= 1 << j
            out += m.tobytes()
    return bytes([mask]) + bytes(out)


def unpack(r: Reader, c: int, h: int, w: int) -> tuple:
    """The rotations :func:`pack` wrote: per detail level of the tile's wavelet, int8[C, C] or None."""
    mask = r.take(1)[0]
    levels = wavelet.levels_for(h, w)
    if mask >> levels:
        raise CorruptTileError(f"level rotation byte {mask:#04x} names a level beyond the tile's {levels} wavelet "
                               "levels; the tile is corrupt")
    out: list[np.ndarray | None] = []
    for j in range(levels):
        if mask >> j & 1:
            m = np.frombuffer(r.take(c * c), np.int8).reshape(c, c).copy()
            if abs(np.linalg.det(m.astype(np.float64) / 127)) < MIN_DET:
                raise CorruptTileError(f"rotation of detail level {j + 1} is singular; the tile is corrupt")
            out.append(m)
        else:
            out.append(None)
    return tuple(out)
