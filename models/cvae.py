"""The convolutional VAE codec: analysis/synthesis transforms, per-level gains, entropy bottlenecks.

Data flow (one band or spectral component at a time, ``x: float32[B, 1, H, W]``, H and W multiples of 16)::

    x --g_a--> y --* gain[l]--> round --> y_hat --* inv_gain[l]--> g_s --> x_hat
                                  |
                         bottleneck[l]: p(y_hat)  (frozen into integer tables per level l)

Several rate levels come from one network (Cui et al. 2021, "asymmetric gained" units): level ``l``
scales each latent channel by ``gain[l]`` before rounding and by ``inv_gain[l]`` after, and has its own
factorised density. Level 0 is the lowest rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cvae.models.entropy import EntropyBottleneck
from cvae.models.layers import activation, conv, deconv

__all__ = ["CVAEConfig", "CVAE", "ForwardResult", "STRIDE"]

STRIDE = 16  # four stride-2 stages


@dataclass(frozen=True)
class CVAEConfig:
    """Architecture. ``lambdas`` gives one rate-distortion trade-off per level, lowest rate first."""

    in_channels: int = 1
    n: int = 64
    m: int = 96
    act: str = "leaky_relu"
    kernel: int = 5
    lambdas: tuple[float, ...] = (0.002, 0.004, 0.008, 0.016, 0.032, 0.064)

    @property
    def levels(self) -> int:
        return len(self.lambdas)


@dataclass(frozen=True)
class ForwardResult:
    x_hat: torch.Tensor        # float32[B, C, H, W]
    likelihoods: torch.Tensor  # float32[B, M, H/16, W/16]
    y: torch.Tensor            # float32[B, M, H/16, W/16], after the level's gain


class CVAE(nn.Module):
    def __init__(self, cfg: CVAEConfig):
        super().__init__()
        self.cfg = cfg
        n, m, k, c = cfg.n, cfg.m, cfg.kernel, cfg.in_channels
        self.g_a = nn.Sequential(
            conv(c, n, k), activation(cfg.act, n),
            conv(n, n, k), activation(cfg.act, n),
            conv(n, n, k), activation(cfg.act, n),
            conv(n, m, k),
        )
        self.g_s = nn.Sequential(
            deconv(m, n, k), activation(cfg.act, n, inverse=True),
            deconv(n, n, k), activation(cfg.act, n, inverse=True),
            deconv(n, n, k), activation(cfg.act, n, inverse=True),
            deconv(n, c, k),
        )
        lam = torch.tensor(cfg.lambdas)
        init = (lam / lam[len(lam) // 2]).sqrt().log()  # step ~ 1/sqrt(lambda) for MSE
        self.log_gain = nn.Parameter(init[:, None].repeat(1, m).clone())
        self.log_inv_gain = nn.Parameter(-init[:, None].repeat(1, m).clone())
        self.bottlenecks = nn.ModuleList(EntropyBottleneck(m) for _ in cfg.lambdas)

    def gains(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gain, inv_gain)``, each float32[L, M]."""
        return self.log_gain.exp(), self.log_inv_gain.exp()

    def forward(self, x: torch.Tensor, level: int) -> ForwardResult:
        gain, inv_gain = self.gains()
        y = self.g_a(x) * gain[level][None, :, None, None]
        y_hat, likelihoods = self.bottlenecks[level](y)
        x_hat = self.g_s(y_hat * inv_gain[level][None, :, None, None])
        return ForwardResult(x_hat=x_hat, likelihoods=likelihoods, y=y)
