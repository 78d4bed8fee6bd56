"""The one protocol every inference backend implements; the codec is handed an object of this shape."""
from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["Transforms", "is_accelerated"]


class Transforms(Protocol):
    """The network halves, whatever runs them (ONNX Runtime, TensorRT, torch). ``analysis`` may be called from
    several threads at once (the coders run tiles in parallel). A backend holding native resources also has an
    idempotent ``close()`` (not part of the protocol: ``TileCodec.close`` calls it when present), and one whose
    networks run off the CPU says so with ``accelerated = True`` (absent: the CPU; :func:`is_accelerated`)."""

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """float32[B, 1, H, W] (H, W multiples of 16) -> float32[B, M, H/16, W/16]."""

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        """float32[B, M, h, w] -> float32[B, 1, 16h, 16w]."""


def is_accelerated(transforms: object) -> bool:
    """Whether ``transforms`` run both network halves off the CPU (its ``accelerated``; absent: False). The codec's
    default mode search depends on it (``plan.default_mode_search``)."""
    return bool(getattr(transforms, "accelerated", False))
