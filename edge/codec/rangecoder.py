"""Entropy coder for quantized latents: rANS over frozen integer CDF tables.

Data flow (one C call each way, the GIL released while it codes)::

    symbols int32[N] --+                                  +--> bytes
    indexes int32[N] --+--> encode --(table row per symbol)-+
    cdfs int32[C, L], cdf_lengths int32[C], offsets int32[C], precision

    bytes, indexes, tables --> decode --> symbols int32[N]

Symbol ``i`` is modelled by table row ``c = indexes[i]``: its value ``v = symbols[i] - offsets[c]``
is coded with the CDF ``cdfs[c, :cdf_lengths[c]]`` when ``0 <= v < cdf_lengths[c] - 2``; every
other int32 value is coded as the row's last (escape) symbol followed by an Elias-gamma code of
the out-of-range amount, so any int32 round-trips (CompressAI/tensorflow-compression "overflow"
semantics). The byte format is specified in ``docs/range_coder.md`` (format version 1).

The decoder checks the stream header, that every byte was consumed and that the final coder
state is the initial one; anything else raises :class:`CorruptStreamError`. Decoding always
terminates in O(N + len(data)).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cvae.edge.errors import CodecError

from cvae.edge.codec import _rangecoder as _rc

__all__ = [
    "FORMAT_VERSION",
    "PRECISION_MAX",
    "PRECISION_MIN",
    "CorruptStreamError",
    "RangeCoderError",
    "CheckedTables",
    "checked_tables",
    "decode",
    "encode",
    "encode_checked",
]

FORMAT_VERSION: int = _rc.FORMAT_VERSION
"""Version of the byte format, stored in the high nibble of the stream's first byte."""
PRECISION_MIN: int = _rc.PRECISION_MIN
PRECISION_MAX: int = _rc.PRECISION_MAX

_INT32_MIN = int(np.iinfo(np.int32).min)
_INT32_MAX = int(np.iinfo(np.int32).max)


class RangeCoderError(CodecError, ValueError):
    """Invalid input to :func:`encode` or :func:`decode` (arrays, tables or precision)."""


class CorruptStreamError(RangeCoderError):
    """The byte stream is not a valid stream for the given indexes and tables."""


def encode(
    symbols: np.ndarray,
    indexes: np.ndarray,
    cdfs: np.ndarray,
    cdf_lengths: np.ndarray,
    offsets: np.ndarray,
    precision: int = 16,
) -> bytes:
    """Entropy-code ``symbols`` with per-symbol table rows.

    Args:
        symbols: int32[N], any int32 values (values outside a row's range are escaped).
        indexes: int32[N] in [0, C), the table row that models each symbol.
        cdfs: int32[C, L], row ``c`` valid in ``cdfs[c, :cdf_lengths[c]]``: starts at 0, ends at
            ``1 << precision``, strictly increasing; its last symbol is the escape symbol.
        cdf_lengths: int32[C] in [3, L].
        offsets: int32[C], the value coded by symbol 0 of each row.
        precision: bits of the CDFs, 12..16.

    Returns:
        The stream: 1 header byte, the two 8-byte coder states, then 32-bit words.

    Raises:
        RangeCoderError: on invalid arrays, tables, indexes or precision.
    """
    symbols_, indexes_ = _symbols_and_indexes(symbols, indexes)
    return _encode(symbols_, indexes_, checked_tables(cdfs, cdf_lengths, offsets, precision))


class CheckedTables(NamedTuple):
    """Tables :func:`checked_tables` validated once, for many :func:`encode_checked` calls."""

    cdfs: np.ndarray         # int32[C, L], C-contiguous
    cdf_lengths: np.ndarray  # int32[C]
    offsets: np.ndarray      # int32[C]
    precision: int


def checked_tables(cdfs: np.ndarray, cdf_lengths: np.ndarray, offsets: np.ndarray,
                   precision: int = 16) -> CheckedTables:
    """The tables of :func:`encode` checked once (a coder that codes with the same tables many times, as the mask
    coder's search over its 16 predictors, then skips the per-call check). Raises :class:`RangeCoderError`."""
    return CheckedTables(*_as_tables(cdfs, cdf_lengths, offsets, precision), int(precision))


def encode_checked(symbols: np.ndarray, indexes: np.ndarray, tables: CheckedTables) -> bytes:
    """:func:`encode` with tables from :func:`checked_tables`: the same bytes."""
    return _encode(*_symbols_and_indexes(symbols, indexes), tables)


