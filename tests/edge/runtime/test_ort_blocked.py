"""GDN on ONNX Runtime's blocked layout (cvae.edge.runtime.ort_blocked): the rewritten encoder must give the plain
session's latents bit for bit, and anything wrong with it (a damaged or foreign cache file) must fall back."""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from cvae.edge.bundle import Bundle  # noqa: E402
from cvae.edge.runtime import ort_blocked  # noqa: E402
from cvae.edge.runtime.ort import OrtTransforms  # noqa: E402

CPU = ["CPUExecutionProvider"]


def _options():
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return o


@pytest.fixture
def encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "cache"))
    return Bundle.load().path / "encoder.onnx"


@pytest.fixture
def blocked(encoder):
    s = ort_blocked.blocked_session(ort, encoder, _options, CPU)
    if s is None:
        pytest.skip("no NCHWc layout on this machine's ONNX Runtime (nothing to rewrite)")
    return s


def _image(seed: int, size: int = 256) -> np.ndarray:
    """A spectral component as the codec feeds the analysis: smooth structure plus texture, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.5 + 0.3 * np.sin(7 * x + 3 * y) * np.cos(5 * y) + 0.05 * rng.standard_normal((size, size))
    return np.clip(img, 0, 1).astype(np.float32)[None, None]


def test_blocked_encoder_gives_the_plain_sessions_latents_bit_for_bit(encoder, blocked):
    plain = ort.InferenceSession(str(encoder), sess_options=_options(), providers=CPU)
    for seed, size in ((1, 256), (2, 128), (3, 64)):
        x = _image(seed, size)
        np.testing.assert_array_equal(blocked.run(None, {"x": x})[0], plain.run(None, {"x": x})[0])


def test_rewrite_removes_every_reorder_around_gdn(encoder, blocked):
    model = onnx.load_from_string(ort_blocked._rewrite(ort, encoder, _options, CPU))
    ops = [(n.domain, n.op_type) for n in model.graph.node]
    assert ops.count(("", "Div")) == 3 and ops.count(("", "Sqrt")) == 3  # three GDN layers
    reorders = [op for d, op in ops if op.startswith("Reorder")]
    assert reorders == ["ReorderOutput"]  # only the latents leave the blocked layout


def test_transforms_use_the_blocked_encoder_and_match_the_plain_one(encoder, blocked):
    t = OrtTransforms(encoder, encoder.with_name("decoder.onnx"), providers=CPU, threads=1)
    x = _image(4)
    plain = ort.InferenceSession(str(encoder), sess_options=_options(), providers=CPU)
    np.testing.assert_array_equal(t.analysis(x), plain.run(None, {"x": x})[0])
    assert ort_blocked._cache_path(ort, encoder).is_file()


def test_cached_encoder_is_used_without_rewriting(encoder, blocked, monkeypatch):
    assert ort_blocked._cache_path(ort, encoder).is_file()  # written by the first session

    def no_rewrite(*a, **k):
        raise AssertionError("the cached rewrite should have been used")

    monkeypatch.setattr(ort_blocked, "_rewrite", no_rewrite)
    again = ort_blocked.blocked_session(ort, encoder, _options, CPU)
    x = _image(5)
    np.testing.assert_array_equal(again.run(None, {"x": x})[0], blocked.run(None, {"x": x})[0])


def test_damaged_cache_file_is_rewritten(encoder, blocked):
    cached = ort_blocked._cache_path(ort, encoder)
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated
    again = ort_blocked.blocked_session(ort, encoder, _options, CPU)
    assert again is not None
    x = _image(6)
    np.testing.assert_array_equal(again.run(None, {"x": x})[0], blocked.run(None, {"x": x})[0])
    assert len(cached.read_bytes()) > 1000  # replaced by a good one


def test_cache_whose_outputs_differ_is_refused(encoder, blocked):
    """A cache file that loads but computes something else (another model's weights under this name) must not be
    used: the check against the plain session catches any difference."""
    cached = ort_blocked._cache_path(ort, encoder)
    model = onnx.load(str(cached))
    w = next(i for i in model.graph.initializer if len(i.dims) == 4)
    arr = onnx.numpy_helper.to_array(w).copy()
    arr.flat[0] += 1e-3
    w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
    assert ort_blocked._checked(ort, ort.InferenceSession(str(encoder), sess_options=_options(), providers=CPU),
                                model.SerializeToString(), _options, CPU) is None


def test_unwritable_cache_still_gives_the_blocked_encoder(encoder, tmp_path, monkeypatch):
    ro = tmp_path / "file-not-dir"
    ro.write_text("x")
    monkeypatch.setenv("CVAE_CACHE_DIR", str(ro / "sub"))  # mkdir under a file fails
    s = ort_blocked.blocked_session(ort, encoder, _options, CPU)
    plain = ort.InferenceSession(str(encoder), sess_options=_options(), providers=CPU)
    x = _image(7, 128)
    out = (s or plain).run(None, {"x": x})[0]
    np.testing.assert_array_equal(out, plain.run(None, {"x": x})[0])


def test_a_graph_with_nothing_to_rewrite_is_remembered(tmp_path, monkeypatch):
    """Where the pattern is absent (no NCHWc on the machine, another model), the plain session is used, and later
    processes learn it from the cache without importing onnx or optimising the graph again."""
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "cache"))
    decoder = Bundle.load().path / "decoder.onnx"  # no Div after a Sqrt: nothing to rewrite
    assert ort_blocked.blocked_session(ort, decoder, _options, CPU) is None
    marker = ort_blocked._cache_path(ort, decoder).with_suffix(".none")
    assert marker.is_file()
    monkeypatch.setattr(ort_blocked, "_rewrite", lambda *a, **k: pytest.fail("rewritten again"))
    assert ort_blocked.blocked_session(ort, decoder, _options, CPU) is None


def test_a_rewrite_that_fails_leaves_the_plain_session(encoder, monkeypatch, caplog):
    """The rewrite is a speed-up: when it cannot be made (no onnx, no temporary folder, an ONNX Runtime that writes
    no optimised model) the encoder runs on the plain session, with a warning, and its latents are the same."""
    def broken(*a, **k):
        raise OSError("no temporary folder")

    monkeypatch.setattr(ort_blocked, "_rewrite", broken)
    with caplog.at_level("WARNING", logger=ort_blocked.__name__):
        assert ort_blocked.blocked_session(ort, encoder, _options, CPU) is None
    assert "could not be rewritten" in caplog.text and "no temporary folder" in caplog.text
    t = OrtTransforms(encoder, encoder.with_name("decoder.onnx"), providers=CPU, threads=1)
    x = _image(8, 64)
    plain = ort.InferenceSession(str(encoder), sess_options=_options(), providers=CPU)
    np.testing.assert_array_equal(t.analysis(x), plain.run(None, {"x": x})[0])


def test_an_unreadable_cache_entry_is_passed_over(encoder, blocked, monkeypatch):
    """A cache file that cannot be read (another user's, a vanished mount) is no error: the rewrite is made again."""
    real = ort_blocked.Path.read_bytes

    def denied(self):
        if self.parent == ort_blocked.cache_dir():
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(ort_blocked.Path, "read_bytes", denied)
    again = ort_blocked.blocked_session(ort, encoder, _options, CPU)
    assert again is not None
    x = _image(9, 64)
    np.testing.assert_array_equal(again.run(None, {"x": x})[0], blocked.run(None, {"x": x})[0])
