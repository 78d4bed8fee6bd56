"""``cvae-export``: turn a training checkpoint into a model bundle."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from cvae.edge.io.files import write_atomic

__all__ = ["main"]


# small validation scenes of configs/default.yaml that the INT8 report codes unless --report-scenes is given
INT8_REPORT_SCENES = ("s2_ben_87_48_b2348.tif", "l8_elkton_b1234567.tif")


def default_config() -> Path:
    """configs/default.yaml of the source tree this package runs from."""
    import cvae

    return Path(cvae.__file__).resolve().parents[1] / "configs" / "default.yaml"


def calibration_patches(config_path: str, count: int = 96, patch: int = 128, seed: int = 1234,
                        first_component_prob: float = 0.0) -> np.ndarray:
    """Spectral components of training crops (never validation scenes), float32[N, 1, P, P]. By default
    never the first (largest) component, as ``skip_variance`` wants; INT8 calibration needs them too."""
    from cvae.models.data import ComponentPatches, find_scenes, load_scene
    from cvae.models.train import TrainConfig

    cfg = TrainConfig.from_yaml(config_path)
    scenes = [load_scene(s) for s in find_scenes(cfg.data_dir, exclude=list(cfg.exclude))]
    data = ComponentPatches(scenes, patch, seed=seed, first_component_prob=first_component_prob)
    rng = np.random.default_rng(seed)
    return np.stack([data.sample(rng) for _ in range(count)])


def export_int8(bundle_dir: str | None, config: str, report_scenes: Sequence[str] | None) -> int:
    """Calibrate and write the INT8 Q/DQ encoder, then code the report scenes with it and FP32."""
    import json
    import shlex

    from cvae.edge.bundle import Bundle
    from cvae.export.int8 import REPORT_NAME, format_report, int8_report, quantize_encoder

    bundle = Bundle.load(bundle_dir)
    if report_scenes is None:
        from cvae.models.train import TrainConfig

        names = {Path(s).name: s for s in TrainConfig.from_yaml(config).validation_scenes}
        report_scenes = [names[n] for n in INT8_REPORT_SCENES if n in names]
        for s in report_scenes:
            if not Path(s).is_file():
                print(f"cvae-export: report scene {s} is absent; skipped", file=sys.stderr)
        report_scenes = [s for s in report_scenes if Path(s).is_file()]
    else:
        missing = [s for s in report_scenes if not Path(s).is_file()]
        if missing:
            print(f"cvae-export: --report-scenes: {', '.join(missing)} do not exist", file=sys.stderr)
            return 2
    # half first components: they carry the largest amplitudes and so set the activation ranges
    calib = calibration_patches(config, first_component_prob=0.5)
    path = quantize_encoder(bundle.path, calib)
    print(f"wrote {path} (calibrated on {len(calib)} training crops of {calib.shape[-1]} px)")
    if not report_scenes:
        print("cvae-export: no report scenes found; INT8 report skipped", file=sys.stderr)
        return 0
    report = int8_report(bundle, path, report_scenes)
    report["command"] = "cvae-export " + shlex.join(sys.argv[1:])
    print(format_report(report))
    out = path.parent / REPORT_NAME
    write_atomic(out, json.dumps(report, indent=1).encode())
    print(f"wrote {out}")
    return 0


def _export_adaptive(a) -> int:
    from cvae.edge.errors import CvaeError
    from cvae.export.adaptive import DEFAULT_FIT_SCENES, export_adaptive

    if not a.out:
        print("cvae-export: --target adaptive needs -o OUT (the adaptive bundle folder to write)", file=sys.stderr)
        return 2
    data = Path(a.data) if a.data else default_config().parents[2] / "shared" / "data" / "train"
    scenes = [data / s for s in DEFAULT_FIT_SCENES]
    missing = [str(s) for s in scenes if not s.is_file()]
    if missing:
        print(f"cvae-export: fit scenes missing under {data}: {', '.join(missing[:3])}; pass --data pointing at "
              "shared/data/train", file=sys.stderr)
        return 2
    try:
        b = export_adaptive(a.bundle, a.out, [str(s) for s in scenes], progress=lambda s: print(s, file=sys.stderr))
    except (CvaeError, ValueError) as e:
        print(f"cvae-export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {b.path} model_id {b.model_id[:16]} levels {b.levels} (adaptive, derived from "
          f"{b.manifest['derived']['from'][:16]})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cvae-export", description="Export a trained CVAE checkpoint as a model bundle.")
    from cvae.edge.cliutil import VersionAction

    p.add_argument("--version", action=VersionAction, extra=("torch", "onnx"))
    p.add_argument("--target", choices=["onnx", "adaptive", "trt", "int8"], default="onnx",
                   help="onnx: encoder/decoder ONNX + frozen tables + manifest; adaptive: a factorised bundle "
                        "(--bundle) to an adaptive one (-o; tile format v3, index tables fitted on training "
                        "rasters, residual levels); trt: TensorRT engines of a bundle's encoder and decoder, built on this GPU; "
                        "int8: a Q/DQ INT8 encoder (engines/) calibrated on the training data, with a "
                        "rate-distortion report against FP32")
    p.add_argument("--checkpoint", help="onnx: checkpoint.pt written by cvae-train")
    p.add_argument("--config", help="onnx, int8: the training config (its training data calibrates the bundle); "
                                    "int8 default: configs/default.yaml")
    p.add_argument("-o", "--out", help="onnx: bundle folder to write (replaced whole)")
    p.add_argument("--bundle", help="trt, int8: bundle folder to add the engine to; adaptive: the parent bundle "
                                    "(default: the shipped bundle)")
    p.add_argument("--data", default=None, help="adaptive: the training data folder the fit scenes are relative to "
                                                "(default: ../shared/data/train beside the source tree)")
    p.add_argument("--report-scenes", nargs="+", metavar="SCENE",
                   help="int8: rasters to compare FP32 and INT8 on (default: two small validation scenes of "
                        "the config)")
    p.add_argument("--tile-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4, help="trt: tiles per engine call")
    p.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16",
                   help="trt: engine precision (int8 builds from the Q/DQ model of --target int8)")
    a = p.parse_args(argv)
    if a.tile_size <= 0 or a.tile_size % 16:
        print(f"cvae-export: --tile-size {a.tile_size} is not a multiple of 16 (the network's stride)", file=sys.stderr)
        return 2
    if a.target == "int8":
        from cvae.edge.errors import CvaeError

        config = a.config or str(default_config())
        if not Path(config).is_file():
            print(f"cvae-export: --config {config} does not exist", file=sys.stderr)
            return 2
        try:
            return export_int8(a.bundle, config, a.report_scenes)
        except CvaeError as e:
            print(f"cvae-export: {e}", file=sys.stderr)
            return 2
    if a.target == "adaptive":
        return _export_adaptive(a)
    if a.target == "trt":
        from cvae.edge.bundle import Bundle
        from cvae.edge.errors import CvaeError
        from cvae.export.tensorrt import build_engines

        try:
            bundle = Bundle.load(a.bundle)
            paths = build_engines(bundle.path, a.tile_size, a.batch, a.precision)
        except (CvaeError, ValueError) as e:
            print(f"cvae-export: {e}", file=sys.stderr)
            return 2
        for path in paths:
            print(f"wrote {path}")
        return 0
    if not a.checkpoint or not a.config or not a.out:
        print("cvae-export: --target onnx needs --checkpoint, --config and -o", file=sys.stderr)
        return 2
    if not Path(a.checkpoint).is_file():
        print(f"cvae-export: {a.checkpoint} does not exist; train first with cvae-train --config FILE", file=sys.stderr)
        return 2
    from cvae.export.onnx import export_bundle

    b = export_bundle(a.checkpoint, a.out, calibration_patches(a.config), tile_size=a.tile_size)
    print(f"wrote {b.path} model_id {b.model_id[:16]} levels {b.levels} parity {b.manifest['parity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
