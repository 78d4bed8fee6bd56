"""``bench.py speed``: time per encoder stage on real scenes, per backend.

Times each stage of the encoder (read, tile, network, quantize, entropy code, packetize, write) per backend,
the network's MACs from the ONNX graph against a numpy matrix product, our range coder against constriction
(``coder_speed.py``), and our whole encode against OpenJPEG at the same rate. ``run_speed`` builds the record
written to ``NAME.json``, ``speed_markdown`` the ``NAME.md``. On a Jetson, ``tegrastats`` is sampled during each
backend's run for the energy per megapixel.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import (CODEC_ERRORS, DEFAULT_OUT, ROOT, bar, find_scenes, fmt, machine_info,  # noqa: E402
                          native_pixels, sibling, utc_now)

__all__ = ["BACKENDS", "STAGES", "SpeedConfig", "Tegrastats", "build_backends", "coder_vs_constriction",
           "encoder_macs_per_pixel", "j2k_at_rate", "matmul_gflops", "parse_tegrastats_power", "run_speed",
           "speed_markdown", "speed_scene", "time_pipeline"]

#: stages of one encode (time_pipeline); all but ``write`` are the whole encode, read to packets
STAGES = ("read_packetize", "spectral", "network", "code", "write")
BACKENDS = ("onnxruntime", "torch", "tensorrt")


# -- references: MACs, matrix product ---------------------------------------------------------------
def encoder_macs_per_pixel(onnx_path: str | Path) -> dict:
    """Multiply-accumulates of every Conv/ConvTranspose per input pixel of one component.

    A node's MACs per output position = C_out * C_in/group * kh * kw (weight shape from the initializers,
    else from ONNX shape inference); output positions per input pixel = 1 / (cumulative stride)^2, the stride
    carried from the graph input through every node (elementwise nodes keep their input's)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(onnx_path))
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
        for vi in inferred.graph.value_info:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            shapes.setdefault(vi.name, dims)
    except onnx.shape_inference.InferenceError:  # the initializers alone still cover plain convolutions
        pass
    scale = {i.name: 1.0 for i in model.graph.input}  # input pixels per output position, per tensor
    layers, total = [], 0.0
    for node in model.graph.node:
        s_in = max((scale[i] for i in node.input if i in scale), default=1.0)
        s_out = s_in
        if node.op_type in ("Conv", "ConvTranspose"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = shapes.get(node.input[1])
            if not w or None in w:
                raise ValueError(f"{onnx_path}: cannot tell the weight shape of {node.name or node.op_type}; "
                                 "export with static weights")
            strides = attrs.get("strides", [1] * (len(w) - 2))
            sy, sx = strides[0], strides[-1]
            group = attrs.get("group", 1)
            if node.op_type == "Conv":
                s_out = s_in * sy * sx
                per_pos = w[0] * w[1] * int(np.prod(w[2:]))  # [C_out, C_in/group, kh, kw]
            else:
                s_out = s_in / (sy * sx)
                per_pos = w[0] * w[1] * group * int(np.prod(w[2:])) / (sy * sx)  # [C_in, C_out/group, kh, kw]
            macs = per_pos / s_out
            layers.append({"node": node.name or node.op_type, "weight": w, "strides": list(strides),
                           "group": group, "macs_per_pixel": macs})
            total += macs
        for o in node.output:
            scale[o] = s_out
    return {"macs_per_pixel": total, "layers": layers}


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """float32 n x n matrix product through numpy's BLAS, 2 n^3 / median time."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def cuda_matmul_gflops(n: int = 4096, repeats: int = 5) -> float | None:
    """float32 n x n matrix product on the CUDA device through torch (TF32 off), or None without one:
    the reference for the torch-cuda backend's achieved GFLOP/s."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.rand(n, n, device="cuda"), torch.rand(n, n, device="cuda")
    a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


# -- one timed encode -------------------------------------------------------------------------------
class _Clock:
    """Seconds spent in the network and in the codec's per-tile calls during one product encode. The analysis
    network runs lazily (inside ``encode`` or a rate estimate, whenever a level first needs latents), so the
    network's seconds are taken out of whichever timed call they ran in: ``analyze`` and ``encode`` hold their
    own work only."""

    NETWORK = ("analysis", "synthesis")

    def __init__(self) -> None:
        self.s = dict.fromkeys(("analysis", "synthesis", "analyze", "encode"), 0.0)
        self.tile = []  # analyze + encode of each tile

    def timed(self, key: str, fn):
        def call(*args, **kwargs):
            net0 = self.s["analysis"] + self.s["synthesis"]
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                if key not in self.NETWORK:
                    spent -= self.s["analysis"] + self.s["synthesis"] - net0
                self.s[key] += spent
        return call


class _TimedCodec:
    """The product's TileCodec, its per-tile calls timed (everything else passes through unchanged)."""

    def __init__(self, codec, clock: _Clock):
        self._codec, self._clock = codec, clock

    def __getattr__(self, name):
        return getattr(self._codec, name)

    def analyze(self, *args, **kwargs):
        t0 = time.perf_counter()
        a = self._clock.timed("analyze", self._codec.analyze)(*args, **kwargs)
        self._clock.tile.append(time.perf_counter() - t0)
        return a

    def encode(self, a, level):
        t0 = time.perf_counter()
        body = self._clock.timed("encode", self._codec.encode)(a, level)
        self._clock.tile[-1] += time.perf_counter() - t0
        return body


@contextlib.contextmanager
def _timed_network(codec, clock: _Clock):
    """Time the network halves inside ``codec`` for the duration (restored after)."""
    inner = codec.latents.transforms

    class Timed:
        analysis = staticmethod(clock.timed("analysis", inner.analysis))
        synthesis = staticmethod(clock.timed("synthesis", inner.synthesis))

    codec.latents.transforms = Timed()
    try:
        yield
    finally:
        codec.latents.transforms = inner


def time_pipeline(path: Path, bundle, codec, level: int, tile_size: int, workdir: Path,
                  metadata_every: int | None = None, threads: int = 1) -> dict:
    """One timed pass of the product's encoder (``cvae.edge.encoder.encode_scene``, the code cvae-encode and
    the daemon run), read to packets, then the packet file written; stages split out by timing the codec's
    per-tile calls and the network inside them:

    ``network``: the analysis and synthesis transforms; ``spectral``: the rest of ``analyze`` (checks, KLT,
    padding); ``code``: the rest of ``encode`` (mode plan, quantisation, wavelet, range coding, tile framing);
    ``read_packetize``: everything else of the encode (scan, windowed reads, metadata, CCSDS packets);
    ``write``: the packet file, temp + fsync + rename. ``threads`` > 1 codes a row's tiles in parallel: the
    stages then sum the threads' seconds."""
    from cvae.edge.encoder import METADATA_EVERY, EncodeOptions, encode_scene
    from cvae.edge.io.raster import scan_raster

    info = scan_raster(path)
    clock = _Clock()
    # a fixed scene id (CRC-32 of the name) so a test can compare the bytes with encode_scene's
    opts = EncodeOptions(level=level, tile_size=tile_size,
                         metadata_every=METADATA_EVERY if metadata_every is None else metadata_every,
                         scene_id=zlib.crc32(path.stem.encode()), threads=threads)
    with _timed_network(codec, clock):
        t0 = time.perf_counter()
        enc = encode_scene(path, bundle, _TimedCodec(codec, clock), opts)
        total = time.perf_counter() - t0
    t0 = time.perf_counter()
    _write_packets(workdir / f"{path.stem}.pkt", enc.packets)
    write = time.perf_counter() - t0
    s = clock.s
    network = s["analysis"] + s["synthesis"]
    t = {"read_packetize": total - s["analyze"] - s["encode"] - network, "spectral": s["analyze"],
         "network": network, "code": s["encode"], "write": write}
    c, h, w = info.shape
    net_pixels = sum(c * (-(-win_h // 16) * 16) * (-(-win_w // 16) * 16) for win_h, win_w in _tile_shapes(h, w, tile_size))
    return {"stages_s": t, "tiles": enc.tiles, "pixels": h * w, "samples": c * h * w, "bands": c,
            "dtype": str(info.dtype), "network_pixels": net_pixels, "nbytes": enc.nbytes, "tile_latency_s": clock.tile}


def _tile_shapes(h: int, w: int, tile_size: int) -> list[tuple[int, int]]:
    from cvae.edge.io.tiling import tile_grid

    return [(win.height, win.width) for win in tile_grid(h, w, tile_size)]


def _write_packets(path: Path, packets: list[bytes]) -> None:
    from cvae.edge.io.files import write_atomic  # the product's writer: temp + fsync + rename

    write_atomic(path, packets)


def speed_scene(path: Path, bundle, codec, level: int, tile_size: int, repeats: int, macs: float) -> dict:
    """Medians over ``repeats`` timed passes (after a one-tile warm-up of the backend)."""
    from cvae.edge.io.raster import read_raster

    r = read_raster(path)
    px = native_pixels(r.pixels)
    codec.analyze(px[:, :min(tile_size, px.shape[1]), :min(tile_size, px.shape[2])])  # session creation, caches
    runs, lat = [], []
    with tempfile.TemporaryDirectory(prefix="cvae-bench-") as d:
        for _ in range(repeats):
            run = time_pipeline(path, bundle, codec, level, tile_size, Path(d))
            runs.append(run)
            lat += run["tile_latency_s"]
    stages = {k: statistics.median(x["stages_s"][k] for x in runs) for k in STAGES}
    total = statistics.median(sum(x["stages_s"].values()) for x in runs)
    encode = statistics.median(sum(x["stages_s"][k] for k in STAGES[:-1]) for x in runs)
    first = runs[0]
    return {"tiles": first["tiles"], "bands": first["bands"], "dtype": first["dtype"], "pixels": first["pixels"],
            "bytes": first["nbytes"], "bpp": 8 * first["nbytes"] / first["samples"], "stages_s": stages,
            "pipeline_s": total, "encode_s": encode, "tiles_per_s": first["tiles"] / total,
            "mpix_per_s": first["pixels"] / total / 1e6, "encode_mpix_per_s": first["pixels"] / encode / 1e6,
            "tile_latency_p50_ms": 1e3 * float(np.percentile(lat, 50)),
            "tile_latency_p99_ms": 1e3 * float(np.percentile(lat, 99)),
            "network_gflops": 2 * macs * first["network_pixels"] / stages["network"] / 1e9 if stages["network"] > 0
            else 0.0,  # no tile ran the network ('auto''s gate)
            "repeats": [x["stages_s"] for x in runs]}


def build_backends(bundle, names: Sequence[str], checkpoint: Path, mode_search: str = "auto"
                   ) -> tuple[dict, dict, dict]:
    """({backend: TileCodec}, {backend: why skipped}, {backend: note})."""
    from cvae.edge.runtime.ort import OrtTransforms

    codecs, skipped, notes = {}, {}, {}
    ort = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx", providers=["CPUExecutionProvider"])
    if "onnxruntime" in names:
        codecs["onnxruntime-cpu-fp32"] = bundle.codec(transforms=ort, mode_search=mode_search)
        notes["onnxruntime-cpu-fp32"] = f"CPUExecutionProvider, default threads, fp32, mode search {mode_search}"
        from cvae.edge.errors import BundleError
        from cvae.export.int8 import check_qdq

        try:  # the INT8 Q/DQ encoder of cvae-export --target int8, when it was made for this bundle
            qdq = check_qdq(bundle.path)
        except BundleError as e:
            skipped["onnxruntime-cpu-int8"] = str(e)
        else:
            codecs["onnxruntime-cpu-int8"] = bundle.codec(mode_search=mode_search, transforms=OrtTransforms(
                qdq, bundle.path / "decoder.onnx", providers=["CPUExecutionProvider"]))
            notes["onnxruntime-cpu-int8"] = (f"{qdq.name} (Q/DQ: int8 weights and activations inside, "
                                             "GDN and the end convolutions in fp32), CPUExecutionProvider")
    if "torch" in names:
        if importlib.util.find_spec("torch") is None:
            skipped["torch"] = "torch is not installed (pip install torch)"
        elif not checkpoint.is_file():
            skipped["torch"] = f"no checkpoint at {checkpoint} (train with cvae-train, or pass --checkpoint)"
        else:
            import torch
            from cvae.export.onnx import load_checkpoint
            from cvae.models.freeze import TorchTransforms

            net, state = load_checkpoint(checkpoint)
            codecs["torch-cpu-fp32"] = bundle.codec(transforms=TorchTransforms(net), mode_search=mode_search)
            notes["torch-cpu-fp32"] = (f"weights from {checkpoint} (step {state.get('step')}), not the bundle's: "
                                       f"timing only; {torch.get_num_threads()} threads")
            if torch.cuda.is_available():  # the network on the GPU; host<->device copies are inside its time
                gpu = copy.deepcopy(net)  # the same weights, not a second read of the checkpoint
                codecs["torch-cuda-fp32"] = bundle.codec(transforms=TorchTransforms(gpu.to("cuda")), mode_search=mode_search)
                notes["torch-cuda-fp32"] = (f"{torch.cuda.get_device_name()}, fp32, weights from {checkpoint}: "
                                            "timing only; each tile's components are one batch")
            else:
                skipped["torch-cuda"] = "no CUDA device visible to torch"
    if "tensorrt" in names:
        from cvae.edge.runtime.trt import TrtTransforms, find_decoder, find_engine

        if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("pycuda") is None:
            skipped["tensorrt"] = "TensorRT and pycuda are not installed (JetPack, or pip install tensorrt pycuda)"
        else:
            engine = find_engine(bundle.path)
            if engine is None:
                skipped["tensorrt"] = (f"no engine for this GPU and TensorRT version in {bundle.path / 'engines'} "
                                       "(build one with cvae-export --target trt)")
            else:
                decoder = find_decoder(bundle.path, engine)
                codecs["tensorrt"] = bundle.codec(transforms=TrtTransforms(engine, fallback=ort,
                                                                           synthesis_engine=decoder),
                                                  mode_search=mode_search)
                notes["tensorrt"] = (f"engine {Path(engine['path']).name}, batch {engine['batch']}, "
                                     f"tile {engine['tile']}; synthesis "
                                     f"{Path(decoder['path']).name if decoder else 'on ONNX Runtime (no decoder engine)'}")
    return codecs, skipped, notes


# -- comparisons: range coder, OpenJPEG; Jetson power -----------------------------------------------
def coder_vs_constriction(n: int, repeats: int) -> dict:
    """coder_speed.py's problem and timings: our rANS against constriction's AnsCoder and RangeEncoder."""
    cs = sibling("coder_speed")
    cfg = cs.Config(n=n, repeats=repeats)
    problem = cs.make_problem(cfg)
    rows = [cs.bench_ours(problem, cfg)]
    out = {"config": asdict(cfg), "ideal_bits_per_symbol": problem.ideal_bits / cfg.n}
    if importlib.util.find_spec("constriction") is None:
        out["skipped"] = "constriction is not installed (pip install constriction)"
    else:
        for kind in ("ans", "range"):
            row = cs.bench_constriction(problem, cfg, kind)
            row["ours_over_this_encode"] = rows[0]["encode_msym_s"] / row["encode_msym_s"]
            row["ours_over_this_decode"] = rows[0]["decode_msym_s"] / row["decode_msym_s"]
            rows.append(row)
    out["results"] = rows
    return out


def j2k_at_rate(path: Path, bpp: float, repeats: int) -> dict:
    """OpenJPEG per band at the quality whose rate is nearest ``bpp``; median encode time of all bands."""
    if importlib.util.find_spec("imagecodecs") is None:
        return {"skipped": "imagecodecs is not installed (pip install -e '.[bench]')"}
    import imagecodecs

    from cvae.edge.io.raster import read_raster

    px = native_pixels(read_raster(path).pixels)
    if px.dtype.kind not in "iu":
        return {"skipped": f"{px.dtype} data: OpenJPEG codes integers only"}
    bands = [np.ascontiguousarray(b) for b in px]
    enc = lambda q: [imagecodecs.jpeg2k_encode(b, level=q) for b in bands]
    rate = lambda q: 8 * sum(map(len, enc(q))) / px.size
    nearest = lambda: min(rates, key=lambda k: abs(math.log(rates[k] / bpp)))
    try:
        rates = {q: rate(q) for q in range(24, 101, 4)}  # coarse, then the neighbours of the nearest
        q = nearest()
        rates.update({k: rate(k) for k in range(max(1, q - 3), min(100, q + 3) + 1) if k not in rates})
    except CODEC_ERRORS as e:
        return {"skipped": f"OpenJPEG failed on {px.dtype}: {e}"}
    q = nearest()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        enc(q)
        times.append(time.perf_counter() - t0)
    return {"quality": q, "bpp": rates[q], "encode_s": statistics.median(times)}


_POWER = re.compile(r"\b(?:VDD_IN|POM_5V_IN) (\d+)(?:mW)?")


def parse_tegrastats_power(line: str) -> float | None:
    """Board input power in mW from one tegrastats line (VDD_IN on Orin, POM_5V_IN on Xavier/Nano)."""
    m = _POWER.search(line)
    return float(m.group(1)) if m else None


class Tegrastats:
    """Samples ``tegrastats`` while the block runs; ``mean_mw`` afterwards."""

    def __init__(self, exe: str = "/usr/bin/tegrastats", interval_ms: int = 100) -> None:
        self.cmd = [exe, "--interval", str(interval_ms)]
        self.samples: list[float] = []

    def __enter__(self) -> "Tegrastats":
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _read(self) -> None:
        """Reader thread: board power of every line tegrastats prints."""
        for line in self.proc.stdout:
            p = parse_tegrastats_power(line)
            if p is not None:
                self.samples.append(p)

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=5)

    @property
    def mean_mw(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


# -- run, report ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeedConfig:
    """What ``bench.py speed`` was asked to do (stored in the record as ``config``); its defaults are the CLI's."""

    data: str
    bundle: str | None = None
    level: int = 3
    repeats: int = 5
    tile_size: int = 256
    backends: str = "all"
    checkpoint: str = str(ROOT / "runs" / "default" / "checkpoint.pt")
    coder_n: int = 1_000_000
    matmul_n: int = 1024
    out: str = str(DEFAULT_OUT)
    name: str = "speed"
    limit: int | None = None
    tegrastats: str = "/usr/bin/tegrastats"
    mode_search: str = "auto"


def run_speed(cfg: SpeedConfig, command: str) -> dict:
    """Every backend on every scene, plus the references: the record for ``NAME.json``."""
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load(cfg.bundle)
    if not 0 <= cfg.level < bundle.levels:
        raise SystemExit(f"--level {cfg.level}: this bundle has levels 0..{bundle.levels - 1}")
    names = BACKENDS if cfg.backends == "all" else tuple(cfg.backends.split(","))
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"--backends: {', '.join(sorted(unknown))} unknown; use onnxruntime, torch, tensorrt or all")
    paths = find_scenes(cfg.data, cfg.limit)
    macs = encoder_macs_per_pixel(bundle.path / "encoder.onnx")
    codecs, skipped, notes = build_backends(bundle, names, Path(cfg.checkpoint), cfg.mode_search)
    jetson = Path(cfg.tegrastats).is_file()
    backends = {}
    for bname, codec in codecs.items():
        res = {}
        with Tegrastats(cfg.tegrastats) if jetson else contextlib.nullcontext() as meter:
            for path in bar(paths, f"speed {bname}"):
                res[path.stem] = speed_scene(path, bundle, codec, cfg.level, cfg.tile_size, cfg.repeats,
                                             macs["macs_per_pixel"])
        entry = {"note": notes.get(bname), "scenes": res}
        if meter:
            mpix = cfg.repeats * sum(s["pixels"] for s in res.values()) / 1e6
            entry["energy"] = {"mean_power_mw": meter.mean_mw, "seconds": meter.seconds, "samples": len(meter.samples),
                               "joules_per_mpix": meter.mean_mw / 1e3 * meter.seconds / mpix,
                               "note": "board input power over the whole backend run (warm-up and reads included)"}
        backends[bname] = entry
    vs_j2k = {}
    ref = backends.get("onnxruntime-cpu-fp32", {}).get("scenes", {})
    for path in paths:
        if path.stem in ref:
            j = j2k_at_rate(path, ref[path.stem]["bpp"], cfg.repeats)
            if "encode_s" in j:
                j["ours_bpp"] = ref[path.stem]["bpp"]
                j["ours_encode_s"] = ref[path.stem]["encode_s"]
                j["ours_over_j2k_time"] = ref[path.stem]["encode_s"] / j["encode_s"]
            vs_j2k[path.stem] = j
    return {"kind": "speed", "command": command, "config": asdict(cfg), "bundle": bundle.model_id,
            "machine": machine_info(), "time": utc_now(),
            "definitions": {
                "stages": "read: read_raster; tile: grid, band range and tile copies; network: codec.analyze "
                          "(spectral transform + ONNX encoder); quantize: codec.symbols; entropy: the range coder "
                          "call of TileCodec.encode; packetize: CCSDS packets incl. metadata; write: temp file + "
                          "fsync + rename",
                "throughput": "tiles/s and megapixels/s (spatial pixels, all bands) over the whole pipeline; "
                              "encode_* over tile..packetize only",
                "tile_latency": "analyze + encode of one tile (spectral, network, code), over every tile of every repeat",
                "macs": "MACs of every Conv node of the encoder (GDN's 1x1 convolutions included, elementwise work "
                        "not) per input pixel of one component; the network runs once per spectral component",
                "vs_openjpeg": "our encode_s (in memory, tile..packetize) over OpenJPEG encoding every band in memory "
                               "at the quality whose rate is nearest ours; both at default threads",
                "peak_rss": "ru_maxrss of this process over the whole run (all backends)"},
            "encoder_macs": macs, "matmul_gflops_fp32": matmul_gflops(cfg.matmul_n, cfg.repeats),
            "cuda_matmul_gflops_fp32": cuda_matmul_gflops(repeats=cfg.repeats),
            "backends": backends, "skipped_backends": skipped,
            "range_coder": coder_vs_constriction(cfg.coder_n, cfg.repeats), "vs_openjpeg": vs_j2k,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "jetson": "tegrastats sampled per backend" if jetson else "not a Jetson (no /usr/bin/tegrastats)"}


def speed_markdown(rec: dict) -> str:
    """``NAME.md`` from the record of ``run_speed``."""
    d = rec["definitions"]
    lines = [f"# Encoder speed: bundle `{rec['bundle'][:16]}`", "",
             f"`{rec['command']}` on {rec['machine']['cpu_model']} ({rec['machine']['cpu_count']} CPUs), "
             f"{rec['time']}.",
             f"Medians over {rec['config']['repeats']} runs at level {rec['config']['level']}, "
             f"tiles {rec['config']['tile_size']}.", "", f"- stages: {d['stages']}.", f"- {d['throughput']}.",
             f"- encoder: {rec['encoder_macs']['macs_per_pixel']:.0f} MACs per pixel per component ({d['macs']}); "
             f"numpy float32 matrix product here: {rec['matmul_gflops_fp32']:.1f} GFLOP/s"
             + (f"; CUDA float32 matrix product (TF32 off) on {rec['machine'].get('gpu')}: "
                f"{rec['cuda_matmul_gflops_fp32']:.0f} GFLOP/s." if rec.get("cuda_matmul_gflops_fp32") else "."),
             f"- peak RSS {rec['peak_rss_mb']:.0f} MB; Jetson: {rec['jetson']}.", ""]
    for b, why in rec["skipped_backends"].items():
        lines.append(f"- backend {b} skipped: {why}")
    head = " | ".join(f"{s} ms" for s in STAGES)
    lines += ["", f"| backend | scene | tiles | {head} | tiles/s | MP/s | p50 ms | p99 ms | GFLOP/s |",
              "|---" * (len(STAGES) + 8) + "|"]
    after = []
    for b, entry in rec["backends"].items():
        for name, s in entry["scenes"].items():
            st = " | ".join(f"{1e3 * s['stages_s'][k]:.1f}" for k in STAGES)
            lines.append(f"| {b} | {name} | {s['tiles']} | {st} | {s['tiles_per_s']:.2f} | {s['mpix_per_s']:.3f} | "
                         f"{s['tile_latency_p50_ms']:.1f} | {s['tile_latency_p99_ms']:.1f} | "
                         f"{s['network_gflops']:.2f} |")
        if entry.get("note"):
            after.append(f"- {b}: {entry['note']}")
        if "energy" in entry:
            e = entry["energy"]
            after.append(f"- {b}: {e['joules_per_mpix']:.3f} J per megapixel at {e['mean_power_mw']:.0f} mW mean "
                         f"({e['note']})")
    lines += [""] + after
    rc = rec["range_coder"]
    lines += ["", f"## Range coder vs constriction (N = {rc['config']['n']}, ideal "
                  f"{rc['ideal_bits_per_symbol']:.4f} bits/symbol)", ""]
    if rc.get("skipped"):
        lines.append(f"constriction skipped: {rc['skipped']}")
    lines += ["| coder | encode Msym/s | decode Msym/s | bits/symbol | ours/this encode | ours/this decode |",
              "|---|---|---|---|---|---|"]
    for r in rc["results"]:
        lines.append(f"| {r['coder']} | {r['encode_msym_s']:.1f} | {r['decode_msym_s']:.1f} | "
                     f"{r['bits_per_symbol']:.4f} | {fmt(r.get('ours_over_this_encode'), '.2f', 'x')} | "
                     f"{fmt(r.get('ours_over_this_decode'), '.2f', 'x')} |")
    lines += ["", "## Whole encode vs OpenJPEG at the same rate", "", d["vs_openjpeg"] + ".", "",
              "| scene | ours bpp | ours s | J2K quality | J2K bpp | J2K s | ours / J2K time |",
              "|---|---|---|---|---|---|---|"]
    for name, j in rec["vs_openjpeg"].items():
        if "skipped" in j:
            lines.append(f"| {name} | | | skipped: {j['skipped']} | | | |")
        else:
            lines.append(f"| {name} | {j['ours_bpp']:.3f} | {j['ours_encode_s']:.3f} | {j['quality']} | "
                         f"{j['bpp']:.3f} | "
                         f"{j['encode_s']:.3f} | {j['ours_over_j2k_time']:.1f}x |")
    return "\n".join(lines) + "\n"

