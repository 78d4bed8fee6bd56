"""``cvae-bench``: rate-distortion and speed of the codec against standard codecs, measured in one run.

    python benchmarks/bench.py rd --data DIR [--bundle DIR] [--levels all|0,2,4] [--out benchmarks/results]
    python benchmarks/bench.py speed --data DIR [--repeats 5] [--level 3] [--backends all|onnxruntime,torch,tensorrt]

**rd** codes every GeoTIFF under DIR (recursive ``*.tif``/``*.tiff``) at every rate level of the bundle and
decodes it back on the ground path. Peers, from imagecodecs: OpenJPEG JPEG 2000 per band (and with its
colour transform on 3-band scenes), JPEG XL per band, AVIF per band where the data fits 12 bits, WebP for
8-bit data. Rates are bits per sample (bits / (bands * height * width)); ours both from every packet byte
(headers, metadata copies, CRCs) and from the packet data fields alone. Metrics per band in native units
over valid pixels, peak = max - min of the valid original: PSNR, MSE, SSIM, MS-SSIM; plus the mean spectral
angle (degrees) of multiband scenes. BD-rate (PCHIP Bjontegaard, ``cvae.edge.metrics.bd_rate``) of each
codec against JPEG 2000 (3-band scenes: against the stronger of J2K and J2K+MCT). Writes ``NAME.json``,
``NAME.md`` (with where we lose and where we win, written from the numbers) and ``NAME_plots/*.png``.

**speed** times each stage of the encoder on real scenes (read, tile, network, quantize, entropy code,
packetize, write) per backend, the network's MACs from the ONNX graph against a numpy matrix product, our
range coder against constriction (``coder_speed.py``), and our whole encode against OpenJPEG at the same
rate. Writes ``NAME.json`` and ``NAME.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results"
BPP_TABLE = 0.91  # the seed paper's table: SSIM, PSNR, MSE near 0.91 bpp
J2K_Q = tuple(range(24, 101, 3))  # the quality grid of rd_validation.j2k_curves
JXL_DISTANCES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.5, 6.5, 9.0, 13.0)
AVIF_LEVELS = (5, 15, 25, 35, 45, 55, 65, 75, 85, 92, 97, 99)
WEBP_LEVELS = (5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 100)
PACKET_OVERHEAD = 27  # primary 6 + secondary 19 + CRC 2 bytes
LABELS = {"ours": "ours (all packet bytes)", "ours_payload": "ours (payload only)",
          "j2k": "JPEG 2000 (OpenJPEG, per band)", "j2k_mct": "JPEG 2000 + MCT (3 bands)",
          "jxl": "JPEG XL (per band)", "avif": "AVIF (per band)", "webp": "WebP"}
CODEC_ERRORS = (RuntimeError, ValueError, TypeError)  # imagecodecs' errors derive from RuntimeError


# -- shared helpers ---------------------------------------------------------------------------------
def _sibling(name: str):
    """Import ``benchmarks/NAME.py`` (a plain script folder, not a package)."""
    mod = sys.modules.get(f"_bench_{name}")
    if mod is None:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", HERE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


def _bar(it: Iterable, desc: str, total: int | None = None) -> Iterable:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar, same results
        return it
    return tqdm(it, desc=desc, total=total, file=sys.stderr, leave=False)


def machine_info() -> dict:
    """platform, CPU model (/proc/cpuinfo), and versions of every package the numbers depend on."""
    info = _sibling("coder_speed").machine_info()
    versions = {}
    for pkg in ("numpy", "scipy", "onnxruntime", "onnx", "imagecodecs", "constriction", "rasterio", "torch",
                "tensorrt", "matplotlib", "cvae-satcomp"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {**info, "versions": versions}


def _command(argv: Sequence[str] | None) -> str:
    return shlex.join(["python", "benchmarks/bench.py", *(sys.argv[1:] if argv is None else argv)])


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _fmt(v, spec: str = "+.1f", suffix: str = "%") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{spec}}{suffix}"


def find_scenes(data: str | Path, limit: int | None = None) -> list[Path]:
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise SystemExit(f"--data {data}: no such file or folder; point it at a folder of GeoTIFFs")
    found = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".tif", ".tiff") and p.is_file())
    if not found:
        raise SystemExit(f"--data {data}: no *.tif/*.tiff under it")
    return found[:limit] if limit else found


def native_pixels(pixels: np.ndarray) -> np.ndarray:
    """The array the encoder codes: float rasters holding integers become integers (as encode_scene does)."""
    if pixels.dtype.kind == "f" and np.isfinite(pixels).all() and np.array_equal(pixels, np.round(pixels)) \
            and np.abs(pixels).max(initial=0) < 65536:
        return pixels.astype(np.uint16 if pixels.min(initial=0) >= 0 else np.int32)
    return pixels


def sensor(name: str) -> str:
    """Sensor tag from a scene name: the text before the first underscore (s2, l8, naip, ...)."""
    return name.split("_", 1)[0] or name


# -- metrics ----------------------------------------------------------------------------------------
def spectral_angle(orig: np.ndarray, rec: np.ndarray, valid: np.ndarray) -> float:
    """Mean spectral angle in degrees over valid pixels with non-zero spectra; ``[C, H, W]`` each.

    Angle = 2 atan2(|u - v|, |u + v|) of the unit spectra (exact 0 for identical spectra, unlike acos)."""
    o = orig[:, valid].astype(np.float64)
    r = rec[:, valid].astype(np.float64)
    no, nr = np.linalg.norm(o, axis=0), np.linalg.norm(r, axis=0)
    ok = (no > 0) & (nr > 0)
    if not ok.any():
        return float("nan")
    u, v = o[:, ok] / no[ok], r[:, ok] / nr[ok]
    ang = 2 * np.arctan2(np.linalg.norm(u - v, axis=0), np.linalg.norm(u + v, axis=0))
    return float(np.degrees(ang).mean())


def evaluate(orig: np.ndarray, rec: np.ndarray, valid: np.ndarray) -> dict:
    """Per-band PSNR, MSE, SSIM, MS-SSIM in native units over valid pixels (peak = max - min of the valid
    original; invalid pixels set to the original in both for the windowed metrics), their band means, and the
    mean spectral angle for C > 1."""
    from cvae.edge.metrics import ms_ssim_band, psnr_bands, ssim_band

    bands = []
    for b in range(orig.shape[0]):
        o = orig[b].astype(np.float64)
        r = np.where(valid, rec[b].astype(np.float64), o)
        ov = o[valid]
        peak = float(ov.max() - ov.min()) if ov.size else 0.0
        mse = float(np.mean((ov - r[valid]) ** 2)) if ov.size else float("nan")
        if peak <= 0:
            bands.append({"peak": peak, "mse": mse, "psnr": None, "ssim": None, "ms_ssim": None})
            continue
        bands.append({"peak": peak, "mse": mse, "psnr": 10 * math.log10(peak ** 2 / max(mse, 1e-12)),
                      "ssim": ssim_band(o, r, peak), "ms_ssim": ms_ssim_band(o, r, peak)})
    mean = lambda k: float(np.mean([x[k] for x in bands if x[k] is not None])) if any(
        x[k] is not None for x in bands) else float("nan")
    out = {"psnr": psnr_bands(orig, rec, valid), "mse": mean("mse"), "ssim": mean("ssim"),
           "ms_ssim": mean("ms_ssim"), "bands": bands}
    out["msssim_db"] = -10 * math.log10(max(1 - out["ms_ssim"], 1e-10)) if math.isfinite(out["ms_ssim"]) \
        else float("nan")
    if orig.shape[0] > 1:
        out["sam_deg"] = spectral_angle(orig, rec, valid)
    return out


# -- codecs -----------------------------------------------------------------------------------------
def our_curve(path: Path, bundle, codec, levels: Sequence[int], orig: np.ndarray, valid: np.ndarray) -> list[dict]:
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    pts = []
    for level in levels:
        enc = encode_scene(path, bundle, codec, EncodeOptions(level=level))
        [scene], _ = decode_streams([b"".join(enc.packets)], bundle, codec)
        payload = sum(len(p) - PACKET_OVERHEAD for p in enc.packets)
        pts.append({"param": level, "bpp": 8 * enc.nbytes / orig.size, "bpp_payload": 8 * payload / orig.size,
                    "bytes": enc.nbytes, **evaluate(orig, scene.pixels, valid)})
    return pts


def _per_band(orig: np.ndarray, valid: np.ndarray, params: Sequence, code: Callable) -> list[dict]:
    """``code(band, param) -> (bytes, reconstruction)`` per band at each parameter."""
    pts = []
    for q in params:
        bits, rec = 0, np.empty_like(orig)
        for b in range(orig.shape[0]):
            data, rec[b] = code(np.ascontiguousarray(orig[b]), q)
            bits += 8 * len(data)
        pts.append({"param": q, "bpp": bits / orig.size, **evaluate(orig, rec, valid)})
    return pts


def _grey_rgb(band: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(band[..., None], 3, axis=-1))


def _from_rgb(img: np.ndarray, dtype) -> np.ndarray:
    return np.rint(img.reshape(img.shape[0], img.shape[1], -1).mean(axis=-1)).astype(dtype)


def peer_curves(orig: np.ndarray, valid: np.ndarray) -> tuple[dict, dict, dict]:
    """Curves of every peer that can code ``orig: int[C, H, W]``, plus {peer: why skipped} and {peer: note}."""
    import imagecodecs

    curves, skipped, notes = {}, {}, {}
    c, dt = orig.shape[0], orig.dtype
    if dt.kind not in "iu":
        reason = f"{dt} data: the peers code integers only"
        return {}, {k: reason for k in ("j2k", "j2k_mct", "jxl", "avif", "webp")}, {}
    lo, hi = int(orig.min()), int(orig.max())
    try:  # JPEG 2000 (and + MCT on 3 bands): rd_validation's helper, our metrics per point
        raw = _sibling("rd_validation").j2k_curves(orig, valid, lambda o, r, v: (evaluate(o, r, v),))
        for k, pts in raw.items():
            curves[k] = [{"param": q, "bpp": bpp, **m} for q, (bpp, m) in zip(J2K_Q, pts)]
    except CODEC_ERRORS as e:
        skipped["j2k"] = f"OpenJPEG failed on {dt}: {e}"
    if c != 3:
        skipped["j2k_mct"] = f"{c} bands: the colour transform needs 3"
    if lo < 0:
        for k in ("jxl", "avif", "webp"):
            skipped[k] = f"signed data (min {lo}): this codec takes unsigned samples"
        return curves, skipped, notes
    bits = max(8, hi.bit_length())
    if bits > 16:
        skipped["jxl"] = f"max {hi} needs {bits} bits: JPEG XL here takes at most 16"
    else:
        bps = None if dt == np.uint8 else bits
        notes["jxl"] = f"per band, distance {JXL_DISTANCES[0]}..{JXL_DISTANCES[-1]}, bitspersample {bps or 8}"
        try:
            curves["jxl"] = _per_band(orig, valid, JXL_DISTANCES, lambda b, d: _jxl(imagecodecs, b, d, bps))
        except CODEC_ERRORS as e:
            skipped["jxl"] = f"libjxl failed: {e}"
    if hi > 4095:
        skipped["avif"] = f"max {hi} > 4095: AVIF carries at most 12 bits"
    else:
        bps = 8 if dt == np.uint8 else 12
        notes["avif"] = (f"per band as a grey image replicated to RGB, {bps} bits (libavif codes 1-channel input "
                         "losslessly whatever the quality)")
        try:
            curves["avif"] = _per_band(orig, valid, AVIF_LEVELS, lambda b, q: _avif(imagecodecs, b, q, bps))
        except CODEC_ERRORS as e:
            skipped["avif"] = f"libavif failed: {e}"
    if dt != np.uint8:
        skipped["webp"] = f"{dt} data: WebP takes 8-bit samples only"
    else:
        try:
            if c == 3:
                notes["webp"] = "the 3 bands as one RGB image"
                curves["webp"] = _webp_rgb(imagecodecs, orig, valid)
            else:
                notes["webp"] = f"each of the {c} bands as a grey image replicated to RGB"
                curves["webp"] = _per_band(orig, valid, WEBP_LEVELS, lambda b, q: _webp_grey(imagecodecs, b, q))
        except CODEC_ERRORS as e:
            skipped["webp"] = f"libwebp failed: {e}"
    return curves, skipped, notes


def _jxl(ic, band, d, bps):
    e = ic.jpegxl_encode(band, distance=d, bitspersample=bps)
    return e, ic.jpegxl_decode(e)


def _avif(ic, band, q, bps):
    e = ic.avif_encode(_grey_rgb(band), level=q, bitspersample=bps)
    return e, _from_rgb(ic.avif_decode(e), band.dtype)


def _webp_grey(ic, band, q):
    e = ic.webp_encode(_grey_rgb(band), level=q, lossless=False)
    return e, _from_rgb(ic.webp_decode(e), band.dtype)


def _webp_rgb(ic, orig, valid):
    pts = []
    for q in WEBP_LEVELS:
        e = ic.webp_encode(np.ascontiguousarray(np.moveaxis(orig, 0, -1)), level=q, lossless=False)
        rec = np.moveaxis(ic.webp_decode(e)[..., :3], -1, 0)
        pts.append({"param": q, "bpp": 8 * len(e) / orig.size, **evaluate(orig, rec, valid)})
    return pts


# -- rate-distortion analysis -----------------------------------------------------------------------
def interp_at(pts: list[dict], bpp: float, key: str, rate: str = "bpp") -> float | None:
    """``key`` at ``bpp`` by linear interpolation on log-rate; None outside the curve's rate range."""
    xy = sorted((p[rate], p[key]) for p in pts if p.get(key) is not None and p[rate] > 0
                and math.isfinite(p[key]))
    if len(xy) < 2 or not xy[0][0] <= bpp <= xy[-1][0]:
        return None
    return float(np.interp(math.log(bpp), [math.log(x) for x, _ in xy], [y for _, y in xy]))


