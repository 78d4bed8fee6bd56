"""TensorRT backend with pycuda buffers, for the onboard GPU: the analysis, and the synthesis when the bundle has a
decoder engine for this GPU (``cvae-export --target trt`` builds both).

An engine has one fixed input shape: ``[B, 1, T, T]`` for the encoder's, ``[B, M, T/16, T/16]`` for the decoder's.
Tiles (or a tile's components) are batched B at a time, the last batch padded. The analysis pads smaller tiles to
T by edge replication and crops the latents back (the latents are whatever the encoder codes). The synthesis must
make what the ground's makes from the same latents, so only latents of exactly ``T/16`` go to its engine: padding
them would change the reconstruction near the tile's edge; other shapes (a scene's edge tiles) and everything
without an engine go to ``fallback`` (ONNX Runtime). The ground decodes on ONNX Runtime.

Threads. ``cvae-encode --threads`` and the daemon's coding threads call ``analysis`` and ``synthesis``
concurrently. TensorRT forbids calling one ``IExecutionContext`` from several threads at once, and a shared set of
pinned and device buffers would mix one thread's tiles into another's latents. So every concurrent call checks out
a *slot* of its own engine: an execution context, pinned host buffers, device buffers and a CUDA stream. Slots are
made on demand (at most ``max_contexts`` per engine; further callers wait for one to come free) and kept for the
next caller; the engines, whose methods are thread-safe, are shared. A pool rather than ``threading.local``: the
coders make a new thread pool per scene, and per-thread state would leak a context with every thread that ends.
The one CUDA context is pushed on the calling thread around each call (pycuda contexts are per thread).

:meth:`TrtTransforms.close` frees every slot, the engines and the CUDA context; whoever made the transforms calls
it on shutdown (``TileCodec.close``).
"""
from __future__ import annotations

import json
import threading
from typing import Any
from pathlib import Path

import numpy as np

from cvae.edge.errors import BundleError, MissingDependencyError

__all__ = ["TrtTransforms", "find_engine", "find_decoder"]


_PREFERENCE = ("fp16", "fp32", "int8")  # INT8 only when asked for, or when it is the only engine


def find_engine(bundle_dir: str | Path, precision: str | None = None, half: str = "encoder",
                tile: int | None = None) -> dict | None:
    """The bundle's engine of network ``half`` ('encoder' or 'decoder'; an index entry without one is an encoder's)
    built for this GPU and TensorRT version (of ``precision`` and ``tile`` when given; else the first of fp16, fp32,
    int8 that exists), or None."""
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
              and (precision is None or e["precision"] == precision) and e.get("half", "encoder") == half
              and (tile is None or int(e["tile"]) == tile)]
    usable.sort(key=lambda e: _PREFERENCE.index(e["precision"]) if e["precision"] in _PREFERENCE else 99)
    return {**usable[0], "path": str(Path(bundle_dir) / "engines" / usable[0]["file"])} if usable else None


def find_decoder(bundle_dir: str | Path, encoder: dict) -> dict | None:
    """The decoder engine that goes with ``encoder`` (a :func:`find_engine` record): the bundle's for this GPU and
    TensorRT version of the same tile, or None (the synthesis then runs on the fallback)."""
    return find_engine(bundle_dir, half="decoder", tile=int(encoder["tile"]))


class _Slot:
    """One caller's share of an engine: an execution context with its input shape and tensor addresses set,
    pinned ``h_in: float32[shape]`` and ``h_out`` (the engine's output for it), their device twins, and a stream.
    Made and released with the CUDA context current."""

    def __init__(self, cuda, engine, names: tuple[str, str], shape: tuple[int, int, int, int]):
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
            self.context.set_input_shape(inp, shape)
            self.h_in = cuda.pagelocked_empty(shape, np.float32)
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
        """``chunk``: float32[b <= B, ...] of the input's shape -> the engine's output for it, float32[b, ...] (a
        copy: the buffers are reused)."""
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


class _Pool:
    """One engine and its slots (``shape``: the engine's one input shape): made, checked out and freed by
    :class:`TrtTransforms` under its lock, with the CUDA context current."""

    def __init__(self, trt, record: dict, shape_of):
        with open(record["path"], "rb") as f:
            self.engine: Any = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise BundleError(f"{record['path']}: TensorRT cannot load this engine; rebuild it on this device "
                              "with cvae-export --target trt")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if n != self.input)
        self.batch, self.tile = int(record["batch"]), int(record["tile"])
        self.shape = shape_of(self)
        self.slots: list[_Slot] = []  # every slot made
        self.idle: list[_Slot] = []   # those not checked out

    def add_slot(self, cuda) -> None:
        slot = _Slot(cuda, self.engine, (self.input, self.output), self.shape)
        self.slots.append(slot)
        self.idle.append(slot)

    def free(self) -> None:
        for slot in self.slots:
            slot.release()
        self.slots, self.idle = [], []
        self.engine = None  # the last reference: TensorRT frees it now, while the context is current


