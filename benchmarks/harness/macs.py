"""Multiply-accumulates per pixel and component of the bundle's networks, counted from the ONNX graphs.

Counts Conv / ConvTranspose (kernel x input channels / groups per output element) and GDN-like MatMul/Conv 1x1
layers as ONNX stores them, at a 256 x 256 input. Onboard, latent levels run the encoder only; residual levels
(adaptive ladder) run the encoder and the decoder (the residual is taken against the decoder's output).

    python benchmarks/harness/macs.py [--bundle DIR] [--out benchmarks/results/BUNDLE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT  # noqa: E402
SIDE = 256


def graph_macs(path: Path, input_shape: list[int]) -> int:
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    inp = model.graph.input[0]
    for d, v in zip(inp.type.tensor_type.shape.dim, input_shape):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            w = inits.get(node.input[1]) or shapes.get(node.input[1])  # GDN's 1x1 weights are computed in-graph
            out = shapes.get(node.output[0])
            if not w or 0 in w or not out or 0 in out:
                # GDN: a C x C 1x1 convolution of x^2 whose in-graph weights shape inference cannot size
                src = shapes.get(node.input[0])
                if src and 0 not in src:
                    total += src[1] * src[1] * src[2] * src[3]
                continue
            if node.op_type == "Conv":  # w: [Cout, Cin/g, k, k]; per output element Cin/g*k*k
                per = w[1] * w[2] * w[3]
                total += per * out[1] * out[2] * out[3]
            else:  # w: [Cin, Cout/g, k, k]; every input element touches Cout/g*k*k outputs
                src = shapes.get(node.input[0])
                total += src[1] * w[1] * w[2] * w[3] * src[2] * src[3]
        elif node.op_type in ("MatMul", "Gemm"):
            w = inits.get(node.input[1])
            out = shapes.get(node.output[0])
            if w and out:
                n = 1
                for d in out[:-1]:
                    n *= d
                total += n * w[0] * (w[1] if len(w) > 1 else 1)
    return total


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=None)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    b = Bundle.load(a.bundle)
    m = b.gain.shape[1]
    enc = graph_macs(b.path / "encoder.onnx", [1, 1, SIDE, SIDE]) / SIDE ** 2
    dec = graph_macs(b.path / "decoder.onnx", [1, m, SIDE // 16, SIDE // 16]) / SIDE ** 2
    res = {"bundle": b.model_id[:12], "entropy_model": b.entropy_model,
           "encoder_macs_per_pixel_component": round(enc), "decoder_macs_per_pixel_component": round(dec),
           "onboard_macs_latent_levels": round(enc),
           "onboard_macs_residual_levels": round(enc + dec) if b.ladder is not None and b.ladder.residual_levels else None,
           "command": "python benchmarks/harness/macs.py" + (f" --bundle {a.bundle}" if a.bundle else "")}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "macs.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
