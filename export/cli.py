"""``cvae-export``: turn a training checkpoint into a model bundle."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main"]


def calibration_patches(config_path: str, count: int = 96, patch: int = 128, seed: int = 1234) -> np.ndarray:
    """Spectral components of training crops (never validation scenes), float32[N, 1, P, P]."""
    from cvae.models.data import ComponentPatches, find_scenes, load_scene
    from cvae.models.train import TrainConfig

    cfg = TrainConfig.from_yaml(config_path)
    scenes = [load_scene(s) for s in find_scenes(cfg.data_dir, exclude=list(cfg.exclude))]
    data = ComponentPatches(scenes, patch, seed=seed, first_component_prob=0.0)
    rng = np.random.default_rng(seed)
    return np.stack([data.sample(rng) for _ in range(count)])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cvae-export", description="Export a trained CVAE checkpoint as a model bundle.")
    p.add_argument("--target", choices=["onnx", "trt"], default="onnx",
                   help="onnx: encoder/decoder ONNX + frozen tables + manifest; trt: a TensorRT engine of a "
                        "bundle's encoder, built on this GPU")
    p.add_argument("--checkpoint", help="onnx: checkpoint.pt written by cvae-train")
    p.add_argument("--config", help="onnx: the training config (its training data calibrates the bundle)")
    p.add_argument("-o", "--out", help="onnx: bundle folder to write (replaced whole)")
    p.add_argument("--bundle", help="trt: bundle folder to add the engine to (default: the shipped bundle)")
    p.add_argument("--tile-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4, help="trt: tiles per engine call")
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16", help="trt: engine precision")
    a = p.parse_args(argv)
    if a.tile_size <= 0 or a.tile_size % 16:
        print(f"cvae-export: --tile-size {a.tile_size} is not a multiple of 16 (the network's stride)", file=sys.stderr)
        return 2
    if a.target == "trt":
        from cvae.edge.bundle import Bundle
        from cvae.edge.errors import CvaeError
        from cvae.export.tensorrt import build_engine

        try:
            bundle = Bundle.load(a.bundle)
            path = build_engine(bundle.path, a.tile_size, a.batch, a.precision)
        except CvaeError as e:
            print(f"cvae-export: {e}", file=sys.stderr)
            return 2
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
