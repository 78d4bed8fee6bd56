"""benchmarks/harness/lossless_peers.py: every peer's decode meets its own bound (|x - x_hat| <= E, exact at E=0).

The CCSDS 123 tests skip when benchmarks/peers/ccsds123/build/ccsds123 is not built (build.sh); the imagecodecs
tests skip without imagecodecs; the real-scene test skips without ../shared/data (conftest).
"""
import importlib.util

import numpy as np
import pytest
from bench_common import sibling  # benchmarks/common is on pytest's pythonpath

lp = sibling("lossless_peers")
needs_ccsds = pytest.mark.skipif(not lp.CCSDS123_BINARY.is_file(),
                                 reason="ccsds123 not built: run benchmarks/peers/ccsds123/build.sh")
needs_imagecodecs = pytest.mark.skipif(importlib.util.find_spec("imagecodecs") is None, reason="needs imagecodecs")


def _smooth(rng: np.random.Generator, shape, dtype, lo: int, hi: int) -> np.ndarray:
    """Correlated bands with texture and noise, spanning [lo, hi] (touching both ends to test clipping)."""
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.sin(xx / 7.0) + np.cos(yy / 5.0) + rng.normal(0, 0.3, (h, w))
    bands = [base * (1 + 0.1 * i) + rng.normal(0, 0.2, (h, w)) for i in range(c)]
    a = np.stack(bands)
    a = (a - a.min()) / (a.max() - a.min()) * (hi - lo) + lo
    return np.round(a).astype(dtype)


CASES = [((4, 33, 41), np.uint8, 0, 255), ((3, 40, 37), np.uint16, 0, 4095), ((2, 17, 64), np.uint16, 0, 65535),
         ((5, 24, 24), np.int16, -3000, 2500), ((1, 9, 1), np.uint16, 100, 900), ((3, 1, 50), np.uint8, 0, 200)]


@needs_ccsds
@pytest.mark.parametrize("shape,dtype,lo,hi", CASES)
@pytest.mark.parametrize("max_error", [0, 1, 3, 8])
def test_ccsds123_decode_meets_bound(shape, dtype, lo, hi, max_error):
    pixels = _smooth(np.random.default_rng(7), shape, dtype, lo, hi)
    r = lp.ccsds123(pixels, max_error)
    assert r.decoded.dtype == pixels.dtype
    err = np.abs(r.decoded.astype(np.int64) - pixels.astype(np.int64))
    assert err.max() <= max_error
    if max_error == 0:
        np.testing.assert_array_equal(r.decoded, pixels)
    assert r.nbytes > 32  # header + payload


@needs_ccsds
def test_ccsds123_near_lossless_is_smaller_and_uses_the_bound():
    pixels = _smooth(np.random.default_rng(1), (4, 48, 48), np.uint16, 0, 4095)
    sizes = [lp.ccsds123(pixels, e).nbytes for e in (0, 2, 8)]
    assert sizes[0] > sizes[1] > sizes[2]
    r = lp.ccsds123(pixels, 8)
    assert np.abs(r.decoded.astype(np.int64) - pixels).max() > 0  # the quantizer really quantizes


@needs_ccsds
def test_ccsds123_rejects_corrupt_stream(tmp_path):
    import subprocess

    bad = tmp_path / "bad.c123"
    bad.write_bytes(b"C123" + bytes(40))
    proc = subprocess.run([str(lp.CCSDS123_BINARY), "dec", str(bad), str(tmp_path / "x.raw")], capture_output=True)
    assert proc.returncode != 0


@needs_imagecodecs
@pytest.mark.parametrize("shape,dtype,lo,hi", CASES[:4])
@pytest.mark.parametrize("max_error", [0, 2, 5])
def test_jpegls_decode_meets_bound(shape, dtype, lo, hi, max_error):
    pixels = _smooth(np.random.default_rng(3), shape, dtype, lo, hi)
    r = lp.jpegls(pixels, max_error)
    assert lp.check_bound("jpegls", pixels, r.decoded, max_error) <= max_error