def _pairs(pts: list[dict], key: str, rate: str = "bpp") -> list[tuple[float, float]]:
    return [(p[rate], p[key]) for p in pts if p.get(key) is not None]


def bd_rates(curves: dict, key: str, floor: float) -> dict[str, float]:
    """BD-rate (%) of each codec against J2K; 3-band scenes: the largest of the values against J2K and J2K+MCT
    (the stronger baseline). J2K+MCT itself is measured against J2K."""
    from cvae.edge.metrics import bd_rate

    if "j2k" not in curves:
        return {}
    anchors = [a for a in ("j2k", "j2k_mct") if a in curves]
    out = {}
    for name, pts in curves.items():
        if name == "j2k":
            continue
        rate = "bpp_payload" if name == "ours_payload" else "bpp"
        vs = ["j2k"] if name == "j2k_mct" else anchors
        vals = [bd_rate(_pairs(curves[a], key), _pairs(pts, key, rate), min_psnr=floor) for a in vs]
        vals = [v for v in vals if not math.isnan(v)]
        out[name] = max(vals) if vals else float("nan")
    return out


def table_at(curves: dict, bpp: float = BPP_TABLE) -> dict:
    """The seed paper's table: SSIM, PSNR, MSE (and MS-SSIM) of ours and JPEG 2000 interpolated at ``bpp``."""
    out = {}
    for name in ("ours", "j2k", "j2k_mct"):
        pts = curves.get(name)
        if not pts:
            continue
        lo, hi = min(p["bpp"] for p in pts), max(p["bpp"] for p in pts)
        row = {k: interp_at(pts, bpp, k) for k in ("psnr", "ssim", "mse", "ms_ssim")}
        row["range"] = [lo, hi]
        row["note"] = None if lo <= bpp <= hi else f"{bpp} bpp is outside this curve ({lo:.3f}-{hi:.3f} bpp)"
        out[name] = row
    return out


