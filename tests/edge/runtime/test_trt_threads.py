"""TrtTransforms under threads, on a fake TensorRT and a fake pycuda (no GPU needed).

The fakes enforce what the real libraries require and do not check: an ``IExecutionContext`` is never entered
by two threads at once (TensorRT's rule), every CUDA call has a context current on the calling thread (pycuda's
``invalid device context`` otherwise), and device memory is a shared dict, so two threads sharing one buffer set
overwrite each other's input between the copy in and the copy out, as on the GPU. The fake network is exact
(16 x 16 block means), so a wrong latent is a wrong tile, not a tolerance."""
from __future__ import annotations

import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

M = 2  # latent channels of the fake network


def fake_network(x: np.ndarray) -> np.ndarray:
    """float32[B, 1, H, W] -> float32[B, M, H/16, W/16]: the 16 x 16 block means, and their negatives."""
    b, _, h, w = x.shape
    means = x.reshape(b, 1, h // 16, 16, w // 16, 16).mean(axis=(3, 5))
    return np.concatenate([means, -means], axis=1).astype(np.float32)


def fake_synthesis(y: np.ndarray) -> np.ndarray:
    """float32[B, M, h, w] -> float32[B, 1, 16h, 16w]: each latent position's first channel less its second, as a
    16 x 16 block (the fake decoder engine's network; exact, so a wrong image is a wrong tile)."""
    d = (y[:, :1] - y[:, 1:2]).astype(np.float32)
    return np.repeat(np.repeat(d, 16, axis=2), 16, axis=3)


class FakeCuda:
    """The parts of ``pycuda.driver`` that ``trt.py`` uses, with its per-thread context stack."""

    class Error(Exception):
        pass

    def __init__(self):
        self.memory: dict[int, np.ndarray] = {}  # device address -> bytes; shared by every thread, as on a GPU
        self.allocated: list[int] = []
        self.freed: list[int] = []
        self.host_freed = 0
        self.pinned = 0
        self.contexts: list[FakeCuda.Context] = []
        self.streams: dict[int, object] = {}
        self._local = threading.local()
        self._next = 0x1000
        self._lock = threading.Lock()
        cuda = self

        class Context:
            def __init__(self):
                self.detached = False

            def push(self):
                assert not self.detached, "push of a detached context"
                cuda._stack().append(self)

            @staticmethod
            def pop():
                assert cuda._stack(), "pop with no context current on this thread"
                cuda._stack().pop()

            def detach(self):
                assert not self.detached, "context detached twice"
                self.detached = True
                if cuda._stack() and cuda._stack()[-1] is self:
                    cuda._stack().pop()

        class Device:
            def __init__(self, n):
                self.n = n

            def name(self):
                return "Fake GPU"

            def make_context(self):
                c = Context()
                cuda.contexts.append(c)
                cuda._stack().append(c)  # like cuCtxCreate: current on the creating thread
                return c

        class DeviceAllocation:
            def __init__(self, addr):
                self.addr = addr

            def __int__(self):
                return self.addr

            def free(self):
                cuda.current()
                assert self.addr not in cuda.freed, "device memory freed twice"
                cuda.freed.append(self.addr)
                del cuda.memory[self.addr]

        class HostAllocation(bytearray):  # pycuda's pinned arrays have their HostAllocation as .base
            def free(self):
                assert not getattr(self, "done", False), "pinned memory freed twice"
                self.done = True
                cuda.host_freed += 1

        class Stream:
            """Work queued on a stream runs at synchronize, in order, as the GPU runs it later."""

            def __init__(self):
                cuda.current()
                self.handle = id(self)
                self.queue = []
                cuda.streams[self.handle] = self

            def synchronize(self):
                cuda.current()
                while self.queue:
                    op = self.queue.pop(0)
                    time.sleep(0.0005)  # the host thread waits here: another thread gets in
                    op()

        self.Context, self.Device, self.Stream = Context, Device, Stream
        self._DeviceAllocation, self._HostAllocation = DeviceAllocation, HostAllocation

    def _stack(self) -> list:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def current(self):
        stack = self._stack()
        assert stack and not stack[-1].detached, "CUDA call with no context current on this thread"
        return stack[-1]

    def init(self):
        pass

    def pagelocked_empty(self, shape, dtype):
        self.current()
        self.pinned += 1
        dtype = np.dtype(dtype)
        return np.ndarray(shape, dtype, buffer=self._HostAllocation(int(np.prod(shape)) * dtype.itemsize))

    def mem_alloc(self, nbytes):
        self.current()
        with self._lock:
            addr, self._next = self._next, self._next + nbytes + 256
        self.memory[addr] = np.zeros(nbytes, np.uint8)
        self.allocated.append(addr)
        return self._DeviceAllocation(addr)

    def memcpy_htod_async(self, dest, src, stream):
        """Queued: the host buffer is read when the stream gets to it, not now."""
        self.current()

        def op():
            self.memory[int(dest)][:] = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)
        stream.queue.append(op)

    def memcpy_dtoh_async(self, dest, src, stream):
        self.current()

        def op():
            dest[...] = np.frombuffer(self.memory[int(src)].tobytes(), dest.dtype).reshape(dest.shape)
        stream.queue.append(op)


