"""Tile format v9: v8's layout and modes; its mode 0 also reads the band's own prediction errors at W, N, NW, NE, WW
and up to 11 previous bands, its coder has 22 magnitude contexts and bit models that start with the warm-up. Lossless
is exact, the bound holds, a decoder written from the docs decodes the same samples, hostile streams raise
CorruptTileError, v8 keeps decoding, and the golden v9 tile is stable."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_predictive import (assert_cut_tiles_are_corrupt, assert_damage_is_refused_or_in_range,  # beside this file
                             reference_decode)
from test_predictive_v8 import golden_tile, stack

from cvae.edge.codec import _predictive, bitstream
from cvae.edge.codec.predictive import PredictiveKind
from cvae.edge.errors import CorruptTileError

GOLDEN = Path(__file__).resolve().parent / "golden" / "tile_v9.bin"
KIND = PredictiveKind(bytes.fromhex("0badcafe"))


def spectral(rng: np.random.Generator, bands: int, h: int, w: int, dtype=np.uint16) -> np.ndarray:
    """dtype[C, H, W]: a smooth field seen through ``bands`` correlated bands with noise (test data)."""
    field = np.cumsum(np.cumsum(rng.integers(-6, 7, (h, w)), 0), 1)
    field = (field - field.min()) * 3000 // max(1, int(np.ptp(field)))
    gains = rng.integers(2, 9, bands)
    x = np.stack([300 * b + g * field // 4 + rng.integers(-9, 10, (h, w)) for b, g in enumerate(gains)])
    info = np.iinfo(dtype)
    return np.clip(x, max(info.min, 0), info.max).astype(dtype)


def _round_trip(tile, e, valid=None, band_fill=None):
    data = KIND.encode_tile(tile, e, valid, band_fill)
    header, _, payload, v = bitstream.unpack_tile(data)
    return KIND.decode_tile(header, payload, v), header, data


def test_v9_is_written_and_v8_is_read_only():
    assert bitstream.tile_format(9).written and bitstream.tile_format(9).feedback
    assert not bitstream.tile_format(8).written and not bitstream.tile_format(8).feedback
    assert KIND.version == 9 and KIND.versions == (4, 8, 9)


@pytest.mark.parametrize("bands", [1, 4, 14])
def test_lossless_v9_is_exact_and_smaller_than_v8_on_correlated_bands(bands):
    x = spectral(np.random.default_rng(bands), bands, 48, 40)
    out, header, data = _round_trip(x, 0)
    assert header.version == 9
    np.testing.assert_array_equal(out, x)
    args = (x.astype(np.int64), np.zeros(x.shape, np.uint8), header.replication, bands, 48, 40, header.max_error,
            header.lo.astype(np.int64), header.hi.astype(np.int64), header.modes)
    v8 = _predictive.encode(*args, False)
    assert len(bitstream.unpack_tile(data)[2]) < len(v8)  # statistical: more inputs and warm-up models pay here


@pytest.mark.parametrize("case", ["lossless_14_bands", "bounded_masked", "resampled_mixed", "int32_wide"])
def test_a_decoder_written_from_the_specification_decodes_the_same_v9_samples(case):
    rng = np.random.default_rng(31)
    valid = fill = None
    if case == "lossless_14_bands":  # every previous-band input (11) in use
        x, e = spectral(rng, 14, 9, 11), 0
    elif case == "bounded_masked":
        x, e = spectral(rng, 3, 17, 19), [2, 0, 7]
        valid = rng.random((17, 19)) < 0.8
        fill = np.zeros(x.shape, bool)
        fill[1, 4:7, 2:9] = True
    elif case == "resampled_mixed":
        x, e = stack(rng, 20, 22, np.uint16), [0, 1, 0]
    else:
        x, e = (spectral(rng, 2, 12, 13).astype(np.int32) - 30000) * 60000, 5
    data = KIND.encode_tile(x, e, valid, fill)
    header, _, payload, v = bitstream.unpack_tile(data)
    assert header.version == 9
    np.testing.assert_array_equal(reference_decode(data), KIND.decode_tile(header, payload, v))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), bands=st.integers(1, 13), e=st.integers(0, 40), h=st.integers(1, 24),
       w=st.integers(1, 24), masked=st.booleans(), dtype=st.sampled_from([np.uint8, np.uint16, np.int16]))
def test_no_sample_moves_by_more_than_its_bound(seed, bands, e, h, w, masked, dtype):
    rng = np.random.default_rng(seed)
    x = spectral(rng, bands, h, w, dtype)
    valid = rng.random((h, w)) < 0.85 if masked else None
    out, header, _ = _round_trip(x, e, valid)
    assert header.version == 9
    coded = np.ones(x.shape, bool) if valid is None else np.broadcast_to(valid, x.shape)
    assert (np.abs(out - x.astype(np.int64))[coded] <= e).all()
    assert (out[~coded] == 0).all()


def test_truncated_and_damaged_v9_tiles_raise_corrupt_tile():
    data = KIND.encode_tile(spectral(np.random.default_rng(7), 5, 24, 24), [0, 0, 2, 0, 1])
    assert_cut_tiles_are_corrupt(data, (1, 14, 20, len(data) // 2, len(data) - 1))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_damaged_v9_streams_never_crash_and_decoded_samples_stay_in_range(data):
    assert_damage_is_refused_or_in_range(data, KIND.encode_tile(spectral(np.random.default_rng(8), 4, 16, 16), 0))


def test_a_v9_stream_read_with_v8s_coder_never_crashes():
    """The version byte selects the coder: a v9 tile relabelled 8 decodes as something else or is corrupt."""
    data = bytearray(KIND.encode_tile(spectral(np.random.default_rng(9), 3, 20, 20), 0))
    data[0] = 8
    try:
        header, _, payload, v = bitstream.unpack_tile(bytes(data))
        out = KIND.decode_tile(header, payload, v)
    except CorruptTileError:
        return
    assert ((out >= header.lo[:, None, None]) & (out <= header.hi[:, None, None])).all()


def test_golden_v9_tile_is_reproduced_and_decodes_to_its_samples():
    """Pure integer path: the same bytes and samples on every platform. The tile is v8's golden tile (a 10 m band,
    20 m and 60 m bands resampled onto it, nodata, band fill, bounds 0, 0, 3). UPDATE_GOLDENS=1 rewrites the file
    (then run tests/edge/codec/golden/make_golden_expected.py)."""
    x, valid, fill, e = golden_tile()
    data = KIND.encode_tile(x, e, valid, fill)
    if os.environ.get("UPDATE_GOLDENS") == "1":
        GOLDEN.write_bytes(data)
    assert data == GOLDEN.read_bytes()
    header, _, payload, v = bitstream.unpack_tile(data)
    assert header.version == 9 and header.modes.tolist() == [0, 1, 1]
    out = KIND.decode_tile(header, payload, v)
    coded = np.broadcast_to(valid, x.shape) & ~fill
    assert (np.abs(out - x)[coded] <= np.broadcast_to(np.array(e)[:, None, None], x.shape)[coded]).all()
    np.testing.assert_array_equal(reference_decode(data), out)
