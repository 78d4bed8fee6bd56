"""Tile format v5's coefficient coder (cvae.edge.codec.coefs, _coefs.c): exact round trips for any integers,
the specification's reference decoder agrees, damage is a CorruptTileError, hostile geometry is refused."""
import coefs_reference
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import _coefs, coefs, wavelet
from cvae.edge.errors import CorruptTileError


def _components(rng, comps, h, w, scale):
    shapes = wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    out = []
    for _ in range(comps):
        bands = [np.round(rng.laplace(0, scale, s) * (rng.random(s) < 0.5)).astype(np.int32) for s in shapes]
        out.append(bands)
    return out


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 4), st.integers(1, 70), st.integers(1, 70), st.sampled_from([0.0, 0.3, 3.0, 300.0, 3e5]),
       st.integers(0, 2**32 - 1))
def test_any_coefficients_round_trip_exactly(comps, h, w, scale, seed):
    rng = np.random.default_rng(seed)
    q = _components(rng, comps, h, w, scale)
    if scale > 1e5:  # the extremes the coder takes
        q[0][-1].flat[0], q[-1][0].flat[-1] = coefs.LIMIT, -coefs.LIMIT
    back = coefs.decode(coefs.encode(q, h, w), comps, h, w)
    for a, b in zip(q, back):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("comps,h,w,scale", [(2, 24, 20, 2.0), (3, 17, 33, 0.4), (1, 40, 40, 40.0)])
def test_the_reference_decoder_written_from_the_spec_agrees(comps, h, w, scale, rng):
    q = _components(rng, comps, h, w, scale)
    data = coefs.encode(q, h, w)
    order, geom = coefs.coding_order(h, w)
    ref = coefs_reference.decode(data, comps, [tuple(int(v) for v in row) for row in geom])
    for k in range(comps):
        for s, i in enumerate(order):
            np.testing.assert_array_equal(np.array(ref[k][s], np.int32).reshape(q[k][i].shape), q[k][i])


def test_coding_order_is_coarsest_first_with_parents_one_level_up():
    order, geom = coefs.coding_order(256, 256)
    shapes = wavelet.subband_shapes(256, 256, 5)
    assert order[0] == len(shapes) - 1 and geom[0].tolist() == [8, 8, 0, -1]  # LL_5
    assert [tuple(geom[i][:2]) for i in range(len(order))] == [shapes[i] for i in order]
    for row in geom[1:]:
        h, w, cls, parent = row.tolist()
        assert 1 <= cls <= 3
        if parent >= 0:
            assert geom[parent][0] * 2 >= h and geom[parent][1] * 2 >= w and parent < len(geom)
    assert geom[-1].tolist() == [128, 128, 1, len(geom) - 4]  # HH_1, parent HH_2


def test_too_large_coefficients_are_refused_before_coding():
    q = [[np.zeros(s, np.int32) for s in wavelet.subband_shapes(16, 16, 1)]]
    q[0][0][0, 0] = coefs.LIMIT + 1
    with pytest.raises(ValueError, match="exceeds"):
        coefs.encode(q, 16, 16)


def test_damaged_streams_raise_corrupt_tile_only(rng):
    h = w = 48
    q = _components(rng, 3, h, w, 5.0)
    data = coefs.encode(q, h, w)
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptTileError):
            coefs.decode(data[:cut], 3, h, w)
    with pytest.raises(CorruptTileError, match="left over"):
        coefs.decode(data + b"\0\0\0\0\0\0", 3, h, w)
    shapes = [b.shape for b in q[0]]
    detected = decoded = 0
    for k in range(200):  # flipped bits: CorruptTileError, or coefficients of the declared layout within the range
        bad = bytearray(data)  # every other flip in the last 8 bytes, the coder's flush: those mostly still decode
        bad[rng.integers(len(bad)) if k % 2 else len(bad) - 1 - rng.integers(8)] ^= 1 << int(rng.integers(8))
        try:
            got = coefs.decode(bytes(bad), 3, h, w)
        except CorruptTileError:
            detected += 1
            continue
        assert len(got) == 3 and all([b.shape for b in comp] == shapes for comp in got)
        flat = coefs.flatten(got, h, w)
        assert flat.dtype == np.int32 and np.abs(flat.astype(np.int64)).max() <= coefs.LIMIT
        np.testing.assert_array_equal(coefs.decode_values(coefs.encode(got, h, w), 3, h, w), flat)  # a real stream
        decoded += 1
    assert detected > 0 and decoded > 0  # a flip mid-stream desynchronises the decoder: trailing or missing bytes