class FakeTrt:
    """The parts of ``tensorrt`` that ``trt.py`` uses; the execution context refuses concurrent callers."""

    __version__ = "10.0.fake"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class TensorIOMode:
        INPUT, OUTPUT = "input", "output"

    def __init__(self, cuda: FakeCuda):
        self.cuda = cuda
        self.contexts: list = []
        self.engines: list = []
        self.overlaps = 0
        trt = self

        class ExecutionContext:
            def __init__(self, names):
                cuda.current()
                self.names = names  # (input, output): ("x", "y") of the encoder, ("y_hat", "x_hat") of the decoder
                self.shapes, self.addresses, self.inside = {}, {}, 0
                self.released = False

            def set_input_shape(self, name, shape):
                assert name == self.names[0], f"{name} is not this engine's input"
                self.shapes[name] = tuple(shape)

            def get_tensor_shape(self, name):
                b, c, h, w = self.shapes[self.names[0]]
                return (b, M, h // 16, w // 16) if self.names[0] == "x" else (b, 1, 16 * h, 16 * w)

            def set_tensor_address(self, name, addr):
                self.addresses[name] = addr

            def execute_async_v3(self, stream_handle):
                """Queued on the stream like the kernels; the context counts as in use until they have run."""
                cuda.current()
                assert not self.released, "execute on a released execution context"
                if self.inside:  # counted, not raised: the test shows the wrong latents it causes
                    trt.overlaps += 1
                self.inside += 1
                inp, out = self.names
                shape, x_addr, y_addr = self.shapes[inp], self.addresses[inp], self.addresses[out]
                net = fake_network if inp == "x" else fake_synthesis

                def op():
                    x = np.frombuffer(cuda.memory[x_addr].tobytes(), np.float32).reshape(shape)
                    cuda.memory[y_addr][:] = np.frombuffer(net(x).tobytes(), np.uint8)
                    self.inside -= 1
                cuda.streams[stream_handle].queue.append(op)
                return True

        class Engine:
            num_io_tensors = 2

            def __init__(self, names):
                self.names = names
                self.released = False

            def get_tensor_name(self, i):
                return self.names[i]

            def get_tensor_mode(self, name):
                return FakeTrt.TensorIOMode.INPUT if name == self.names[0] else FakeTrt.TensorIOMode.OUTPUT

            def get_tensor_shape(self, name):  # as built from the ONNX: only the channels are fixed
                return (-1, 1 if name in ("x", "x_hat") else M, -1, -1)

            def create_execution_context(self):
                c = ExecutionContext(self.names)
                trt.contexts.append(c)
                return c

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, blob):
                cuda.current()
                e = Engine(("y_hat", "x_hat") if blob == b"fake-decoder" else ("x", "y"))
                trt.engines.append(e)
                return e

        self.Runtime = Runtime


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """Fake ``tensorrt`` and ``pycuda.driver`` in sys.modules, and an engine record for them."""
    cuda = FakeCuda()
    trt = FakeTrt(cuda)
    trt_mod = types.ModuleType("tensorrt")
    for name in ("Logger", "TensorIOMode", "Runtime", "__version__"):
        setattr(trt_mod, name, getattr(trt, name))
    driver = types.ModuleType("pycuda.driver")
    for name in ("Error", "Context", "Device", "Stream", "init", "pagelocked_empty", "mem_alloc",
                 "memcpy_htod_async", "memcpy_dtoh_async"):
        setattr(driver, name, getattr(cuda, name))
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver
    monkeypatch.setitem(sys.modules, "tensorrt", trt_mod)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    (tmp_path / "fake.engine").write_bytes(b"fake")
    (tmp_path / "fake_decoder.engine").write_bytes(b"fake-decoder")
    engine = {"path": str(tmp_path / "fake.engine"), "batch": 2, "tile": 64}
    decoder = {"path": str(tmp_path / "fake_decoder.engine"), "batch": 2, "tile": 64, "half": "decoder"}
    return types.SimpleNamespace(cuda=cuda, trt=trt, engine=engine, decoder=decoder)


