"""The per-band fields of tile formats v4, v8 and v9 (error-bounded predictive tiles, :mod:`cvae.edge.codec.predictive`).

Part of :mod:`cvae.edge.codec.bitstream`, which owns the tile's layout and calls these for the ``samples`` format
between the fixed header and the masks (docs/bitstream.md, "Version 4", "Version 8")::

    C x (varint E, zigzag varint lo, varint hi - lo, u8 (ky-1)<<4 | kx-1, u8 oy<<4 | ox, palette[, u8 mode]),
    varint-prefixed coder stream

``mode`` (v8 and v9): the band's predictor, 0 v4's adaptive linear one, 1 the replication mode.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from cvae.edge.codec.wire import Reader, varint
from cvae.edge.errors import CorruptTileError

if TYPE_CHECKING:
    from cvae.edge.codec.bitstream import TileHeader

__all__ = ["PREDICTIVE_LIMIT", "PALETTE_SPAN", "MODES", "BandFields", "pack_fields", "unpack_fields"]

#: a v4 band's range and error bound stay within +-2^33 (uint32 and int32 samples fit; products stay in int64)
PREDICTIVE_LIMIT = 1 << 33
#: v8's per-band predictor modes: 0 v4's adaptive linear predictor, 1 the replication mode (MED, equal-neighbour contexts)
MODES = (0, 1)


class BandFields(NamedTuple):
    """What v4 sends per band, parsed: ``max_error int64[C]``, ``lo``, ``hi`` (float64[C] holding integers),
    ``replication uint8[C, 4]`` (ky, kx, oy, ox), ``palette`` (per band None or int64[K]), ``modes uint8[C]`` (v8's
    predictor per band; zeros for v4), and the coder stream."""

    max_error: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    replication: np.ndarray
    palette: tuple[np.ndarray | None, ...]
    modes: np.ndarray
    payload: bytes


def pack_fields(h: "TileHeader", payload: bytes) -> bytes:
    """The per-band fields of header ``h`` (v4, or v8 / v9 with its modes) and its coder stream ``payload``; ``ValueError``
    outside the format."""
    e = np.asarray(h.max_error, np.int64)
    lo, hi = np.asarray(h.lo, np.float64), np.asarray(h.hi, np.float64)
    if e.shape != (h.bands,) or lo.shape != (h.bands,) or hi.shape != (h.bands,) or not isinstance(payload, bytes):
        raise ValueError("pack_tile: a version 4 tile takes max_error, lo, hi of shape [C] and payload bytes")
    if (lo != np.round(lo)).any() or (hi < lo).any() or (np.abs(lo) > PREDICTIVE_LIMIT).any() or \
            (np.abs(hi) > PREDICTIVE_LIMIT).any() or (e < 0).any() or (e > PREDICTIVE_LIMIT).any():
        raise ValueError("pack_tile: version 4 ranges must be ordered integers and bounds in 0..2^33")
    rep = np.asarray(h.replication if h.replication is not None else np.tile([1, 1, 0, 0], (h.bands, 1)), np.int64)
    if rep.shape != (h.bands, 4) or (rep[:, :2] < 1).any() or (rep[:, :2] > 16).any() or (rep[:, 2:] < 0).any() or \
            (rep[:, 2:] >= rep[:, :2]).any():
        raise ValueError("pack_tile: version 4 replication must be [C, 4] of ky, kx in 1..16 and offsets below them")
    modes = np.zeros(h.bands, np.int64) if h.modes is None else np.asarray(h.modes, np.int64)
    with_modes = h.format.band_modes
    if modes.shape != (h.bands,) or not np.isin(modes, MODES).all() or (modes.any() and not with_modes):
        raise ValueError(f"pack_tile: modes must be [C] of {MODES}, and other than 0 only in versions 8 and 9")
    out = bytearray()
    palette = h.palette if h.palette is not None else (None,) * h.bands
    for eb, lb, hb, (ky, kx, oy, ox), pal, mode in zip(e.tolist(), lo.astype(np.int64).tolist(),
                                                       hi.astype(np.int64).tolist(), rep.tolist(), palette,
                                                       modes.tolist()):
        out += varint(eb) + varint(2 * lb if lb >= 0 else -2 * lb - 1) + varint(hb - lb)
        out += bytes([(ky - 1) << 4 | (kx - 1), oy << 4 | ox])
        out += _pack_palette(pal, lb, hb, eb)
        if with_modes:
            out.append(mode)
    return bytes(out + varint(len(payload)) + payload)


def unpack_fields(r: Reader, c: int, with_modes: bool = False) -> BandFields:
    """Parse the per-band fields of ``c`` bands (v4; ``with_modes``: v8, v9) and the coder stream; :class:`CorruptTileError`
    outside the format."""
    e, lo, hi = np.zeros(c, np.int64), np.zeros(c, np.float64), np.zeros(c, np.float64)
    rep = np.zeros((c, 4), np.uint8)
    modes = np.zeros(c, np.uint8)
    palette: list[np.ndarray | None] = []
    for b in range(c):
        e[b] = r.varint(limit=PREDICTIVE_LIMIT)
        z = r.varint(limit=2 * PREDICTIVE_LIMIT)
        lo[b] = z // 2 if z % 2 == 0 else -(z + 1) // 2
        hi[b] = lo[b] + r.varint(limit=2 * PREDICTIVE_LIMIT)
        k, o = r.take(2)
        rep[b] = (k >> 4) + 1, (k & 15) + 1, o >> 4, o & 15
        if rep[b, 2] >= rep[b, 0] or rep[b, 3] >= rep[b, 1]:
            raise CorruptTileError(f"band {b}: replication offsets {rep[b, 2:].tolist()} not below the block "
                                   f"{rep[b, :2].tolist()}; the tile is corrupt")
        palette.append(_unpack_palette(r, int(lo[b]), int(hi[b]), int(e[b])))
        if with_modes:
            modes[b] = r.take(1)[0]
            if modes[b] not in MODES:
                raise CorruptTileError(f"band {b}: predictor mode {modes[b]} is not one of {MODES}; the tile is corrupt")
    if (np.abs(lo) > PREDICTIVE_LIMIT).any() or (np.abs(hi) > PREDICTIVE_LIMIT).any():
        raise CorruptTileError("version 4 band range beyond +-2^33; the tile is corrupt")
    payload = r.take(r.varint())
    return BandFields(e, lo, hi, rep, tuple(palette), modes, payload)


#: largest value range a v4 palette may span (its bitmap: 128 KiB before zlib)
PALETTE_SPAN = 1 << 20


def _pack_palette(pal: np.ndarray | None, lo: int, hi: int, e: int) -> bytes:
    """v4 per band: 0, or 1 + LEB128 length + zlib of the packed bitmap of the values ``lo .. hi`` the band uses."""
    if pal is None:
        return b"\0"
    pal = np.asarray(pal, np.int64)
    if e != 0 or hi - lo + 1 > PALETTE_SPAN or len(pal) == 0 or pal[0] != lo or pal[-1] != hi or \
            (np.diff(pal) <= 0).any():
        raise ValueError("pack_tile: a palette is the sorted values of a lossless band, from lo to hi, within 2^20")
    bits = np.zeros(hi - lo + 1, bool)
    bits[pal - lo] = True
    z = zlib.compress(np.packbits(bits).tobytes(), 9)
    return b"\1" + varint(len(z)) + z


def _unpack_palette(r: Reader, lo: int, hi: int, e: int) -> np.ndarray | None:
    kind = r.take(1)[0]
    if kind == 0:
        return None
    span = hi - lo + 1
    if kind != 1 or e != 0 or span > PALETTE_SPAN:
        raise CorruptTileError(f"palette kind {kind} with bound {e} over {span} values; the tile is corrupt")
    try:
        raw = zlib.decompressobj().decompress(r.take(r.varint()), (span + 7) // 8 + 1)
    except zlib.error as ex:
        raise CorruptTileError(f"palette does not inflate: {ex}") from ex
    if len(raw) != (span + 7) // 8:
        raise CorruptTileError("palette bitmap has the wrong size")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))
    if bits[span:].any() or not bits[0] or not bits[span - 1]:
        raise CorruptTileError("palette bitmap padding set, or lo / hi unused")
    return lo + np.flatnonzero(bits[:span]).astype(np.int64)
