"""The residual's CDF 9/7 wavelet: perfect reconstruction at any size, near-orthonormal gains, fixed constants."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import wavelet as wv
from wavelet_reference import forward_reference, gains, inverse_reference


@pytest.mark.parametrize("shape", [(256, 256), (169, 186), (33, 64), (17, 9), (2, 3), (1, 5), (1, 1), (255, 7)])
def test_inverse_restores_any_size_to_float32_rounding(shape, rng):
    x = rng.normal(size=shape).astype(np.float32)
    levels = wv.levels_for(*shape)
    bands = wv.forward(x, levels)
    assert [b.shape for b in bands] == wv.subband_shapes(*shape, levels)
    assert sum(b.size for b in bands) == x.size  # critically sampled: as many coefficients as pixels
    np.testing.assert_allclose(wv.inverse(bands, levels), x, atol=1e-5)  # float32 lifting, 5 levels


def test_gain_constants_are_the_synthesis_norms():
    derived = gains(5)
    for j in range(5):
        assert derived[j][2] == pytest.approx(wv.HH_GAIN[j], rel=1e-12)
    assert derived[5][0] == pytest.approx(wv.LL_GAIN[4], rel=1e-12)
    for j in range(1, 5):
        assert gains(j)[j][0] == pytest.approx(wv.LL_GAIN[j - 1], rel=1e-12)


def test_one_coefficient_costs_about_its_square_in_pixels():
    """Gains make the transform near-orthonormal: a unit error in any interior coefficient is a squared pixel
    error within 10% of 1 (biorthogonal 9/7; what lets one quantiser step serve every subband)."""
    levels, n = 4, 128
    shapes = wv.subband_shapes(n, n, levels)
    for k, (h, w) in enumerate(shapes):
        bands = [np.zeros(s, np.float32) for s in shapes]
        bands[k][h // 2, w // 2] = 1
        energy = float(np.sum(wv.inverse(bands, levels).astype(np.float64) ** 2))
        assert 0.9 < energy < 1.1, (k, energy)


def test_levels_keep_the_ll_band_at_least_8_a_side():
    assert wv.levels_for(256, 256) == 5
    assert wv.levels_for(120, 120) == 3
    assert wv.levels_for(15, 300) == 0


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 5), st.sampled_from([1e-6, 1.0, 3e4, 1e30]),
       st.integers(0, 2**32 - 1))
def test_the_c_lifting_is_bit_identical_to_the_numpy_definition(h, w, levels, scale, seed):
    """Same float32 operations in the same order: the same bits both ways, at any size and magnitude."""
    x = (np.random.default_rng(seed).standard_normal((h, w)) * scale).astype(np.float32)
    got, ref = wv.forward(x, levels), forward_reference(x, levels)
    assert [b.shape for b in got] == [b.shape for b in ref]
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    np.testing.assert_array_equal(_bits(wv.inverse(got, levels)), _bits(inverse_reference(ref, levels)))


def test_the_c_lifting_refuses_wrong_buffers():
    from cvae.edge.codec import _wavelet

    a = np.zeros((4, 6), np.float32)
    ll, lh, hl, hh = (np.zeros(s, np.float32) for s in [(2, 3), (2, 3), (2, 3), (2, 3)])
    with pytest.raises(ValueError, match="float32"):
        _wavelet.forward(a.astype(np.float64), 4, 6, ll, lh, hl, hh)
    with pytest.raises(ValueError, match="values, expected"):
        _wavelet.forward(a, 4, 7, ll, lh, hl, hh)
    with pytest.raises(ValueError, match="1..65536"):
        _wavelet.forward(a, 0, 6, ll, lh, hl, hh)
    with pytest.raises((ValueError, BufferError, TypeError)):
        _wavelet.forward(a, 4, 6, ll, lh, hl, np.zeros((2, 3), np.float32)[:, ::-1])  # not contiguous
