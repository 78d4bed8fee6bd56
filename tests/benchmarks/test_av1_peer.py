"""benchmarks/harness/av1_peer.py: AV1 intra really codes lossy (bytes fall as the quantizer rises), PSNR is sane, the
KLT round trip is near exact, and bench_rd quotes the peer or says why not.

The avifenc tests skip without avifenc/avifdec on PATH (``apt-get install libavif-bin``).
"""
import numpy as np
import pytest
from bench_common import sibling  # benchmarks/common is on pytest's pythonpath

av1 = sibling("av1_peer")
needs_avifenc = pytest.mark.skipif(av1.missing_tools() is not None,
                                   reason=f"avifenc/avifdec not on PATH: {av1.INSTALL_HINT}")


def _scene(rng: np.random.Generator, shape=(3, 48, 40), dtype=np.uint16, hi=4000) -> np.ndarray:
    """Correlated textured bands spanning [0, hi]."""
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.sin(xx / 6.0) * np.cos(yy / 9.0) + rng.normal(0, 0.15, (h, w))
    a = np.stack([base * (1 + 0.2 * i) + 0.3 * i + rng.normal(0, 0.05, (h, w)) for i in range(c)])
    return np.round((a - a.min()) / (a.max() - a.min()) * hi).astype(dtype)


def test_klt_plan_restores_the_scene_without_coding():
    orig = _scene(np.random.default_rng(1))
    masks = [np.ones(orig.shape[1:], bool)] * orig.shape[0]
    masks[0] = masks[0].copy()
    masks[0][:5, :7] = False  # nodata corner: filled with the band mean, mask counted in the side information
    plan = av1.KltPlan.from_scene(orig, masks)
    assert plan.components.dtype == np.uint16 and plan.components.shape == orig.shape
    rec = plan.restore(plan.components.astype(np.float64), orig.dtype)
    err = np.abs(rec.astype(np.int64) - orig.astype(np.int64))[:, masks[0]]
    assert err.max() <= 1  # 16-bit rounding of the components only, on a 12-bit range
    assert plan.side_bits > (3 * 3 + 4 * 3) * 32  # the mask of band 0 is counted


@needs_avifenc
def test_bytes_fall_as_quantizer_rises_and_psnr_is_sane():
    orig = _scene(np.random.default_rng(2))
    masks = [np.ones(orig.shape[1:], bool)] * orig.shape[0]
    (q_fine, bpp_fine, rec_fine), (q_coarse, bpp_coarse, rec_coarse) = av1.av1_klt_points(orig, masks, (8, 50))
    assert (q_fine, q_coarse) == (8, 50)
    assert rec_fine.dtype == orig.dtype and rec_fine.shape == orig.shape
    assert bpp_coarse < bpp_fine  # the quantizer really changes the bytes (a lossless-only build would not)
    p_fine = np.mean([av1.psnr_scorer(orig[b], rec_fine[b], masks[b]) for b in range(3)])
    p_coarse = np.mean([av1.psnr_scorer(orig[b], rec_coarse[b], masks[b]) for b in range(3)])
    # lossy at both (exact would read ~190 dB: the 1e-12 MSE floor), finer is better; a broken inverse KLT or
    # scale reads near 0 dB, and q 50 on this tiny noisy scene reads ~23 dB
    assert 15 < p_coarse < p_fine < 80


@needs_avifenc
def test_bench_rd_quotes_av1_beside_jpeg2000():
    bench_rd = sibling("bench_rd")
    orig = _scene(np.random.default_rng(3), shape=(2, 32, 32))
    curves, skipped, notes = bench_rd.peer_curves(orig, np.ones((32, 32), bool))
    assert "av1_klt" not in skipped and "avifenc" in notes["av1_klt"]
    pts = curves["av1_klt"]
    assert [p["param"] for p in pts] == list(av1.AV1_QUANTIZERS)
    assert pts[0]["bpp"] < pts[-1]["bpp"] and pts[0]["psnr"] < pts[-1]["psnr"]  # coarsest first
    assert "j2k" in curves


def test_missing_avifenc_is_a_stated_skip(monkeypatch):
    monkeypatch.setattr(av1.shutil, "which", lambda name: None)
    why = av1.missing_tools()
    assert "avifenc" in why and "apt-get install libavif-bin" in why
    bench_rd = sibling("bench_rd")
    orig = _scene(np.random.default_rng(4), shape=(1, 16, 16), dtype=np.uint8, hi=255)
    curves, skipped, _ = bench_rd.peer_curves(orig, np.ones((16, 16), bool))
    assert "av1_klt" not in curves and "libavif-bin" in skipped["av1_klt"]
