"""Distortion metrics and Bjontegaard delta rate, shared by validation and the benchmarks."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr_bands", "bd_rate"]


def psnr_bands(orig: np.ndarray, rec: np.ndarray, valid: np.ndarray) -> float:
    """Mean over bands of PSNR in native units over valid pixels, peak = max - min of the original."""
    out = []
    for b in range(orig.shape[0]):
        o = orig[b][valid].astype(np.float64)
        if o.size == 0:
            continue
        peak = o.max() - o.min()
        if peak <= 0:
            continue
        mse = np.mean((o - rec[b][valid].astype(np.float64)) ** 2)
        out.append(10 * math.log10(peak ** 2 / max(mse, 1e-12)))
    return float(np.mean(out)) if out else float("nan")


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