class TrtTransforms:
    """``analysis`` through a TensorRT engine, and ``synthesis`` through a second one when ``synthesis_engine`` is
    given (records from :func:`find_engine`), safe to call from several threads; what the engines cannot take goes
    to ``fallback`` (ONNX Runtime; module docstring). ``max_contexts``: at most this many execution contexts per
    engine (each holds its own activation memory, which on a Jetson is the system's memory); callers beyond it wait
    for one to come free."""

    def __init__(self, engine: dict, fallback, max_contexts: int = 4, synthesis_engine: dict | None = None):
        try:
            import tensorrt as trt
            import pycuda.driver as cuda
        except ImportError as e:
            raise MissingDependencyError("backend 'tensorrt' needs TensorRT (JetPack) and pycuda") from e
        if max_contexts < 1:
            raise ValueError(f"max_contexts {max_contexts}: give 1 or more")
        self.fallback = fallback  # ONNX Runtime, for what the engines cannot take
        self.max_contexts = max_contexts
        self._cuda = cuda
        self._cond = threading.Condition()  # guards the pools' slots, the busy count and closed
        self._pools: dict[str, _Pool] = {}
        self._busy = 0
        self._closed = False
        cuda.init()
        self._ctx = cuda.Device(0).make_context()  # current on this thread until the end of __init__
        try:
            self._pools["analysis"] = _Pool(trt, engine, lambda p: (p.batch, 1, p.tile, p.tile))
            if synthesis_engine is not None:
                self._pools["synthesis"] = _Pool(
                    trt, synthesis_engine,
                    lambda p: (p.batch, int(p.engine.get_tensor_shape(p.input)[1]), p.tile // 16, p.tile // 16))
            for pool in self._pools.values():
                pool.add_slot(cuda)  # the first caller's; a broken engine fails here, not on the first tile
        except BaseException:
            self._free()  # detaches the context, which leaves it current nowhere
            raise
        self._ctx.pop()

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """float32[B, 1, H, W] -> float32[B, M, H/16, W/16]; thread-safe."""
        _, _, h, w = x.shape
        tile = self._pools["analysis"].tile
        if h > tile or w > tile:
            return self.fallback.analysis(x)
        x = np.pad(np.asarray(x, np.float32), ((0, 0), (0, 0), (0, tile - h), (0, tile - w)), mode="edge")
        out = self._run("analysis", x)
        return np.ascontiguousarray(out[:, :, :h // 16, :w // 16])

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        """float32[B, M, h, w] -> float32[B, 1, 16h, 16w]; on the decoder engine when it has one and the latents are
        exactly its shape (no padding: the ground's synthesis sees none), else on ``fallback``; thread-safe."""
        pool = self._pools.get("synthesis")
        if pool is None or tuple(y_hat.shape[1:]) != pool.shape[1:]:
            return self.fallback.synthesis(y_hat)
        return self._run("synthesis", np.asarray(y_hat, np.float32))

    @property
    def accelerated(self) -> bool:
        """Whether both halves run off the CPU: the analysis does here, the synthesis with a decoder engine (the
        scene's edge tiles aside) or wherever ``fallback`` runs."""
        return "synthesis" in self._pools or bool(getattr(self.fallback, "accelerated", False))

    def close(self) -> None:
        """Free every slot's execution context, stream and buffers, the engines and the CUDA context, then close
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

    def _run(self, which: str, x: np.ndarray) -> np.ndarray:
        """``x`` (the engine's input shape but for the batch) through engine ``which``, batch by batch."""
        pool = self._pools[which]
        slot = self._checkout(pool)
        try:
            self._ctx.push()
            try:
                out = [slot.run(self._cuda, x[i:i + pool.batch]) for i in range(0, len(x), pool.batch)]
            finally:
                self._ctx.pop()
        finally:
            self._checkin(pool, slot)
        return np.concatenate(out)

    # -- slots ---------------------------------------------------------------------------------------
    def _checkout(self, pool: _Pool) -> _Slot:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or pool.idle or len(pool.slots) < self.max_contexts)
            if self._closed:
                raise RuntimeError("TensorRT transforms are closed")
            if not pool.idle:
                self._ctx.push()
                try:
                    pool.add_slot(self._cuda)
                finally:
                    self._ctx.pop()
            self._busy += 1
            return pool.idle.pop()

    def _checkin(self, pool: _Pool, slot: _Slot) -> None:
        with self._cond:
            self._busy -= 1
            pool.idle.append(slot)
            self._cond.notify_all()

    def _free(self) -> None:
        """With the CUDA context current on this thread: release the slots and the engines, then destroy the
        context (pycuda's detach destroys a context that is current on the calling thread whichever thread made
        it, and pops it)."""
        try:
            for pool in self._pools.values():
                pool.free()  # kept, emptied: a later call finds the transforms closed (_checkout)
        finally:
            self._ctx.detach()
