"""Property-based invariants of the wire format: round trips are exact, bytes that parse re-pack to themselves,
and damaged input raises the project's typed errors (never another exception, never a different result)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import bitstream, mask, packets as pk
from cvae.edge.errors import CorruptTileError

# -- tile bitstream ------------------------------------------------------------------------------------------


@st.composite
def v3_tiles(draw):
    """``(header, present, (side, main), valid)`` of a format-3 tile with arbitrary fields."""
    c = draw(st.integers(1, 5))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    identity = draw(st.booleans())
    matrix = (np.eye(c) * 127).astype(np.int8) if identity else np.clip(  # a rotation: decoders refuse singular ones
        np.linalg.qr(rng.normal(size=(c, c)))[0] * 127, -127, 127).round().astype(np.int8)
    valid = rng.random((h, w)) < 0.8 if draw(st.booleans()) else None
    band_fill = (rng.random((c, h, w)) < 0.1) if draw(st.booleans()) else None
    lo, hi = np.sort(rng.normal(size=(2, c)).astype(np.float32), axis=0)  # a decoder requires lo <= hi
    header = bitstream.TileHeader(
        model_id=rng.bytes(4), level=draw(st.integers(0, 255)), dtype=draw(st.sampled_from(bitstream.DTYPES)),
        bands=c, height=h, width=w, lo=lo, hi=hi, mean=rng.random(c).astype(np.float16).astype(np.float32),
        matrix=matrix, version=bitstream.VERSION_WAVELET, latent=draw(st.integers(0, 255)),
        residual=draw(st.sampled_from([0, 1, 2])),
        band_fill=band_fill if band_fill is not None and band_fill.any() else None)
    present = rng.random(c) < 0.5
    payload = (draw(st.binary(max_size=40)), draw(st.binary(max_size=40)))
    return header, present, payload, valid


def _same_header(a: bitstream.TileHeader, b: bitstream.TileHeader) -> None:
    for f in ("model_id", "level", "dtype", "bands", "height", "width", "version", "latent", "residual"):
        assert getattr(a, f) == getattr(b, f), f
    for f in ("lo", "hi", "mean", "matrix"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert (a.band_fill is None) == (b.band_fill is None)
    if a.band_fill is not None:
        np.testing.assert_array_equal(a.band_fill, b.band_fill)


@settings(max_examples=150, deadline=None)
@given(v3_tiles())
def test_v3_tile_unpacks_to_what_was_packed_and_repacks_to_the_same_bytes(tile):
    header, present, payload, valid = tile
    data = bitstream.pack_tile(header, present, payload, valid)
    h2, p2, pay2, v2 = bitstream.unpack_tile(data)
    _same_header(header, h2)
    np.testing.assert_array_equal(p2, present)
    assert pay2 == payload
    assert (v2 is None) == (valid is None)
    if valid is not None:
        np.testing.assert_array_equal(v2, valid)
    assert bitstream.pack_tile(h2, p2, pay2, v2) == data


@settings(max_examples=150, deadline=None)
@given(v3_tiles(), st.data())
def test_truncated_v3_tiles_raise_corrupt_tile(tile, data):
    raw = bitstream.pack_tile(*tile)
    n = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(CorruptTileError):
        bitstream.unpack_tile(raw[:n])


@settings(max_examples=200, deadline=None)
@given(v3_tiles(), st.data())
def test_flipped_v3_tiles_raise_corrupt_tile_or_repack_to_themselves(tile, data):
    raw = bytearray(bitstream.pack_tile(*tile))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        parsed = bitstream.unpack_tile(bytes(raw))
    except CorruptTileError:
        return
    assert bitstream.pack_tile(*parsed) == bytes(raw)


# -- valid mask coder ----------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(st.integers(1, 32), st.integers(1, 32), st.integers(0, 2**32 - 1), st.data())
def test_damaged_mask_streams_raise_corrupt_tile_or_decode_to_a_mask_that_reencodes_to_them(h, w, seed, data):
    valid = np.random.default_rng(seed).random((h, w)) < data.draw(st.floats(0, 1))
    s1, s2 = (bytearray(s) for s in mask.encode_mask(valid))
    target = data.draw(st.sampled_from([s for s in (s1, s2) if s]))
    if data.draw(st.booleans()):
        del target[data.draw(st.integers(0, len(target) - 1)):]
    else:
        target[data.draw(st.integers(0, len(target) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    try:
        got = mask.decode_mask(bytes(s1), bytes(s2), h, w)
    except CorruptTileError:
        return
    assert got.shape == (h, w) and got.dtype == bool


# -- packets and metadata ------------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000), st.integers(22, 400), st.integers(0, 2**14 - 1))
def test_packets_reassemble_to_the_body_and_repack_to_the_same_bytes(body, limit, seq):
    hdr = pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=b"abcd", scene_id=7, row=1, col=2, level=3)
    stream = pk.PacketWriter(apid=5, seq_count=seq, max_data_field=limit).packets(hdr, body)
    ps = list(pk.parse_stream(b"".join(stream)))
    assert len(ps) == len(stream)
    assert b"".join(p.data for p in ps) == body
    assert [p.seq_count for p in ps] == [(seq + i) % 2**14 for i in range(len(ps))]
    for p in ps:
        assert pk.SecondaryHeader.unpack(p.header.pack()) == p.header


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=12)
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                     max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=10), _json, max_size=8), st.data())
def test_metadata_round_trips_and_truncation_never_yields_other_metadata(meta, data):
    body = pk.encode_metadata(meta)
    assert pk.decode_metadata(body) == meta
    n = data.draw(st.integers(0, len(body) - 1))
    try:
        got = pk.decode_metadata(body[:n])
    except pk.PacketFormatError:
        return
    assert got == meta  # only the zlib checksum was cut: the JSON was complete
