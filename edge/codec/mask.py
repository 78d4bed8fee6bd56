"""The valid mask of a tile (tile format v3): row transitions predicted from the rows above, range-coded.

Why not zlib (formats 1 and 2): nodata borders of satellite scenes are a few straight edges; zlib of the
packed bits spends about 165 bytes on a 256 x 256 tile with one edge, most of it on repeating rows that
differ by one pixel. Here each row is its *transitions* (the columns where valid changes), predicted from the
row above: a straight edge costs about one bit a row (benchmarks/results/mask_coding.md).

Why by hand: no maintained library codes bilevel masks this small without a container (JBIG2 and CCITT G4
writers come with TIFF/PDF wrappers of more bytes than the mask), and the tables must be the same integers
everywhere: they are built here from integers only (Python ints, no floating point), so the satellite and
the ground derive bit-identical tables by construction.

Layout (``H``, ``W`` from the tile header)::

    varint n1, stream 1 (n1 bytes)   rANS stream: choice, then for every row r the change of
                                     u_r = 2 * transitions_r + first_value_r against u_(r-1) (u_-1 = 0)
    varint n2, stream 2 (n2 bytes)   rANS stream (empty when no row has a transition): for every row, its
                                     transition columns 1 <= t_0 < t_1 < ... <= W - 1, each coded as
                                     * where u_r == u_(r-1): the difference from its prediction, with the delta
                                       table ``choice % 8``; the prediction is t_(r-1)[i] (choice < 8), or
                                       2 t_(r-1)[i] - t_(r-2)[i] when choice >= 8 and u_(r-2) == u_(r-1) too;
                                     * else: t_0 - 1, then t_i - t_(i-1) - 1 (gap table)

Table rows (all with escape, docs/range_coder.md): 0 choice (uniform over 0..15), 1 row change, 2 gap,
3..10 delta tables of growing scale.
"""
from __future__ import annotations

import zlib

import numpy as np

from cvae.edge.codec import rangecoder
from cvae.edge.codec.tables import PRECISION, EntropyTables
from cvae.edge.codec.wire import varint
from cvae.edge.errors import CorruptTileError

__all__ = ["encode_mask", "decode_mask", "TABLES", "coded_masks", "read_coded", "band_fills", "zlib_mask"]

_CHOICES = 16
_ROW_CHOICE, _ROW_CHANGE, _ROW_GAP, _ROW_DELTA = 0, 1, 2, 3
#: two-sided geometric ratios of the delta tables, as numerators over 2^16 (0.02 ... 0.94)
_DELTA_RATIOS = (1311, 4588, 13107, 26214, 39322, 51118, 57672, 61604)


def _geometric(num: int, n: int) -> list[int]:
    """Weights num^k / 2^(16k) * 2^40 for k < n, in integers (at least 1)."""
    q, out = 1 << 40, []
    for _ in range(n):
        out.append(max(q, 1))
        q = (q * num) >> 16
    return out


