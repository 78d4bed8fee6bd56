"""Inference backends behind one protocol (:class:`cvae.edge.runtime.protocol.Transforms`).

Heavy imports happen inside each backend; a missing one raises ``MissingDependencyError`` with the fix.
"""
from __future__ import annotations

from pathlib import Path

from cvae.edge.runtime.protocol import Transforms
from cvae.edge.errors import BundleError

__all__ = ["load_transforms", "BACKENDS", "Transforms"]

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def load_transforms(bundle_dir: str | Path, backend: str = "auto", threads: int = 0) -> Transforms:
    """The network halves of the bundle in ``bundle_dir`` on ``backend``: ``onnxruntime``, ``tensorrt`` (an
    engine built for this GPU must be in the bundle's ``engines/``), or ``auto`` (TensorRT when possible).
    ``threads``: ONNX Runtime's intra-op threads per call (0: its default, every core; 1 when the caller runs
    tiles in parallel itself)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    from cvae.edge.runtime.ort import OrtTransforms

    ort = OrtTransforms(Path(bundle_dir) / "encoder.onnx", Path(bundle_dir) / "decoder.onnx", threads=threads)
    if backend == "onnxruntime":
        return ort
    from cvae.edge.runtime.trt import TrtTransforms, find_decoder, find_engine

    engine = find_engine(bundle_dir)
    if engine is None:
        if backend == "tensorrt":
            raise BundleError(f"{bundle_dir}: no TensorRT engine for this GPU and TensorRT version (or TensorRT/pycuda "
                              "missing); build one on this device with cvae-export --target trt")
        return ort  # auto: TensorRT when an engine and a GPU are present, else ONNX Runtime
    # the synthesis on the GPU too where the bundle has a decoder engine of the same tile (cvae-export --target trt)
    return TrtTransforms(engine, fallback=ort, synthesis_engine=find_decoder(bundle_dir, engine))
