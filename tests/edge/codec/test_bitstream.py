import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import bitstream
from cvae.edge.codec.bitstream import TileHeader, pack_tile, unpack_tile
from cvae.edge.errors import CorruptTileError


def _header(c=3, h=20, w=30, identity=False, dtype=np.uint16):
    rng = np.random.default_rng(c)
    m = (np.eye(c) * 127).astype(np.int8) if identity else np.clip(
        np.linalg.qr(rng.normal(size=(c, c)))[0] * 127, -127, 127).round().astype(np.int8)
    return TileHeader(model_id=b"\x01\x02\x03\x04", level=2, dtype=np.dtype(dtype), bands=c, height=h, width=w,
                      lo=np.arange(c, dtype=np.float32), hi=np.arange(c, dtype=np.float32) + 100.5,
                      mean=np.linspace(0, 1, c).astype(np.float16).astype(np.float32), matrix=m)


@pytest.mark.parametrize("identity", [True, False])
@pytest.mark.parametrize("with_mask", [True, False])
def test_round_trip_is_exact(identity, with_mask):
    h = _header(identity=identity)
    present = np.array([True, False, True])
    valid = (np.arange(600).reshape(20, 30) % 7 != 0) if with_mask else None
    data = pack_tile(h, present, bytes(range(200)), valid)
    h2, present2, p2, v2 = unpack_tile(data)
    assert p2 == bytes(range(200))
    np.testing.assert_array_equal(present2, present)
    np.testing.assert_array_equal(h2.matrix, h.matrix)
    np.testing.assert_array_equal(h2.lo, h.lo)
    np.testing.assert_array_equal(h2.hi, h.hi)
    np.testing.assert_array_equal(h2.mean, h.mean)
    assert (h2.level, h2.bands, h2.height, h2.width, h2.dtype) == (2, 3, 20, 30, np.dtype(np.uint16))
    if with_mask:
        np.testing.assert_array_equal(v2, valid)
    else:
        assert v2 is None


def test_header_size_matches_packed_size_without_payloads():
    h = _header(c=5)
    data = pack_tile(h, np.zeros(5, bool), None, None)
    assert len(data) == bitstream.header_size(5, False)


def test_pack_refuses_payload_without_components():
    with pytest.raises(ValueError):
        pack_tile(_header(), np.zeros(3, bool), b"x", None)


def test_rejects_trailing_bytes():
    data = pack_tile(_header(), np.ones(3, bool), b"xyz", None)
    with pytest.raises(CorruptTileError, match="left over"):
        unpack_tile(data + b"\0")


def test_rejects_every_truncation():
    data = pack_tile(_header(), np.array([1, 0, 1], bool), b"x" * 5, np.ones((20, 30), bool))
    for n in range(len(data)):
        with pytest.raises(CorruptTileError):
            unpack_tile(data[:n])


def test_rejects_unknown_version():
    data = bytearray(pack_tile(_header(), np.zeros(3, bool), None, None))
    data[0] = 99
    with pytest.raises(CorruptTileError, match="version 99"):
        unpack_tile(bytes(data))


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.asarray(a).shape == np.asarray(b).shape and np.array_equal(a, b, equal_nan=np.asarray(a).dtype.kind == "f")
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _check_parsed(blob: bytes) -> bool:
    """False when ``blob`` is refused (CorruptTileError: any other exception fails the test). When it parses: the
    fields lie within the format's limits and have the declared shapes; packing them again gives the same bytes up
    to a v1/v2 valid mask (zlib: a deflate stream has several spellings, e.g. the unused bits of its last byte), and
    the repacked tile parses to the same fields."""
    try:
        h, present, payload, valid = unpack_tile(blob)
    except CorruptTileError:
        return False
    c = h.bands
    assert h.version in bitstream.VERSIONS and np.dtype(h.dtype) in bitstream.DTYPES
    assert 1 <= c <= bitstream.MAX_BANDS and 0 < h.height <= bitstream.MAX_EDGE and 0 < h.width <= bitstream.MAX_EDGE
    assert present.shape == (c,) and present.dtype == bool
    assert h.lo.shape == h.hi.shape == h.mean.shape == (c,) and h.matrix.shape == (c, c)
    assert valid is None or (valid.shape == (h.height, h.width) and valid.dtype == bool)
    again = pack_tile(h, present, payload, valid)
    if valid is None or h.version in bitstream.CODED_MASK_VERSIONS:
        assert again == blob
    else:
        head = bytearray(pack_tile(h, present, payload, None))  # the same bytes but the mask flag and the mask
        head[bitstream._FIXED.size - 1] = blob[bitstream._FIXED.size - 1]
        assert blob.startswith(bytes(head))
    h2, present2, payload2, valid2 = unpack_tile(again)
    assert all(_same(getattr(h, f.name), getattr(h2, f.name)) for f in dataclasses.fields(h))
    assert _same(present, present2) and payload == payload2 and _same(valid, valid2)
    return True


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_typed_error(blob):
    _check_parsed(blob)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bit_flips_parse_or_raise_typed_error(data):
    base = bytearray(pack_tile(_header(), np.array([1, 0, 1], bool), b"abcdefg", np.ones((20, 30), bool)))
    assert _check_parsed(bytes(base))
    i = data.draw(st.integers(0, len(base) - 1))
    base[i] ^= 1 << data.draw(st.integers(0, 7))
    _check_parsed(bytes(base))


def test_bit_flips_are_mostly_refused_and_the_rest_reparse_exactly():
    """Every single-bit flip of a small tile: the damaged tiles that still parse (a flipped range or mean value, a
    flipped payload byte) pack back to their own bytes; those of the framing (version, flags, lengths, mask) are
    refused."""
    base = pack_tile(_header(), np.array([1, 0, 1], bool), b"abcdefg", np.ones((20, 30), bool))
    parsed = 0
    for i in range(len(base)):
        for bit in range(8):
            bad = bytearray(base)
            bad[i] ^= 1 << bit
            parsed += _check_parsed(bytes(bad))
    assert 0 < parsed < 8 * len(base)


def test_v3_band_fill_masks_round_trip_and_need_format_3():
    import numpy as np
    import pytest

    from cvae.edge.codec import bitstream as bs

    rng = np.random.default_rng(5)
    fill = rng.random((2, 30, 40)) < 0.05
    h = bs.TileHeader(model_id=b"\xab" * 4, level=1, dtype=np.dtype(np.uint8), bands=2, height=30, width=40,
                      lo=np.array([1, 2], np.float32), hi=np.array([200, 250], np.float32),
                      mean=np.array([0.5, 0.25], np.float32), matrix=(np.eye(2) * 127).astype(np.int8),
                      version=bs.VERSION_WAVELET, band_fill=fill)
    data = bs.pack_tile(h, np.array([True, False]), (b"", b""), None)
    np.testing.assert_array_equal(bs.unpack_tile(data)[0].band_fill, fill)
    with pytest.raises(ValueError, match="version 3"):
        bs.pack_tile(bs.TileHeader(**{**h.__dict__, "version": bs.VERSION_ADAPTIVE}), np.array([True, False]),
                     (b"", b""), None)
    flipped = bytearray(bs.pack_tile(bs.TileHeader(**{**h.__dict__, "band_fill": None}), np.array([True, False]),
                                     (b"", b""), None))
    flipped[0] = bs.VERSION_ADAPTIVE
    flipped[12] |= 4  # the band-fill flag on a v2 tile
    with pytest.raises(bs.CorruptTileError):
        bs.unpack_tile(bytes(flipped))