def psnr_gap_at_our_rates(curves: dict) -> list[dict]:
    """At each of our rate points: our PSNR minus the stronger J2K's PSNR at the same bpp (None outside its range)."""
    anchors = [curves[a] for a in ("j2k", "j2k_mct") if a in curves]
    out = []
    for p in curves.get("ours", []):
        ref = [v for v in (interp_at(a, p["bpp"], "psnr") for a in anchors) if v is not None]
        out.append({"level": p["param"], "bpp": p["bpp"], "psnr": p["psnr"],
                    "delta_db": p["psnr"] - max(ref) if ref else None})
    return out


def rd_scene(path: Path, bundle, codec, levels: Sequence[int]) -> tuple[dict, dict]:
    """Every codec on one scene: (record for JSON, curves)."""
    from cvae.edge.io.raster import read_raster

    t0 = time.time()
    r = read_raster(path)
    orig = native_pixels(r.pixels)
    curves = {"ours": our_curve(path, bundle, codec, levels, orig, r.valid)}
    peers, skipped, notes = peer_curves(orig, r.valid)
    curves.update(peers)
    rec = {"path": str(path), "sensor": sensor(path.stem), "shape": list(orig.shape), "dtype": str(orig.dtype),
           "valid_fraction": float(r.valid.mean()),
           "peak": [b["peak"] for b in curves["ours"][0]["bands"]],
           "bd_rate_psnr": bd_rates({**curves, "ours_payload": curves["ours"]}, "psnr", 20.0),
           "bd_rate_msssim": bd_rates({**curves, "ours_payload": curves["ours"]}, "msssim_db", 0.0),
           "at_0_91_bpp": table_at(curves), "psnr_gap_vs_j2k": psnr_gap_at_our_rates(curves),
           "skipped": skipped, "notes": notes, "curves": curves, "seconds": time.time() - t0}
    return rec, curves


