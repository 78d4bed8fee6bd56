"""The one protocol every inference backend implements; the codec is handed an object of this shape."""
from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["Transforms"]


class Transforms(Protocol):
    """The network halves, whatever runs them (ONNX Runtime, TensorRT, torch). ``analysis`` may be called from
    several threads at once (the coders run tiles in parallel). A backend holding native resources also has an
    idempotent ``close()`` (not part of the protocol: ``TileCodec.close`` calls it when present)."""

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """float32[B, 1, H, W] (H, W multiples of 16) -> float32[B, M, H/16, W/16]."""

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        """float32[B, M, h, w] -> float32[B, 1, 16h, 16w]."""
