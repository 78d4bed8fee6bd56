"""The predictive tile kind (tile formats v8 and v4): the error bound holds for any input, lossless is exact, nodata
and band-fill samples come back exactly, hostile streams raise CorruptTileError, and the v4 golden still decodes.
Version 8's replication mode: test_predictive_v8.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvae.edge.codec import bitstream
from cvae.edge.codec.predictive import PredictiveKind
from cvae.edge.errors import CorruptTileError, InputError

GOLDEN = Path(__file__).resolve().parent / "golden" / "tile_v4.bin"
KIND = PredictiveKind(bytes.fromhex("0badcafe"))
DTYPES = [np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float64]


def _round_trip(tile, e, valid=None, band_fill=None):
    data = KIND.encode_tile(tile, e, valid, band_fill)
    header, _, payload, v = bitstream.unpack_tile(data)
    return KIND.decode_tile(header, payload, v), header, data


@st.composite
def tiles(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    c, h, w = draw(st.integers(1, 5)), draw(st.integers(1, 24)), draw(st.integers(1, 24))
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (-(2 ** 33), 2 ** 33)
    kind = draw(st.sampled_from(["noise", "constant", "extremes", "smooth"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if kind == "noise":
        x = rng.integers(lo, hi, (c, h, w), endpoint=True, dtype=np.int64)
    elif kind == "constant":
        x = np.full((c, h, w), draw(st.integers(lo, hi)), np.int64)
    elif kind == "extremes":
        x = np.where(rng.random((c, h, w)) < 0.5, lo, hi).astype(np.int64)
    else:
        base = np.cumsum(np.cumsum(rng.integers(-3, 4, (1, h, w)), 1), 2)
        x = np.clip(base * rng.integers(1, 50, (c, 1, 1)) + (lo + hi) // 2, lo, hi).astype(np.int64)
    e = draw(st.one_of(st.integers(0, 20), st.lists(st.integers(0, 300), min_size=c, max_size=c)))
    valid = rng.random((h, w)) < 0.8 if draw(st.booleans()) else None
    return x.astype(dtype), e, valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiles())
def test_no_sample_moves_by_more_than_its_bound(case):
    tile, e, valid = case
    out, header, _ = _round_trip(tile, e, valid)
    bound = np.broadcast_to(np.asarray(e, np.int64).reshape(-1, 1, 1), tile.shape)
    err = np.abs(out - tile.astype(np.int64))
    coded = np.ones(tile.shape, bool) if valid is None else np.broadcast_to(valid, tile.shape)
    assert (err[coded] <= bound[coded]).all()
    assert (out[~coded] == 0).all()
    np.testing.assert_array_equal(header.max_error, np.broadcast_to(np.asarray(e), (tile.shape[0],)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lossless_is_exact_for_every_dtype(dtype):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.iinfo(np.int32)
    x = rng.integers(info.min, info.max, (3, 37, 29), endpoint=True).astype(dtype)
    out, _, _ = _round_trip(x, 0)
    np.testing.assert_array_equal(out, x.astype(np.int64))


def test_band_fill_samples_are_not_coded_and_decode_as_their_mask():
    rng = np.random.default_rng(3)
    x = rng.integers(100, 200, (3, 20, 20)).astype(np.uint16)
    fill = np.zeros(x.shape, bool)
    fill[1, 5:9, 3:12] = True
    x[fill] = 0  # the scene's nodata value in band 1 only
    out, header, _ = _round_trip(x, 2, None, fill)
    np.testing.assert_array_equal(header.band_fill, fill)
    assert (np.abs(out - x)[~fill] <= 2).all() and (out[fill] == 0).all()


def test_true_floats_are_refused_with_the_fix():
    with pytest.raises(InputError, match="whole numbers.*--level"):
        KIND.encode_tile(np.full((1, 4, 4), 0.5), 1)


@pytest.mark.parametrize("bad", [-1, [1, 2], 2 ** 40, 1.5])
def test_bad_bounds_are_refused(bad):
    with pytest.raises(InputError, match="max error"):
        KIND.encode_tile(np.zeros((3, 4, 4), np.uint8), bad)


def test_larger_bounds_cost_fewer_bits():
    rng = np.random.default_rng(5)
    x = (np.cumsum(rng.normal(0, 30, (4, 64, 64)), 2) + 30000).astype(np.uint16)
    sizes = [len(_round_trip(x, e)[2]) for e in (0, 1, 2, 4, 8)]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] < 0.6 * sizes[0]


def test_truncated_and_extended_tiles_raise_corrupt_tile():
    data = _round_trip(np.arange(300, dtype=np.uint16).reshape(3, 10, 10) * 7, 1)[2]
    assert_cut_tiles_are_corrupt(data, (1, 10, len(data) // 2, len(data) - 1))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_streams_never_crash_and_decoded_samples_stay_in_range(data):
    rng = np.random.default_rng(11)
    x = rng.integers(0, 4096, (2, 16, 16)).astype(np.uint16)
    assert_damage_is_refused_or_in_range(data, _round_trip(x, 0)[2])


def test_crafted_header_with_huge_ranges_is_refused():
    data = bytearray(_round_trip(np.zeros((1, 4, 4), np.uint8), 0)[2])
    fixed = bitstream._FIXED.size
    crafted = bytes(data[:fixed]) + bytes([0x80] * 9 + [0x01]) + bytes(data[fixed + 3:])
    with pytest.raises(CorruptTileError):
        bitstream.unpack_tile(crafted)


def _golden_tile() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """A fixed 3-band int16 tile with nodata pixels and band fill, integers only."""
    rng = np.random.default_rng(20261202)
    x = (np.cumsum(rng.integers(-40, 41, (3, 24, 32)), 2) + 1000).astype(np.int16)
    valid = np.ones((24, 32), bool)
    valid[:, :5] = False
    fill = np.zeros(x.shape, bool)
    fill[2, 10:14, 10:20] = True
    x[fill] = -9999
    return x, valid, fill, [0, 2, 7]


def test_golden_v4_tile_still_decodes_to_its_samples():
    """Pure integer path: the same samples on every platform. Version 4 is read only since version 8: its golden
    (written by the v4 encoder from _golden_tile) is a decode-only file, its samples pinned in tile_v4.expected.npz."""
    x, valid, fill, e = _golden_tile()
    data = GOLDEN.read_bytes()
    header, _, payload, v = bitstream.unpack_tile(data)
    assert header.version == bitstream.VERSION_PREDICTIVE and not header.modes.any()
    out = KIND.decode_tile(header, payload, v)
    coded = np.broadcast_to(valid, x.shape) & ~fill
    assert (np.abs(out - x)[coded] <= np.array(e)[:, None, None].repeat(24, 1).repeat(32, 2)[coded]).all()
    np.testing.assert_array_equal(v, valid)
    np.testing.assert_array_equal(header.band_fill, fill)
    with np.load(GOLDEN.with_name("tile_v4.expected.npz")) as f:
        np.testing.assert_array_equal(out, f["samples"])


def test_every_real_file_round_trips_losslessly(shared_data, codec):
    """Lossless (E = 0) is exact on every raster in ../shared/data, 256 x 256 tiles, nodata as the product sends it."""
    from cvae.edge.io.raster import band_fill_mask, read_raster
    from cvae.edge.io.tiling import tile_grid

    paths = sorted(p for p in shared_data.rglob("*.tif") if p.is_file())
    assert len(paths) > 50
    checked = 0
    for path in paths:
        try:
            r = read_raster(path)
        except InputError:
            continue  # e.g. unreadable or refused files: the reader's own tests cover them
        px = r.pixels
        if px.dtype.kind == "f" and not np.array_equal(px[:, r.valid], np.round(px[:, r.valid])):
            continue  # true floats: no bound in digital numbers (refused, tested above)
        for win in tile_grid(px.shape[1], px.shape[2], 256):
            t, v = px[:, win.slices[0], win.slices[1]], r.valid[win.slices]
            fill = band_fill_mask(t, v, r.nodata)
            d = codec.decompress(codec.compress_bounded(t, 0, v, fill))
            coded = np.broadcast_to(v, t.shape) & (~fill if fill is not None else True)
            np.testing.assert_array_equal(d.pixels[coded], t[coded], err_msg=str(path))
        checked += 1
    assert checked > 50


def reference_decode(data: bytes) -> np.ndarray:
    from predictive_reference import decode  # tests/edge/codec on sys.path (pytest rootdir conftest-less import)

    from cvae.edge.codec.predictive import coder_range, skipped

    header, _, payload, v = bitstream.unpack_tile(data)
    c, h, w = header.bands, header.height, header.width
    skip = skipped(header, v)
    palette = header.palette or (None,) * c
    lo, hi = (r.tolist() for r in coder_range(header))
    out = np.array(decode(payload, c, h, w, header.max_error.tolist(), lo, hi,
                          [tuple(int(k) for k in r) for r in header.replication], skip.tolist(),
                          None if header.modes is None else header.modes.tolist(), header.format.feedback), np.int64)
    for b, p in enumerate(palette):
        if p is not None:
            out[b] = p[out[b]]
    out[skip] = 0
    return out


@pytest.mark.parametrize("case", ["golden", "replicated", "int32_wide", "lossless_noise", "combed",
                                  "combed_replicated_masked"])
def test_a_decoder_written_from_the_specification_decodes_the_same_samples(case):
    """tests/edge/codec/predictive_reference.py follows docs/bitstream.md only: the spec is complete."""
    rng = np.random.default_rng(17)
    if case == "golden":
        data = GOLDEN.read_bytes()
    elif case == "replicated":  # a 2x2- and a 3x3-replicated band beside a full-resolution one, nodata, E = 1
        base = (np.cumsum(rng.integers(-30, 31, (1, 18, 20)), 2) + 500)[0]
        x = np.stack([base, np.kron(base[::2, ::2], np.ones((2, 2), int))[:18, :20],
                      np.kron(base[1::3, ::3], np.ones((3, 3), int))[:18, :20]]).astype(np.uint16)
        valid = np.ones((18, 20), bool)
        valid[4:7, 5:9] = False
        data = KIND.encode_tile(x, 1, valid)
        assert bitstream.unpack_tile(data)[0].replication[1:, :2].tolist() == [[2, 2], [3, 3]]
    elif case == "int32_wide":
        data = KIND.encode_tile(rng.integers(-2 ** 31, 2 ** 31 - 1, (2, 9, 11)).astype(np.int32), [5, 1000])
    elif case == "combed_replicated_masked":  # skipped anchors carry their block's value: as a rank too
        x = np.kron(_combed(rng, (2, 10, 12)), np.ones((1, 2, 2), np.uint16))
        valid = np.ones((20, 24), bool)
        valid[::2, 1::3] = False
        valid[:6, :] = False
        data = KIND.encode_tile(x, 0, valid)
        h = bitstream.unpack_tile(data)[0]
        assert h.replication[:, :2].tolist() == [[2, 2], [2, 2]] and all(p is not None for p in h.palette)
        out = KIND.decode_tile(h, bitstream.unpack_tile(data)[2], valid)
        np.testing.assert_array_equal(out[:, valid], x[:, valid])
    elif case == "combed":
        data = KIND.encode_tile(_combed(rng, (2, 16, 18)), 0)
        assert all(p is not None for p in bitstream.unpack_tile(data)[0].palette)
    else:
        data = KIND.encode_tile(rng.integers(0, 4096, (4, 12, 13)).astype(np.uint16), 0)
    header, _, payload, v = bitstream.unpack_tile(data)
    np.testing.assert_array_equal(reference_decode(data), KIND.decode_tile(header, payload, v))


def _combed(rng, shape) -> np.ndarray:
    """A smooth uint16 field whose values use every third number only (a combed histogram)."""
    field = np.cumsum(np.cumsum(rng.integers(-2, 3, shape), 1), 2) + 600
    return (3 * field).astype(np.uint16)


def test_a_combed_histogram_is_coded_as_ranks_losslessly_and_smaller(monkeypatch):
    from cvae.edge.codec import predictive

    rng = np.random.default_rng(8)
    x = _combed(rng, (3, 64, 64))
    out, header, data = _round_trip(x, 0)
    np.testing.assert_array_equal(out, x)
    assert all(p is not None for p in header.palette)
    filled = KIND.encode_tile(x + rng.integers(0, 3, x.shape).astype(np.uint16), 0)  # the comb filled: no palette
    assert all(p is None for p in bitstream.unpack_tile(filled)[0].palette)
    monkeypatch.setattr(predictive, "PALETTE_OCCUPANCY", 0.0)  # the same tile without palettes
    plain = KIND.encode_tile(x, 0)
    assert all(p is None for p in bitstream.unpack_tile(plain)[0].palette)
    assert len(data) < 0.9 * len(plain)


def test_bounded_bands_never_use_a_palette():
    """Ranks would break a bound in digital numbers: only E = 0 bands may be coded as ranks."""
    rng = np.random.default_rng(9)
    x = _combed(rng, (2, 32, 32))
    out, header, _ = _round_trip(x, [0, 2])
    assert header.palette[0] is not None and header.palette[1] is None
    assert (np.abs(out - x.astype(np.int64)) <= np.array([0, 2])[:, None, None]).all()


def test_a_crafted_palette_is_refused():
    data = bytearray(_round_trip(_combed(np.random.default_rng(1), (1, 48, 48)), 0)[2])
    header = bitstream.unpack_tile(bytes(data))[0]
    assert header.palette[0] is not None
    with pytest.raises(ValueError, match="palette"):
        bitstream.pack_tile(bitstream.TileHeader(**{**header.__dict__, "max_error": np.array([1])}), np.ones(1, bool),
                            b"", None)


def assert_cut_tiles_are_corrupt(data: bytes, cuts) -> None:
    """Every error-bounded tile ``data`` cut to a length in ``cuts``, or with a byte too many, is a CorruptTileError
    (shared by the tests of formats v4, v8 and v9)."""
    for n in cuts:
        with pytest.raises(CorruptTileError):
            header, _, payload, v = bitstream.unpack_tile(data[:n])
            KIND.decode_tile(header, payload, v)
    with pytest.raises(CorruptTileError):
        bitstream.unpack_tile(data + b"\0")


def assert_damage_is_refused_or_in_range(draw, tile: bytes) -> None:
    """1 to 4 bytes of ``tile`` overwritten (hypothesis ``draw``): a CorruptTileError, or samples within the header's
    band ranges (or 0)."""
    good = bytearray(tile)
    for _ in range(draw.draw(st.integers(1, 4))):
        good[draw.draw(st.integers(0, len(good) - 1))] = draw.draw(st.integers(0, 255))
    try:
        header, _, payload, v = bitstream.unpack_tile(bytes(good))
        out = KIND.decode_tile(header, payload, v)
    except CorruptTileError:
        return
    lo, hi = header.lo.astype(np.int64)[:, None, None], header.hi.astype(np.int64)[:, None, None]
    assert (((out >= lo) & (out <= hi)) | (out == 0)).all()
