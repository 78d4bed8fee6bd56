"""``cvae-export --target trt``: build TensorRT engines of the bundle's encoder and decoder on the target GPU.

FP16 by default, with the overflow-prone part of every GDN and inverse GDN (the square, the convolution summing
squares, the square root, up to the division or product with the layer's input) pinned to FP32; one fixed tile-shape
profile; a timing cache kept next to the engines. ``--precision int8`` builds the encoder from the Q/DQ model that
``cvae-export --target int8`` wrote (explicit quantization: the scales are in the graph, no calibrator), with FP16
and the same GDN pinning for the layers left unquantized; its decoder engine is FP16 (there is no INT8 synthesis).
The decoder engine runs the encoder's synthesis (levels 2-3 under ``mode_search: auto``, which is the default only
where both halves run on the GPU: ``plan.default_mode_search``); the ground decodes on ONNX Runtime in FP32, so the
encoder's residual is measured against FP16 reconstructions the ground does not make exactly (a relative error near
FP16's 1e-3, against residual steps of 0.14-0.2 of a band's range there). Engine files are named after the half, the
GPU and the TensorRT version they were built for (an engine runs only there) and listed in ``engines/engines.json``
inside the bundle. Engines are derived files: they live in the ``engines/`` subfolder, which the model id does not
cover.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from cvae.edge.errors import MissingDependencyError

__all__ = ["build_engine", "build_engines", "engine_name", "ENGINES_DIR", "HALVES"]

ENGINES_DIR = "engines"
#: the network halves an engine is built of: their ONNX file in the bundle
HALVES = {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}


def engine_name(gpu: str, trt_version: str, tile: int, batch: int, precision: str, half: str = "encoder") -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    return f"{half}_{tile}x{tile}_b{batch}_{precision}_{slug}_trt{trt_version}.engine"


def _imports():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise MissingDependencyError(
            "cvae-export --target trt needs TensorRT and a CUDA GPU: build the engine on the target itself "
            "(Jetson: JetPack ships TensorRT; elsewhere pip install tensorrt), see deploy/JETSON.md") from e
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise MissingDependencyError("cvae-export --target trt needs pycuda (pip install pycuda) to query the GPU") from e
    try:
        cuda.init()
        gpu = cuda.Device(0).name()
    except cuda.Error as e:
        raise MissingDependencyError(f"no usable CUDA GPU ({e}); build the engine on the target") from e
    return trt, gpu


def _pin_gdn_to_fp32(network, trt) -> int:
    """Mark x*x -> conv -> sqrt -> x / . (GDN) and x * . (inverse GDN) chains as FP32; returns how many layers were
    pinned. A chain ends at the division, or at the product of a pinned tensor with one that is not (the layer's
    input x: the inverse GDN's last step); the layers after it keep the engine's precision."""
    hot: set[str] = set()
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        ins = [layer.get_input(j) for j in range(layer.num_inputs)]
        names = [t.name for t in ins if t is not None]
        elementwise = layer.type == trt.LayerType.ELEMENTWISE
        square = elementwise and len(names) == 2 and names[0] == names[1]
        if square or any(n in hot for n in names):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
            ends = elementwise and not square and (
                layer.op == trt.ElementWiseOperation.DIV or
                (layer.op == trt.ElementWiseOperation.PROD and sum(n in hot for n in names) == 1))
            if not ends:
                hot.update(layer.get_output(j).name for j in range(layer.num_outputs))
    return pinned


def build_engines(bundle_dir: str | Path, tile: int, batch: int = 4, precision: str = "fp16",
                  workspace_mb: int = 1024) -> list[Path]:
    """``cvae-export --target trt``: the encoder's engine at ``precision`` and the decoder's (FP16 when the encoder
    is INT8: the synthesis has no Q/DQ model), both for ``tile``-pixel tiles, ``batch`` at a time."""
    return [build_engine(bundle_dir, tile, batch, precision, workspace_mb, "encoder"),
            build_engine(bundle_dir, tile, batch, "fp16" if precision == "int8" else precision, workspace_mb,
                         "decoder")]


def build_engine(bundle_dir: str | Path, tile: int, batch: int = 4, precision: str = "fp16",
                 workspace_mb: int = 1024, half: str = "encoder") -> Path:
    """The engine of network ``half`` ('encoder': input ``x: float32[batch, 1, tile, tile]``; 'decoder': input
    ``y_hat: float32[batch, M, tile/16, tile/16]``) written to ``engines/`` and listed in its index."""
    bundle_dir = Path(bundle_dir)
    if half not in HALVES:
        raise ValueError(f"half: {half!r} is not 'encoder' or 'decoder'")
    if precision == "int8" and half == "encoder":
        from cvae.export.int8 import check_qdq

        source = check_qdq(bundle_dir)  # raises "run cvae-export --target int8 first" when absent or stale
    elif precision in ("fp16", "fp32"):
        source = bundle_dir / HALVES[half]
    elif precision == "int8":
        raise ValueError("precision: the decoder has no INT8 model; build its engine fp16 or fp32")
    else:
        raise ValueError(f"precision: {precision!r} is not 'fp16', 'fp32' or 'int8'")
    trt, gpu = _imports()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(source.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {source.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    pinned = 0
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = _pin_gdn_to_fp32(network, trt)
    if precision == "int8":  # Q/DQ scales come from the graph: explicit quantization, no calibrator
        config.set_flag(trt.BuilderFlag.INT8)
    inp = network.get_input(0)
    shape = (batch, 1, tile, tile) if half == "encoder" else (batch, int(inp.shape[1]), tile // 16, tile // 16)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    engines = bundle_dir / ENGINES_DIR
    engines.mkdir(exist_ok=True)
    cache_path = engines / "timing.cache"
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    t0 = time.time()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the engine; run with a TensorRT logger at VERBOSE for details")
    name = engine_name(gpu, trt.__version__, tile, batch, precision, half)
    (engines / name).write_bytes(bytes(plan))
    cache_path.write_bytes(bytes(cache.serialize()))
    index_path = engines / "engines.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else []
    index = [e for e in index if e["file"] != name] + [{
        "file": name, "half": half, "gpu": gpu, "tensorrt": trt.__version__, "tile": tile, "batch": batch,
        "precision": precision, "fp32_layers": pinned, "build_seconds": round(time.time() - t0, 1)}]
    index_path.write_text(json.dumps(index, indent=1))
    return engines / name
