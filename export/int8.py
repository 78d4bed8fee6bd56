"""``cvae-export --target int8``: an INT8 encoder by explicit quantization (Q/DQ nodes), for TensorRT.

The bundle's FP32 ``encoder.onnx`` is calibrated on real spectral components and rewritten with
``QuantizeLinear``/``DequantizeLinear`` pairs on the inputs of the analysis convolutions: per-channel
symmetric int8 weights, symmetric (zero-point 0) int8 activations, FP32 biases, outputs left unquantized.
That is the form TensorRT builds from without a calibrator (``cvae-export --target trt --precision
int8``). Every GDN's overflow-prone chain stays unquantized (TensorRT pins it to FP32), and so do the
first and last convolutions (``keep_ends``; FP16 in TensorRT)::

    x -Conv-> u -Mul(u,u)-> -Conv(gamma,beta)-> -Sqrt-> -Div(u,.)-> -Q/DQ-Conv-> ... -Q/DQ-Conv-> ... -Conv-> y
               \\______________ GDN, unquantized ______________/

The first convolution reads the raw spectral component, whose amplitude spans two decades from the first
to the last component; the last writes the latents that ``round(y * gain)`` quantises, so its error moves
symbols directly. On two validation scenes INT8 cost +0.6 % BD-rate this way, +1.9 % with the ends
quantized too, and +10 to +14 % with every convolution's output quantized as well (y itself on an int8
grid). The two
middle convolutions hold about three quarters of the encoder's multiply-adds.

The decoder is untouched, so the ground decodes INT8-coded tiles with the normal bundle; the INT8 encoder
only moves some symbols by one step. :func:`int8_report` measures what that costs per level.

The Q/DQ model is a derived file in ``<bundle>/engines/`` (not covered by the model id); it records the
model id of the encoder it was made from (in ``encoder_int8_qdq.json`` beside it, readable without onnx on
the target) and is refused by :func:`check_qdq` once the bundle changes.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from cvae.edge.errors import BundleError, InputError, MissingDependencyError
from cvae.edge.io.files import replacing

__all__ = ["quantize_encoder", "int8_report", "format_report", "gdn_nodes", "end_convs", "check_qdq", "qdq_path",
           "QDQ_NAME", "REPORT_NAME"]

ENGINES_DIR = "engines"
QDQ_NAME = "encoder_int8_qdq.onnx"
REPORT_NAME = "int8_report.json"


def qdq_path(bundle_dir: str | Path) -> Path:
    """Where ``cvae-export --target int8`` writes the Q/DQ encoder of ``bundle_dir``."""
    return Path(bundle_dir) / ENGINES_DIR / QDQ_NAME


def _onnx():
    try:
        import onnx
        from onnxruntime import quantization
    except ImportError as e:
        raise MissingDependencyError("INT8 export needs onnx and onnxruntime: pip install onnx onnxruntime") from e
    return onnx, quantization


def gdn_nodes(graph) -> list[str]:
    """Names of every GDN's square, sum-of-squares Conv, Sqrt and Div in ``graph`` (an ``onnx.GraphProto``):
    from each ``Mul`` whose two inputs are one tensor, the nodes downstream of it up to and including the
    first ``Div`` on each path."""
    consumers: dict[str, list] = {}
    for n in graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    found: list[str] = []
    seen: set[str] = set()
    for n in graph.node:
        if n.op_type != "Mul" or len(n.input) != 2 or n.input[0] != n.input[1]:
            continue
        stack = [n]
        while stack:
            m = stack.pop()
            if m.name in seen:
                continue
            seen.add(m.name)
            found.append(m.name)
            if m.op_type != "Div":
                stack.extend(c for t in m.output for c in consumers.get(t, []))
    return found


def _info_path(path: Path) -> Path:
    return path.with_suffix(".json")


def end_convs(graph) -> list[str]:
    """Names of the ``Conv`` nodes that read a graph input or write a graph output."""
    ends = {i.name for i in graph.input} | {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Conv" and (n.input[0] in ends or n.output[0] in ends)]


def _prune_dead(model) -> int:
    """Drop nodes whose outputs nothing reads (shape arithmetic left behind by constant folding) and the
    initializers they leave unread; returns how many nodes went."""
    graph, removed = model.graph, 0
    while True:
        used = {o.name for o in graph.output}.union(*(n.input for n in graph.node))
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        removed += len(dead)
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return removed


class _Patches:
    """``CalibrationDataReader`` over ``float32[N, 1, P, P]`` in batches."""

    def __init__(self, patches: np.ndarray, batch: int = 8):
        self.patches, self.batch, self.i = patches, batch, 0

    def get_next(self) -> dict | None:
        if self.i >= len(self.patches):
            return None
        x = self.patches[self.i:self.i + self.batch]
        self.i += self.batch
        return {"x": np.ascontiguousarray(x, np.float32)}

    def rewind(self) -> None:
        self.i = 0


def _check_calibration(calibration: np.ndarray) -> np.ndarray:
    c = np.asarray(calibration)
    if c.ndim != 4 or c.shape[1] != 1 or c.shape[0] == 0 or c.shape[2] % 16 or c.shape[3] % 16:
        raise InputError(f"calibration shape {c.shape}: expected float32[N, 1, P, P] with P a multiple of 16")
    if not np.isfinite(c).all():
        raise InputError("calibration patches hold NaN or infinite values")
    return c.astype(np.float32, copy=False)


def quantize_encoder(bundle_dir: str | Path, calibration: np.ndarray, out_path: str | Path | None = None,
                     keep_ends: bool = True) -> Path:
    """Write the Q/DQ INT8 encoder of ``bundle_dir`` calibrated on ``calibration: float32[N, 1, P, P]``
    (spectral components of real crops; include first components, they set the activation ranges) to
    ``out_path`` (default ``<bundle>/engines/encoder_int8_qdq.onnx``); returns the path. ``keep_ends``
    leaves the first and last convolutions unquantized."""
    onnx, q = _onnx()
    from cvae.edge.bundle import MANIFEST

    bundle_dir = Path(bundle_dir)
    calibration = _check_calibration(calibration)
    out_path = Path(out_path) if out_path is not None else qdq_path(bundle_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model_id = json.loads((bundle_dir / MANIFEST).read_text())["model_id"]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # shape inference + constant folding: GDN's gamma/beta reparametrisation becomes initializers
        q.quant_pre_process(str(bundle_dir / "encoder.onnx"), str(pre))
        model = onnx.load(str(pre))
        _prune_dead(model)
        exclude = gdn_nodes(model.graph) + (end_convs(model.graph) if keep_ends else [])
        onnx.save(model, str(pre))
        with replacing(out_path) as part:
            q.quantize_static(
                str(pre), str(part), _Patches(calibration), quant_format=q.QuantFormat.QDQ,
                op_types_to_quantize=["Conv"], per_channel=True, reduce_range=False,
                activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, nodes_to_exclude=exclude,
                calibrate_method=q.CalibrationMethod.MinMax,
                extra_options={
                    "ActivationSymmetric": True,   # TensorRT takes zero-point 0 only
                    "WeightSymmetric": True,
                    "QuantizeBias": False,         # TensorRT fuses FP32 biases itself
                    "AddQDQPairToWeight": True,    # FP32 weights + Q/DQ: the form TensorRT 8.x and 10 parse
                    "OpTypesToExcludeOutputQuantization": ["Conv"],  # GDN and y read unrounded conv outputs
                    # not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops those batches uncounted
                })
            _info_path(out_path).unlink(missing_ok=True)  # never a new model beside an old record, or the reverse
    info = {"model_id": model_id, "source": "encoder.onnx", "calibration_patches": int(len(calibration)),
            "calibration_patch": int(calibration.shape[-1]), "calibrate_method": "minmax, symmetric",
            "weights": "int8 per output channel, symmetric", "unquantized_nodes": exclude,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _info_path(out_path).write_text(json.dumps(info, indent=1))
    return out_path


def check_qdq(bundle_dir: str | Path, path: str | Path | None = None) -> Path:
    """The Q/DQ encoder of ``bundle_dir``, checked to belong to this bundle's model id."""
    from cvae.edge.bundle import MANIFEST

    path = Path(path) if path is not None else qdq_path(bundle_dir)
    if not path.is_file():
        raise BundleError(f"{path} is missing: run cvae-export --target int8 first")
    model_id = json.loads((Path(bundle_dir) / MANIFEST).read_text())["model_id"]
    try:
        made_from = json.loads(_info_path(path).read_text()).get("model_id")
    except (OSError, ValueError):
        made_from = None
    if made_from != model_id:
        raise BundleError(f"{path} was made from model {str(made_from)[:12]}, this bundle is {model_id[:12]}: "
                          "run cvae-export --target int8 again")
    return path