def verdict(scenes: dict) -> dict[str, list[str]]:
    """Where our codec loses and where it wins, from the numbers: BD-rate per scene and metric (or why there is
    none), the rates at which the stronger J2K has the higher or lower PSNR, sensors' medians, and peers that
    beat us."""
    out: dict[str, list[str]] = {k: [] for k in ("loses", "wins", "no_bd_rate", "rates_where_j2k_is_better",
                                                  "rates_where_ours_is_better", "peers_better_than_ours", "by_sensor")}
    by_sensor: dict[str, tuple[list, list]] = {}
    for name, s in scenes.items():
        tag = f"{name} ({s['sensor']}, {s['shape'][0]} x {s['dtype']})"
        for key, metric in (("bd_rate_psnr", "PSNR"), ("bd_rate_msssim", "MS-SSIM")):
            v = s[key].get("ours")
            if v is None or math.isnan(v):
                out["no_bd_rate"].append(f"{tag}: {metric} BD-rate n/a ({_why_no_bd(s, metric)})")
                continue
            (out["loses"] if v > 0 else out["wins"]).append(f"{tag}: BD-rate {metric} {v:+.1f}% vs JPEG 2000")
            for peer in ("jxl", "avif", "webp"):
                pv = s[key].get(peer)
                if pv is not None and not math.isnan(pv) and pv < v:
                    out["peers_better_than_ours"].append(
                        f"{tag}: {LABELS[peer]} {pv:+.1f}% vs ours {v:+.1f}% ({metric} BD-rate vs J2K)")
        gaps = [g for g in s["psnr_gap_vs_j2k"] if g["delta_db"] is not None]
        for key, sel in (("rates_where_j2k_is_better", [g for g in gaps if g["delta_db"] < 0]),
                         ("rates_where_ours_is_better", [g for g in gaps if g["delta_db"] >= 0])):
            if sel:
                out[key].append(f"{tag}: " + ", ".join(f"level {g['level']} at {g['bpp']:.3f} bpp "
                                                        f"({g['delta_db']:+.2f} dB)" for g in sel))
        bd, gap = by_sensor.setdefault(s["sensor"], ([], []))
        v = s["bd_rate_psnr"].get("ours")
        if v is not None and not math.isnan(v):
            bd.append(v)
        gap += [g["delta_db"] for g in gaps]
    for k, (bd, gap) in sorted(by_sensor.items()):
        parts = []
        if bd:
            parts.append(f"median BD-rate PSNR {statistics.median(bd):+.1f}% over {len(bd)} scene(s) "
                         f"({'loses' if statistics.median(bd) > 0 else 'wins'})")
        if gap:
            parts.append(f"median PSNR minus J2K's at our rates {statistics.median(gap):+.2f} dB over {len(gap)} "
                         "point(s)")
        out["by_sensor"].append(f"{k}: " + ("; ".join(parts) or "no comparable numbers"))
    return out


def _why_no_bd(s: dict, metric: str) -> str:
    if "j2k" not in s["curves"]:
        return f"no JPEG 2000 curve: {s['skipped'].get('j2k', 'skipped')}"
    key = "psnr" if metric == "PSNR" else "msssim_db"
    vals = [p[key] for p in s["curves"]["ours"] if p[key] is not None]
    span = f"{min(vals):.2f}-{max(vals):.2f} dB" if vals else "no finite values"
    floor = " at >= 20 dB" if metric == "PSNR" else ""
    return f"our curve spans {span} over {len(vals)} points; BD-rate needs 3 points{floor} and 1 dB shared with J2K"


