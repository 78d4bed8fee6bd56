"""Freezing a trained CVAE: per-level integer tables and gains, and a tile codec backed by torch.

``EntropyTables.from_bottleneck`` lives here (not on the edge) because it needs torch.
"""
from __future__ import annotations

import numpy as np
import torch

from cvae.edge.codec.tables import EntropyTables
from cvae.models.cvae import CVAE
from cvae.models.entropy import EntropyBottleneck

__all__ = ["tables_from_bottleneck", "freeze_model", "tile_codec_from_model", "TorchTransforms"]


def tables_from_bottleneck(eb: EntropyBottleneck) -> EntropyTables:
    pmf, offset = eb.pmf_table()
    # rows are contiguous from their offset: support is the last nonzero index + 1
    support = np.array([int(np.nonzero(r)[0][-1]) + 1 if r.any() else 1 for r in pmf])
    return EntropyTables.from_pmf(pmf, offset, support)


@torch.no_grad()
def freeze_model(net: CVAE) -> tuple[list[EntropyTables], np.ndarray, np.ndarray]:
    """``(tables per level, gain float32[L, M], inv_gain float32[L, M])``."""
    gain, inv_gain = net.gains()
    tables = [tables_from_bottleneck(eb) for eb in net.bottlenecks]
    return tables, gain.cpu().numpy().astype(np.float32), inv_gain.cpu().numpy().astype(np.float32)


class TorchTransforms:
    """Analysis and synthesis through the torch modules, with the signatures of the ONNX runtime."""

    def __init__(self, net: CVAE):
        self.net = net.eval()

    @torch.no_grad()
    def analysis(self, x: np.ndarray) -> np.ndarray:
        """float32[B, 1, H, W] -> float32[B, M, H/16, W/16] (before the level's gain)."""
        p = next(self.net.parameters())
        return self.net.g_a(torch.from_numpy(x).to(p.device)).cpu().numpy()

    @torch.no_grad()
    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        """float32[B, M, h, w] (after the inverse gain) -> float32[B, 1, 16h, 16w]."""
        p = next(self.net.parameters())
        return self.net.g_s(torch.from_numpy(y_hat).to(p.device)).cpu().numpy()


def tile_codec_from_model(net: CVAE, model_id: bytes = b"\0" * 32):
    from cvae.edge.codec.tile import TileCodec  # needs the compiled range coder

    tables, gain, inv_gain = freeze_model(net)
    return TileCodec(tables=tables, gain=gain, inv_gain=inv_gain, transforms=TorchTransforms(net),
                     model_id=model_id)
