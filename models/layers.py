"""Building blocks of the transforms: GDN (Balle et al. 2016) and strided convolutions."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["GDN", "conv", "deconv", "activation"]


class GDN(nn.Module):
    """Generalised divisive normalisation, ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``.

    ``inverse=True`` gives IGDN (multiplies instead of divides) for the synthesis transform.
    Parameters are kept positive by a squared reparametrisation with a floor, as in tensorflow-compression.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self._pedestal = 2.0 ** -36
        self._beta_bound = (beta_min + self._pedestal) ** 0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self._pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self._pedestal))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = torch.clamp(self.beta, min=self._beta_bound) ** 2 - self._pedestal
        gamma = torch.clamp(self.gamma, min=self._pedestal ** 0.5) ** 2 - self._pedestal
        norm = F.conv2d(x * x, gamma.reshape(c, c, 1, 1), beta)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


def conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)


def activation(kind: str, channels: int, inverse: bool = False) -> nn.Module:
    if kind == "gdn":
        return GDN(channels, inverse=inverse)
    if kind == "leaky_relu":
        return nn.LeakyReLU(0.01)
    raise ValueError(f"activation: {kind!r} is not one of 'leaky_relu', 'gdn'")
