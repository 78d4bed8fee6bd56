"""Clean-room entropy coders, written from docs/range_coder.md and docs/bitstream.md only.

- ``rans_decode``: the rANS coder (docs/range_coder.md, "Decoding").
- ``BinaryDecoder``: the LZMA-layout binary arithmetic coder (docs/bitstream.md, Version 4, "Coder").
- ``Model4`` / ``Model5``: the adaptive bit models of versions 4 and 5/6.
- mask tables (docs/tables/mask_tables.txt) and the transition-coded masks (docs/bitstream.md, "Masks").
"""
from __future__ import annotations

import os

import numpy as np


class CleanroomError(ValueError):
    """Any corrupt input found by the clean-room decoder."""


# --------------------------------------------------------------------------- rANS

_L = 1 << 31


class RansTables:
    """Rows of integer CDFs, as plain lists (fast indexing in pure Python)."""

    def __init__(self, cdfs, cdf_lengths, offsets):
        cdfs = np.asarray(cdfs)
        self.rows = [list(map(int, cdfs[c, : int(cdf_lengths[c])])) for c in range(cdfs.shape[0])]
        self.offsets = [int(o) for o in offsets]


def rans_decode(data: bytes, indexes, tables: RansTables, precision: int = 16) -> list[int]:
    data = bytes(data)
    n = len(indexes)
    if len(data) < 17 or (len(data) - 17) % 4:
        raise CleanroomError("rANS: length is not 17 + 4K")
    if data[0] != (0x10 | (precision - 12)):
        raise CleanroomError(f"rANS: header byte {data[0]:#x}")
    x = [int.from_bytes(data[1:9], "little"), int.from_bytes(data[9:17], "little")]
    for v in x:
        if not (_L <= v < 1 << 63):
            raise CleanroomError("rANS: initial state out of range")
    words = [int.from_bytes(data[i : i + 4], "little") for i in range(17, len(data), 4)]
    pos = 0
    mask = (1 << precision) - 1
    out = []

    def step_bypass(j, b):
        nonlocal pos
        xv = x[j]
        u = xv & ((1 << b) - 1)
        xv >>= b
        if xv < _L:
            if pos >= len(words):
                raise CleanroomError("rANS: truncated")
            xv = (xv << 32) | words[pos]
            pos += 1
        x[j] = xv
        return u

    rows = tables.rows
    for i in range(n):
        c = int(indexes[i])
        cdf = rows[c]
        j = i & 1
        xv = x[j]
        slot = xv & mask
        # binary search for k with cdf[k] <= slot < cdf[k+1]
        lo_k, hi_k = 0, len(cdf) - 2
        while lo_k < hi_k:
            mid = (lo_k + hi_k + 1) >> 1
            if cdf[mid] <= slot:
                lo_k = mid
            else:
                hi_k = mid - 1
        k = lo_k
        start = cdf[k]
        freq = cdf[k + 1] - start
        xv = freq * (xv >> precision) + slot - start
        if xv < _L:
            if pos >= len(words):
                raise CleanroomError("rANS: truncated")
            xv = (xv << 32) | words[pos]
            pos += 1
        x[j] = xv
        n_c = len(cdf) - 2
        off = tables.offsets[c]
        if k < n_c:
            s = off + k
        else:
            g = 0
            while True:
                if step_bypass(j, 1) == 0:
                    break
                g += 1
                if g > 32:
                    raise CleanroomError("rANS: gamma prefix too long")
            m = 1 << g
            if g > 0:
                m |= step_bypass(j, min(g, 16))
            if g > 16:
                m |= step_bypass(j, g - 16) << 16
            z = m - 1
            e = z >> 1
            v = -1 - e if z & 1 else n_c + e
            s = off + v
        if not (-(1 << 31) <= s < 1 << 31):
            raise CleanroomError("rANS: value outside int32")
        out.append(s)
    if pos != len(words) or x[0] != _L or x[1] != _L:
        raise CleanroomError("rANS: trailing words or wrong final state")
    return out


# --------------------------------------------------------------------------- binary arithmetic coder


class BinaryDecoder:
    def __init__(self, data: bytes):
        self.buf = b"\x00" + bytes(data)
        if len(self.buf) < 5:
            raise CleanroomError("coder: stream shorter than 4 bytes")
        self.code = int.from_bytes(self.buf[:5], "big")
        self.pos = 5
        self.range = (1 << 32) - 1

    def _norm(self):
        while self.range < (1 << 24):
            self.range <<= 8
            if self.pos >= len(self.buf):
                raise CleanroomError("coder: needs bytes beyond the stream")
            self.code = ((self.code << 8) | self.buf[self.pos]) & 0xFFFFFFFF
            self.pos += 1

    def bit(self, p0: int) -> int:
        bound = (self.range >> 16) * p0
        if self.code < bound:
            self.range = bound
            b = 0
        else:
            self.code -= bound
            self.range -= bound
            b = 1
        self._norm()
        return b

    def raw(self, nb: int) -> int:
        part = self.range >> nb
        u = self.code // part
        if u >= (1 << nb):
            raise CleanroomError("coder: raw chunk out of range")
        self.code -= u * part
        self.range = part
        self._norm()
        return u

    def finish(self):
        if self.pos != len(self.buf):
            raise CleanroomError(f"coder: {len(self.buf) - self.pos} bytes left over")