def _symbols_and_indexes(symbols: np.ndarray, indexes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    symbols_ = _as_int32("symbols", symbols, ndim=1)
    indexes_ = _as_int32("indexes", indexes, ndim=1)
    if symbols_.shape != indexes_.shape:
        raise RangeCoderError(
            f"symbols has {symbols_.shape[0]} entries but indexes has {indexes_.shape[0]}: "
            "pass one table index per symbol"
        )
    return symbols_, indexes_


def _encode(symbols_: np.ndarray, indexes_: np.ndarray, tables: CheckedTables) -> bytes:
    cdfs_, lengths_, offsets_, precision = tables
    status, result = _rc.encode(symbols_, indexes_, cdfs_, cdfs_.shape[1], lengths_, offsets_, precision)
    if status != _rc.OK:
        raise _input_error(status, result, indexes_, cdfs_.shape[0])
    return result


def decode(
    data: bytes,
    indexes: np.ndarray,
    cdfs: np.ndarray,
    cdf_lengths: np.ndarray,
    offsets: np.ndarray,
    precision: int = 16,
) -> np.ndarray:
    """Invert :func:`encode`; the indexes and tables must be the ones used to encode.

    Args:
        data: the stream, any bytes-like object.
        indexes: int32[N] in [0, C); N is the number of symbols to decode.
        cdfs, cdf_lengths, offsets, precision: as for :func:`encode`.

    Returns:
        symbols: int32[N].

    Raises:
        CorruptStreamError: the stream is truncated, has trailing bytes, a wrong header
            (format version or precision) or does not decode to a consistent end state.
        RangeCoderError: on invalid arrays, tables, indexes or precision.
    """
    try:
        view = memoryview(data).cast("B")
    except TypeError as e:
        raise RangeCoderError(f"data: expected bytes, got {type(data).__name__}") from e
    indexes_ = _as_int32("indexes", indexes, ndim=1)
    cdfs_, lengths_, offsets_ = _as_tables(cdfs, cdf_lengths, offsets, precision)
    out = np.empty(indexes_.shape[0], dtype=np.int32)
    status, detail = _rc.decode(
        view, indexes_, cdfs_, cdfs_.shape[1], lengths_, offsets_, int(precision), out
    )
    if status in (_rc.ERR_INDEX, _rc.ERR_TABLE):
        raise _input_error(status, detail, indexes_, cdfs_.shape[0])
    if status != _rc.OK:
        raise CorruptStreamError(_stream_message(status, detail, len(view), int(precision)))
    return out


def _as_int32(name: str, value: object, ndim: int) -> np.ndarray:
    """Convert to a C-contiguous int32 array with ``ndim`` dimensions, without wrapping values."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise RangeCoderError(f"{name}: not convertible to an integer array ({e})") from e
    if arr.ndim != ndim:
        fix = "flatten it with .ravel()" if ndim == 1 else f"pass a {ndim}-d array"
        raise RangeCoderError(f"{name}: expected {ndim} dimension(s), got shape {arr.shape}; {fix}")
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind in "fb"):
        raise RangeCoderError(
            f"{name}: expected an integer array, got dtype {arr.dtype}; "
            "round/quantize first and cast with .astype(np.int32)"
        )
    if arr.dtype != np.int32 and arr.size and arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < _INT32_MIN or hi > _INT32_MAX:
            raise RangeCoderError(
                f"{name}: values in [{lo}, {hi}] do not fit int32; the coder handles int32 only"
            )
    return np.ascontiguousarray(arr, dtype=np.int32)


def _as_tables(
    cdfs: object, cdf_lengths: object, offsets: object, precision: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the tables once per call (vectorised): int32 cdfs[C, L], lengths[C], offsets[C]."""
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)):
        raise RangeCoderError(f"precision: expected an int, got {type(precision).__name__}")
    if not PRECISION_MIN <= precision <= PRECISION_MAX:
        raise RangeCoderError(
            f"precision: {precision} is outside [{PRECISION_MIN}, {PRECISION_MAX}]; "
            "freeze the tables at 16 bits (the default) or at least 12"
        )
    cdfs_ = _as_int32("cdfs", cdfs, ndim=2)
    lengths = _as_int32("cdf_lengths", cdf_lengths, ndim=1)
    offsets_ = _as_int32("offsets", offsets, ndim=1)
    n_rows, width = cdfs_.shape
    if lengths.shape[0] != n_rows or offsets_.shape[0] != n_rows:
        raise RangeCoderError(
            f"cdfs has {n_rows} rows but cdf_lengths has {lengths.shape[0]} and offsets "
            f"{offsets_.shape[0]} entries: pass one length and one offset per table row"
        )
    if width < 3:
        raise RangeCoderError(
            f"cdfs: rows have {width} entries, a row needs at least 3 "
            "(0, the escape symbol's start, 1 << precision)"
        )
    if n_rows == 0:
        return cdfs_, lengths, offsets_
    bad = np.flatnonzero((lengths < 3) | (lengths > width))
    if bad.size:
        c = int(bad[0])
        raise RangeCoderError(
            f"cdf_lengths[{c}] = {lengths[c]} is outside [3, {width}]: a row holds at least one "
            "value symbol and the escape symbol, and no more entries than cdfs has columns"
        )
    bad = np.flatnonzero(cdfs_[:, 0] != 0)
    if bad.size:
        c = int(bad[0])
        raise RangeCoderError(f"cdfs[{c}, 0] = {cdfs_[c, 0]}, expected 0: a CDF starts at 0")
    total = 1 << int(precision)
    ends = cdfs_[np.arange(n_rows), lengths - 1]
    bad = np.flatnonzero(ends != total)
    if bad.size:
        c = int(bad[0])
        raise RangeCoderError(
            f"cdfs[{c}, cdf_lengths[{c}] - 1] = {ends[c]}, expected 1 << precision = {total}: "
            "requantize the table to this precision or pass the precision it was frozen at"
        )
    steps = np.diff(cdfs_, axis=1)
    in_row = np.arange(width - 1)[None, :] < (lengths - 1)[:, None]
    bad_at = np.argwhere(in_row & (steps <= 0))
    if bad_at.size:
        c, k = (int(v) for v in bad_at[0])
        raise RangeCoderError(
            f"cdfs[{c}] is not strictly increasing at column {k + 1} "
            f"({cdfs_[c, k]} -> {cdfs_[c, k + 1]}): every symbol, the escape included, needs a "
            "frequency >= 1; give zero-probability symbols the minimum frequency when freezing"
        )
    return cdfs_, lengths, offsets_


