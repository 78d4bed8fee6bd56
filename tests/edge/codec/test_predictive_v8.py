"""Tile format v8 (and v9, written since, with the same modes): v4 with a predictor per band, v4's or the replication
mode (MED with equal-neighbour and W-run contexts) for bands resampled by nearest neighbour off any aligned grid.
Lossless is exact and the bound holds in either mode, the encoder picks the mode per band, a decoder written from the
docs decodes the same samples, hostile tiles raise CorruptTileError, and the golden v8 tile (read only) still decodes
to its samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_predictive import (assert_cut_tiles_are_corrupt, assert_damage_is_refused_or_in_range,  # beside this file
                             reference_decode)

from cvae.edge.codec import _predictive, bitstream
from cvae.edge.codec.predictive import PredictiveKind
from cvae.edge.errors import CorruptTileError

GOLDEN = Path(__file__).resolve().parent / "golden" / "tile_v8.bin"
KIND = PredictiveKind(bytes.fromhex("0badcafe"))


def resampled(rng: np.random.Generator, shape: tuple[int, int], k: float, angle: float, lo: int, hi: int) -> np.ndarray:
    """int64[H, W]: a smooth field of pixels ``k`` times larger, nearest-neighbour resampled onto a grid rotated by
    ``angle`` degrees (test data: floats only make the input), in ``lo .. hi``."""
    h, w = shape
    n = int(max(h, w) / k) + 8
    field = np.cumsum(np.cumsum(rng.integers(-4, 5, (n, n)), 0), 1)
    field = lo + (field - field.min()) * (hi - lo) // max(1, int(np.ptp(field)))
    a = np.deg2rad(angle)
    yy, xx = np.mgrid[0:h, 0:w] + 0.37
    sy = ((np.cos(a) * yy + np.sin(a) * xx) / k + 2).astype(int)
    sx = ((-np.sin(a) * yy + np.cos(a) * xx) / k + 4).astype(int)
    return field[np.clip(sy, 0, n - 1), np.clip(sx, 0, n - 1)].astype(np.int64)


def stack(rng: np.random.Generator, h: int, w: int, dtype) -> np.ndarray:
    """A 10 m band, a 20 m and a 60 m band resampled onto it, rotated 2 degrees: dtype[3, H, W]."""
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -3000), min(info.max, 9000)
    full = np.clip(resampled(rng, (h, w), 1, 0, lo, hi) + rng.integers(-20, 21, (h, w)), lo, hi)
    return np.stack([full, resampled(rng, (h, w), 2, 2, lo, hi), resampled(rng, (h, w), 6, 2, lo, hi)]).astype(dtype)


def _round_trip(tile, e, valid=None, band_fill=None):
    data = KIND.encode_tile(tile, e, valid, band_fill)
    header, _, payload, v = bitstream.unpack_tile(data)
    return KIND.decode_tile(header, payload, v), header, data


def test_the_encoder_writes_v9_and_picks_the_replication_mode_for_resampled_bands_only():
    x = stack(np.random.default_rng(1), 64, 64, np.uint16)
    out, header, data = _round_trip(x, 0)
    assert header.version == bitstream.VERSION_FEEDBACK == 9
    assert header.modes.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(out, x)
    v4_only = _predictive.encode(x.astype(np.int64), np.zeros(x.shape, np.uint8), header.replication, 3, 64, 64,
                                 header.max_error, header.lo.astype(np.int64), header.hi.astype(np.int64))
    assert len(data) < 0.75 * len(v4_only)  # statistical: the resampled bands cost about half in mode 1


@pytest.mark.parametrize("margin", [0.75, 0.0])
def test_a_tall_tile_is_settled_on_strips_or_coded_both_ways(monkeypatch, margin):
    """From 2 x TRIAL_STRIPS x TRIAL_ROWS rows, strips of the tile decide clear cases (one pass); margin 0 makes no
    win clear: the whole tile is then coded both ways. Both choose the same modes here and decode exactly."""
    from cvae.edge.codec import predictive

    monkeypatch.setattr(predictive, "CLEAR_MARGIN", margin)
    calls, real, real_costs = [], _predictive.encode_costs, _predictive.costs  # strips: costs; whole tile: encode_costs
    monkeypatch.setattr(predictive._predictive, "encode_costs", lambda *a: calls.append(a[4]) or real(*a))
    monkeypatch.setattr(predictive._predictive, "costs", lambda *a: calls.append(a[4]) or real_costs(*a))
    trial = predictive.TRIAL_STRIPS * predictive.TRIAL_ROWS
    x = stack(np.random.default_rng(3), 2 * trial + 5, 48, np.int16)
    valid = np.ones(x.shape[1:], bool)
    valid[30:50, 10:20] = False
    out, header, _ = _round_trip(x, 0, valid)
    assert header.modes.tolist() == [0, 1, 1]
    assert calls == [trial] * 2 + ([] if margin else [x.shape[1]] * 2)
    np.testing.assert_array_equal(out[:, valid], x[:, valid])


@pytest.mark.parametrize("rows", [40, 200])
def test_a_candidate_the_replication_mode_codes_worse_keeps_v4s_predictor(monkeypatch, rows):
    """Every band a candidate (threshold 0): on a 10 m-like band and its noisy copy v4's predictor is better, so both
    keep mode 0, whether decided on strips (200 rows) or by coding the tile both ways (40 rows)."""
    from cvae.edge.codec import predictive

    monkeypatch.setattr(predictive, "REPLICATION_CANDIDATE", 0.0)
    rng = np.random.default_rng(12)
    x = stack(rng, rows, 40, np.uint16)[:1]
    x = np.concatenate([x, x + rng.integers(0, 3, x.shape).astype(np.uint16)])
    out, header, data = _round_trip(x, 0)
    np.testing.assert_array_equal(out, x)
    assert not header.modes.any()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_lossless_is_exact_in_the_replication_mode_with_nodata_and_band_fill(dtype):
    rng = np.random.default_rng(2)
    x = stack(rng, 40, 56, dtype)
    valid = np.ones((40, 56), bool)
    valid[:, :7] = False
    valid[30:, 40:] = False
    fill = np.zeros(x.shape, bool)
    fill[2, 10:16, 20:31] = True
    fill[1, 3, :] = True
    x[fill] = 0
    out, header, data = _round_trip(x, 0, valid, fill)
    assert header.modes[1:].all()
    coded = np.broadcast_to(valid, x.shape) & ~fill
    np.testing.assert_array_equal(out[coded], x.astype(np.int64)[coded])
    assert (out[~coded] == 0).all()
    np.testing.assert_array_equal(header.band_fill, fill & valid)  # fill at invalid pixels: the mask says it
    np.testing.assert_array_equal(reference_decode(data), out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), e=st.lists(st.integers(0, 40), min_size=3, max_size=3),
       h=st.integers(1, 30), w=st.integers(1, 30), masked=st.booleans(), dtype=st.sampled_from([np.uint8, np.int16]))
def test_no_sample_moves_by_more_than_its_bound_in_either_mode(seed, e, h, w, masked, dtype):
    rng = np.random.default_rng(seed)
    x = stack(rng, h, w, dtype)
    valid = rng.random((h, w)) < 0.85 if masked else None
    out, header, _ = _round_trip(x, e, valid)
    coded = np.ones(x.shape, bool) if valid is None else np.broadcast_to(valid, x.shape)
    err = np.abs(out - x.astype(np.int64))
    assert (err[coded] <= np.broadcast_to(np.array(e)[:, None, None], x.shape)[coded]).all()
    assert (out[~coded] == 0).all()


def test_a_band_on_aligned_blocks_keeps_v4s_predictor():
    """A band with many equal neighbours on aligned 2 x 2 blocks (v4 codes each block once) keeps mode 0: coded in
    mode 1 it would be larger."""
    rng = np.random.default_rng(4)
    base = np.cumsum(np.cumsum(rng.integers(-3, 4, (24, 24)), 0), 1) + 5000
    x = np.kron(base, np.ones((2, 2), np.int64))[None].astype(np.uint16)
    out, header, data = _round_trip(x, 0)
    np.testing.assert_array_equal(out, x)
    assert header.replication[0, :2].tolist() == [2, 2]
    args = (x.astype(np.int64), np.zeros(x.shape, np.uint8), header.replication, 1, 48, 48, header.max_error,
            header.lo.astype(np.int64), header.hi.astype(np.int64))
    sizes = [len(_predictive.encode(*args, np.array([m], np.uint8), True)) for m in (0, 1)]  # v9's coder
    assert len(bitstream.unpack_tile(data)[2]) == min(sizes)


@pytest.mark.parametrize("case", ["uint16_e0", "int16_mixed_bounds", "uint8_masked_replicated"])
def test_a_decoder_written_from_the_specification_decodes_the_same_v8_samples(case):
    rng = np.random.default_rng(9)
    if case == "uint16_e0":
        data = KIND.encode_tile(stack(rng, 20, 23, np.uint16), 0)
    elif case == "int16_mixed_bounds":
        data = KIND.encode_tile(stack(rng, 18, 21, np.int16), [3, 0, 5])
    else:  # aligned 2 x 2 blocks beside rotated replication, nodata and band fill
        x = stack(rng, 22, 20, np.uint8)
        x[0] = np.kron(x[0, ::2, ::2], np.ones((2, 2), np.uint8))
        valid = np.ones((22, 20), bool)
        valid[5:9, 3:12] = False
        fill = np.zeros(x.shape, bool)
        fill[2, 12:15, :6] = True
        data = KIND.encode_tile(x, [0, 0, 1], valid, fill)
    header, _, payload, v = bitstream.unpack_tile(data)
    assert header.modes.any()
    np.testing.assert_array_equal(reference_decode(data), KIND.decode_tile(header, payload, v))


def _crafted(data: bytes, band: int, mode: int) -> bytes:
    """``data`` with band ``band``'s mode byte replaced (found by re-packing the parsed header)."""
    u = bitstream.unpack_tile(data)
    modes = u.header.modes.copy()
    modes[band] = 1 - modes[band]
    other = bitstream.pack_tile(bitstream.TileHeader(**{**u.header.__dict__, "modes": modes}), u.present,
                                u.payload, u.valid)
    at = next(i for i, (a, b) in enumerate(zip(data, other)) if a != b)
    return data[:at] + bytes([mode]) + data[at + 1:]


