"""The one float-to-integer rule (edge/io/raster.py): whole-number float samples below 65536 in magnitude become
uint16 (none negative) or int32 (never int16: it would wrap); anything else stays float."""
import numpy as np
import pytest
from numpy.testing import assert_array_equal

from cvae.edge.io.raster import as_integers, integer_dtype


@pytest.mark.parametrize("values, dtype", [([0, 1, 65535], np.uint16), ([-1, 0, 7], np.int32),
                                           ([-40000, 40000], np.int32), ([-65535, 65535], np.int32)])
def test_whole_float_samples_become_the_narrowest_exact_integers(values, dtype):
    px = np.array(values, np.float32).reshape(1, 1, -1)
    out = as_integers(px)
    assert out.dtype == dtype
    assert_array_equal(out.astype(np.float64), px.astype(np.float64))  # exact: nothing wrapped


@pytest.mark.parametrize("values", [[0.5, 1], [0, 65536], [-65536, 0], [np.nan, 1], [np.inf, 1]])
def test_fractions_nan_and_large_magnitudes_stay_float(values):
    px = np.array(values, np.float64).reshape(1, 1, -1)
    assert as_integers(px) is px


def test_integer_samples_are_kept_as_they_are():
    px = np.array([[[-3, 70000]]], np.int32)
    assert as_integers(px) is px
    assert integer_dtype(np.int16, True, -1, 1) == np.int16


def test_the_scan_and_a_whole_array_agree():
    assert integer_dtype(np.float32, True, -2.0, 40000.0) == as_integers(np.array([[[-2.0, 40000.0]]], np.float32)).dtype