class NoFallback:
    def analysis(self, x):
        raise AssertionError("tiles within the engine's size never reach the fallback")

    synthesis = analysis


def _transforms(fakes):
    from cvae.edge.runtime.trt import TrtTransforms

    t = TrtTransforms(fakes.engine, fallback=NoFallback())
    assert fakes.cuda._stack() == []  # the constructing thread is left as it was found
    return t


def _inputs(n: int) -> list[np.ndarray]:
    """Distinct inputs: 3 tiles each (two engine batches, the second padded), smaller than the engine's tile."""
    rng = np.random.default_rng(7)
    return [rng.random((3, 1, 48, 32), dtype=np.float32) + i for i in range(n)]


def test_trt_analysis_is_exact_single_threaded(fakes):
    t = _transforms(fakes)
    x = _inputs(1)[0]
    np.testing.assert_array_equal(t.analysis(x), fake_network(x))  # exact: the fake network is deterministic


def test_trt_analysis_from_eight_threads_gives_each_its_own_latents(fakes):
    """cvae-encode --threads and the daemon's coding threads call analysis concurrently: each call gets the
    latents of its own tiles, and no execution context is ever entered by two threads at once."""
    t = _transforms(fakes)
    xs = _inputs(8)
    start = threading.Barrier(8)

    def run(x):
        start.wait()
        return [t.analysis(x) for _ in range(5)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, xs))
    for x, ys in zip(xs, results):
        for y in ys:
            np.testing.assert_array_equal(y, fake_network(x))  # exact: a shared buffer shows as another's tile
    assert fakes.trt.overlaps == 0  # TensorRT: one IExecutionContext is never used by two threads at once


def test_trt_close_releases_every_allocation(fakes):
    t = _transforms(fakes)
    xs = _inputs(4)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(t.analysis, xs))
    assert fakes.cuda.allocated
    t.close()
    assert sorted(fakes.cuda.freed) == sorted(fakes.cuda.allocated)  # device memory
    assert fakes.cuda.host_freed == fakes.cuda.pinned  # pinned host buffers
    assert all(c.detached for c in fakes.cuda.contexts)  # the CUDA context
    assert fakes.cuda._stack() == []  # nothing left current on the closing thread
    t.close()  # idempotent: nothing is freed twice
    with pytest.raises(RuntimeError, match="closed"):
        t.analysis(xs[0])


def test_trt_close_closes_the_fallback(fakes):
    from cvae.edge.runtime.trt import TrtTransforms

    class Fallback(NoFallback):
        closed = 0

        def close(self):
            self.closed += 1

    fb = Fallback()
    t = TrtTransforms(fakes.engine, fallback=fb)
    t.close()
    t.close()
    assert fb.closed == 1


