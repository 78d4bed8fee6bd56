"""The byte primitives of the tile bitstream: unsigned LEB128 integers and a bounds-checked reader.

Part of :mod:`cvae.edge.codec.bitstream` (which owns the tile's layout), kept apart so that the layout modules stay
small: :mod:`~cvae.edge.codec.bitstream` (every format's header and streams) and
:mod:`~cvae.edge.codec.bitstream_v4` (v4's per-band fields).
"""
from __future__ import annotations

import struct

from cvae.edge.errors import CorruptTileError

__all__ = ["varint", "varint_size", "Reader"]


def varint(n: int) -> bytes:
    """``n >= 0`` as unsigned LEB128 (7 bits a byte, least significant first, high bit: more follow)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def varint_size(n: int) -> int:
    """Bytes of the unsigned LEB128 length prefix of ``n`` (what a stream's length costs in the tile)."""
    return len(varint(n))


class Reader:
    """Reads a tile front to back; running past its end is a :class:`CorruptTileError`."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptTileError(f"tile truncated: needs {n} bytes at offset {self.pos}, has {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, s: struct.Struct) -> tuple:
        return s.unpack(self.take(s.size))

    def varint(self, limit: int | None = None) -> int:
        """An unsigned LEB128 integer of at most 5 bytes; with ``limit``, of at most ``limit`` (else corrupt)."""
        n, shift = 0, 0
        longest = 35 if limit is None else max(35, limit.bit_length() + 7)
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if limit is not None and n > limit:
                    raise CorruptTileError(f"varint {n} exceeds {limit}; the tile is corrupt")
                return n
            if shift >= longest:
                raise CorruptTileError(f"varint longer than {longest // 7} bytes")

    def check_consumed(self) -> None:
        """Raise unless every byte was read: nothing may follow a tile's last field."""
        if self.pos != len(self.data):
            raise CorruptTileError(f"{len(self.data) - self.pos} bytes left over after the tile; the tile is corrupt")
