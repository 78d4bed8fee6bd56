"""Inference backends behind one protocol (:class:`cvae.edge.codec.tile.Transforms`).

Heavy imports happen inside each backend; a missing one raises ``MissingDependencyError`` with the fix.
"""
from __future__ import annotations

from pathlib import Path

from cvae.edge.codec.tile import Transforms

__all__ = ["load_transforms", "BACKENDS"]

BACKENDS = ("auto", "onnxruntime")


def load_transforms(bundle_dir: str | Path, backend: str = "auto") -> Transforms:
    """The network halves of the bundle in ``bundle_dir`` on ``backend``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    from cvae.edge.runtime.ort import OrtTransforms

    return OrtTransforms(Path(bundle_dir) / "encoder.onnx", Path(bundle_dir) / "decoder.onnx")
