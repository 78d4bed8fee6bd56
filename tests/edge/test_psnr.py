"""The one PSNR (edge/quality.py), which the encoder's --psnr targets, the demo, training validation and the
benchmarks all use (cvae.metrics re-exports it)."""
import math

import numpy as np
import pytest

from cvae.edge.quality import EXACT_DB, psnr_bands, psnr_db, tile_psnr


def test_metrics_reexports_the_encoders_psnr():
    import cvae.metrics

    assert cvae.metrics.psnr_bands is psnr_bands and cvae.metrics.psnr_db is psnr_db


def test_mean_over_bands_with_one_mask_per_band_and_the_bands_own_peak():
    rng = np.random.default_rng(3)
    orig = rng.integers(0, 1000, (3, 8, 9)).astype(np.uint16)
    rec = (orig + rng.integers(-3, 4, orig.shape)).astype(np.int32)
    masks = rng.random((3, 8, 9)) > 0.3
    want = []
    for o, r, m in zip(orig, rec, masks):  # ladder_eval's former definition, band by band
        o, r = o[m].astype(np.float64), r[m].astype(np.float64)
        want.append(10 * math.log10((o.max() - o.min()) ** 2 / max(np.mean((o - r) ** 2), 1e-12)))
    assert psnr_bands(orig, rec, masks) == pytest.approx(np.mean(want), rel=1e-12)  # float64 sums, same order
    assert psnr_bands(orig, rec, masks[0]) == psnr_bands(orig, rec, np.broadcast_to(masks[0], orig.shape))


def test_exact_bands_count_as_exact_db_for_targets_and_as_mse_1e_12_for_benchmarks():
    orig = np.array([[[0, 10], [20, 30]]], np.uint16)
    everywhere = np.ones(orig.shape, bool)
    assert tile_psnr(orig, orig, everywhere, np.array([30.0])) == EXACT_DB
    assert psnr_bands(orig, orig, everywhere[0]) == pytest.approx(10 * math.log10(30 ** 2 / 1e-12))
    assert math.isnan(psnr_bands(orig, orig, ~everywhere[0]))  # no valid sample: no PSNR
    assert tile_psnr(orig, orig, ~everywhere, np.array([30.0])) == EXACT_DB
    assert psnr_db(30.0, 1e-30, EXACT_DB) == EXACT_DB  # nothing measures above it