def test_trt_contexts_are_bounded_and_callers_beyond_wait(fakes):
    """Each execution context holds its own activation memory: eight threads share at most max_contexts, and
    the latents stay each thread's own."""
    from cvae.edge.runtime.trt import TrtTransforms

    t = TrtTransforms(fakes.engine, fallback=NoFallback(), max_contexts=2)
    xs = _inputs(8)
    with ThreadPoolExecutor(8) as pool:
        ys = list(pool.map(t.analysis, xs))
    assert len(fakes.trt.contexts) <= 2
    for x, y in zip(xs, ys):
        np.testing.assert_array_equal(y, fake_network(x))  # exact, as above
    t.close()
    assert sorted(fakes.cuda.freed) == sorted(fakes.cuda.allocated)


def test_trt_close_from_another_thread_destroys_the_context(fakes):
    """The daemon may shut down from a thread other than the one that loaded the engine."""
    t = _transforms(fakes)
    t.analysis(_inputs(1)[0])
    with ThreadPoolExecutor(1) as pool:
        pool.submit(t.close).result()
    assert all(c.detached for c in fakes.cuda.contexts)
    assert sorted(fakes.cuda.freed) == sorted(fakes.cuda.allocated)


def test_trt_failed_load_leaves_nothing_behind(fakes, monkeypatch):
    from cvae.edge.errors import BundleError
    from cvae.edge.runtime.trt import TrtTransforms

    monkeypatch.setattr(fakes.trt.Runtime, "deserialize_cuda_engine", lambda self, blob: None)
    with pytest.raises(BundleError, match="cannot load this engine"):
        TrtTransforms(fakes.engine, fallback=NoFallback())
    assert all(c.detached for c in fakes.cuda.contexts)
    assert fakes.cuda._stack() == []


def test_trt_counts_as_accelerated_only_with_its_synthesis_off_the_cpu(fakes):
    """The codec's default search is the GPU's ('auto') only when the synthesis runs there too: on a decoder engine,
    or on a fallback that is itself accelerated (ONNX Runtime on CUDA); a CPU fallback alone counts as the CPU."""
    from cvae.edge.runtime.trt import TrtTransforms

    class CudaFallback(NoFallback):
        accelerated = True

    assert not TrtTransforms(fakes.engine, fallback=NoFallback()).accelerated
    assert TrtTransforms(fakes.engine, fallback=CudaFallback()).accelerated
    assert TrtTransforms(fakes.engine, fallback=NoFallback(), synthesis_engine=fakes.decoder).accelerated


class SynthesisFallback(NoFallback):
    """Counts the synthesis calls the engines leave to it (the fake decoder's network on the CPU)."""

    def __init__(self):
        self.calls = 0

    def synthesis(self, y_hat):
        self.calls += 1
        return fake_synthesis(y_hat)


def test_trt_synthesis_runs_tile_sized_latents_on_the_decoder_engine_and_others_on_the_fallback(fakes):
    """Latents of exactly the engine's shape run on it (batched, the last batch padded); any other shape goes to
    the fallback unpadded, since padding would change what the ground's synthesis makes near the edge."""
    from cvae.edge.runtime.trt import TrtTransforms

    fb = SynthesisFallback()
    t = TrtTransforms(fakes.engine, fallback=fb, synthesis_engine=fakes.decoder)
    rng = np.random.default_rng(3)
    full = rng.random((3, M, 4, 4), dtype=np.float32)  # 64-pixel tiles: 4 x 4 latents, 3 components (2 batches)
    np.testing.assert_array_equal(t.synthesis(full), fake_synthesis(full))
    assert fb.calls == 0
    edge = rng.random((2, M, 3, 4), dtype=np.float32)  # a scene's edge tile: 48 x 64 pixels
    np.testing.assert_array_equal(t.synthesis(edge), fake_synthesis(edge))
    assert fb.calls == 1
    x = _inputs(1)[0]
    np.testing.assert_array_equal(t.analysis(x), fake_network(x))  # the encoder engine is unchanged beside it
    t.close()
    assert sorted(fakes.cuda.freed) == sorted(fakes.cuda.allocated)  # both engines' slots released
    assert all(c.detached for c in fakes.cuda.contexts)


