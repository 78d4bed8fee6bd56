"""TensorRT backend (encoder only) with pycuda buffers, for the onboard GPU.

The engine has one fixed input shape ``[B, 1, T, T]``: tiles are batched B at a time (the last batch
padded), and smaller tiles are padded to T by edge replication; latents are cropped back. Decoding stays on
ONNX Runtime (the ground has no TensorRT engine of its own to match).

Threads. ``cvae-encode --threads`` and the daemon's coding threads call ``analysis`` concurrently. TensorRT
forbids calling one ``IExecutionContext`` from several threads at once, and a shared set of pinned and device
buffers would mix one thread's tiles into another's latents. So every concurrent call checks out a *slot* of
its own: an execution context, pinned host buffers, device buffers and a CUDA stream. Slots are made on demand
(at most ``max_contexts``; further callers wait for one to come free) and kept for the next caller; the
engine, whose methods are thread-safe, is shared. A pool rather than ``threading.local``: the coders make a new
thread pool per scene, and per-thread state would leak a context with every thread that ends. The one CUDA
context is pushed on the calling thread around each call (pycuda contexts are per thread).

:meth:`TrtTransforms.close` frees every slot, the engine and the CUDA context; whoever made the transforms calls
it on shutdown (``TileCodec.close``).
"""
from __future__ import annotations

import json
import threading
from typing import Any
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


class _Slot:
    """One caller's share of the engine: an execution context with its input shape and tensor addresses set,
    pinned ``h_in: float32[B, 1, T, T]`` and ``h_out: float32[B, M, T/16, T/16]``, their device twins, and a
    stream. Made and released with the CUDA context current."""

    def __init__(self, cuda, engine, names: tuple[str, str], batch: int, tile: int):
        self.context: Any = None  # TensorRT and pycuda objects (untyped libraries)
        self.stream: Any = None
        self.h_in: Any = None
        self.h_out: Any = None
        self.d_in: Any = None
        self.d_out: Any = None
        try:
            inp, out = names
            self.context = engine.create_execution_context()
            if self.context is None:
                raise BundleError("TensorRT cannot create an execution context (GPU memory?)")
            self.context.set_input_shape(inp, (batch, 1, tile, tile))
            self.h_in = cuda.pagelocked_empty((batch, 1, tile, tile), np.float32)
            self.h_out = cuda.pagelocked_empty(tuple(self.context.get_tensor_shape(out)), np.float32)
            self.d_in = cuda.mem_alloc(self.h_in.nbytes)
            self.d_out = cuda.mem_alloc(self.h_out.nbytes)
            self.context.set_tensor_address(inp, int(self.d_in))
            self.context.set_tensor_address(out, int(self.d_out))
            self.stream = cuda.Stream()
        except BaseException:
            self.release()
            raise

    def run(self, cuda, chunk: np.ndarray) -> np.ndarray:
        """``chunk``: float32[b <= B, 1, T, T] -> float32[b, M, T/16, T/16] (a copy: the buffers are reused)."""
        n = len(chunk)
        self.h_in[:n] = chunk
        self.h_in[n:] = chunk[-1:]  # the padding images: any valid input, their latents are dropped
        cuda.memcpy_htod_async(self.d_in, self.h_in, self.stream)
        if not self.context.execute_async_v3(self.stream.handle):
            raise RuntimeError("TensorRT: execute_async_v3 failed (see the TensorRT log above)")
        cuda.memcpy_dtoh_async(self.h_out, self.d_out, self.stream)
        self.stream.synchronize()  # the buffers are this slot's until here
        return self.h_out[:n].copy()

    def release(self) -> None:
        """Free the device and pinned memory now (not when the garbage collector gets to it, possibly with
        no context current) and drop the execution context and stream."""
        for d in (self.d_in, self.d_out):
            if d is not None:
                d.free()
        for h in (self.h_in, self.h_out):
            if h is not None and hasattr(h.base, "free"):  # pycuda's HostAllocation
                h.base.free()
        self.context = self.stream = self.h_in = self.h_out = self.d_in = self.d_out = None


