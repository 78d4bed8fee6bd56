import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec.spectral import SpectralTransform


def _correlated(rng, c, h=32, w=40, dtype=np.uint16):
    base = rng.normal(size=(h, w)).cumsum(0).cumsum(1)
    bands = [base * (1 + 0.3 * k) + rng.normal(scale=0.5, size=(h, w)) + 100 * k for k in range(c)]
    x = np.stack(bands)
    x = (x - x.min()) / (x.max() - x.min()) * 4000 + 500
    return x.astype(dtype)


@pytest.mark.parametrize("c", [1, 3, 4, 13])
def test_inverse_undoes_forward(c):
    x = _correlated(np.random.default_rng(c), c)
    t = SpectralTransform.fit(x)
    back = t.inverse(t.forward(x))
    # float32 arithmetic on values up to ~4500: relative 1e-6 of the range
    np.testing.assert_allclose(back, x.astype(np.float32), atol=4500 * 2e-6 * c)


def test_rotation_compacts_energy_of_correlated_bands():
    x = _correlated(np.random.default_rng(0), 4)
    z = SpectralTransform.fit(x).forward(x)
    var = z.reshape(4, -1).var(axis=1)
    assert var[0] > 0.9 * var.sum()  # strongly correlated bands: one component carries the energy
    assert np.all(np.diff(var) <= 1e-6 + 0.05 * var[0])  # ordered, largest first (int8 matrix: approximate)


def test_fit_ignores_invalid_pixels_for_range():
    x = _correlated(np.random.default_rng(1), 2)
    valid = np.ones(x.shape[1:], bool)
    valid[:4] = False
    x[:, :4] = 0  # fill value
    t = SpectralTransform.fit(x, valid)
    assert np.all(t.lo >= 500)


def test_flat_band_does_not_divide_by_zero():
    x = np.full((3, 16, 16), 7, np.uint8)
    t = SpectralTransform.fit(x)
    assert np.isfinite(t.forward(x)).all()
    np.testing.assert_allclose(t.inverse(t.forward(x)), 7, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_inverse_holds_for_random_data(c, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 65535, size=(c, 8, 8)).astype(np.uint16)
    t = SpectralTransform.fit(x)
    # random (uncorrelated, full-range) data: bounded float error, 1e-5 of the 16-bit range per band
    np.testing.assert_allclose(t.inverse(t.forward(x)), x.astype(np.float32), atol=65535 * 1e-5 * c)