def int8_report(bundle, qdq_path: str | Path, scenes: Sequence[str | Path], tile_size: int | None = None) -> dict:
    """Code each scene in ``scenes`` at every level with the FP32 and the INT8 Q/DQ encoder (ONNX Runtime
    CPU), decode both with the bundle's FP32 decoder, and compare. bpp counts tile bytes (no packet
    headers) per sample (pixel and band); PSNR is :func:`psnr_bands` over valid pixels; BD-rate is INT8's
    rate change at equal PSNR over the levels. ``mean`` rows average the scenes."""
    from cvae.edge.io.raster import band_ranges, read_raster
    from cvae.edge.io.tiling import tile_grid
    from cvae.metrics import bd_rate, psnr_bands
    from cvae.edge.runtime.ort import OrtTransforms

    if not scenes:
        raise InputError("int8_report needs at least one scene")
    qdq_path = check_qdq(bundle.path, qdq_path)
    cpu = ["CPUExecutionProvider"]
    dec = bundle.path / "decoder.onnx"
    codecs = {"fp32": bundle.codec(transforms=OrtTransforms(bundle.path / "encoder.onnx", dec, providers=cpu)),
              "int8": bundle.codec(transforms=OrtTransforms(qdq_path, dec, providers=cpu))}  # decoder unused
    ground = codecs["fp32"]  # decodes both: the ground has one FP32 decoder
    tile_size = tile_size or int(bundle.manifest.get("tile_size", 256))
    per_scene = {}
    for path in scenes:
        r = read_raster(path)
        pixels = r.pixels
        if (pixels.dtype.kind == "f" and np.isfinite(pixels).all() and np.array_equal(pixels, np.round(pixels))
                and np.abs(pixels).max() < 65536):
            pixels = pixels.astype(np.uint16 if pixels.min() >= 0 else np.int32)  # as encode_scene does
        br = band_ranges(pixels, r.valid, r.nodata)
        windows = list(tile_grid(pixels.shape[1], pixels.shape[2], tile_size))
        analyzed = {k: [c.analyze(pixels[:, w.slices[0], w.slices[1]], r.valid[w.slices], band_range=br)
                        for w in windows] for k, c in codecs.items()}
        err = sum(float(np.sum((a.y - b.y) ** 2)) for a, b in zip(analyzed["int8"], analyzed["fp32"]))
        rows = []
        for lv in range(bundle.levels):
            row = {"level": lv}
            for k, tiles in analyzed.items():
                rec, nbytes = np.zeros_like(pixels), 0
                for w, a in zip(windows, tiles):
                    data = ground.encode(a, lv)  # same tables: only the latents differ
                    nbytes += len(data)
                    rec[:, w.slices[0], w.slices[1]] = ground.decompress(data).pixels
                row[f"bpp_{k}"] = 8 * nbytes / pixels.size
                row[f"psnr_{k}"] = psnr_bands(pixels, rec, r.valid)
            row["bpp_change_pct"] = 100 * (row["bpp_int8"] / row["bpp_fp32"] - 1)
            row["psnr_change_db"] = row["psnr_int8"] - row["psnr_fp32"]
            rows.append(row)
        curve = {k: [(x[f"bpp_{k}"], x[f"psnr_{k}"]) for x in rows] for k in codecs}
        per_scene[Path(path).name] = {
            "shape": list(pixels.shape), "dtype": str(pixels.dtype),
            "latent_rms_error": float(np.sqrt(err / sum(a.y.size for a in analyzed["fp32"]))),
            "bd_rate_pct": float(bd_rate(curve["fp32"], curve["int8"])), "levels": rows}
    mean = [{k: (lv if k == "level" else float(np.mean([s["levels"][lv][k] for s in per_scene.values()])))
             for k in rows[0]} for lv in range(bundle.levels)]
    return {"model_id": bundle.model_id, "qdq": str(qdq_path), "tile_size": tile_size,
            "runtime": "onnxruntime CPU", "bpp": "tile bytes * 8 / (pixels * bands)",
            "bd_rate_pct": float(np.mean([s["bd_rate_pct"] for s in per_scene.values()])),
            "scenes": per_scene, "mean": mean}


def format_report(report: dict) -> str:
    """The per-level table (mean over scenes) as text."""
    head = ("level", "bpp fp32", "bpp int8", "d bpp", "PSNR fp32", "PSNR int8", "d PSNR")
    lines = [f"INT8 Q/DQ vs FP32 encoder (decoder FP32), mean over {len(report['scenes'])} scene(s): "
             + ", ".join(report["scenes"]),
             "{:>5} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8}".format(*head)]
    for r in report["mean"]:
        lines.append(f"{r['level']:>5} {r['bpp_fp32']:9.4f} {r['bpp_int8']:9.4f} {r['bpp_change_pct']:+7.2f}% "
                     f"{r['psnr_fp32']:10.2f} {r['psnr_int8']:10.2f} {r['psnr_change_db']:+8.3f}")
    lines.append("BD-rate of INT8 (equal PSNR): " + ", ".join(
        f"{n} {s['bd_rate_pct']:+.2f}%" for n, s in report["scenes"].items()) + f"; mean {report['bd_rate_pct']:+.2f}%")
    return "\n".join(lines)