class TrtTransforms:
    """``analysis`` through a TensorRT engine, safe to call from several threads; ``synthesis`` and tiles larger
    than the engine's go to ``fallback`` (ONNX Runtime). ``engine``: a record from :func:`find_engine`.
    ``max_contexts``: at most this many execution contexts (each holds its own activation memory, which on a
    Jetson is the system's memory); callers beyond it wait for one to come free."""

    def __init__(self, engine: dict, fallback, max_contexts: int = 4):
        try:
            import tensorrt as trt
            import pycuda.driver as cuda
        except ImportError as e:
            raise MissingDependencyError("backend 'tensorrt' needs TensorRT (JetPack) and pycuda") from e
        if max_contexts < 1:
            raise ValueError(f"max_contexts {max_contexts}: give 1 or more")
        self.fallback = fallback  # ONNX Runtime, for synthesis and for tiles larger than the engine's
        self.max_contexts = max_contexts
        self.batch, self.tile = int(engine["batch"]), int(engine["tile"])
        self._cuda = cuda
        self._cond = threading.Condition()  # guards the slots, the busy count and closed
        self._slots: list[_Slot] = []  # every slot made
        self._idle: list[_Slot] = []   # those not checked out
        self._busy = 0
        self._closed = False
        cuda.init()
        self._ctx = cuda.Device(0).make_context()  # current on this thread until the end of __init__
        try:
            with open(engine["path"], "rb") as f:
                self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(f.read())
            if self.engine is None:
                raise BundleError(f"{engine['path']}: TensorRT cannot load this engine; rebuild it on this device "
                                  "with cvae-export --target trt")
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
            self.output = next(n for n in names if n != self.input)
            self._add_slot()  # the first caller's; a broken engine fails here, not on the first tile
        except BaseException:
            self._free()  # detaches the context, which leaves it current nowhere
            raise
        self._ctx.pop()

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """float32[B, 1, H, W] -> float32[B, M, H/16, W/16]; thread-safe."""
        b, _, h, w = x.shape
        if h > self.tile or w > self.tile:
            return self.fallback.analysis(x)
        x = np.pad(np.asarray(x, np.float32), ((0, 0), (0, 0), (0, self.tile - h), (0, self.tile - w)), mode="edge")
        slot = self._checkout()
        try:
            self._ctx.push()
            try:
                out = [slot.run(self._cuda, x[i:i + self.batch]) for i in range(0, b, self.batch)]
            finally:
                self._ctx.pop()
        finally:
            self._checkin(slot)
        return np.ascontiguousarray(np.concatenate(out)[:, :, :h // 16, :w // 16])

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self.fallback.synthesis(y_hat)

    @property
    def accelerated(self) -> bool:
        """Whether both halves run off the CPU: the analysis does here, the synthesis wherever ``fallback`` runs."""
        return bool(getattr(self.fallback, "accelerated", False))

    def close(self) -> None:
        """Free every slot's execution context, stream and buffers, the engine and the CUDA context, then close
        the fallback. Waits for calls in flight; later calls raise. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()  # callers waiting for a slot raise
            self._cond.wait_for(lambda: self._busy == 0)
            self._ctx.push()
            self._free()
        close = getattr(self.fallback, "close", None)
        if close is not None:
            close()

    # -- slots ---------------------------------------------------------------------------------------
    def _checkout(self) -> _Slot:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._idle or len(self._slots) < self.max_contexts)
            if self._closed:
                raise RuntimeError("TensorRT transforms are closed")
            if not self._idle:
                self._ctx.push()
                try:
                    self._add_slot()
                finally:
                    self._ctx.pop()
            self._busy += 1
            return self._idle.pop()

    def _checkin(self, slot: _Slot) -> None:
        with self._cond:
            self._busy -= 1
            self._idle.append(slot)
            self._cond.notify_all()

    def _add_slot(self) -> None:
        """With the CUDA context current and the lock held (or in __init__)."""
        slot = _Slot(self._cuda, self.engine, (self.input, self.output), self.batch, self.tile)
        self._slots.append(slot)
        self._idle.append(slot)

    def _free(self) -> None:
        """With the CUDA context current on this thread: release the slots and the engine, then destroy the
        context (pycuda's detach destroys a context that is current on the calling thread whichever thread made
        it, and pops it)."""
        try:
            for slot in self._slots:
                slot.release()
            self._slots, self._idle = [], []
            self.engine = None  # the last reference: TensorRT frees it now, while the context is current
        finally:
            self._ctx.detach()
