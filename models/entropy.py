"""Factorised entropy bottleneck (Balle et al. 2018, appendix 6.1) and its freezing into integer tables.

Each latent channel has its own univariate density, modelled by its cumulative ``c(y)`` as a small
monotone network. Training adds uniform noise and returns likelihoods ``c(y+.5) - c(y-.5)``; after
training :func:`freeze` turns each channel's density into a 16-bit CDF over integers with an escape symbol
(``cvae.edge.codec.tables.EntropyTables``). Quantisation is plain rounding (no median shift): the table's
``offset`` absorbs where each channel's mass lies.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["EntropyBottleneck", "quantize_ste"]


def quantize_ste(y: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient."""
    return y + (torch.round(y) - y).detach()


class EntropyBottleneck(nn.Module):
    """Per-channel factorised density of the latent ``y: float32[B, M, h, w]``."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0,
                 likelihood_bound: float = 1e-9):
        super().__init__()
        self.channels = channels
        self.likelihood_bound = likelihood_bound
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cumulative(self, v: torch.Tensor) -> torch.Tensor:
        """``v: float32[M, 1, N]`` -> logits of the CDF at ``v``, same shape."""
        logits = v
        for i in range(len(self.matrices)):
            logits = torch.matmul(F.softplus(self.matrices[i]), logits) + self.biases[i]
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i]) * torch.tanh(logits)
        return logits

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit bin around each value of ``y: float32[B, M, h, w]``."""
        b, m, h, w = y.shape
        v = y.permute(1, 0, 2, 3).reshape(m, 1, -1)
        lower = self.logits_cumulative(v - 0.5)
        upper = self.logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where sigmoid is accurate
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = torch.clamp(p, min=self.likelihood_bound)
        return p.reshape(m, b, h, w).permute(1, 0, 2, 3)

    def forward(self, y: torch.Tensor, training: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(y_hat, likelihoods)``; in training the rate uses noise and ``y_hat`` is rounded
        straight-through (the decoder sees what it will see at test time)."""
        training = self.training if training is None else training
        if training:
            noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
            return quantize_ste(y), self.likelihood(noisy)
        y_hat = torch.round(y)
        return y_hat, self.likelihood(y_hat)

    @torch.no_grad()
    def pmf_table(self, tail_mass: float = 1e-9, max_half_range: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, the probability of every integer where the density has mass.

        Returns ``(pmf: float64[M, L], offset: int32[M])`` where ``pmf[c, i]`` is the probability of the
        integer ``offset[c] + i`` (rows zero-padded past their own support).
        """
        k = torch.arange(-max_half_range, max_half_range + 1, dtype=torch.float32)
        v = k.reshape(1, 1, -1).repeat(self.channels, 1, 1)
        lower = self.logits_cumulative(v - 0.5)
        upper = self.logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper)
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).double().squeeze(1)
        cdf_lo = torch.sigmoid(self.logits_cumulative(v - 0.5)).double().squeeze(1)
        cdf_hi = torch.sigmoid(self.logits_cumulative(v + 0.5)).double().squeeze(1)
        rows, offsets = [], []
        for c in range(self.channels):
            keep = ((cdf_hi[c] > tail_mass / 2) & (cdf_lo[c] < 1 - tail_mass / 2)).nonzero().flatten()
            first, last = (int(keep[0]), int(keep[-1])) if len(keep) else (max_half_range, max_half_range)
            rows.append(p[c, first:last + 1].numpy())
            offsets.append(first - max_half_range)
        length = max(len(r) for r in rows)
        pmf = np.zeros((self.channels, length))
        for c, r in enumerate(rows):
            pmf[c, :len(r)] = r
        return pmf, np.asarray(offsets, np.int32)
