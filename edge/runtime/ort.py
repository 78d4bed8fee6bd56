"""ONNX Runtime backend: CPU, or the CUDA execution provider when onnxruntime-gpu and a GPU are present.

Threads. ``cvae-encode --threads`` and the daemon's coding threads call ``analysis`` concurrently on one
session. ONNX Runtime guarantees that ``InferenceSession.run`` may be called from several threads at once on the
same session (its thread-safety contract, restated by its maintainers in onnxruntime#19301, which made the
TensorRT provider honour it), and this module shares no mutable buffer between calls: each call's input is the
caller's array (or a contiguous copy of it), each output a new array from ``run``; no I/O binding, no reused
output buffers. The only shared state, the lazily created sessions, is made under a lock.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from cvae.edge.errors import BundleError, MissingDependencyError
from cvae.edge.runtime.ort_blocked import blocked_session

__all__ = ["OrtTransforms"]


class OrtTransforms:
    """``analysis``/``synthesis`` through two ONNX Runtime sessions. Sessions are created lazily, so an
    encoder never loads the decoder and the reverse."""

    def __init__(self, encoder: str | Path, decoder: str | Path, providers: list[str] | None = None,
                 threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError("backend 'onnxruntime' needs ONNX Runtime: pip install onnxruntime") from e
        self._ort = ort
        self.paths = {"encoder": Path(encoder), "decoder": Path(decoder)}
        available = ort.get_available_providers()
        self.providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.threads = threads
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()  # tiles coded in parallel create each session once
        self._closed = False

    def _session(self, which: str):
        s = self._sessions.get(which)
        if s is not None:
            return s
        with self._lock:
            return self._create(which)

    def _create(self, which: str):
        if self._closed:
            raise RuntimeError("ONNX Runtime transforms are closed")
        s = self._sessions.get(which)
        if s is None:
            path = self.paths[which]
            if not path.is_file():
                raise BundleError(f"{path} is missing; re-export the bundle with cvae-export --target onnx")
            s = self._ort.InferenceSession(str(path), sess_options=self._options(), providers=self.providers)
            if which == "encoder" and self.providers[0] == "CPUExecutionProvider":  # GDN without reorders
                s = blocked_session(self._ort, path, self._options, self.providers, plain=s) or s
            self._sessions[which] = s
        return s

    def _options(self):
        opts = self._ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        return opts

    def analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run("encoder", "x", x)

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self._run("decoder", "y_hat", y_hat)

    def _run(self, which: str, name: str, x: np.ndarray) -> np.ndarray:
        """On the CPU one image per run: ONNX Runtime's arena keeps the activations of the largest batch it ran
        (a 4-component 512 x 512 tile held about 0.4 GB per thread), and a batch is no faster than its images
        one by one there; each image's output is the same either way. Other providers get the whole batch."""
        s = self._session(which)
        x = np.ascontiguousarray(x, np.float32)
        if self.providers[0] != "CPUExecutionProvider" or len(x) <= 1:
            return s.run(None, {name: x})[0]
        return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])

    def close(self) -> None:
        """Drop the sessions (ONNX Runtime frees a session, its arena and any GPU memory with its last reference;
        a call in flight holds its own). Later calls raise. Idempotent."""
        with self._lock:
            self._closed = True
            self._sessions.clear()

    @property
    def accelerated(self) -> bool:
        """Whether the networks run off the CPU (a provider other than ONNX Runtime's CPU one comes first)."""
        return self.providers[0] != "CPUExecutionProvider"

    @property
    def versions(self) -> dict[str, str]:
        return {"onnxruntime": self._ort.__version__, "providers": ",".join(self.providers)}