def plot_scene(name: str, curves: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib absent (pip install -e .[bench]): no PNG", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key, pts in curves.items():
        xy = sorted((p["bpp"], p["psnr"]) for p in pts if p["psnr"] is not None and math.isfinite(p["psnr"]))
        ax.plot(*zip(*xy), "o-" if key == "ours" else ".-", lw=2 if key == "ours" else 1, label=LABELS[key])
        if key == "ours":
            xy = sorted((p["bpp_payload"], p["psnr"]) for p in pts if math.isfinite(p["psnr"]))
            ax.plot(*zip(*xy), "o--", lw=1, color=ax.lines[-1].get_color(), alpha=0.6, label=LABELS["ours_payload"])
    ax.axvline(BPP_TABLE, color="gray", lw=0.7, ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("bits per sample (bpp per band)")
    ax.set_ylabel("PSNR (dB, peak = valid range per band)")
    ax.set_title(name, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


@dataclass(frozen=True)
class RdConfig:
    data: str
    bundle: str | None = None
    levels: str = "all"
    out: str = str(DEFAULT_OUT)
    name: str = "rd"
    limit: int | None = None


def parse_levels(spec: str, n: int) -> list[int]:
    if spec == "all":
        return list(range(n))
    try:
        levels = sorted({int(x) for x in spec.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"--levels {spec!r}: give 'all' or comma-separated integers like 0,2,4") from None
    if not levels or levels[0] < 0 or levels[-1] >= n:
        raise SystemExit(f"--levels {spec!r}: this bundle has levels 0..{n - 1}")
    return levels


def run_rd(cfg: RdConfig, command: str) -> dict:
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load(cfg.bundle)
    codec = bundle.codec("onnxruntime")
    levels = parse_levels(cfg.levels, bundle.levels)
    paths = find_scenes(cfg.data, cfg.limit)
    out = Path(cfg.out)
    scenes, plots = {}, {}
    for path in _bar(paths, "rd scenes"):
        rec, curves = rd_scene(path, bundle, codec, levels)
        scenes[path.stem] = rec
        png = out / f"{cfg.name}_plots" / f"{path.stem}.png"
        if plot_scene(path.stem, curves, png):
            plots[path.stem] = str(png)
        print(f"{path.stem:28s} BD-rate PSNR vs J2K {_fmt(rec['bd_rate_psnr'].get('ours'))}  "
              f"({rec['seconds']:.0f} s)", file=sys.stderr)
    codecs = sorted({k for s in scenes.values() for k in s["bd_rate_psnr"]})
    med = {key: {c: _nanmedian([s[key].get(c, float("nan")) for s in scenes.values()]) for c in codecs}
           for key in ("bd_rate_psnr", "bd_rate_msssim")}
    med_table = {c: {m: _nanmedian([(s["at_0_91_bpp"].get(c) or {}).get(m) for s in scenes.values()])
                     for m in ("psnr", "ssim", "mse", "ms_ssim")} for c in ("ours", "j2k", "j2k_mct")}
    return {"kind": "rd", "command": command, "config": asdict(cfg), "levels": levels,
            "bundle": bundle.model_id, "training_step": bundle.manifest.get("training", {}).get("step"),
            "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "definitions": {
                "bpp": "bits per sample: coded bits / (bands * height * width)",
                "ours_bits": "every byte of every CCSDS packet (headers, metadata copies, CRCs); "
                             f"payload only = packet length - {PACKET_OVERHEAD} bytes",
                "psnr": "per band in native units over valid pixels, peak = max - min of the valid original, "
                        "then the mean over bands",
                "ssim": "per band, 11-tap Gaussian window, same peak; invalid pixels set to the original in both",
                "sam": "mean spectral angle in degrees over valid pixels (multiband scenes)",
                "bd_rate": "PCHIP Bjontegaard on log-rate vs PSNR (>= 20 dB) or MS-SSIM dB; negative = fewer bits "
                           "than JPEG 2000; 3-band scenes against the stronger of J2K and J2K+MCT",
                "at_0_91_bpp": "each metric interpolated linearly on log-rate at 0.91 bpp; n/a outside a curve"},
            "median": {**med, "at_0_91_bpp": med_table}, "verdict": verdict(scenes), "plots": plots,
            "scenes": scenes}


def _nanmedian(vals: Iterable) -> float:
    v = [x for x in vals if x is not None and not math.isnan(x)]
    return float(statistics.median(v)) if v else float("nan")


def rd_markdown(rec: dict) -> str:
    scenes, med = rec["scenes"], rec["median"]
    codecs = [c for c in ("ours", "ours_payload", "j2k_mct", "jxl", "avif", "webp") if c in med["bd_rate_psnr"]]
    d = rec["definitions"]
    lines = [f"# Rate-distortion: bundle `{rec['bundle'][:16]}` (training step {rec['training_step']})", "",
             f"`{rec['command']}` on {rec['machine']['cpu_model']}, {rec['time']}.", "",
             f"- bpp: {d['bpp']}; ours: {d['ours_bits']}.", f"- PSNR: {d['psnr']}.", f"- BD-rate: {d['bd_rate']}.",
             "", "## BD-rate (PSNR) against JPEG 2000", "",
             "| scene | bands | dtype | " + " | ".join(LABELS[c] for c in codecs) + " | ours, MS-SSIM | SAM ours "
             "(deg, top level) |", "|---" * (len(codecs) + 5) + "|"]
    for name, s in scenes.items():
        top = s["curves"]["ours"][-1].get("sam_deg")
        lines.append(f"| {name} | {s['shape'][0]} | {s['dtype']} | " + " | ".join(
            _fmt(s["bd_rate_psnr"].get(c)) for c in codecs) + f" | {_fmt(s['bd_rate_msssim'].get('ours'))} | "
            f"{_fmt(top, '.3f', '')} |")
    lines.append("| **median** | | | " + " | ".join(f"**{_fmt(med['bd_rate_psnr'][c])}**" for c in codecs) +
                 f" | **{_fmt(med['bd_rate_msssim'].get('ours'))}** | |")
    lines += ["", f"## SSIM, PSNR, MSE near {BPP_TABLE} bpp (the seed paper's table)", "",
              f"{d['at_0_91_bpp']}.", "", "| scene | codec | SSIM | PSNR dB | MSE | MS-SSIM | note |",
              "|---|---|---|---|---|---|---|"]
    for name, s in scenes.items():
        for c, row in s["at_0_91_bpp"].items():
            lines.append(f"| {name} | {LABELS[c]} | {_fmt(row['ssim'], '.4f', '')} | {_fmt(row['psnr'], '.2f', '')} | "
                         f"{_fmt(row['mse'], '.4g', '')} | {_fmt(row['ms_ssim'], '.4f', '')} | {row['note'] or ''} |")
    for c, row in med["at_0_91_bpp"].items():
        if any(not math.isnan(v) for v in row.values()):
            lines.append(f"| **median** | {LABELS[c]} | {_fmt(row['ssim'], '.4f', '')} | {_fmt(row['psnr'], '.2f', '')}"
                         f" | {_fmt(row['mse'], '.4g', '')} | {_fmt(row['ms_ssim'], '.4f', '')} | "
                         "over scenes in range |")
    v = rec["verdict"]
    for title, key in (("Where our codec loses", "loses"),
                       ("Rates at which JPEG 2000 has the higher PSNR (PSNR gap at our rates)",
                        "rates_where_j2k_is_better"),
                       ("Peers with a lower BD-rate than ours", "peers_better_than_ours"),
                       ("Where our codec wins", "wins"),
                       ("Rates at which our codec has the higher PSNR", "rates_where_ours_is_better"),
                       ("BD-rate not computable", "no_bd_rate"), ("By sensor", "by_sensor")):
        lines += ["", f"## {title}", ""] + ([f"- {x}" for x in v[key]] or ["- none"])
    lines += ["", "## Peers skipped or adapted", ""]
    for name, s in scenes.items():
        for peer, why in s["skipped"].items():
            lines.append(f"- {name}: {LABELS[peer]} skipped: {why}")
        for peer, note in s["notes"].items():
            lines.append(f"- {name}: {LABELS[peer]}: {note}")
    if rec["plots"]:
        lines += ["", "## Plots", ""] + [f"- {k}: `{Path(p).name}` in `{Path(p).parent.name}/`"
                                         for k, p in rec["plots"].items()]
    return "\n".join(lines) + "\n"


# -- speed ------------------------------------------------------------------------------------------
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


STAGES = ("read", "tile", "network", "quantize", "entropy", "packetize", "write")


def _entropy(codec, a, sym: np.ndarray, level: int) -> bytes:
    """The range coder call of TileCodec.encode, on symbols already quantised."""
    from cvae.edge.codec import rangecoder

    coded = np.flatnonzero(codec.coded_components(a, level))
    if not len(coded):
        return b""
    m, hl, wl = sym.shape[1:]
    idx = np.repeat(np.arange(m, dtype=np.int32), hl * wl)
    t = codec.tables[level]
    return rangecoder.encode(sym[coded].reshape(-1), np.tile(idx, len(coded)), t.cdf, t.cdf_length, t.offset,
                             t.precision)


def time_pipeline(path: Path, bundle, codec, level: int, tile_size: int, workdir: Path,
                  metadata_every: int = 16) -> dict:
    """One timed pass of the encoder, stage by stage, building the same packets as ``encode_scene``."""
    from cvae.edge.codec import packets as pk
    from cvae.edge.encoder import scene_metadata
    from cvae.edge.io.raster import Raster, read_raster
    from cvae.edge.io.tiling import tile_grid

    t = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter
    t0 = clock()
    r = read_raster(path)
    pixels = native_pixels(r.pixels)
    t["read"] = clock() - t0
    t0 = clock()
    c, h, w = pixels.shape
    windows = list(tile_grid(h, w, tile_size))
    v = pixels[:, r.valid]
    band_range = (v.min(axis=1), v.max(axis=1)) if v.size else None
    tiles = [(np.ascontiguousarray(pixels[:, win.slices[0], win.slices[1]]), r.valid[win.slices]) for win in windows]
    t["tile"] = clock() - t0
    name = path.stem
    scene_id = zlib.crc32(name.encode())
    mid = bytes.fromhex(bundle.model_id)[:4]
    t0 = clock()
    writer = pk.PacketWriter(0x1C5)
    meta = pk.encode_metadata(scene_metadata(Raster(pixels, r.valid, r.nodata, r.profile), name, bundle, tile_size))
    meta_header = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=scene_id)
    packets = writer.packets(meta_header, meta)
    t["packetize"] += clock() - t0
    latency, net_pixels = [], 0
    for i, (win, (tile, valid)) in enumerate(zip(windows, tiles)):
        t0 = clock()
        a = codec.analyze(tile, valid, band_range=band_range)
        t1 = clock()
        sym = codec.symbols(a, level)
        t2 = clock()
        _entropy(codec, a, sym, level)
        t3 = clock()
        body = codec.encode(a, level)  # untimed: the bytes the entropy stage produced, framed as a tile
        t4 = clock()
        packets += writer.packets(pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=mid, scene_id=scene_id,
                                                     row=win.row, col=win.col, level=level), body)
        if metadata_every and (i + 1) % metadata_every == 0 and i + 1 < len(windows):
            packets += writer.packets(meta_header, meta)
        t5 = clock()
        for k, dt in (("network", t1 - t0), ("quantize", t2 - t1), ("entropy", t3 - t2), ("packetize", t5 - t4)):
            t[k] += dt
        latency.append((t1 - t0) + (t2 - t1) + (t3 - t2) + (t5 - t4))
        net_pixels += c * (-(-tile.shape[1] // 16) * 16) * (-(-tile.shape[2] // 16) * 16)
    t0 = clock()
    packets += writer.packets(meta_header, meta)
    t["packetize"] += clock() - t0
    t0 = clock()
    final = workdir / f"{name}.pkt"
    tmp = workdir / f".{name}.pkt.part"
    with open(tmp, "wb") as f:
        for p in packets:
            f.write(p)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    t["write"] = clock() - t0
    return {"stages_s": t, "tiles": len(windows), "pixels": h * w, "samples": c * h * w, "bands": c,
            "dtype": str(pixels.dtype), "network_pixels": net_pixels, "nbytes": sum(len(p) for p in packets),
            "tile_latency_s": latency}


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
    encode = statistics.median(sum(x["stages_s"][k] for k in STAGES[1:6]) for x in runs)
    first = runs[0]
    return {"tiles": first["tiles"], "bands": first["bands"], "dtype": first["dtype"], "pixels": first["pixels"],
            "bytes": first["nbytes"], "bpp": 8 * first["nbytes"] / first["samples"], "stages_s": stages,
            "pipeline_s": total, "encode_s": encode, "tiles_per_s": first["tiles"] / total,
            "mpix_per_s": first["pixels"] / total / 1e6, "encode_mpix_per_s": first["pixels"] / encode / 1e6,
            "tile_latency_p50_ms": 1e3 * float(np.percentile(lat, 50)),
            "tile_latency_p99_ms": 1e3 * float(np.percentile(lat, 99)),
            "network_gflops": 2 * macs * first["network_pixels"] / stages["network"] / 1e9,
            "repeats": [x["stages_s"] for x in runs]}


def build_backends(bundle, names: Sequence[str], checkpoint: Path) -> tuple[dict, dict, dict]:
    """({backend: TileCodec}, {backend: why skipped}, {backend: note})."""
    from cvae.edge.runtime.ort import OrtTransforms

    codecs, skipped, notes = {}, {}, {}
    ort = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx", providers=["CPUExecutionProvider"])
    if "onnxruntime" in names:
        codecs["onnxruntime-cpu-fp32"] = bundle.codec(transforms=ort)
        notes["onnxruntime-cpu-fp32"] = "CPUExecutionProvider, default threads, fp32"
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
            codecs["torch-cpu-fp32"] = bundle.codec(transforms=TorchTransforms(net))
            notes["torch-cpu-fp32"] = (f"weights from {checkpoint} (step {state.get('step')}), not the bundle's: "
                                       f"timing only; {torch.get_num_threads()} threads")
    if "tensorrt" in names:
        from cvae.edge.runtime.trt import TrtTransforms, find_engine

        if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("pycuda") is None:
            skipped["tensorrt"] = "TensorRT and pycuda are not installed (JetPack, or pip install tensorrt pycuda)"
        else:
            engine = find_engine(bundle.path)
            if engine is None:
                skipped["tensorrt"] = (f"no engine for this GPU and TensorRT version in {bundle.path / 'engines'} "
                                       "(build one with cvae-export --target trt)")
            else:
                codecs["tensorrt"] = bundle.codec(transforms=TrtTransforms(engine, fallback=ort))
                notes["tensorrt"] = (f"engine {Path(engine['path']).name}, batch {engine['batch']}, "
                                     f"tile {engine['tile']}")
    return codecs, skipped, notes


def coder_vs_constriction(n: int, repeats: int) -> dict:
    """coder_speed.py's problem and timings: our rANS against constriction's AnsCoder and RangeEncoder."""
    cs = _sibling("coder_speed")
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
    import imagecodecs

    from cvae.edge.io.raster import read_raster

    px = native_pixels(read_raster(path).pixels)
    if px.dtype.kind not in "iu":
        return {"skipped": f"{px.dtype} data: OpenJPEG codes integers only"}
    bands = [np.ascontiguousarray(b) for b in px]
    enc = lambda q: [imagecodecs.jpeg2k_encode(b, level=q) for b in bands]
    rate = lambda q: 8 * sum(map(len, enc(q))) / px.size
    try:
        rates = {q: rate(q) for q in range(24, 101, 4)}  # coarse, then the neighbours of the nearest
        q = min(rates, key=lambda k: abs(math.log(rates[k] / bpp)))
        rates.update({k: rate(k) for k in range(max(1, q - 3), min(100, q + 3) + 1) if k not in rates})
    except CODEC_ERRORS as e:
        return {"skipped": f"OpenJPEG failed on {px.dtype}: {e}"}
    q = min(rates, key=lambda k: abs(math.log(rates[k] / bpp)))
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

    def __init__(self, exe: str = "/usr/bin/tegrastats", interval_ms: int = 100):
        self.cmd = [exe, "--interval", str(interval_ms)]
        self.samples: list[float] = []

    def __enter__(self) -> "Tegrastats":
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _read(self) -> None:
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


@dataclass(frozen=True)
class SpeedConfig:
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


def run_speed(cfg: SpeedConfig, command: str) -> dict:
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load(cfg.bundle)
    if not 0 <= cfg.level < bundle.levels:
        raise SystemExit(f"--level {cfg.level}: this bundle has levels 0..{bundle.levels - 1}")
    names = ("onnxruntime", "torch", "tensorrt") if cfg.backends == "all" else tuple(cfg.backends.split(","))
    unknown = set(names) - {"onnxruntime", "torch", "tensorrt"}
    if unknown:
        raise SystemExit(f"--backends: {', '.join(sorted(unknown))} unknown; use onnxruntime, torch, tensorrt or all")
    paths = find_scenes(cfg.data, cfg.limit)
    macs = encoder_macs_per_pixel(bundle.path / "encoder.onnx")
    codecs, skipped, notes = build_backends(bundle, names, Path(cfg.checkpoint))
    jetson = Path(cfg.tegrastats).is_file()
    backends = {}
    for bname, codec in codecs.items():
        res = {}
        with Tegrastats(cfg.tegrastats) if jetson else contextlib.nullcontext() as meter:
            for path in _bar(paths, f"speed {bname}"):
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
            "machine": machine_info(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "definitions": {
                "stages": "read: read_raster; tile: grid, band range and tile copies; network: codec.analyze "
                          "(spectral transform + ONNX encoder); quantize: codec.symbols; entropy: the range coder "
                          "call of TileCodec.encode; packetize: CCSDS packets incl. metadata; write: temp file + "
                          "fsync + rename",
                "throughput": "tiles/s and megapixels/s (spatial pixels, all bands) over the whole pipeline; "
                              "encode_* over tile..packetize only",
                "tile_latency": "network + quantize + entropy + packetize of one tile, over every tile of every repeat",
                "macs": "MACs of every Conv node of the encoder (GDN's 1x1 convolutions included, elementwise work "
                        "not) per input pixel of one component; the network runs once per spectral component",
                "vs_openjpeg": "our encode_s (in memory, tile..packetize) over OpenJPEG encoding every band in memory "
                               "at the quality whose rate is nearest ours; both at default threads",
                "peak_rss": "ru_maxrss of this process over the whole run (all backends)"},
            "encoder_macs": macs, "matmul_gflops_fp32": matmul_gflops(cfg.matmul_n, cfg.repeats),
            "backends": backends, "skipped_backends": skipped,
            "range_coder": coder_vs_constriction(cfg.coder_n, cfg.repeats), "vs_openjpeg": vs_j2k,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "jetson": "tegrastats sampled per backend" if jetson else "not a Jetson (no /usr/bin/tegrastats)"}


def speed_markdown(rec: dict) -> str:
    d = rec["definitions"]
    lines = [f"# Encoder speed: bundle `{rec['bundle'][:16]}`", "",
             f"`{rec['command']}` on {rec['machine']['cpu_model']} ({rec['machine']['cpu_count']} CPUs), "
             f"{rec['time']}.",
             f"Medians over {rec['config']['repeats']} runs at level {rec['config']['level']}, "
             f"tiles {rec['config']['tile_size']}.", "", f"- stages: {d['stages']}.", f"- {d['throughput']}.",
             f"- encoder: {rec['encoder_macs']['macs_per_pixel']:.0f} MACs per pixel per component ({d['macs']}); "
             f"numpy float32 matrix product here: {rec['matmul_gflops_fp32']:.1f} GFLOP/s.",
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
                     f"{r['bits_per_symbol']:.4f} | {_fmt(r.get('ours_over_this_encode'), '.2f', 'x')} | "
                     f"{_fmt(r.get('ours_over_this_decode'), '.2f', 'x')} |")
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


# -- CLI --------------------------------------------------------------------------------------------
def _write(out: Path, name: str, record: dict, markdown: str) -> Path:
    cs = _sibling("coder_speed")
    path = out / f"{name}.json"
    cs.write_json(path, _clean(record))
    (out / f"{name}.md").write_text(markdown)
    return path


def _version() -> str:
    from cvae.edge.bundle import Bundle

    info = machine_info()["versions"]
    b = Bundle.load(verify=False)
    return (f"cvae-bench {info.get('cvae-satcomp')} model {b.model_id[:16]} onnxruntime {info.get('onnxruntime')} "
            f"imagecodecs {info.get('imagecodecs')}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cvae-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="store_true", help="print versions and the default model id")
    sub = p.add_subparsers(dest="cmd")
    rd = sub.add_parser("rd", help="rate-distortion against JPEG 2000, JPEG XL, AVIF, WebP")
    sp = sub.add_parser("speed", help="time per encoder stage, per backend")
    for s, default_name in ((rd, "rd"), (sp, "speed")):
        s.add_argument("--data", required=True, help="a folder of GeoTIFFs (searched recursively) or one file")
        s.add_argument("--bundle", help="model bundle folder (default: the shipped one)")
        s.add_argument("--out", default=str(DEFAULT_OUT), help="results folder")
        s.add_argument("--name", default=default_name, help="result file stem")
        s.add_argument("--limit", type=int, help="only the first N scenes (sorted by path)")
    rd.add_argument("--levels", default="all", help="'all' or comma-separated levels, e.g. 0,2,4")
    defaults = SpeedConfig(data="")
    sp.add_argument("--repeats", type=int, default=defaults.repeats, help="timed runs per scene (median)")
    sp.add_argument("--level", type=int, default=defaults.level, help="rate level")
    sp.add_argument("--tile-size", type=int, default=defaults.tile_size)
    sp.add_argument("--backends", default="all", help="all, or a comma list of onnxruntime,torch,tensorrt")
    sp.add_argument("--checkpoint", default=defaults.checkpoint, help="torch backend weights")
    sp.add_argument("--coder-n", type=int, default=defaults.coder_n, help="symbols for the range coder comparison")
    sp.add_argument("--matmul-n", type=int, default=defaults.matmul_n, help="matrix size for the GFLOP/s reference")
    sp.add_argument("--tegrastats", default=defaults.tegrastats, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.version:
        print(_version())
        return 0
    if a.cmd is None:
        p.error("give a subcommand: rd or speed")
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be >= 1")
    out = Path(a.out)
    if a.cmd == "rd":
        cfg = RdConfig(data=a.data, bundle=a.bundle, levels=a.levels, out=a.out, name=a.name, limit=a.limit)
        rec = run_rd(cfg, _command(argv))
        md = rd_markdown(rec)
    else:
        if a.repeats < 1:
            p.error("--repeats must be >= 1 (5 or more for a meaningful median)")
        cfg = SpeedConfig(data=a.data, bundle=a.bundle, level=a.level, repeats=a.repeats, tile_size=a.tile_size,
                          backends=a.backends, checkpoint=a.checkpoint, coder_n=a.coder_n, matmul_n=a.matmul_n,
                          out=a.out, name=a.name, limit=a.limit, tegrastats=a.tegrastats)
        rec = run_speed(cfg, _command(argv))
        md = speed_markdown(rec)
    path = _write(out, a.name, rec, md)
    print(md)
    print(f"wrote {path} and {path.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
