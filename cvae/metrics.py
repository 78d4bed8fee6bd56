"""Distortion metrics and Bjontegaard delta rate (numpy; scipy imported where needed), shared by the
demo, training validation and the benchmarks."""
from __future__ import annotations

import math

import numpy as np

from cvae.edge.quality import psnr_bands, psnr_db  # the one PSNR, the encoder's own (re-exported here)

__all__ = ["psnr_bands", "psnr_db", "bd_rate", "ssim_band", "ms_ssim_band", "ms_ssim_bands"]


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]], min_psnr: float = 20.0) -> float:
    """Bjontegaard delta rate (%) of ``test`` against ``anchor``, each a list of (bpp, PSNR): PCHIP of
    log-rate over PSNR, integrated over the common PSNR range (negative = fewer bits than the anchor).
    Anchor points more than 3 dB outside the test curve's range are dropped first."""
    from scipy.interpolate import PchipInterpolator

    tp = [p for _, p in test if not math.isnan(p)]
    if not tp:
        return float("nan")
    anchor = [(r, p) for r, p in anchor if min(tp) - 3 <= p <= max(tp) + 3]

    def curve(pts):
        xs, ys = [], []
        for p, lr in sorted((p, math.log(r)) for r, p in pts if p >= min_psnr and r > 0 and not math.isnan(p)):
            if not xs or p > xs[-1] + 1e-6:
                xs.append(p); ys.append(lr)
        return xs, ys

    x1, y1 = curve(anchor)
    x2, y2 = curve(test)
    if len(x1) < 3 or len(x2) < 3:
        return float("nan")
    lo, hi = max(x1[0], x2[0]), min(x1[-1], x2[-1])
    if hi - lo < 1.0:
        return float("nan")
    grid = np.linspace(lo, hi, 200)
    d = PchipInterpolator(x2, y2)(grid) - PchipInterpolator(x1, y1)(grid)
    return (math.exp(float(np.trapezoid(d, grid)) / (hi - lo)) - 1) * 100


_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _ssim_maps(x: np.ndarray, y: np.ndarray, peak: float) -> tuple[float, float]:
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    f = lambda a: gaussian_filter(a, 1.5, truncate=3.5, mode="reflect")  # 11-tap Gaussian window
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * cs
    return float(ssim.mean()), float(cs.mean())


def ssim_band(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    return _ssim_maps(x.astype(np.float64), y.astype(np.float64), peak)[0]


def ms_ssim_band(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    """MS-SSIM (Wang et al. 2003) of one band; as many of the 5 scales as the image allows (>= 16 px side
    at the coarsest), weights renormalised over the scales used."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    scales = max(1, min(5, int(np.floor(np.log2(min(x.shape) / 16))) + 1))
    w = np.array(_MS_WEIGHTS[:scales])
    w = w / w.sum()
    vals = []
    for s in range(scales):
        ssim, cs = _ssim_maps(x, y, peak)
        vals.append(max(ssim if s == scales - 1 else cs, 1e-6))
        if s < scales - 1:
            h, wd = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = x[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean(axis=(1, 3))
            y = y[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean(axis=(1, 3))
    return float(np.prod(np.power(vals, w)))


def ms_ssim_bands(orig: np.ndarray, rec: np.ndarray, valid: np.ndarray) -> float:
    """Mean over bands of MS-SSIM; invalid pixels are set to the original in both (they do not count)."""
    out = []
    for b in range(orig.shape[0]):
        o = orig[b].astype(np.float64)
        r = np.where(valid, rec[b].astype(np.float64), o)
        ov = o[valid]
        if ov.size == 0 or ov.max() == ov.min():
            continue
        out.append(ms_ssim_band(o, r, float(ov.max() - ov.min())))
    return float(np.mean(out)) if out else float("nan")
