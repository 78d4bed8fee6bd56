"""``bench.py rd``: rate-distortion of the codec against standard codecs on real scenes.

Codes every GeoTIFF under DIR (recursive ``*.tif``/``*.tiff``) at every rate level of the bundle and decodes it
back on the ground path. Peers, from imagecodecs: OpenJPEG JPEG 2000 per band (and with its colour transform on
3-band scenes), JPEG XL per band, AVIF per band where the data fits 12 bits, WebP for 8-bit data; and AV1 intra
given the scorer's KLT and nodata fill (``harness/av1_peer.py``, when avifenc is on PATH). Rates are bits
per sample (bits / (bands * height * width)); ours both from every packet byte (headers, metadata copies, CRCs)
and from the packet data fields alone. Metrics per band in native units over valid pixels, peak = max - min of
the valid original: PSNR, MSE, SSIM, MS-SSIM; plus the mean spectral angle (degrees) of multiband scenes.
BD-rate (PCHIP Bjontegaard, ``cvae.metrics.bd_rate``) of each codec against JPEG 2000 (3-band scenes:
against the stronger of J2K and J2K+MCT), and ours against AV1 intra + KLT. ``run_rd`` builds the record written
to ``NAME.json``, ``rd_markdown`` the ``NAME.md`` (with where we lose and where we win, written from the numbers), and
``plot_scene`` the ``NAME_plots/*.png``.
"""
from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import (CODEC_ERRORS, DEFAULT_OUT, bar, find_scenes, fmt, machine_info,  # noqa: E402
                          native_pixels, sibling, utc_now)

__all__ = ["BPP_TABLE", "LABELS", "RdConfig", "av1_klt_curve", "bd_rates", "bd_rates_vs_av1", "evaluate",
           "interp_at", "our_curve", "parse_levels", "peer_curves", "plot_scene", "psnr_gap_at_our_rates",
           "rd_markdown", "rd_scene", "run_rd", "sensor", "spectral_angle", "table_at", "verdict"]

