"""The coefficient coders of tile formats v5 to v7 and v10 (cvae.edge.codec.coefs, _coefs.c, _coefmix.h; ``mixed``:
v10's): exact round trips for any integers, the specification's reference decoder agrees (v5's here, v10's in
tests/cleanroom), damage is a CorruptTileError, hostile geometry is refused."""
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


@settings(max_examples=160, deadline=None)
@given(st.integers(1, 4), st.integers(1, 70), st.integers(1, 70), st.sampled_from([0.0, 0.3, 3.0, 300.0, 3e5]),
       st.integers(0, 2**32 - 1), st.booleans())
def test_any_coefficients_round_trip_exactly(comps, h, w, scale, seed, mixed):
    rng = np.random.default_rng(seed)
    q = _components(rng, comps, h, w, scale)
    if scale > 1e5:  # the extremes the coder takes
        q[0][-1].flat[0], q[-1][0].flat[-1] = coefs.LIMIT, -coefs.LIMIT
    back = coefs.decode(coefs.encode(q, h, w, mixed), comps, h, w, mixed)
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


@pytest.mark.parametrize("mixed", [False, True], ids=["v5", "v10"])
def test_too_large_coefficients_are_refused_before_coding(mixed):
    q = [[np.zeros(s, np.int32) for s in wavelet.subband_shapes(16, 16, 1)]]
    q[0][0][0, 0] = coefs.LIMIT + 1
    with pytest.raises(ValueError, match="exceeds"):
        coefs.encode(q, 16, 16, mixed)


@pytest.mark.parametrize("mixed", [False, True], ids=["v5", "v10"])
def test_damaged_streams_raise_corrupt_tile_only(rng, mixed):
    h = w = 48
    q = _components(rng, 3, h, w, 5.0)
    data = coefs.encode(q, h, w, mixed)
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptTileError):
            coefs.decode(data[:cut], 3, h, w, mixed)
    with pytest.raises(CorruptTileError, match="left over"):
        coefs.decode(data + b"\0\0\0\0\0\0", 3, h, w, mixed)
    shapes = [b.shape for b in q[0]]
    detected = decoded = 0
    for k in range(200):  # flipped bits: CorruptTileError, or coefficients of the declared layout within the range
        bad = bytearray(data)  # every other flip in the last 8 bytes, the coder's flush: those mostly still decode
        bad[rng.integers(len(bad)) if k % 2 else len(bad) - 1 - rng.integers(8)] ^= 1 << int(rng.integers(8))
        try:
            got = coefs.decode(bytes(bad), 3, h, w, mixed)
        except CorruptTileError:
            detected += 1
            continue
        assert len(got) == 3 and all([b.shape for b in comp] == shapes for comp in got)
        flat = coefs.flatten(got, h, w)
        assert flat.dtype == np.int32 and np.abs(flat.astype(np.int64)).max() <= coefs.LIMIT
        np.testing.assert_array_equal(coefs.decode_values(coefs.encode(got, h, w, mixed), 3, h, w, mixed),
                                      flat)  # a real stream
        decoded += 1
    assert detected > 0 and decoded > 0  # a flip mid-stream desynchronises the decoder: trailing or missing bytes


@pytest.mark.parametrize("geom", [np.zeros((0, 4), np.int32), np.array([[0, 4, 0, -1]], np.int32),
                                  np.array([[4, 4, 4, -1]], np.int32), np.array([[4, 4, 1, 0]], np.int32),
                                  np.array([[4, 4, 0, -1], [2, 2, 1, 5]], np.int32), np.zeros((65, 4), np.int32) + 1])
@pytest.mark.parametrize("encode, decode", [(_coefs.encode, _coefs.decode), (_coefs.encode_mixed, _coefs.decode_mixed)],
                         ids=["v5", "v10"])
def test_hostile_geometry_is_refused(geom, encode, decode):
    with pytest.raises(ValueError, match="geometry"):
        encode(np.zeros(64, np.int32), 1, geom)
    with pytest.raises(ValueError, match="geometry"):
        decode(b"", 1, geom, np.zeros(64, np.int32))


@pytest.mark.parametrize("encode, decode", [(_coefs.encode, _coefs.decode), (_coefs.encode_mixed, _coefs.decode_mixed)],
                         ids=["v5", "v10"])
