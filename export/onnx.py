"""torch checkpoint -> model bundle (ONNX halves, frozen tables, gains, manifest) with parity checks."""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cvae.edge.bundle import MANIFEST, Bundle, content_hash
from cvae.edge.runtime.ort import OrtTransforms
from cvae.models.cvae import CVAE, CVAEConfig, STRIDE
from cvae.models.freeze import TorchTransforms, freeze_model

__all__ = ["load_checkpoint", "export_bundle", "OPSET", "calibrate_skip_variance"]

OPSET = 17


def load_checkpoint(path: str | Path) -> tuple[CVAE, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    cfg = dict(state["model_config"])
    cfg["lambdas"] = tuple(cfg["lambdas"])
    net = CVAE(CVAEConfig(**cfg))
    net.load_state_dict(state["model"])
    return net.eval(), state


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, inp: str, out: str) -> None:
    torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET,
                      input_names=[inp], output_names=[out],
                      dynamic_axes={inp: {0: "batch", 2: "height", 3: "width"},
                                    out: {0: "batch", 2: "height", 3: "width"}})


#: skip_variance = SKIP_FACTOR x the level's calibrated MSE. Reverse water-filling would drop a component whose
#: variance is under the distortion D itself (factor 1), but D is measured here on tile-range-normalised
#: patches while scenes are coded with their (wider) scene band range, and the decision covers a whole tile's
#: component. Chosen on four scenes from training sources (s2_ben_36_85, s2_ben_56_35, l8_016037_900m,
#: l8_lc81070352015122; never the validation scenes): against factor 1, BD-rate (PSNR) median -5.2% for 0.3
#: (no scene worse), -1.4% for 0.1, +1.8% for 0.03, and the top level reaches higher PSNR.
SKIP_FACTOR = 0.3


@torch.no_grad()
def calibrate_skip_variance(net: CVAE, patches: np.ndarray) -> np.ndarray:
    """float32[L]: per level, SKIP_FACTOR x the mean squared error of coded components (normalised units). A
    component with less variance than that is cheaper left out (reverse water-filling)."""
    x = torch.from_numpy(patches)
    out = []
    for level in range(net.cfg.levels):
        r = net(x, level)
        out.append(SKIP_FACTOR * float(torch.mean((r.x_hat - x) ** 2)))
    return np.asarray(out, np.float32)


@torch.no_grad()
def export_bundle(checkpoint: str | Path, out_dir: str | Path, calibration: np.ndarray,
                  extra_manifest: dict | None = None, tile_size: int = 256) -> Bundle:
    """Write a bundle to ``out_dir`` (replaced whole, atomically) and check it against torch.

    ``calibration``: float32[N, 1, P, P] spectral components from training data, for ``skip_variance``.
    """
    net, state = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out_dir.parent if out_dir.parent.exists() else None))
    m = net.cfg.m
    _export(net.g_a, torch.zeros(1, 1, 64, 64), tmp / "encoder.onnx", "x", "y")
    _export(net.g_s, torch.zeros(1, m, 4, 4), tmp / "decoder.onnx", "y_hat", "x_hat")
    tables, gain, inv_gain = freeze_model(net)
    for lv, t in enumerate(tables):
        t.save(tmp / f"tables_level{lv}.npz")
    skip = calibrate_skip_variance(net, calibration)
    np.savez(tmp / "gains.npz", gain=gain, inv_gain=inv_gain, skip_variance=skip)
    parity = check_parity(net, tmp)
    manifest = {
        "format": "cvae-bundle", "bundle_version": 1,
        "model_id": content_hash(tmp),
        "architecture": {"name": "cvae-factorized", **asdict(net.cfg), "stride": STRIDE,
                         "parameters": sum(p.numel() for p in net.parameters())},
        "bands": "any: one network codes each spectral component of a tile (1..32 bands)",
        "normalization": "per band (x - lo) / (hi - lo), lo/hi = valid range of the tile or scene; then "
                         "a per-tile int8 KLT rotation (cvae.edge.codec.spectral)",
        "tile_size": tile_size,
        "levels": {"count": net.cfg.levels, "lambdas": list(net.cfg.lambdas),
                   "skip_variance": skip.tolist(), "order": "level 0 = lowest rate"},
        "onnx": {"opset": OPSET, "torch": torch.__version__, "encoder_input": "x float32[B,1,H,W]",
                 "decoder_input": "y_hat float32[B,M,H/16,W/16]"},
        "tables": {"precision": tables[0].precision, "max_cdf_length": int(max(t.cdf.shape[1] for t in tables))},
        "parity": parity,
        "training": {"step": int(state["step"]), **{k: v for k, v in state.get("train_config", {}).items()
                                                     if k in ("data_dir", "exclude", "validation_scenes", "patch",
                                                              "batch", "lr", "seed")}},
        "exported": {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.platform()},
    }
    if extra_manifest:
        manifest.update(extra_manifest)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_jsonable))
    tmp.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return Bundle.load(out_dir)


def check_parity(net: CVAE, bundle_dir: Path, seed: int = 0) -> dict:
    """ORT vs torch on the same input, and the cross decode: symbols from ORT decoded by torch and the reverse.

    The tolerances are asserted in tests/export; here they are measured and recorded in the manifest.
    """
    rng = np.random.default_rng(seed)
    x = (rng.random((2, 1, 128, 96), dtype=np.float32) - 0.5) * 0.5
    ort = OrtTransforms(bundle_dir / "encoder.onnx", bundle_dir / "decoder.onnx")
    tt = TorchTransforms(net)
    y_ort, y_torch = ort.analysis(x), tt.analysis(x)
    gain, inv_gain = (g.detach().numpy() for g in net.gains())
    lv = net.cfg.levels - 1
    s_ort = np.round(y_ort * gain[lv][None, :, None, None])
    s_torch = np.round(y_torch * gain[lv][None, :, None, None])
    y_hat = (s_ort * inv_gain[lv][None, :, None, None]).astype(np.float32)
    x_ort, x_torch = ort.synthesis(y_hat), tt.synthesis(y_hat)
    return {"encoder_max_abs_diff": float(np.abs(y_ort - y_torch).max()),
            "symbol_mismatch_fraction": float(np.mean(s_ort != s_torch)),
            "decoder_max_abs_diff": float(np.abs(x_ort - x_torch).max())}


def _jsonable(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
