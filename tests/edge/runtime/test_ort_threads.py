"""OrtTransforms under threads: one session, called concurrently (ONNX Runtime's run is thread-safe), gives every
caller its own latents; close() drops the sessions."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest


@pytest.fixture
def ort(bundle):
    from cvae.edge.runtime.ort import OrtTransforms

    t = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx", threads=1)
    yield t
    t.close()


def test_ort_analysis_from_eight_threads_gives_each_its_own_latents(ort):
    rng = np.random.default_rng(3)
    xs = [rng.random((2, 1, 32, 32), dtype=np.float32) - 0.5 for _ in range(8)]
    expected = [ort.analysis(x) for x in xs]
    start = threading.Barrier(8)

    def run(x):
        start.wait()
        return [ort.analysis(x) for _ in range(3)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, xs))
    for e, ys in zip(expected, results):
        for y in ys:
            np.testing.assert_array_equal(y, e)  # exact: the same session and input give the same floats


def test_ort_close_drops_the_sessions_and_refuses_later_calls(ort):
    x = np.zeros((1, 1, 32, 32), np.float32)
    ort.analysis(x)
    assert ort._sessions
    ort.close()
    assert not ort._sessions
    ort.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        ort.analysis(x)


def test_codec_close_closes_its_transforms(bundle):
    codec = bundle.codec("onnxruntime")
    codec.close()
    codec.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        codec.transforms.analysis(np.zeros((1, 1, 32, 32), np.float32))
    bundle.codec(transforms=object()).close()  # transforms without close(): nothing to release
