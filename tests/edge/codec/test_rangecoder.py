"""Tests for cvae.edge.codec.rangecoder: exact round trips, the documented byte format (via a
pure-Python reference coder written from docs/range_coder.md), efficiency, robustness against
corrupt streams, input validation and the golden stream."""
from __future__ import annotations

import bisect
import importlib.util
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvae.edge.codec.rangecoder import CorruptStreamError, RangeCoderError, decode, encode

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
GOLDEN_DIR = Path(__file__).with_name("golden")

# ---------------------------------------------------------------------------------------------
# Reference coder: a direct transcription of docs/range_coder.md, slow but obviously exact
# (Python integers, true division). It proves the document is enough to write a decoder.

_L = 1 << 31


def reference_steps(symbols, indexes, cdfs, cdf_lengths, offsets, precision=16):
    """The coding steps (state, start, freq, bits) of each symbol, in decoding order."""
    for i in range(len(symbols)):
        state = i % 2
        c = int(indexes[i])
        row = [int(v) for v in cdfs[c]]
        n = int(cdf_lengths[c]) - 2
        v = int(symbols[i]) - int(offsets[c])
        if 0 <= v < n:
            yield (state, row[v], row[v + 1] - row[v], precision)
            continue
        yield (state, row[n], row[n + 1] - row[n], precision)  # escape
        z = 2 * (-v - 1) + 1 if v < 0 else 2 * (v - n)
        m = z + 1
        g = m.bit_length() - 1
        mant = m - (1 << g)
        yield from [(state, 1, 1, 1)] * g + [(state, 0, 1, 1)]  # bypass: (state, u, 1, bits)
        if g > 0:
            yield (state, mant & 0xFFFF, 1, min(g, 16))
        if g > 16:
            yield (state, mant >> 16, 1, g - 16)