def _input_error(status: int, detail: int, indexes: np.ndarray, n_rows: int) -> RangeCoderError:
    if status == _rc.ERR_INDEX:
        return RangeCoderError(
            f"indexes[{detail}] = {indexes[detail]} is outside [0, {n_rows}): each index selects "
            "a row of cdfs; check the table index mapping (e.g. channel -> row)"
        )
    if status == _rc.ERR_TABLE:  # validated above, so the arrays changed during the call
        return RangeCoderError(f"cdfs[{detail}] is not a valid CDF (was it modified concurrently?)")
    return RangeCoderError(f"range coder failed with status {status} ({detail})")


def _stream_message(status: int, detail: int, size: int, precision: int) -> str:
    if status == _rc.ERR_SHORT:
        return (
            f"stream of {size} bytes is not 17 + 4k bytes long: truncated, or not a range coder "
            "stream"
        )
    if status == _rc.ERR_HEADER:
        version, code = detail >> 4, detail & 0xF
        return (
            f"stream header 0x{detail:02x} (format version {version}, precision {12 + code}) does "
            f"not match format version {FORMAT_VERSION} at precision {precision}"
        )
    if status == _rc.ERR_STATE:
        return "stream's stored coder states are out of range: not a range coder stream"
    if status == _rc.ERR_TRUNCATED:
        return f"stream ends while decoding symbol {detail}: truncated, or wrong tables/indexes"
    if status == _rc.ERR_ESCAPE:
        return f"symbol {detail}: escape code longer than any int32 needs: corrupt stream"
    if status == _rc.ERR_OVERFLOW:
        return f"symbol {detail} decodes to a value outside int32: corrupt stream or wrong tables"
    if status == _rc.ERR_TRAILING:
        return f"{detail} bytes left after the last symbol: trailing garbage, or too few indexes"
    if status == _rc.ERR_FINAL:
        return "final coder state mismatch: corrupt stream, or wrong tables/indexes"
    return f"range coder failed with status {status} ({detail})"