def test_trt_analysis_and_synthesis_from_eight_threads(fakes):
    """The encoder's tile threads run both halves at once: each call gets its own results, and no execution
    context of either engine is entered by two threads at once."""
    from cvae.edge.runtime.trt import TrtTransforms

    t = TrtTransforms(fakes.engine, fallback=NoFallback(), synthesis_engine=fakes.decoder, max_contexts=3)
    xs = _inputs(8)
    ys = [np.random.default_rng(i).random((3, M, 4, 4), dtype=np.float32) for i in range(8)]
    start = threading.Barrier(8)

    def run(i):
        start.wait()
        return [(t.analysis(xs[i]), t.synthesis(ys[i])) for _ in range(4)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(8)))
    for i, rs in enumerate(results):
        for a, s in rs:
            np.testing.assert_array_equal(a, fake_network(xs[i]))
            np.testing.assert_array_equal(s, fake_synthesis(ys[i]))
    assert fakes.trt.overlaps == 0
    assert len(fakes.trt.contexts) <= 6  # at most max_contexts per engine
    t.close()


def test_find_engine_tells_the_halves_apart(fakes, tmp_path):
    """engines.json lists both halves (an entry without 'half' is an encoder's, as written before decoder engines);
    each is found by its half and tile, on this GPU and TensorRT version only."""
    import json

    from cvae.edge.runtime.trt import find_engine

    (tmp_path / "engines").mkdir()
    common = {"gpu": "Fake GPU", "tensorrt": FakeTrt.__version__, "batch": 2, "precision": "fp16"}
    (tmp_path / "engines" / "engines.json").write_text(json.dumps([
        {**common, "file": "enc.engine", "tile": 64},
        {**common, "file": "dec128.engine", "tile": 128, "half": "decoder"},
        {**common, "file": "dec.engine", "tile": 64, "half": "decoder"},
        {**common, "file": "other.engine", "tile": 64, "half": "decoder", "gpu": "Another GPU"}]))
    assert find_engine(tmp_path)["file"] == "enc.engine"
    assert find_engine(tmp_path, half="decoder", tile=64)["file"] == "dec.engine"
    assert find_engine(tmp_path, half="decoder", tile=256) is None


@pytest.mark.parametrize("with_decoder", [True, False])
def test_load_transforms_takes_both_engines_and_the_codec_its_default_search(fakes, tmp_path, bundle, with_decoder):
    """backend 'tensorrt' on a bundle whose engines.json lists an encoder engine (and a decoder engine of the same
    tile) for this GPU: the synthesis runs on the decoder engine, which makes the codec's default search 'auto'; with
    the encoder engine alone the synthesis is the CPU's (ONNX Runtime here), and so is the default search."""
    import json

    from cvae.edge.codec.plan import CPU_MODE_SEARCH
    from cvae.edge.runtime import load_transforms
    from cvae.edge.runtime.trt import TrtTransforms

    d = tmp_path / "b"
    (d / "engines").mkdir(parents=True)
    (d / "engines" / "enc.engine").write_bytes(b"fake")
    (d / "engines" / "dec.engine").write_bytes(b"fake-decoder")
    common = {"gpu": "Fake GPU", "tensorrt": FakeTrt.__version__, "batch": 2, "tile": 64, "precision": "fp16"}
    entries = [{**common, "file": "enc.engine", "half": "encoder"}]
    if with_decoder:
        entries.append({**common, "file": "dec.engine", "half": "decoder"})
    (d / "engines" / "engines.json").write_text(json.dumps(entries))
    t = load_transforms(d, "tensorrt")
    try:
        assert isinstance(t, TrtTransforms) and t.accelerated == with_decoder
        assert bundle.codec(transforms=t).mode_search == ("auto" if with_decoder else CPU_MODE_SEARCH)
        if with_decoder:
            y = np.random.default_rng(4).random((1, M, 4, 4), dtype=np.float32)
            np.testing.assert_array_equal(t.synthesis(y), fake_synthesis(y))
    finally:
        t.close()