def test_an_unknown_mode_byte_is_corrupt_and_a_flipped_one_never_crashes():
    data = KIND.encode_tile(stack(np.random.default_rng(5), 16, 16, np.uint16), 0)
    with pytest.raises(CorruptTileError, match="predictor mode 2"):
        bitstream.unpack_tile(_crafted(data, 1, 2))
    for band in range(3):  # the other predictor reads the stream as something else: corrupt or in-range samples
        flipped = _crafted(data, band, 1 - int(bitstream.unpack_tile(data)[0].modes[band]))
        header, _, payload, v = bitstream.unpack_tile(flipped)
        try:
            out = KIND.decode_tile(header, payload, v)
        except CorruptTileError:
            continue
        assert ((out >= header.lo[:, None, None]) & (out <= header.hi[:, None, None])).all()


def test_pack_refuses_modes_outside_v8():
    data = KIND.encode_tile(stack(np.random.default_rng(6), 16, 16, np.uint16), 0)
    u = bitstream.unpack_tile(data)
    assert u.header.modes.any()
    with pytest.raises(ValueError, match="modes"):
        bitstream.pack_tile(bitstream.TileHeader(**{**u.header.__dict__, "version": bitstream.VERSION_PREDICTIVE}),
                            u.present, u.payload, u.valid)
    with pytest.raises(ValueError, match="modes"):
        bitstream.pack_tile(bitstream.TileHeader(**{**u.header.__dict__, "modes": np.array([0, 2, 1])}), u.present,
                            u.payload, u.valid)


