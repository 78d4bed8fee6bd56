"""Distortion terms of the rate-distortion loss: MSE (default) and MS-SSIM (Wang et al. 2003).

Both work on the normalised scale the network sees (a band's value range maps to 1), so MS-SSIM uses a
data range of 1. With ``distortion: ms-ssim`` the loss is ``R + lambda * (1 - MS-SSIM)``; its lambdas
are on another scale than MSE's (CompressAI's MS-SSIM models use 2.4 .. 60).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ms_ssim", "distortion"]

_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _window(device, dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(g ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g


def _ssim(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    wx = win.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = win.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
    f = lambda t: F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)  # separable Gaussian, valid padding
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * cs
    return ssim.mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """float32[B] MS-SSIM of ``x, y: float32[B, C, H, W]``; as many of the 5 scales as fit an 11-tap window."""
    win = _window(x.device, x.dtype)
    scales = 1
    while scales < 5 and min(x.shape[-2:]) // (2 ** scales) >= 11:
        scales += 1
    w = torch.tensor(_WEIGHTS[:scales], device=x.device, dtype=x.dtype)
    w = w / w.sum()
    vals = []
    for s in range(scales):
        ssim, cs = _ssim(x, y, win, data_range)
        vals.append(torch.relu(ssim if s == scales - 1 else cs) + 1e-6)
        if s < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.prod(torch.stack(vals, dim=0) ** w[:, None], dim=0)


def distortion(kind: str, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The distortion term: ``mse`` (times 255^2 in the loss, as CompressAI) or ``ms-ssim`` (1 - MS-SSIM)."""
    if kind == "mse":
        return 255 ** 2 * torch.mean((x_hat - x) ** 2)
    if kind == "ms-ssim":
        return torch.mean(1 - ms_ssim(x_hat, x))
    raise ValueError(f"distortion: {kind!r} is not 'mse' or 'ms-ssim'")
