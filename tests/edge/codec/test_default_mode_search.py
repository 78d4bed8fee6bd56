"""The mode search a codec gets when none is asked: 'auto' (the networks on levels 2-3) where both network halves
run off the CPU, plan.CPU_MODE_SEARCH ('residual': no network) on the CPU; cvae-encode and the daemon's config leave
it to the codec, and an asked search always wins."""
from __future__ import annotations

import numpy as np
import pytest

from cvae.edge.codec.plan import CPU_MODE_SEARCH, MODE_SEARCHES, default_mode_search
from cvae.edge.runtime.protocol import is_accelerated


class _Counting:
    """The bundle's ONNX Runtime transforms, counting the network runs; ``accelerated`` as given."""

    def __init__(self, inner, accelerated: bool | None):
        self.inner, self.runs = inner, 0
        if accelerated is not None:
            self.accelerated = accelerated

    def analysis(self, x):
        self.runs += 1
        return self.inner.analysis(x)

    def synthesis(self, y_hat):
        self.runs += 1
        return self.inner.synthesis(y_hat)


def _smooth_tile(c=4, n=256) -> np.ndarray:
    """A smooth 4-band tile: the gate of 'auto' lets the network run on it at levels 2-3."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(n, n)).cumsum(0).cumsum(1)
    base = (base - base.min()) / np.ptp(base)
    return np.stack([(base * (900 + 150 * i) + 300 + rng.normal(0, 2, (n, n))) for i in range(c)]).astype(np.uint16)


def test_cpu_default_runs_no_network_and_a_gpu_default_does():
    assert CPU_MODE_SEARCH in MODE_SEARCHES and CPU_MODE_SEARCH != "auto"
    assert default_mode_search(True) == "auto" and default_mode_search(False) == CPU_MODE_SEARCH
    assert not is_accelerated(object())  # a backend that does not say runs on the CPU


@pytest.mark.parametrize("accelerated, expected", [(None, CPU_MODE_SEARCH), (False, CPU_MODE_SEARCH), (True, "auto")])
def test_bundle_codec_resolves_the_search_from_its_backend(bundle, accelerated, expected):
    t = _Counting(bundle.codec("onnxruntime", mode_search="auto").transforms, accelerated)
    codec = bundle.codec(transforms=t)
    assert codec.mode_search == expected
    assert bundle.codec(transforms=t, mode_search="ladder").mode_search == "ladder"  # asked: kept
    px = _smooth_tile()
    for level in (2, 3):
        blob = codec.compress(px, level)
        out = codec.decompress(blob).pixels
        assert out.shape == px.shape
    assert (t.runs > 0) == (expected == "auto")  # only the accelerated default runs a network on levels 2-3


def test_onnxruntime_on_the_cpu_is_not_accelerated(bundle):
    from cvae.edge.runtime.ort import OrtTransforms

    cpu = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx", providers=["CPUExecutionProvider"])
    cuda = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx",
                         providers=["CUDAExecutionProvider", "CPUExecutionProvider"])  # no session made: not run
    assert not cpu.accelerated and cuda.accelerated
    assert bundle.codec(transforms=cpu).mode_search == CPU_MODE_SEARCH


def test_cli_and_daemon_leave_the_search_to_the_codec(tmp_path, monkeypatch, bundle, capsys):
    """cvae-encode without --mode-search codes with the codec's default for its backend (a spy on Bundle.codec:
    the real codec encodes); the daemon's config leaves it out by default."""
    import rasterio

    from cvae.edge.bundle import Bundle
    from cvae.edge.cli import encode_main
    from cvae.edge.daemon.config import DaemonConfig

    made = []
    real = Bundle.codec

    def spy(self, *args, **kwargs):
        codec = real(self, *args, **kwargs)
        made.append((kwargs.get("mode_search"), codec.mode_search))
        return codec

    monkeypatch.setattr(Bundle, "codec", spy)
    scene = tmp_path / "s.tif"
    px = _smooth_tile(4, 64)
    with rasterio.open(scene, "w", driver="GTiff", width=64, height=64, count=4, dtype="uint16") as f:
        f.write(px)
    assert encode_main([str(scene), "-o", str(tmp_path / "out"), "--level", "3", "-q"]) == 0
    assert encode_main([str(scene), "-o", str(tmp_path / "out2"), "--level", "3", "-q", "--mode-search", "auto"]) == 0
    assert made == [(None, CPU_MODE_SEARCH), ("auto", "auto")]  # this machine's ONNX Runtime runs on the CPU
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"mode search {CPU_MODE_SEARCH}") and out[1].endswith("mode search auto")  # said
    assert DaemonConfig(base_dir=tmp_path).mode_search is None
    DaemonConfig(base_dir=tmp_path).validate()
