"""``cvae-export --target trt``: build a TensorRT engine of the bundle's encoder on the target GPU.

FP16 by default, with the overflow-prone part of every GDN (the square, the convolution summing squares,
the square root and the division) pinned to FP32; one fixed tile-shape profile; a timing cache kept next
to the engines. ``--precision int8`` builds from the Q/DQ model that ``cvae-export --target int8`` wrote
(explicit quantization: the scales are in the graph, no calibrator), with FP16 and the same GDN pinning
for the layers left unquantized. The engine file is named after the GPU and TensorRT version it was built
for (an engine runs only there) and is listed in ``engines/engines.json`` inside the bundle. Engines are derived files:
they live in the ``engines/`` subfolder, which the model id does not cover.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from cvae.edge.errors import MissingDependencyError

__all__ = ["build_engine", "engine_name", "ENGINES_DIR"]

ENGINES_DIR = "engines"


def engine_name(gpu: str, trt_version: str, tile: int, batch: int, precision: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    return f"encoder_{tile}x{tile}_b{batch}_{precision}_{slug}_trt{trt_version}.engine"


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
    """Mark x*x -> conv -> sqrt -> div chains (GDN) as FP32; returns how many layers were pinned."""
    hot: set[str] = set()
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        ins = [layer.get_input(j) for j in range(layer.num_inputs)]
        names = [t.name for t in ins if t is not None]
        square = (layer.type == trt.LayerType.ELEMENTWISE and len(names) == 2 and names[0] == names[1])
        if square or any(n in hot for n in names):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
            divides = layer.type == trt.LayerType.ELEMENTWISE and layer.op == trt.ElementWiseOperation.DIV
            if not divides:
                hot.update(layer.get_output(j).name for j in range(layer.num_outputs))
    return pinned


def build_engine(bundle_dir: str | Path, tile: int, batch: int = 4, precision: str = "fp16",
                 workspace_mb: int = 1024) -> Path:
    bundle_dir = Path(bundle_dir)
    if precision == "int8":
        from cvae.export.int8 import check_qdq

        source = check_qdq(bundle_dir)  # raises "run cvae-export --target int8 first" when absent or stale
    elif precision in ("fp16", "fp32"):
        source = bundle_dir / "encoder.onnx"
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
    shape = (batch, 1, tile, tile)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", shape, shape, shape)
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
    name = engine_name(gpu, trt.__version__, tile, batch, precision)
    (engines / name).write_bytes(bytes(plan))
    cache_path.write_bytes(bytes(cache.serialize()))
    index_path = engines / "engines.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else []
    index = [e for e in index if e["file"] != name] + [{
        "file": name, "gpu": gpu, "tensorrt": trt.__version__, "tile": tile, "batch": batch,
        "precision": precision, "fp32_layers": pinned, "build_seconds": round(time.time() - t0, 1)}]
    index_path.write_text(json.dumps(index, indent=1))
    return engines / name
