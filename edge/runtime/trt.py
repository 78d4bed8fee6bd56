"""TensorRT backend (encoder only) with pycuda buffers, for the onboard GPU.

The engine has one fixed input shape ``[B, 1, T, T]``: tiles are batched B at a time (the last batch
padded), and smaller tiles are padded to T by edge replication; latents are cropped back. Decoding stays on
ONNX Runtime (the ground has no TensorRT engine of its own to match).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cvae.edge.errors import BundleError, MissingDependencyError

__all__ = ["TrtTransforms", "find_engine"]


_PREFERENCE = ("fp16", "fp32", "int8")  # INT8 only when asked for, or when it is the only engine


def find_engine(bundle_dir: str | Path, precision: str | None = None) -> dict | None:
    """The bundle's engine built for this GPU and TensorRT version (of ``precision`` when given, else the
    first of fp16, fp32, int8 that exists), or None."""
    try:
        import tensorrt as trt
        import pycuda.driver as cuda
    except ImportError:
        return None
    index = Path(bundle_dir) / "engines" / "engines.json"
    if not index.is_file():
        return None
    try:
        cuda.init()
        gpu = cuda.Device(0).name()
    except cuda.Error:
        return None
    usable = [e for e in json.loads(index.read_text()) if e["gpu"] == gpu and e["tensorrt"] == trt.__version__
              and (precision is None or e["precision"] == precision)]
    usable.sort(key=lambda e: _PREFERENCE.index(e["precision"]) if e["precision"] in _PREFERENCE else 99)
    return {**usable[0], "path": str(Path(bundle_dir) / "engines" / usable[0]["file"])} if usable else None


class TrtTransforms:
    def __init__(self, engine: dict, fallback):
        try:
            import tensorrt as trt
            import pycuda.driver as cuda
        except ImportError as e:
            raise MissingDependencyError("backend 'tensorrt' needs TensorRT (JetPack) and pycuda") from e
        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(0).make_context()
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            with open(engine["path"], "rb") as f:
                self.engine = trt.Runtime(logger).deserialize_cuda_engine(f.read())
            if self.engine is None:
                raise BundleError(f"{engine['path']}: TensorRT cannot load this engine; rebuild it on this device "
                                  "with cvae-export --target trt")
            self.context = self.engine.create_execution_context()
            self.batch, self.tile = int(engine["batch"]), int(engine["tile"])
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
            self.output = next(n for n in names if n != self.input)
            self.context.set_input_shape(self.input, (self.batch, 1, self.tile, self.tile))
            out_shape = tuple(self.context.get_tensor_shape(self.output))
            self.h_in = cuda.pagelocked_empty((self.batch, 1, self.tile, self.tile), np.float32)
            self.h_out = cuda.pagelocked_empty(out_shape, np.float32)
            self.d_in = cuda.mem_alloc(self.h_in.nbytes)
            self.d_out = cuda.mem_alloc(self.h_out.nbytes)
            self.context.set_tensor_address(self.input, int(self.d_in))
            self.context.set_tensor_address(self.output, int(self.d_out))
            self.stream = cuda.Stream()
        finally:
            self._ctx.pop()
        self.fallback = fallback  # ONNX Runtime, for synthesis and for tiles larger than the engine's

    def analysis(self, x: np.ndarray) -> np.ndarray:
        b, _, h, w = x.shape
        if h > self.tile or w > self.tile:
            return self.fallback.analysis(x)
        out = []
        self._ctx.push()
        try:
            for i in range(0, b, self.batch):
                chunk = x[i:i + self.batch]
                self.h_in[:] = np.pad(chunk, ((0, self.batch - len(chunk)), (0, 0), (0, self.tile - h),
                                              (0, self.tile - w)), mode="edge")
                self._cuda.memcpy_htod_async(self.d_in, self.h_in, self.stream)
                self.context.execute_async_v3(self.stream.handle)
                self._cuda.memcpy_dtoh_async(self.h_out, self.d_out, self.stream)
                self.stream.synchronize()
                out.append(self.h_out[:len(chunk), :, :h // 16, :w // 16].copy())
        finally:
            self._ctx.pop()
        return np.concatenate(out)

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self.fallback.synthesis(y_hat)