def _cdf(weights: list[int]) -> list[int]:
    """Integer CDF over ``weights`` plus an escape symbol of weight 1, total 2^PRECISION, every symbol >= 1."""
    total = 1 << PRECISION
    k = len(weights) + 1
    s = sum(weights)
    freq = [1 + (w * (total - k - 1)) // s for w in weights] + [1]
    freq[freq.index(max(freq))] += total - sum(freq)
    cdf = [0]
    for f in freq:
        cdf.append(cdf[-1] + f)
    return cdf


def _tables() -> EntropyTables:
    rows = []  # (offset, weights)
    rows.append((0, [1] * _CHOICES))
    half = 16
    change = _geometric(1966, half + 1)                     # p(0) about 0.94
    rows.append((-half, change[:0:-1] + change))
    rows.append((0, _geometric(65024, 1024)))               # gaps: slow decay over 0..1023
    for num in _DELTA_RATIOS:
        g = _geometric(num, 65)
        rows.append((-64, g[:0:-1] + g))
    cdfs = [_cdf(w) for _, w in rows]
    width = max(len(c) for c in cdfs)
    cdf = np.zeros((len(rows), width), np.int32)
    for i, c in enumerate(cdfs):
        cdf[i, :len(c)] = c
    return EntropyTables(cdf=cdf, cdf_length=np.array([len(c) for c in cdfs], np.int32),
                         offset=np.array([o for o, _ in rows], np.int32), precision=PRECISION)


TABLES = _tables()
_CHECKED = rangecoder.checked_tables(TABLES.cdf, TABLES.cdf_length, TABLES.offset, TABLES.precision)


def _transition_columns(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's transition columns, row after row (int64[T]), and u_r = 2 * count + first value (int64[H])."""
    v = valid.astype(np.int8)
    rows, cols = np.nonzero(v[:, 1:] != v[:, :-1])  # row-major: each row's columns ascending
    u = 2 * np.bincount(rows, minlength=len(v)) + v[:, 0]
    return (cols + 1).astype(np.int64), u.astype(np.int64)


def _transitions(valid: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Per row the transition columns, and u_r = 2 * count + first value."""
    t, u = _transition_columns(valid)
    return np.split(t, np.cumsum(u // 2)[:-1]), u


def _stream2_rows(u: np.ndarray, choice: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Table rows of stream 2 and, per symbol, (row r, transition i, mode): mode 0 gap, 1 first-order, 2 second."""
    rows, where = [], []
    for r in range(len(u)):
        n = int(u[r]) // 2
        same = r > 0 and u[r] == u[r - 1]
        mode = 0 if not same else (2 if choice >= 8 and r > 1 and u[r - 2] == u[r - 1] else 1)
        for i in range(n):
            rows.append(_ROW_GAP if mode == 0 else _ROW_DELTA + choice % 8)
            where.append((r, i, mode))
    return rows, where


def _encode(stream, rows) -> bytes:
    """``stream``, ``rows``: int sequences or arrays of one length."""
    if not len(stream):
        return b""
    return rangecoder.encode_checked(np.asarray(stream, np.int32), np.asarray(rows, np.int32), _CHECKED)


def _stream2_symbols(t: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every transition's stream-2 symbol under each predictor at once, in stream order: ``(gap_or_first,
    second, uses_delta)`` where ``gap_or_first`` is the symbol with first-order prediction (choices 0..7),
    ``second`` with second-order prediction (choices 8..15), ``uses_delta`` whether a delta table codes it
    (else the gap table), in the order of :func:`_stream2_rows`; vectorised, without a Python loop per
    transition: the encoder tries all 16 choices. (The decoder walks :func:`_stream2_rows`.) ``t``: the
    transition columns of :func:`_transition_columns`."""
    n = (u // 2).astype(np.int64)
    row = np.repeat(np.arange(len(u)), n)
    start = np.concatenate([[0], np.cumsum(n)[:-1]]) if len(n) else np.zeros(0, np.int64)
    i = np.arange(len(t)) - start[row]
    same = np.zeros(len(u), bool)
    same[1:] = u[1:] == u[:-1]
    second = np.zeros(len(u), bool)
    second[2:] = same[2:] & (u[1:-1] == u[:-2])
    same_t, second_t, nt = same[row], second[row], n[row]
    gap = np.where(i == 0, t - 1, t - np.roll(t, 1) - 1)
    prev1 = t[np.where(same_t, np.arange(len(t)) - nt, 0)] if len(t) else t  # the row above has as many
    prev2 = t[np.where(second_t, np.arange(len(t)) - 2 * nt, 0)] if len(t) else t
    first = np.where(same_t, t - prev1, gap)
    sec = np.where(second_t, t - (2 * prev1 - prev2), first)
    return first, sec, same_t


def encode_mask(valid: np.ndarray) -> tuple[bytes, bytes]:
    """``valid: bool[H, W]`` -> the two streams (the choice of predictor and table that costs least)."""
    t, u = _transition_columns(np.asarray(valid, bool))
    change = np.diff(np.concatenate([[0], u]))
    best: tuple[int, bytes] | None = None
    first, sec, delta = _stream2_symbols(t, u)
    first, sec = first.astype(np.int32), sec.astype(np.int32)  # columns: |symbol| < 2 * 2048
    for choice in range(_CHOICES):
        rows = np.where(delta, np.int32(_ROW_DELTA + choice % 8), np.int32(_ROW_GAP))
        s2 = _encode(sec if choice >= 8 else first, rows)
        if best is None or len(s2) < len(best[1]):
            best = (choice, s2)
        if not len(first):
            break
    assert best is not None  # the first choice is always tried
    choice, s2 = best
    s1 = _encode(np.concatenate([[choice], change]), np.array([_ROW_CHOICE] + [_ROW_CHANGE] * len(change)))
    return s1, s2


def _decode(data: bytes, rows: list[int], what: str) -> np.ndarray:
    if not rows:
        if data:
            raise CorruptTileError(f"valid mask: {len(data)} bytes of {what} where none is coded; the tile is corrupt")
        return np.zeros(0, np.int32)
    t = TABLES
    try:
        return rangecoder.decode(data, np.asarray(rows, np.int32), t.cdf, t.cdf_length, t.offset, t.precision)
    except rangecoder.CorruptStreamError as e:
        raise CorruptTileError(f"valid mask {what}: {e}") from e


def decode_mask(s1: bytes, s2: bytes, height: int, width: int) -> np.ndarray:
    """The inverse of :func:`encode_mask`: bool[H, W]; raises CorruptTileError on any inconsistency."""
    first = _decode(s1, [_ROW_CHOICE] + [_ROW_CHANGE] * height, "stream 1")
    choice = int(first[0])
    if not 0 <= choice < _CHOICES:
        raise CorruptTileError(f"valid mask: predictor choice {choice} is out of range; the tile is corrupt")
    u = np.cumsum(first[1:].astype(np.int64))
    if (u < 0).any() or (u // 2 > width - 1).any():
        raise CorruptTileError("valid mask: a row declares more transitions than the tile is wide; the tile is corrupt")
    rows, where = _stream2_rows(u, choice)
    sym = _decode(s2, rows, "stream 2")
    out = np.zeros((height, width), bool)
    ts: list[list[int]] = [[] for _ in range(height)]
    for (r, i, mode), s in zip(where, sym.tolist()):
        if mode == 0:
            t = s + 1 if i == 0 else ts[r][i - 1] + s + 1
        elif mode == 1:
            t = ts[r - 1][i] + s
        else:
            t = 2 * ts[r - 1][i] - ts[r - 2][i] + s
        if not (1 <= t <= width - 1) or (i and t <= ts[r][i - 1]):
            raise CorruptTileError(f"valid mask: row {r} transition {i} at column {t} is out of order or outside "
                                   f"1..{width - 1}; the tile is corrupt")
        ts[r].append(t)
    for r in range(height):
        value = bool(u[r] & 1)
        edges = [0] + ts[r] + [width]
        for a, b in zip(edges[:-1], edges[1:]):
            if value:
                out[r, a:b] = True
            value = not value
    return out


# The tile layer's mask fields (cvae.edge.codec.bitstream calls these; docs/bitstream.md)

def coded_masks(valid: np.ndarray | None, band_fill: np.ndarray | None) -> bytes:
    """v3+: the valid mask, then each band's fill mask, each as two varint-prefixed transition streams."""
    out = bytearray()
    for m in ([valid] if valid is not None else []) + (list(band_fill) if band_fill is not None else []):
        for stream in encode_mask(m):
            out += varint(len(stream)) + stream
    return bytes(out)


def read_coded(r, height: int, width: int) -> np.ndarray:
    """bool[H, W]: one mask as two varint-prefixed transition streams, from the tile reader ``r``."""
    return decode_mask(r.take(r.varint()), r.take(r.varint()), height, width)


def band_fills(r, c: int, height: int, width: int) -> np.ndarray:
    """bool[C, H, W]: the bands' fill masks, each as :func:`read_coded`."""
    return np.stack([read_coded(r, height, width) for _ in range(c)])


def zlib_mask(z: bytes, height: int, width: int) -> np.ndarray:
    """v1, v2: the valid mask as a zlib stream of its packed bits."""
    try:
        raw = zlib.decompressobj().decompress(z, (height * width + 7) // 8 + 1)
    except zlib.error as e:
        raise CorruptTileError(f"valid mask does not decompress: {e}") from e
    if len(raw) != (height * width + 7) // 8:
        raise CorruptTileError("valid mask has the wrong size")
    return np.unpackbits(np.frombuffer(raw, np.uint8))[:height * width].reshape(height, width).astype(bool)