class Model4:
    """Version 4 bit model: fixed rates 5 and 7."""

    __slots__ = ("fast", "slow")

    def __init__(self):
        self.fast = 32768
        self.slow = 32768

    def decode(self, dec: BinaryDecoder) -> int:
        p0 = (self.fast + self.slow) >> 1
        p0 = 64 if p0 < 64 else (65472 if p0 > 65472 else p0)
        b = dec.bit(p0)
        if b:
            self.fast -= self.fast >> 5
            self.slow -= self.slow >> 7
        else:
            self.fast += (65535 - self.fast) >> 5
            self.slow += (65535 - self.slow) >> 7
        return b


class Model5:
    """Versions 5/6 bit model: warm-up by a count `seen`."""

    __slots__ = ("fast", "slow", "seen")

    def __init__(self):
        self.fast = 32768
        self.slow = 32768
        self.seen = 0

    def decode(self, dec: BinaryDecoder) -> int:
        p0 = (self.fast + self.slow) >> 1
        p0 = 64 if p0 < 64 else (65472 if p0 > 65472 else p0)
        b = dec.bit(p0)
        self.update(b)
        return b

    def update(self, b: int) -> None:
        """The adaptation after a bit (also of a version 10 mixed decision's own model)."""
        lg = (self.seen + 2).bit_length() - 1
        rf = min(lg, 5)
        rs = min(lg, 7)
        if b:
            self.fast -= self.fast >> rf
            self.slow -= self.slow >> rs
        else:
            self.fast += (65535 - self.fast) >> rf
            self.slow += (65535 - self.slow) >> rs
        self.seen = min(self.seen + 1, 1024)


# --------------------------------------------------------------------------- masks

_DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")
_MASK_TABLES: RansTables | None = None


def mask_tables() -> RansTables:
    """Read docs/tables/mask_tables.txt (the data form of docs/bitstream.md, "Mask tables")."""
    global _MASK_TABLES
    if _MASK_TABLES is None:
        rows, offs = {}, {}
        with open(os.path.join(_DOCS, "tables", "mask_tables.txt")) as f:
            for line in f:
                if not line.startswith("row "):
                    continue
                head, vals = line.split(":", 1)
                parts = head.split()
                r, off, length = int(parts[1]), int(parts[3]), int(parts[5])
                cdf = [int(v) for v in vals.split()]
                assert len(cdf) == length
                rows[r] = cdf
                offs[r] = off
        t = RansTables.__new__(RansTables)
        t.rows = [rows[r] for r in range(len(rows))]
        t.offsets = [offs[r] for r in range(len(rows))]
        _MASK_TABLES = t
    return _MASK_TABLES


def decode_mask(s1: bytes, s2: bytes, H: int, W: int):
    """Returns (mask bool[H, W], stream1 symbols, stream2 symbols)."""
    T = mask_tables()
    sym1 = rans_decode(s1, [0] + [1] * H, T, 16)
    choice = sym1[0]
    if not 0 <= choice <= 15:
        raise CleanroomError("mask: choice out of range")
    u = []
    prev = 0
    for r in range(H):
        ur = prev + sym1[1 + r]
        if ur < 0 or ur // 2 > W - 1:
            raise CleanroomError("mask: bad row count")
        u.append(ur)
        prev = ur
    # table rows of stream 2 follow from stream 1
    idx = []
    modes = []
    for r in range(H):
        n = u[r] // 2
        delta = r >= 1 and u[r] == u[r - 1]
        modes.append(delta)
        idx += [3 + (choice % 8) if delta else 2] * n
    if not idx:
        if len(s2):
            raise CleanroomError("mask: stream 2 should be empty")
        sym2 = []
    else:
        sym2 = rans_decode(s2, idx, T, 16)
    mask = np.zeros((H, W), dtype=bool)
    ts: list[list[int]] = []
    pos = 0
    for r in range(H):
        n = u[r] // 2
        t = []
        for i in range(n):
            s = sym2[pos]
            pos += 1
            if modes[r]:
                if choice >= 8 and r >= 2 and u[r - 2] == u[r - 1]:
                    pred = 2 * ts[r - 1][i] - ts[r - 2][i]
                else:
                    pred = ts[r - 1][i]
                tv = s + pred
            else:
                tv = s + 1 if i == 0 else t[-1] + s + 1
            if not (1 <= tv <= W - 1) or (t and tv <= t[-1]):
                raise CleanroomError("mask: bad transition")
            t.append(tv)
        ts.append(t)
        val = u[r] % 2
        row = np.empty(W, dtype=bool)
        edges = [0] + t + [W]
        for a, b in zip(edges[:-1], edges[1:]):
            row[a:b] = bool(val)
            val ^= 1
        mask[r] = row
    return mask, sym1, sym2
