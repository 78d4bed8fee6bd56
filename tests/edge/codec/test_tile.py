import numpy as np
import pytest

from cvae.edge.codec import bitstream
from cvae.edge.errors import CorruptTileError, InputError
from cvae.metrics import psnr_bands


def test_round_trip_keeps_shape_dtype_and_quality(codec, real_scene):
    x = real_scene.pixels
    d = codec.decompress(codec.compress(x, codec.levels - 1, valid=real_scene.valid))
    assert d.pixels.shape == x.shape and d.pixels.dtype == x.dtype
    # the highest level of even a briefly trained model is far above 25 dB on real 16-bit data
    assert psnr_bands(x, d.pixels, real_scene.valid) > 25


def test_rate_and_quality_grow_with_level(codec, real_scene):
    sizes, psnrs = [], []
    for level in range(codec.levels):
        data = codec.compress(real_scene.pixels, level, valid=real_scene.valid)
        sizes.append(len(data))
        psnrs.append(psnr_bands(real_scene.pixels, codec.decompress(data).pixels, real_scene.valid))
    assert sizes[-1] > 1.5 * sizes[0]
    assert psnrs[-1] > psnrs[0] + 1.0


def test_estimate_matches_coded_size(codec, real_scene):
    a = codec.analyze(real_scene.pixels, real_scene.valid)
    for level in range(codec.levels):
        actual = len(codec.encode(a, level))
        est = codec.estimate_bytes(a, level)
        # range coder overhead (a few bytes per component) and escapes' bypass bits: within 3% + 16 B
        assert abs(actual - est) <= 0.03 * actual + 16, (level, actual, est)


def test_decoding_is_deterministic(codec, real_scene):
    data = codec.compress(real_scene.pixels, 2)
    a, b = codec.decompress(data), codec.decompress(data)
    np.testing.assert_array_equal(a.pixels, b.pixels)


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 37, 53), (13, 64, 64), (2, 1, 200)])
def test_any_shape_and_band_count_round_trips(codec, rng, shape):
    x = (rng.normal(size=shape).cumsum(axis=2) * 50 + 1000).clip(0, 4095).astype(np.uint16)
    d = codec.decompress(codec.compress(x, 3))
    assert d.pixels.shape == shape
    assert np.all(d.pixels >= x.min()) and np.all(d.pixels <= x.max())  # clipped to the coded range


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
def test_every_supported_dtype_round_trips(codec, rng, dtype):
    x = (rng.normal(size=(2, 32, 32)) * 20 + 100).astype(dtype)
    d = codec.decompress(codec.compress(x, codec.levels - 1))
    assert d.pixels.dtype == np.dtype(dtype)
    assert psnr_bands(x, d.pixels, np.ones((32, 32), bool)) > 10


@pytest.mark.parametrize("kind", ["zeros", "saturated", "noise16", "extremes", "constant_int16"])
def test_adversarial_tiles_round_trip(codec, rng, kind):
    """Escape path: values far outside the tables, flat tiles, white noise."""
    x = {
        "zeros": np.zeros((3, 48, 48), np.uint16),
        "saturated": np.full((3, 48, 48), 65535, np.uint16),
        "noise16": rng.integers(0, 65536, size=(3, 48, 48)).astype(np.uint16),
        "extremes": np.where(rng.random((3, 48, 48)) < 0.5, 0, 65535).astype(np.uint16),
        "constant_int16": np.full((2, 32, 32), -32768, np.int16),
    }[kind]
    d = codec.decompress(codec.compress(x, codec.levels - 1))
    assert d.pixels.shape == x.shape
    if kind in ("zeros", "saturated", "constant_int16"):
        np.testing.assert_array_equal(d.pixels, x)  # a flat tile decodes exactly (clipped to its range)


def test_nodata_pixels_are_masked_and_cost_little(codec, real_scene):
    x = real_scene.pixels.copy()
    valid = np.ones(x.shape[1:], bool)
    valid[:, :60] = False
    x[:, ~valid] = 0
    d = codec.decompress(codec.compress(x, 3, valid=valid))
    np.testing.assert_array_equal(d.valid, valid)
    assert np.all(d.pixels[:, ~valid] == 0)
    full = len(codec.compress(real_scene.pixels, 3))
    half = len(codec.compress(x, 3, valid=valid))
    assert half < 0.8 * full


def test_all_nodata_tile_codes_to_a_few_bytes(codec):
    x = np.zeros((4, 64, 64), np.uint16)
    data = codec.compress(x, 3, valid=np.zeros((64, 64), bool))
    assert len(data) < bitstream.header_size(4, True) + 32
    assert not codec.decompress(data).valid.any()


def test_rejects_nan_and_bad_shapes(codec):
    x = np.ones((2, 16, 16), np.float32)
    x[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        codec.compress(x, 0)
    with pytest.raises(InputError, match="shape"):
        codec.compress(np.ones((2, 0, 16), np.uint8), 0)
    with pytest.raises(InputError, match="dtype"):
        codec.compress(np.ones((1, 16, 16), np.complex64), 0)
    with pytest.raises(InputError, match="level"):
        codec.compress(np.ones((1, 16, 16), np.uint8), 99)


def test_rejects_tile_of_another_model(codec, real_scene):
    data = bytearray(codec.compress(real_scene.pixels, 1))
    data[1] ^= 0xFF  # model id prefix
    with pytest.raises(CorruptTileError, match="model"):
        codec.decompress(bytes(data))


def test_damaged_tiles_decode_or_raise_typed_error(codec, real_scene, rng):
    data = codec.compress(real_scene.pixels, 2)
    for _ in range(60):
        b = bytearray(data)
        for i in rng.integers(0, len(b), size=3):
            b[i] ^= 1 << int(rng.integers(0, 8))
        try:
            d = codec.decompress(bytes(b))
            assert d.pixels.shape[0] >= 1
        except CorruptTileError:
            pass
    for n in range(0, len(data), max(1, len(data) // 50)):
        with pytest.raises(CorruptTileError):
            codec.decompress(data[:n])
