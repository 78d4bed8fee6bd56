"""cvae-export: ONNX halves match torch, latents cross-decode, the bundle loads and codes tiles."""
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from cvae.edge.bundle import Bundle, content_hash
from cvae.edge.errors import BundleError
from cvae.edge.runtime.ort import OrtTransforms
from cvae.export.onnx import export_bundle, load_checkpoint
from cvae.models.cvae import CVAE, CVAEConfig
from cvae.models.freeze import TorchTransforms


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    torch.manual_seed(0)
    net = CVAE(CVAEConfig(n=16, m=24, act="gdn", lambdas=(0.01, 0.02, 0.04, 0.08)))
    ckpt = d / "checkpoint.pt"
    torch.save({"model": net.state_dict(), "model_config": asdict(net.cfg), "step": 7}, ckpt)
    rng = np.random.default_rng(0)
    calib = (rng.random((4, 1, 32, 32), dtype=np.float32) - 0.5) * 0.2
    bundle = export_bundle(ckpt, d / "bundle", calib)
    return ckpt, bundle


def test_onnx_matches_torch(exported):
    ckpt, bundle = exported
    net, _ = load_checkpoint(ckpt)
    rng = np.random.default_rng(1)
    x = (rng.random((3, 1, 80, 48), dtype=np.float32) - 0.5) * 0.8
    ort = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx")
    tt = TorchTransforms(net)
    # fp32 ORT vs fp32 torch: same graph, different kernels and summation order
    np.testing.assert_allclose(ort.analysis(x), tt.analysis(x), rtol=1e-4, atol=1e-5)
    y = rng.normal(size=(2, 24, 5, 3)).astype(np.float32) * 3
    np.testing.assert_allclose(ort.synthesis(y), tt.synthesis(y), rtol=1e-4, atol=1e-5)
    assert bundle.manifest["parity"]["encoder_max_abs_diff"] < 1e-4


def test_latents_cross_decode_between_onnx_and_torch(exported):
    """Symbols coded from ONNX Runtime analysis decode through torch's synthesis and the reverse; the frozen
    tables make the bytes the same whichever side produced them."""
    ckpt, bundle = exported
    net, _ = load_checkpoint(ckpt)
    rng = np.random.default_rng(2)
    tile = (rng.normal(size=(3, 64, 64)).cumsum(axis=2) * 30 + 2000).clip(0, 4095).astype(np.uint16)
    ort_codec = bundle.codec(transforms=OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx"))
    torch_codec = bundle.codec(transforms=TorchTransforms(net))
    for level in range(bundle.levels):
        a, b = ort_codec.compress(tile, level), torch_codec.compress(tile, level)
        assert a == b  # identical bytes: the rounding of y * gain agrees
        ra, rb = ort_codec.decompress(a).pixels, torch_codec.decompress(a).pixels
        # same symbols through fp32 ORT and torch decoders: reconstructions differ by at most one code value
        assert np.abs(ra.astype(int) - rb.astype(int)).max() <= 1


def test_manifest_records_what_a_user_needs(exported):
    _, bundle = exported
    m = bundle.manifest
    assert m["model_id"] == content_hash(bundle.path)
    assert m["levels"]["count"] == 4 and len(m["levels"]["skip_variance"]) == 4
    assert m["onnx"]["opset"] == 17 and m["architecture"]["act"] == "gdn" and m["tile_size"] == 256
    assert m["training"]["step"] == 7


def test_modified_bundle_is_refused(exported, tmp_path):
    import shutil

    _, bundle = exported
    copy = tmp_path / "b"
    shutil.copytree(bundle.path, copy)
    with open(copy / "gains.npz", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError, match="model id"):
        Bundle.load(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest"):
        Bundle.load(copy)


def test_cli_reports_missing_checkpoint(tmp_path, capsys):
    from cvae.export.cli import main

    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--config", "x.yaml", "-o", str(tmp_path / "b")]) == 2
    assert "train first" in capsys.readouterr().err


def test_trt_export_without_tensorrt_says_to_build_on_the_target(capsys):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here: the trt-marked test covers the build")
    except ImportError:
        pass
    from cvae.export.cli import main

    assert main(["--target", "trt"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT" in err and "target" in err


@pytest.mark.trt
@pytest.mark.gpu
def test_trt_engine_matches_onnx_runtime(tmp_path):
    """On a device with TensorRT and a GPU: build the FP16 engines and compare their latents and images with ORT's."""
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda")
    import shutil

    from cvae.edge.runtime.trt import TrtTransforms, find_engine
    from cvae.export.tensorrt import build_engines

    shutil.copytree(Bundle.load().path, tmp_path / "b")
    build_engines(tmp_path / "b", tile=64, batch=2)
    ort = OrtTransforms(tmp_path / "b" / "encoder.onnx", tmp_path / "b" / "decoder.onnx")
    trt_t = TrtTransforms(find_engine(tmp_path / "b"), fallback=ort,
                          synthesis_engine=find_engine(tmp_path / "b", half="decoder", tile=64))
    assert trt_t.accelerated  # both halves on the GPU: the codec's default search is 'auto'
    x = (np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32) - 0.5) * 0.5
    y_ort, y_trt = ort.analysis(x), trt_t.analysis(x)
    # FP16 engine with GDN pinned to FP32: latents within a few hundredths of a quantisation step
    assert np.abs(y_ort - y_trt).max() < 0.05 * max(1.0, np.abs(y_ort).max())
    y_hat = np.round(y_ort)
    x_ort, x_trt = ort.synthesis(y_hat), trt_t.synthesis(y_hat)
    # FP16 decoder with inverse GDN pinned to FP32: within 1% of the image's range (the residual steps it serves
    # are 14-20% of it)
    assert np.abs(x_ort - x_trt).max() < 0.01 * max(1e-3, float(np.ptp(x_ort)))