def reference_pack(steps, precision=16) -> bytes:
    """Run the rANS encoder over the steps in reverse order; returns the stream."""
    x = [_L, _L]
    words: list[int] = []
    for state, start, freq, bits in reversed(list(steps)):
        if x[state] >= freq << (63 - bits):
            words.append(x[state] & 0xFFFFFFFF)
            x[state] >>= 32
        x[state] = ((x[state] // freq) << bits) + x[state] % freq + start
    head = bytes([0x10 | (precision - 12)]) + b"".join(v.to_bytes(8, "little") for v in x)
    return head + b"".join(w.to_bytes(4, "little") for w in reversed(words))


def reference_encode(symbols, indexes, cdfs, cdf_lengths, offsets, precision=16) -> bytes:
    steps = reference_steps(symbols, indexes, cdfs, cdf_lengths, offsets, precision)
    return reference_pack(steps, precision)


def reference_decode(data, indexes, cdfs, cdf_lengths, offsets, precision=16) -> np.ndarray:
    data = bytes(data)
    if len(data) < 17 or (len(data) - 17) % 4:
        raise CorruptStreamError("length")
    if data[0] != 0x10 | (precision - 12):
        raise CorruptStreamError("header")
    x = [int.from_bytes(data[1:9], "little"), int.from_bytes(data[9:17], "little")]
    if not all(_L <= v < 1 << 63 for v in x):
        raise CorruptStreamError("state")
    pos = 17

    def renorm(v: int) -> int:
        nonlocal pos
        if v < _L:
            if pos + 4 > len(data):
                raise CorruptStreamError("truncated")
            v = (v << 32) | int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        return v

    def bypass(state: int, bits: int) -> int:
        u = x[state] & ((1 << bits) - 1)
        x[state] = renorm(x[state] >> bits)
        return u

    out = []
    for i, c in enumerate(int(v) for v in indexes):
        st = i % 2
        row = [int(v) for v in cdfs[c, : cdf_lengths[c]]]
        n = len(row) - 2
        slot = x[st] & ((1 << precision) - 1)
        k = bisect.bisect_right(row, slot) - 1
        x[st] = renorm((row[k + 1] - row[k]) * (x[st] >> precision) + slot - row[k])
        if k < n:
            value = int(offsets[c]) + k
        else:
            g = 0
            while bypass(st, 1):
                g += 1
                if g > 32:
                    raise CorruptStreamError("gamma prefix")
            m = 1 << g
            if g > 0:
                m |= bypass(st, min(g, 16))
            if g > 16:
                m |= bypass(st, g - 16) << 16
            z = m - 1
            value = int(offsets[c]) + (-1 - (z >> 1) if z & 1 else n + (z >> 1))
        if not INT32_MIN <= value <= INT32_MAX:
            raise CorruptStreamError("overflow")
        out.append(value)
    if pos != len(data) or x != [_L, _L]:
        raise CorruptStreamError("end")
    return np.asarray(out, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# Tables and data


def quantize_pmf(pmf: np.ndarray, precision: int) -> np.ndarray:
    """CDF row int32[len(pmf) + 1] with every frequency >= 1, summing to 1 << precision."""
    total = 1 << precision
    freq = np.maximum(1, np.floor(pmf / pmf.sum() * total)).astype(np.int64)
    freq[np.argmax(freq)] += total - freq.sum()
    assert freq.min() >= 1
    return np.concatenate([[0], np.cumsum(freq)]).astype(np.int32)


def laplace_tables(scales, width: int = 64, precision: int = 16):
    """One discrete-Laplace row per scale: width - 2 values centred on 0, escape mass 1e-3."""
    n = width - 2
    cdfs = np.zeros((len(scales), width), dtype=np.int32)
    for c, scale in enumerate(scales):
        pmf = np.exp(-np.abs(np.arange(n) - n // 2) / scale)
        pmf = np.append(pmf / pmf.sum() * (1 - 1e-3), 1e-3)
        cdfs[c] = quantize_pmf(pmf, precision)
    lengths = np.full(len(scales), width, dtype=np.int32)
    offsets = np.full(len(scales), -(n // 2), dtype=np.int32)
    return cdfs, lengths, offsets


def sample_table_symbols(rng, cdfs, lengths, indexes, precision: int = 16) -> np.ndarray:
    """Table symbols k int32[N] drawn from each row's own quantized distribution."""
    slots = rng.integers(0, 1 << precision, size=len(indexes))
    k = np.empty(len(indexes), dtype=np.int32)
    for c in range(len(cdfs)):
        sel = indexes == c
        k[sel] = np.searchsorted(cdfs[c, : lengths[c]], slots[sel], side="right") - 1
    return k


@st.composite
def coding_problems(draw, max_n: int = 3000):
    """Random valid tables (uniformly random CDFs or peaked ones), offsets anywhere in int32
    and symbols mixing in-range values, near misses and extreme int32 values."""
    precision = draw(st.sampled_from([12, 13, 14, 15, 16]))
    n_rows = draw(st.integers(1, 6))
    width = draw(st.integers(3, 48))
    n = draw(st.integers(0, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**63 - 1)))
    total = 1 << precision
    lengths = rng.integers(3, width + 1, size=n_rows).astype(np.int32)
    cdfs = np.zeros((n_rows, width), dtype=np.int32)
    for c, length in enumerate(lengths):
        if rng.random() < 0.5:
            cuts = np.sort(rng.choice(np.arange(1, total), size=length - 2, replace=False))
            cdfs[c, :length] = np.concatenate([[0], cuts, [total]])
        else:
            mode, scale = rng.integers(0, length - 1), rng.uniform(0.2, 8)
            pmf = np.exp(-np.abs(np.arange(length - 1) - mode) / scale)
            cdfs[c, :length] = quantize_pmf(pmf, precision)
    special = np.array([INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1, 0, -1, 1])
    offsets = np.where(
        rng.random(n_rows) < 0.7, -(lengths // 2), rng.choice(special, size=n_rows)
    ).astype(np.int32)
    indexes = rng.integers(0, n_rows, size=n).astype(np.int32)
    kind = rng.integers(0, 4, size=n)
    base = offsets[indexes].astype(np.int64)
    in_range = base + rng.integers(0, (lengths[indexes] - 2).astype(np.int64))
    near = base + rng.integers(-40, 40 + lengths[indexes])
    extreme = rng.choice(special, size=n)
    anything = rng.integers(INT32_MIN, INT32_MAX, size=n, endpoint=True)
    symbols = np.choose(kind, [in_range, near, extreme, anything])
    symbols = np.clip(symbols, INT32_MIN, INT32_MAX).astype(np.int32)
    return symbols, indexes, cdfs, lengths, offsets, precision


def valid_stream(n: int = 40, seed: int = 0):
    """A small stream with escapes, and the inputs that decode it."""
    rng = np.random.default_rng(seed)
    cdfs, lengths, offsets = laplace_tables([0.7, 2.0, 5.0], width=12)
    indexes = rng.integers(0, 3, size=n).astype(np.int32)
    symbols = rng.laplace(0, 4, size=n).round().astype(np.int32)
    symbols[::7] = INT32_MIN
    return encode(symbols, indexes, cdfs, lengths, offsets), indexes, cdfs, lengths, offsets


def decode_or_corrupt(data, indexes, cdfs, lengths, offsets, precision=16) -> None:
    """The only acceptable outcomes on arbitrary bytes: int32[N], or CorruptStreamError."""
    try:
        out = decode(data, indexes, cdfs, lengths, offsets, precision)
    except CorruptStreamError:
        return
    assert out.dtype == np.int32 and out.shape == indexes.shape


# ---------------------------------------------------------------------------------------------
# Exact round trips


def test_round_trip_laplacian_symbols_with_several_tables():
    rng = np.random.default_rng(1)
    cdfs, lengths, offsets = laplace_tables([0.3, 1.0, 2.5, 6.0, 15.0])
    indexes = rng.integers(0, 5, size=100_000).astype(np.int32)
    scales = np.array([0.3, 1, 2.5, 6, 40])[indexes]  # 40 on a 62-wide table: some escapes
    symbols = rng.laplace(0, scales).round().astype(np.int32)
    data = encode(symbols, indexes, cdfs, lengths, offsets)
    np.testing.assert_array_equal(decode(data, indexes, cdfs, lengths, offsets), symbols)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coding_problems())
def test_round_trip_any_int32_symbols_with_random_tables(problem):
    symbols, indexes, cdfs, lengths, offsets, precision = problem
    data = encode(symbols, indexes, cdfs, lengths, offsets, precision)
    decoded = decode(data, indexes, cdfs, lengths, offsets, precision)
    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, symbols)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coding_problems(max_n=150))
def test_stream_bytes_match_reference_coder_from_format_doc(problem):
    symbols, indexes, cdfs, lengths, offsets, precision = problem
    data = encode(symbols, indexes, cdfs, lengths, offsets, precision)
    assert data == reference_encode(symbols, indexes, cdfs, lengths, offsets, precision)
    np.testing.assert_array_equal(
        reference_decode(data, indexes, cdfs, lengths, offsets, precision), symbols
    )


def test_round_trip_empty_input_is_header_and_state_only():
    cdfs, lengths, offsets = laplace_tables([1.0])
    empty = np.zeros(0, dtype=np.int32)
    data = encode(empty, empty, cdfs, lengths, offsets)
    # documented in docs/range_coder.md: header byte, then both states at their initial 2^31
    assert data == bytes.fromhex("1400000080000000000000008000000000")
    decoded = decode(data, empty, cdfs, lengths, offsets)
    assert decoded.dtype == np.int32 and decoded.shape == (0,)


def test_round_trip_all_escape_symbols_including_int32_extremes():
    cdfs, lengths, offsets = laplace_tables([1.0, 3.0], width=8)
    offsets = np.array([INT32_MAX, INT32_MIN], dtype=np.int32)  # tables at both ends of int32
    rng = np.random.default_rng(2)
    symbols = np.concatenate(
        [
            [INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1, 0, -1],
            rng.integers(INT32_MIN, INT32_MAX, size=2000, endpoint=True),
        ]
    ).astype(np.int32)
    indexes = (np.arange(symbols.size) % 2).astype(np.int32)
    v = symbols.astype(np.int64) - offsets[indexes]
    in_table = (v >= 0) & (v < lengths[indexes] - 2)
    symbols[in_table] = 12345  # keep every symbol an escape
    data = encode(symbols, indexes, cdfs, lengths, offsets)
    np.testing.assert_array_equal(decode(data, indexes, cdfs, lengths, offsets), symbols)


def test_round_trip_single_table():
    rng = np.random.default_rng(3)
    cdfs, lengths, offsets = laplace_tables([2.0])
    symbols = rng.laplace(0, 2, size=10_000).round().astype(np.int32)
    indexes = np.zeros_like(symbols)
    data = encode(symbols, indexes, cdfs, lengths, offsets)
    np.testing.assert_array_equal(decode(data, indexes, cdfs, lengths, offsets), symbols)


@pytest.mark.parametrize("precision", [12, 16])
def test_round_trip_at_precision(precision):
    rng = np.random.default_rng(precision)
    cdfs, lengths, offsets = laplace_tables([0.5, 4.0], width=40, precision=precision)
    indexes = rng.integers(0, 2, size=20_000).astype(np.int32)
    symbols = rng.laplace(0, 6, size=indexes.size).round().astype(np.int32)
    data = encode(symbols, indexes, cdfs, lengths, offsets, precision)
    assert data[0] == 0x10 | (precision - 12)
    np.testing.assert_array_equal(decode(data, indexes, cdfs, lengths, offsets, precision), symbols)


def test_decode_accepts_any_bytes_like_object():
    data, indexes, cdfs, lengths, offsets = valid_stream()
    expected = decode(data, indexes, cdfs, lengths, offsets)
    for view in (bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
        np.testing.assert_array_equal(decode(view, indexes, cdfs, lengths, offsets), expected)


def test_encode_converts_other_integer_dtypes_and_array_likes():
    cdfs, lengths, offsets = laplace_tables([1.0, 2.0], width=10)
    symbols = [3, -2, 0, 50, -(2**31)]
    indexes = np.array([0, 1, 1, 0, 1], dtype=np.uint8)
    data = encode(
        symbols, indexes, cdfs.astype(np.int64), lengths.tolist(), offsets.astype(np.int16)
    )
    assert data == encode(np.int32(symbols), indexes.astype(np.int32), cdfs, lengths, offsets)
    np.testing.assert_array_equal(decode(data, indexes, cdfs, lengths, offsets), symbols)


# ---------------------------------------------------------------------------------------------
# Efficiency, determinism, threads


def test_actual_bits_within_one_percent_of_ideal_information_content():
    rng = np.random.default_rng(4)
    cdfs, lengths, offsets = laplace_tables([0.5, 1.5, 4.0, 10.0])
    indexes = rng.integers(0, 4, size=100_000).astype(np.int32)
    k = sample_table_symbols(rng, cdfs, lengths, indexes)
    n = lengths[indexes] - 2
    symbols = (offsets[indexes] + k).astype(np.int32)  # escape draws -> first value past the table
    freq = cdfs[indexes, k + 1] - cdfs[indexes, k]
    ideal_bits = float(np.sum(16 - np.log2(freq))) + float(np.sum(k == n))  # +1 bypass bit/escape
    actual_bits = 8 * len(encode(symbols, indexes, cdfs, lengths, offsets))
    # Coder overhead: the header byte and two 64-bit states, about 2 x 31 bits of which repeat
    # the initial states, plus word padding (74..134 bits over 200 random streams); the rANS
    # rounding loss is ~1e-5 bits/symbol as a state is always >= 2^15 times the table total.
    assert actual_bits <= 1.01 * ideal_bits + 160
    # Sanity of the estimate: no decodable code beats the information content by k bits with
    # probability above 2^(1-k).
    assert actual_bits >= ideal_bits - 64


def test_encode_is_deterministic():
    rng = np.random.default_rng(5)
    cdfs, lengths, offsets = laplace_tables([1.0, 3.0])
    indexes = rng.integers(0, 2, size=5000).astype(np.int32)
    symbols = rng.laplace(0, 30, size=5000).round().astype(np.int32)
    first = encode(symbols, indexes, cdfs, lengths, offsets)
    assert all(encode(symbols, indexes, cdfs, lengths, offsets) == first for _ in range(3))


def test_concurrent_encodes_and_decodes_give_the_same_results():
    data, indexes, cdfs, lengths, offsets = valid_stream(n=20_000)
    expected = decode(data, indexes, cdfs, lengths, offsets)
    with ThreadPoolExecutor(max_workers=4) as pool:
        streams = list(
            pool.map(lambda _: encode(expected, indexes, cdfs, lengths, offsets), range(8))
        )
        decoded = list(pool.map(lambda d: decode(d, indexes, cdfs, lengths, offsets), streams))
    assert all(s == data for s in streams)
    for out in decoded:
        np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------------------------
# Decoder robustness


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200), n=st.integers(0, 64), seed=st.integers(0, 2**32 - 1))
def test_decode_of_random_bytes_returns_symbols_or_raises_corrupt_stream(data, n, seed):
    cdfs, lengths, offsets = laplace_tables([0.3, 2.0, 8.0], width=10)
    indexes = np.random.default_rng(seed).integers(0, 3, size=n).astype(np.int32)
    decode_or_corrupt(data, indexes, cdfs, lengths, offsets)
    # a valid header and state make the decoder go further before failing
    states = (2**31 + seed).to_bytes(8, "little") + (2**62 - seed).to_bytes(8, "little")
    decode_or_corrupt(b"\x14" + states + data, indexes, cdfs, lengths, offsets)


def test_decode_rejects_every_truncation_of_a_valid_stream():
    data, indexes, cdfs, lengths, offsets = valid_stream()
    for size in range(len(data)):
        with pytest.raises(CorruptStreamError):
            decode(data[:size], indexes, cdfs, lengths, offsets)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00\x00\x00", b"garbage!", bytes(64)])
def test_decode_rejects_trailing_bytes(extra):
    data, indexes, cdfs, lengths, offsets = valid_stream()
    with pytest.raises(CorruptStreamError):
        decode(data + extra, indexes, cdfs, lengths, offsets)


def test_decode_with_every_single_bit_flipped_returns_or_raises_corrupt_stream():
    data, indexes, cdfs, lengths, offsets = valid_stream()
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        decode_or_corrupt(bytes(flipped), indexes, cdfs, lengths, offsets)


def test_decode_with_too_few_indexes_reports_trailing_bytes():
    data, indexes, cdfs, lengths, offsets = valid_stream(n=200)
    with pytest.raises(CorruptStreamError, match="left after the last symbol|state mismatch"):
        decode(data, indexes[:-50], cdfs, lengths, offsets)


def test_decode_rejects_stream_of_other_precision():
    data, indexes, cdfs, lengths, offsets = valid_stream()
    cdfs12 = np.stack([quantize_pmf(np.diff(row).astype(float), 12) for row in cdfs])
    with pytest.raises(CorruptStreamError, match=r"precision 16\) does not match .* precision 12"):
        decode(data, indexes, cdfs12, lengths, offsets, precision=12)


def test_decode_rejects_stream_not_ending_in_initial_state():
    cdfs, lengths, offsets = laplace_tables([1.0])
    empty = np.zeros(0, dtype=np.int32)
    with pytest.raises(CorruptStreamError, match="final coder state mismatch"):
        states = (2**31).to_bytes(8, "little") + (2**31 + 1).to_bytes(8, "little")
        decode(b"\x14" + states, empty, cdfs, lengths, offsets)


@pytest.mark.parametrize(
    ("value", "offset"),
    [(INT32_MAX + 1, INT32_MAX), (INT32_MAX + 1, 0), (INT32_MIN - 1, 0), (INT32_MIN - 5, -3)],
)
def test_decode_rejects_values_outside_int32(value, offset):
    # A direct symbol past INT32_MAX (first case) or an escape out of int32: only a corrupt
    # stream holds these; the reference coder, on Python ints, can write them.
    cdfs, lengths, _ = laplace_tables([1.0], width=8)
    offsets, indexes = np.array([offset], np.int32), np.zeros(1, np.int32)
    data = reference_encode([value], indexes, cdfs, lengths, offsets)
    with pytest.raises(CorruptStreamError, match="outside int32"):
        decode(data, indexes, cdfs, lengths, offsets)


def test_decode_rejects_gamma_prefix_longer_than_any_int32_needs():
    cdfs, lengths, offsets = laplace_tables([1.0], width=8)
    n = int(lengths[0]) - 2
    escape = (0, int(cdfs[0, n]), int(cdfs[0, n + 1] - cdfs[0, n]), 16)
    bits = [(0, 1, 1, 1)] * 33 + [(0, 0, 1, 1), (0, 0, 1, 16), (0, 0, 1, 16)]
    data = reference_pack([escape, *bits])
    with pytest.raises(CorruptStreamError, match="escape code longer"):
        decode(data, np.zeros(1, np.int32), cdfs, lengths, offsets)


@pytest.mark.timeout(20)  # decoding is O(N + len(data)); this takes well under a second
def test_decode_of_many_symbols_from_tiny_stream_terminates():
    cdfs = np.array([[0, (1 << 16) - 2, (1 << 16) - 1, 1 << 16]], dtype=np.int32)  # p(0) ~ 1
    lengths, offsets = np.array([4], np.int32), np.array([0], np.int32)
    indexes = np.zeros(5_000_000, dtype=np.int32)
    big, small = (2**63 - 1).to_bytes(8, "little"), (2**31).to_bytes(8, "little")
    for stream in (b"\x14" + big + big, b"\x14" + small + small + bytes(4)):
        with pytest.raises(CorruptStreamError):
            decode(stream, indexes, cdfs, lengths, offsets)


# ---------------------------------------------------------------------------------------------
# Input validation


def _tables():
    return laplace_tables([1.0, 2.0], width=8)


def _with(**changes):
    """A function that applies changes to the valid arguments (callables get the old value)."""

    def change(args: dict) -> dict:
        return {**args, **{k: v(args[k]) if callable(v) else v for k, v in changes.items()}}

    return change


def _set(a: np.ndarray, where, value) -> np.ndarray:
    a = a.copy()
    a[where] = value
    return a


INVALID_INPUTS = [
    pytest.param(
        _with(symbols=lambda s: s.astype(np.float32)),
        "symbols: expected an integer array.*astype",
        id="float-symbols",
    ),
    pytest.param(_with(symbols=["x", "y"]), "symbols: expected an integer array", id="str-symbols"),
    pytest.param(
        _with(symbols=lambda s: s.astype(np.int64) + 2**31),
        "symbols: values .* do not fit int32",
        id="int64-overflow",
    ),
    pytest.param(
        _with(symbols=lambda s: s.reshape(2, -1)),
        "symbols: expected 1 dimension.*ravel",
        id="2d-symbols",
    ),
    pytest.param(_with(indexes=lambda i: i[:-1]), "one table index per symbol", id="short-indexes"),
    pytest.param(
        _with(indexes=lambda i: i + 2),
        r"indexes\[\d+\] = \d+ is outside \[0, 2\).*table index mapping",
        id="index-too-big",
    ),
    pytest.param(
        _with(indexes=lambda i: i - 1),
        r"indexes\[\d+\] = -1 is outside \[0, 2\)",
        id="negative-index",
    ),
    pytest.param(
        _with(cdfs=lambda c: c[:, ::-1]),
        r"cdfs\[0, 0\] = 65536, expected 0",
        id="cdf-not-starting-at-0",
    ),
    pytest.param(
        _with(cdfs=lambda c: _set(c, (1, 3), 0)),
        r"cdfs\[1\] is not strictly increasing at column 3.*frequency >= 1",
        id="non-monotonic-cdf",
    ),
    pytest.param(
        _with(cdfs=lambda c: _set(c, (0, 7), 65535)),
        r"cdfs\[0, cdf_lengths\[0\] - 1\] = 65535, expected 1 << precision.*requantize",
        id="wrong-endpoint",
    ),
    pytest.param(
        _with(cdf_lengths=np.array([8, 2])),
        r"cdf_lengths\[1\] = 2 is outside \[3, 8\]",
        id="length-too-small",
    ),
    pytest.param(
        _with(cdf_lengths=np.array([9, 8])),
        r"cdf_lengths\[0\] = 9 is outside \[3, 8\]",
        id="length-too-big",
    ),
    pytest.param(
        _with(offsets=lambda o: o[:1]),
        "one length and one offset per table row",
        id="offsets-per-row",
    ),
    pytest.param(_with(cdfs=lambda c: c[0]), "cdfs: expected 2 dimension", id="1d-cdfs"),
    pytest.param(
        _with(precision=17), r"precision: 17 is outside \[12, 16\]", id="precision-range"
    ),
    pytest.param(_with(precision=16.0), "precision: expected an int", id="float-precision"),
]


@pytest.mark.parametrize(("change", "message"), INVALID_INPUTS)
def test_invalid_input_raises_range_coder_error_naming_problem_and_fix(change, message):
    cdfs, lengths, offsets = _tables()
    args = {
        "symbols": np.arange(-5, 5, dtype=np.int32),
        "indexes": np.arange(10, dtype=np.int32) % 2,
        "cdfs": cdfs,
        "cdf_lengths": lengths,
        "offsets": offsets,
        "precision": 16,
    }
    args = change(args)
    with pytest.raises(RangeCoderError, match=message):
        encode(**args)
    if "symbols" in message or "one table index per symbol" in message:
        return  # decode has no symbols argument
    del args["symbols"]
    with pytest.raises(RangeCoderError, match=message):
        decode(bytes.fromhex("1400000080000000000000008000000000"), **args)


def test_decode_rejects_non_bytes_data():
    cdfs, lengths, offsets = _tables()
    with pytest.raises(RangeCoderError, match="data: expected bytes"):
        decode("not bytes", np.zeros(1, np.int32), cdfs, lengths, offsets)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Golden stream


def _golden_module():
    spec = importlib.util.spec_from_file_location(
        "make_rangecoder_golden", GOLDEN_DIR / "make_rangecoder_golden.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_encode_reproduces_golden_stream_and_decode_inverts_it():
    case = _golden_module().golden_case()
    golden = (GOLDEN_DIR / "rangecoder_v1.bin").read_bytes()
    assert encode(**case) == golden
    tables = {k: case[k] for k in ("indexes", "cdfs", "cdf_lengths", "offsets", "precision")}
    np.testing.assert_array_equal(decode(golden, **tables), case["symbols"])
    np.testing.assert_array_equal(reference_decode(golden, **tables), case["symbols"])