@pytest.mark.parametrize("geom", [np.zeros((0, 4), np.int32), np.array([[0, 4, 0, -1]], np.int32),
                                  np.array([[4, 4, 4, -1]], np.int32), np.array([[4, 4, 1, 0]], np.int32),
                                  np.array([[4, 4, 0, -1], [2, 2, 1, 5]], np.int32), np.zeros((65, 4), np.int32) + 1])
def test_hostile_geometry_is_refused(geom):
    with pytest.raises(ValueError, match="geometry"):
        _coefs.encode(np.zeros(64, np.int32), 1, geom)
    with pytest.raises(ValueError, match="geometry"):
        _coefs.decode(b"", 1, geom, np.zeros(64, np.int32))


def test_wrong_buffer_sizes_are_refused():
    geom = np.array([[4, 4, 0, -1]], np.int32)
    with pytest.raises(ValueError, match="expected"):
        _coefs.encode(np.zeros(15, np.int32), 1, geom)
    with pytest.raises(ValueError, match="expected"):
        _coefs.decode(b"", 2, geom, np.zeros(16, np.int32))
    with pytest.raises(ValueError, match="components"):
        _coefs.encode(np.zeros(16, np.int32), 0, geom)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 70), st.sampled_from([0.3, 3.0, 300.0]),
       st.sampled_from([0.0, 0.05, 0.1155, 1.0, 50.0]), st.integers(0, 2**32 - 1))
def test_rate_distortion_coding_decodes_to_what_it_chose_each_the_nearest_or_one_step_toward_zero(
        comps, h, w, scale, lam, seed):
    """The encoder's greedy choice (encode_rdo) writes a plain v5 stream of the integers it returns; each is the
    nearest integer to its coefficient or one step toward zero; with lam = 0 nothing moves."""
    rng = np.random.default_rng(seed)
    shapes = wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    scaled = [[rng.laplace(0, scale, s) * (rng.random(s) < 0.7) for s in shapes] for _ in range(comps)]
    nearest = [[(np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) for x in bands] for bands in scaled]
    stream, chosen = coefs.encode_rdo(nearest, scaled, h, w, lam)
    back = coefs.decode(stream, comps, h, w)
    for got, want, near in zip(back, chosen, nearest):
        for g, c, n in zip(got, want, near):
            np.testing.assert_array_equal(g, c)
            assert ((c == n) | (c == n - np.sign(n))).all()
            if lam == 0:
                np.testing.assert_array_equal(c, n)
    if lam == 0:
        assert stream == coefs.encode(nearest, h, w)


def test_rate_distortion_coding_saves_bits_for_little_error(rng):
    h = w = 64
    shapes = wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    scaled = [[rng.laplace(0, 1.5, s) for s in shapes] for _ in range(2)]
    nearest = [[(np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) for x in bands] for bands in scaled]
    plain, (rdo, chosen) = coefs.encode(nearest, h, w), coefs.encode_rdo(nearest, scaled, h, w, 0.1155)

    def err(q):
        return sum(float(np.sum((x - v) ** 2)) for xb, qb in zip(scaled, q) for x, v in zip(xb, qb))

    assert len(rdo) < len(plain)
    # D + lambda R falls: the point of it (lambda = ln 2 / 6 per step^2, the encoder's)
    assert err(chosen) + 0.1155 * 8 * len(rdo) < err(nearest) + 0.1155 * 8 * len(plain)


def test_rate_distortion_coding_refuses_mismatched_coefficients():
    _, geom = coefs.coding_order(8, 8)
    q = np.zeros(64, np.int32)
    with pytest.raises(ValueError, match="xs"):
        _coefs.encode(q, 1, geom, np.zeros(63), 0.1)
    with pytest.raises(ValueError, match="lam"):
        _coefs.encode(q, 1, geom, np.zeros(64), -1.0)