@needs_imagecodecs
@pytest.mark.parametrize("name", ["jpeg2000_lossless", "jpegxl_lossless", "jpegxl_lossless_e9"])
@pytest.mark.parametrize("shape,dtype,lo,hi", CASES[:4])
def test_lossless_peers_are_exact(name, shape, dtype, lo, hi):
    pixels = _smooth(np.random.default_rng(5), shape, dtype, lo, hi)
    r = lp.PEERS[name](pixels, 0)
    np.testing.assert_array_equal(r.decoded, pixels)
    with pytest.raises(lp.PeerUnavailableError):
        lp.PEERS[name](pixels, 1)


@needs_imagecodecs
@pytest.mark.parametrize("effort", [7, 9])
@pytest.mark.parametrize("dtype,lo,hi,side", [(np.uint16, 0, 4095, 0), (np.int16, -3000, 2500, 4)])
def test_jpegxl_counts_every_byte_the_ground_needs(effort, dtype, lo, hi, side):
    """One band: the per-band stream alone, plus 4 bytes of offset for int16; it decodes exactly."""
    import imagecodecs

    pixels = _smooth(np.random.default_rng(11), (1, 40, 56), dtype, lo, hi)
    r = lp.jpegxl_lossless(pixels, 0, effort=effort)
    np.testing.assert_array_equal(r.decoded, pixels)
    u = (pixels[0].astype(np.int32) - int(pixels.min())).astype(np.uint16) if side else pixels[0]
    stream = imagecodecs.jpegxl_encode(np.ascontiguousarray(u), lossless=True, effort=effort,
                                       bitspersample=lp.data_depth(u[None]), numthreads=1)
    assert r.nbytes == len(stream) + side


def test_check_bound_raises_on_violation():
    a = np.zeros((1, 2, 2), np.uint16)
    b = a.copy()
    b[0, 1, 1] = 3
    with pytest.raises(lp.PeerBoundError):
        lp.check_bound("x", a, b, 2)
    assert lp.check_bound("x", a, b, 3) == 3


def test_data_depth():
    assert lp.data_depth(np.array([[[0, 4095]]], np.uint16)) == 12
    assert lp.data_depth(np.array([[[0, 1]]], np.uint8)) == 2
    assert lp.data_depth(np.array([[[-2048, 2047]]], np.int16)) == 12


@needs_ccsds
@needs_imagecodecs
def test_cli_on_a_real_scene_writes_json(tmp_path, shared_data):
    scene = shared_data / "scenes" / "s2_ben_36_85_b2348.tif"
    if not scene.is_file():
        pytest.skip(f"{scene} not present")
    out = tmp_path / "lp.json"
    assert lp.main([str(scene), "--errors", "0,2", "--repeats", "1", "--out", str(out)]) == 0
    import json

    rec = json.loads(out.read_text())
    res = rec["scenes"][0]["results"]
    assert {(r["peer"], r["max_error"]) for r in res} == {
        ("ccsds123", 0), ("ccsds123", 2), ("jpegls", 0), ("jpegls", 2), ("jpeg2000_lossless", 0),
        ("jpegxl_lossless", 0), ("jpegxl_lossless_e9", 0)}
    assert all(r["max_abs_error"] <= r["max_error"] for r in res)
    assert out.with_suffix(".md").is_file()


def test_float_scenes_reach_the_peers_as_exact_16_bit_integers():
    # the int16 cast wrapped 40000 to -25536; the shared rule gives int32, which no 16-bit peer takes
    px = np.array([[[-300.0, 0.0, 300.0]]], np.float32)
    assert lp.peer_pixels(px).dtype == np.int16
    np.testing.assert_array_equal(lp.peer_pixels(px), [[[-300, 0, 300]]])
    assert lp.peer_pixels(np.array([[[0.0, 40000.0]]], np.float32)).dtype == np.uint16
    with pytest.raises(ValueError, match="beyond int16"):
        lp.peer_pixels(np.array([[[-5.0, 40000.0]]], np.float32))
    with pytest.raises(ValueError, match="not integers"):
        lp.peer_pixels(np.array([[[0.5]]], np.float32))