def test_truncated_and_damaged_v8_tiles_raise_corrupt_tile():
    data = KIND.encode_tile(stack(np.random.default_rng(7), 24, 24, np.int16), [0, 0, 2])
    assert bitstream.unpack_tile(data)[0].modes[1:].all()
    assert_cut_tiles_are_corrupt(data, (1, 14, 20, len(data) // 2, len(data) - 1))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_damaged_v8_streams_never_crash_and_decoded_samples_stay_in_range(data):
    assert_damage_is_refused_or_in_range(data, KIND.encode_tile(stack(np.random.default_rng(8), 16, 16, np.uint16), 0))


def golden_tile() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """A fixed 3-band uint16 tile (a 10 m band, 20 m and 60 m bands resampled onto it, rotated), a valid mask and
    band fill, bounds 0, 0, 3: integers only once made."""
    rng = np.random.default_rng(20261206)
    x = stack(rng, 24, 32, np.uint16)
    valid = np.ones((24, 32), bool)
    valid[:, :4] = False
    fill = np.zeros(x.shape, bool)
    fill[1, 9:13, 12:22] = True
    x[fill] = 0
    return x, valid, fill, [0, 0, 3]


def test_golden_v8_tile_still_decodes_to_its_samples():
    """Pure integer path: the same samples on every platform. Version 8 is read only since version 9: its golden
    (written by the v8 encoder from golden_tile) is a decode-only file, its samples pinned in tile_v8.expected.npz."""
    x, valid, fill, e = golden_tile()
    data = GOLDEN.read_bytes()
    header, _, payload, v = bitstream.unpack_tile(data)
    assert header.version == 8 and header.modes.tolist() == [0, 1, 1]
    out = KIND.decode_tile(header, payload, v)
    coded = np.broadcast_to(valid, x.shape) & ~fill
    assert (np.abs(out - x)[coded] <= np.broadcast_to(np.array(e)[:, None, None], x.shape)[coded]).all()
    np.testing.assert_array_equal(reference_decode(data), out)
    with np.load(GOLDEN.with_name("tile_v8.expected.npz")) as f:
        np.testing.assert_array_equal(f["samples"], out)


def test_the_mode_byte_follows_each_bands_palette_byte_as_documented():
    """docs/bitstream.md, Version 8: after the 13 fixed bytes, per band v4's fields (LEB128 E, zigzag LEB128 lo, LEB128
    hi - lo, two replication bytes, the palette byte) and then the mode byte; read here by hand from the golden."""
    data = GOLDEN.read_bytes()
    assert data[0] == 8 and data[12] & 2 == 0
    pos, modes = 13, []

    def leb() -> int:
        nonlocal pos
        v = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            v |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return v

    for _ in range(data[7]):
        leb(), leb(), leb()
        pos += 2
        if data[pos] == 1:  # a palette: its byte, then a LEB128 length and that many bytes of zlib
            pos += 1
            n = leb()
            pos += n
        else:
            assert data[pos] == 0
            pos += 1
        modes.append(data[pos])
        pos += 1
    assert modes == [0, 1, 1]
    assert leb() == len(bitstream.unpack_tile(data)[2])  # then the payload's length