def test_wrong_buffer_sizes_are_refused(encode, decode):
    geom = np.array([[4, 4, 0, -1]], np.int32)
    with pytest.raises(ValueError, match="expected"):
        encode(np.zeros(15, np.int32), 1, geom)
    with pytest.raises(ValueError, match="expected"):
        decode(b"", 2, geom, np.zeros(16, np.int32))
    with pytest.raises(ValueError, match="components"):
        encode(np.zeros(16, np.int32), 0, geom)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 70), st.sampled_from([0.3, 3.0, 300.0]),
       st.sampled_from([0.0, 0.05, 0.1155, 1.0, 50.0]), st.integers(0, 2**32 - 1), st.booleans())
def test_rate_distortion_coding_decodes_to_what_it_chose_each_the_nearest_or_one_step_toward_zero(
        comps, h, w, scale, lam, seed, mixed):
    """The encoder's greedy choice (encode_rdo) writes a plain stream of its coder (v5's or v10's) of the integers
    it returns; each is the nearest integer to its coefficient or one step toward zero; with lam = 0 nothing moves."""
    rng = np.random.default_rng(seed)
    shapes = wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    scaled = [[rng.laplace(0, scale, s) * (rng.random(s) < 0.7) for s in shapes] for _ in range(comps)]
    nearest = [[(np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) for x in bands] for bands in scaled]
    stream, chosen = coefs.encode_rdo(nearest, scaled, h, w, lam, mixed)
    back = coefs.decode(stream, comps, h, w, mixed)
    for got, want, near in zip(back, chosen, nearest):
        for g, c, n in zip(got, want, near):
            np.testing.assert_array_equal(g, c)
            assert ((c == n) | (c == n - np.sign(n))).all()
            if lam == 0:
                np.testing.assert_array_equal(c, n)
    if lam == 0:
        assert stream == coefs.encode(nearest, h, w, mixed)


@pytest.mark.parametrize("mixed", [False, True], ids=["v5", "v10"])
def test_rate_distortion_coding_saves_bits_for_little_error(rng, mixed):
    h = w = 64
    shapes = wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    scaled = [[rng.laplace(0, 1.5, s) for s in shapes] for _ in range(2)]
    nearest = [[(np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) for x in bands] for bands in scaled]
    plain, (rdo, chosen) = coefs.encode(nearest, h, w, mixed), coefs.encode_rdo(nearest, scaled, h, w, 0.1155, mixed)

    def err(q):
        return sum(float(np.sum((x - v) ** 2)) for xb, qb in zip(scaled, q) for x, v in zip(xb, qb))

    assert len(rdo) < len(plain)
    # D + lambda R falls: the point of it (lambda = ln 2 / 6 per step^2, the encoder's)
    assert err(chosen) + 0.1155 * 8 * len(rdo) < err(nearest) + 0.1155 * 8 * len(plain)


@pytest.mark.parametrize("encode", [_coefs.encode, _coefs.encode_mixed], ids=["v5", "v10"])
def test_rate_distortion_coding_refuses_mismatched_coefficients(encode):
    _, geom = coefs.coding_order(8, 8)
    q = np.zeros(64, np.int32)
    with pytest.raises(ValueError, match="xs"):
        encode(q, 1, geom, np.zeros(63), 0.1)
    with pytest.raises(ValueError, match="lam"):
        encode(q, 1, geom, np.zeros(64), -1.0)


def test_the_mixing_coder_needs_fewer_bytes_on_correlated_components(rng):
    """v10's point: components that share structure (the previous component's magnitudes, signs and neighbourhood
    are inputs of its mixture) code in fewer bytes than with v5's coder."""
    h = w = 96
    shapes = wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    base = [rng.laplace(0, 4.0, s) * (rng.random(s) < 0.4) for s in shapes]
    comps = [[np.round(b * g + rng.normal(0, 0.3, b.shape)).astype(np.int32) for b in base] for g in (1.0, 0.8, 0.6)]
    v5, v10 = len(coefs.encode(comps, h, w)), len(coefs.encode(comps, h, w, True))
    assert v10 < 0.85 * v5  # measured 0.70 (seeds 0-4)