BPP_TABLE = 0.91  # the seed paper's table: SSIM, PSNR, MSE near 0.91 bpp
J2K_Q = tuple(range(24, 101, 3))  # the quality grid of rd_validation.j2k_curves
JXL_DISTANCES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.5, 6.5, 9.0, 13.0)
AVIF_LEVELS = (5, 15, 25, 35, 45, 55, 65, 75, 85, 92, 97, 99)
WEBP_LEVELS = (5, 15, 25, 35, 45, 55, 65, 75, 85, 95, 100)
PACKET_OVERHEAD = 27  # primary 6 + secondary 19 + CRC 2 bytes
LABELS = {"ours": "ours (all packet bytes)", "ours_payload": "ours (payload only)",
          "j2k": "JPEG 2000 (OpenJPEG, per band)", "j2k_mct": "JPEG 2000 + MCT (3 bands)",
          "jxl": "JPEG XL (per band)", "avif": "AVIF (per band)", "webp": "WebP",
          "av1_klt": "AV1 intra + KLT (avifenc, aom)"}


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
    from cvae.metrics import ms_ssim_band, psnr_bands, psnr_db, ssim_band

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
        bands.append({"peak": peak, "mse": mse, "psnr": psnr_db(peak, mse),
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
    """Encode ``path`` at each level, decode on the ground path; rate from all packet bytes and from payload alone."""
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
    """``[H, W]`` -> ``[H, W, 3]``, the band in every channel."""
    return np.ascontiguousarray(np.repeat(band[..., None], 3, axis=-1))


def _from_rgb(img: np.ndarray, dtype) -> np.ndarray:
    """A decoded ``[H, W, C]`` (or ``[H, W]``) image back to one ``[H, W]`` band: the rounded channel mean."""
    return np.rint(img.reshape(img.shape[0], img.shape[1], -1).mean(axis=-1)).astype(dtype)


def peer_curves(orig: np.ndarray, valid: np.ndarray) -> tuple[dict, dict, dict]:
    """Curves of every peer that can code ``orig: int[C, H, W]``, plus {peer: why skipped} and {peer: note}."""
    import imagecodecs

    curves, skipped, notes = {}, {}, {}
    c, dt = orig.shape[0], orig.dtype
    if dt.kind not in "iu":
        reason = f"{dt} data: the peers code integers only"
        return {}, {k: reason for k in ("j2k", "j2k_mct", "jxl", "avif", "webp", "av1_klt")}, {}
    lo, hi = int(orig.min()), int(orig.max())
    try:  # JPEG 2000 (and + MCT on 3 bands): rd_validation's helper, our metrics per point
        raw = sibling("rd_validation").j2k_curves(orig, valid, lambda o, r, v: (evaluate(o, r, v),))
        for k, pts in raw.items():
            curves[k] = [{"param": q, "bpp": bpp, **m} for q, (bpp, m) in zip(J2K_Q, pts)]
    except CODEC_ERRORS as e:
        skipped["j2k"] = f"OpenJPEG failed on {dt}: {e}"
    if c != 3:
        skipped["j2k_mct"] = f"{c} bands: the colour transform needs 3"
    av1 = sibling("av1_peer")
    why = av1.missing_tools()
    if why:
        skipped["av1_klt"] = why
    else:
        qs = av1.AV1_QUANTIZERS
        notes["av1_klt"] = ("the scene's KLT, nodata = band mean, components to 16 bits, each coded monochrome "
                            f"12-bit by avifenc -s {av1.AV1_SPEED}, quantizer {qs[0]}..{qs[-1]}; side information "
                            "counted (as ../shared/tools/rd_vs_av1.py)")
        try:
            curves["av1_klt"] = av1_klt_curve(orig, valid)
        except (*CODEC_ERRORS, OSError, subprocess.CalledProcessError) as e:
            skipped["av1_klt"] = f"avifenc/avifdec failed: {e}"
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


def av1_klt_curve(orig: np.ndarray, valid: np.ndarray) -> list[dict]:
    """AV1 intra with the scorer's KLT and nodata fill (``harness/av1_peer.py``) on ``orig: int[C, H, W]``, the mask
    ``valid: bool[H, W]`` standing for every band's: our metrics at each quantizer."""
    av1 = sibling("av1_peer")
    return [{"param": q, "bpp": bpp, **evaluate(orig, rec, valid)}
            for q, bpp, rec in av1.av1_klt_points(orig, [valid] * orig.shape[0])]


def _jxl(ic, band: np.ndarray, d: float, bps: int | None) -> tuple[bytes, np.ndarray]:
    e = ic.jpegxl_encode(band, distance=d, bitspersample=bps)
    return e, ic.jpegxl_decode(e)


def _avif(ic, band: np.ndarray, q: int, bps: int) -> tuple[bytes, np.ndarray]:
    e = ic.avif_encode(_grey_rgb(band), level=q, bitspersample=bps)
    return e, _from_rgb(ic.avif_decode(e), band.dtype)


def _webp_grey(ic, band: np.ndarray, q: int) -> tuple[bytes, np.ndarray]:
    e = ic.webp_encode(_grey_rgb(band), level=q, lossless=False)
    return e, _from_rgb(ic.webp_decode(e), band.dtype)


def _webp_rgb(ic, orig: np.ndarray, valid: np.ndarray) -> list[dict]:
    """``orig: uint8[3, H, W]`` as one RGB image at each WebP quality."""
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
    """(rate, metric) of the points that have the metric."""
    return [(p[rate], p[key]) for p in pts if p.get(key) is not None]


def bd_rates(curves: dict, key: str, floor: float) -> dict[str, float]:
    """BD-rate (%) of each codec against J2K; 3-band scenes: the largest of the values against J2K and J2K+MCT
    (the stronger baseline). J2K+MCT itself is measured against J2K."""
    from cvae.metrics import bd_rate

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


def bd_rates_vs_av1(curves: dict) -> dict[str, float]:
    """BD-rate (%) of ours (all packet bytes) against AV1 intra + KLT in PSNR (>= 20 dB) and MS-SSIM dB; empty
    without the peer's curve."""
    from cvae.metrics import bd_rate

    if "av1_klt" not in curves or "ours" not in curves:
        return {}
    return {"psnr": bd_rate(_pairs(curves["av1_klt"], "psnr"), _pairs(curves["ours"], "psnr"), min_psnr=20.0),
            "msssim": bd_rate(_pairs(curves["av1_klt"], "msssim_db"), _pairs(curves["ours"], "msssim_db"),
                              min_psnr=0.0)}


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
    with_payload = {**curves, "ours_payload": curves["ours"]}  # our curve once more, rated on payload bytes
    rec = {"path": str(path), "sensor": sensor(path.stem), "shape": list(orig.shape), "dtype": str(orig.dtype),
           "valid_fraction": float(r.valid.mean()),
           "peak": [b["peak"] for b in curves["ours"][0]["bands"]],
           "bd_rate_psnr": bd_rates(with_payload, "psnr", 20.0),
           "bd_rate_msssim": bd_rates(with_payload, "msssim_db", 0.0),
           "bd_rate_vs_av1_klt": bd_rates_vs_av1(curves),
           "at_0_91_bpp": table_at(curves), "psnr_gap_vs_j2k": psnr_gap_at_our_rates(curves),
           "skipped": skipped, "notes": notes, "curves": curves, "seconds": time.time() - t0}
    return rec, curves


def verdict(scenes: dict) -> dict[str, list[str]]:
    """Where our codec loses and where it wins, from the numbers: BD-rate per scene and metric (or why there is
    none), the rates at which the stronger J2K has the higher or lower PSNR, sensors' medians, and peers that
    beat us."""
    out: dict[str, list[str]] = {k: [] for k in ("loses", "wins", "no_bd_rate", "rates_where_j2k_is_better",
                                                  "rates_where_ours_is_better", "peers_better_than_ours", "by_sensor",
                                                  "vs_av1_klt")}
    by_sensor: dict[str, tuple[list, list]] = {}
    for name, s in scenes.items():
        tag = f"{name} ({s['sensor']}, {s['shape'][0]} x {s['dtype']})"
        for key, metric in (("bd_rate_psnr", "PSNR"), ("bd_rate_msssim", "MS-SSIM")):
            v = s[key].get("ours")
            if v is None or math.isnan(v):
                out["no_bd_rate"].append(f"{tag}: {metric} BD-rate n/a ({_why_no_bd(s, metric)})")
                continue
            (out["loses"] if v > 0 else out["wins"]).append(f"{tag}: BD-rate {metric} {v:+.1f}% vs JPEG 2000")
            for peer in ("jxl", "avif", "webp", "av1_klt"):
                pv = s[key].get(peer)
                if pv is not None and not math.isnan(pv) and pv < v:
                    out["peers_better_than_ours"].append(
                        f"{tag}: {LABELS[peer]} {pv:+.1f}% vs ours {v:+.1f}% ({metric} BD-rate vs J2K)")
        for key, metric in (("psnr", "PSNR"), ("msssim", "MS-SSIM")):
            v = s.get("bd_rate_vs_av1_klt", {}).get(key)
            if v is not None and not math.isnan(v):
                out["vs_av1_klt"].append(f"{tag}: BD-rate {metric} {v:+.1f}% vs {LABELS['av1_klt']} "
                                         f"({'loses' if v > 0 else 'wins'})")
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
    """Why a scene has no BD-rate for ``metric`` ('PSNR' or 'MS-SSIM'), from its curves."""
    if "j2k" not in s["curves"]:
        return f"no JPEG 2000 curve: {s['skipped'].get('j2k', 'skipped')}"
    key = "psnr" if metric == "PSNR" else "msssim_db"
    vals = [p[key] for p in s["curves"]["ours"] if p[key] is not None]
    span = f"{min(vals):.2f}-{max(vals):.2f} dB" if vals else "no finite values"
    floor = " at >= 20 dB" if metric == "PSNR" else ""
    return f"our curve spans {span} over {len(vals)} points; BD-rate needs 3 points{floor} and 1 dB shared with J2K"


# -- plots, run, report -----------------------------------------------------------------------------
def plot_scene(name: str, curves: dict, path: Path) -> bool:
    """PSNR against bpp (log) of every curve to ``path``; False (and a note on stderr) without matplotlib."""
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
    """What ``bench.py rd`` was asked to do (stored in the record as ``config``)."""

    data: str
    bundle: str | None = None
    levels: str = "all"
    out: str = str(DEFAULT_OUT)
    name: str = "rd"
    limit: int | None = None


def parse_levels(spec: str, n: int) -> list[int]:
    """``'all'`` or ``'0,2,4'`` -> sorted levels of a bundle with ``n`` levels."""
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
    """Every scene, every codec: the record for ``NAME.json`` (plots written on the way)."""
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load(cfg.bundle)
    codec = bundle.codec("onnxruntime")
    levels = parse_levels(cfg.levels, bundle.levels)
    paths = find_scenes(cfg.data, cfg.limit)
    out = Path(cfg.out)
    scenes, plots = {}, {}
    for path in bar(paths, "rd scenes"):
        rec, curves = rd_scene(path, bundle, codec, levels)
        scenes[path.stem] = rec
        png = out / f"{cfg.name}_plots" / f"{path.stem}.png"
        if plot_scene(path.stem, curves, png):
            plots[path.stem] = str(png)
        print(f"{path.stem:28s} BD-rate PSNR vs J2K {fmt(rec['bd_rate_psnr'].get('ours'))}  "
              f"({rec['seconds']:.0f} s)", file=sys.stderr)
    codecs = sorted({k for s in scenes.values() for k in s["bd_rate_psnr"]})
    med = {key: {c: _nanmedian([s[key].get(c, float("nan")) for s in scenes.values()]) for c in codecs}
           for key in ("bd_rate_psnr", "bd_rate_msssim")}
    med["bd_rate_vs_av1_klt"] = {k: _nanmedian([s["bd_rate_vs_av1_klt"].get(k, float("nan")) for s in scenes.values()])
                                 for k in ("psnr", "msssim")}
    # paired: only the scenes where our curve reaches 0.91 bpp, so both columns describe the same scenes
    paired = [s for s in scenes.values() if (s["at_0_91_bpp"].get("ours") or {}).get("psnr") is not None]
    med_table = {c: {m: _nanmedian([(s["at_0_91_bpp"].get(c) or {}).get(m) for s in paired])
                     for m in ("psnr", "ssim", "mse", "ms_ssim")} for c in ("ours", "j2k", "j2k_mct")}
    med_table["scenes"] = [n for n, s in scenes.items() if s in paired]
    return {"kind": "rd", "command": command, "config": asdict(cfg), "levels": levels,
            "bundle": bundle.model_id, "training_step": bundle.manifest.get("training", {}).get("step"),
            "machine": machine_info(), "time": utc_now(),
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
                "bd_rate_vs_av1_klt": "ours (all packet bytes) against AV1 intra given the scorer's KLT and nodata "
                                      "fill, same BD-rate; negative = fewer bits than AV1",
                "at_0_91_bpp": "each metric interpolated linearly on log-rate at 0.91 bpp; n/a outside a curve"},
            "median": {**med, "at_0_91_bpp": med_table}, "verdict": verdict(scenes), "plots": plots,
            "scenes": scenes}


def _nanmedian(vals: Iterable) -> float:
    """Median of the values that are neither None nor NaN; NaN when none are."""
    v = [x for x in vals if x is not None and not math.isnan(x)]
    return float(statistics.median(v)) if v else float("nan")


def rd_markdown(rec: dict) -> str:
    """``NAME.md`` from the record of ``run_rd``."""
    scenes, med = rec["scenes"], rec["median"]
    codecs = [c for c in ("ours", "ours_payload", "j2k_mct", "jxl", "avif", "webp", "av1_klt")
              if c in med["bd_rate_psnr"]]
    vs_av1 = med.get("bd_rate_vs_av1_klt", {})
    d = rec["definitions"]
    lines = [f"# Rate-distortion: bundle `{rec['bundle'][:16]}` (training step {rec['training_step']})", "",
             f"`{rec['command']}` on {rec['machine']['cpu_model']}, {rec['time']}.", "",
             f"- bpp: {d['bpp']}; ours: {d['ours_bits']}.", f"- PSNR: {d['psnr']}.", f"- BD-rate: {d['bd_rate']}.",
             "", "## BD-rate (PSNR) against JPEG 2000", "",
             "| scene | bands | dtype | " + " | ".join(LABELS[c] for c in codecs) + " | ours, MS-SSIM | ours vs "
             "AV1 + KLT, PSNR | SAM ours (deg, top level) |", "|---" * (len(codecs) + 6) + "|"]
    for name, s in scenes.items():
        top = s["curves"]["ours"][-1].get("sam_deg")
        lines.append(f"| {name} | {s['shape'][0]} | {s['dtype']} | " + " | ".join(
            fmt(s["bd_rate_psnr"].get(c)) for c in codecs) + f" | {fmt(s['bd_rate_msssim'].get('ours'))} | "
            f"{fmt(s.get('bd_rate_vs_av1_klt', {}).get('psnr'))} | {fmt(top, '.3f', '')} |")
    lines.append("| **median** | | | " + " | ".join(f"**{fmt(med['bd_rate_psnr'][c])}**" for c in codecs) +
                 f" | **{fmt(med['bd_rate_msssim'].get('ours'))}** | **{fmt(vs_av1.get('psnr'))}** | |")
    lines += ["", f"## SSIM, PSNR, MSE near {BPP_TABLE} bpp (the seed paper's table)", "",
              f"{d['at_0_91_bpp']}.", "", "| scene | codec | SSIM | PSNR dB | MSE | MS-SSIM | note |",
              "|---|---|---|---|---|---|---|"]
    for name, s in scenes.items():
        for c, row in s["at_0_91_bpp"].items():
            lines.append(f"| {name} | {LABELS[c]} | {fmt(row['ssim'], '.4f', '')} | {fmt(row['psnr'], '.2f', '')} | "
                         f"{fmt(row['mse'], '.4g', '')} | {fmt(row['ms_ssim'], '.4f', '')} | {row['note'] or ''} |")
    for c, row in med["at_0_91_bpp"].items():
        if c != "scenes" and any(not math.isnan(v) for v in row.values()):
            lines.append(f"| **median** | {LABELS[c]} | {fmt(row['ssim'], '.4f', '')} | {fmt(row['psnr'], '.2f', '')}"
                         f" | {fmt(row['mse'], '.4g', '')} | {fmt(row['ms_ssim'], '.4f', '')} | "
                         "over the scenes our curve reaches |")
    v = rec["verdict"]
    for title, key in (("Where our codec loses", "loses"),
                       ("Rates at which JPEG 2000 has the higher PSNR (PSNR gap at our rates)",
                        "rates_where_j2k_is_better"),
                       ("Peers with a lower BD-rate than ours", "peers_better_than_ours"),
                       (f"Ours against {LABELS['av1_klt']}", "vs_av1_klt"),
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

