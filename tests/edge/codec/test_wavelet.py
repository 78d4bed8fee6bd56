"""The residual's CDF 9/7 wavelet: perfect reconstruction at any size, near-orthonormal gains, fixed constants."""
import numpy as np
import pytest

from cvae.edge.codec import wavelet as wv


@pytest.mark.parametrize("shape", [(256, 256), (169, 186), (33, 64), (17, 9), (2, 3), (1, 5), (1, 1), (255, 7)])
def test_inverse_restores_any_size_to_float32_rounding(shape, rng):
    x = rng.normal(size=shape).astype(np.float32)
    levels = wv.levels_for(*shape)
    bands = wv.forward(x, levels)
    assert [b.shape for b in bands] == wv.subband_shapes(*shape, levels)
    assert sum(b.size for b in bands) == x.size  # critically sampled: as many coefficients as pixels
    np.testing.assert_allclose(wv.inverse(bands, levels), x, atol=1e-5)  # float32 lifting, 5 levels


def test_gain_constants_are_the_synthesis_norms():
    derived = wv._gains(5)
    for j in range(5):
        assert derived[j][2] == pytest.approx(wv.HH_GAIN[j], rel=1e-12)
    assert derived[5][0] == pytest.approx(wv.LL_GAIN[4], rel=1e-12)
    for j in range(1, 5):
        assert wv._gains(j)[j][0] == pytest.approx(wv.LL_GAIN[j - 1], rel=1e-12)


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
