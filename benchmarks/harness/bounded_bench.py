"""Error-bounded and lossless coding (``--max-error E``, tile format v8) against its peers, same run.

For every scene and bound E: our whole encode (``cvae.edge.encoder.encode_scene``: read, tiles, C coder,
packets; every byte of every packet counted) against CCSDS 123.0-B-2 and JPEG-LS per band at the same E, and
JPEG 2000 and JPEG XL lossless (effort 7 and 9) at E = 0 (``lossless_peers.py``). Bits per sample over all
samples, encode MSamples/s as the median of ``--repeats`` runs, one thread each. Every decode (ours through the ground
decoder) is checked against its bound in the run; a violation aborts.

Fair to the peers: on scenes with nodata they code the image with nodata pixels set to the band's median
(cheap for every codec) and the mask is counted as zlib of the packed bits, as ours sends a mask.

Then, where the bounded and the rate (learned) modes overlap in PSNR, both curves side by side: the rate
mode's top levels and the bounded mode's E, bits per sample and PSNR (per band over valid pixels, averaged, as
the independent scorer computes it).

    python benchmarks/harness/bounded_bench.py .dev/val/*.tif
    python benchmarks/harness/bounded_bench.py .dev/val_resampled/*.tif --bounds 0 --rate-levels 0 --name bounded_jxl

Two ratios per scene and E: ``ours_over_best_peer`` (the better of CCSDS 123 and JPEG-LS, the README's figure)
and ``ours_over_best_peer_with_jxl`` (the best of CCSDS 123, JPEG-LS and JPEG XL lossless at either effort);
``ours_over`` holds ours / each peer.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core each: numpy and ONNX Runtime pools pinned
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT, machine_info, sibling, utc_now, write_results  # noqa: E402

lp = sibling("lossless_peers")

BOUNDS = (0, 1, 2, 4, 8)
WIDE_BOUNDS = (16, 32)  # also on data of more than 8 bits
PEER_NAMES = ("ccsds123", "jpegls", "jpeg2000_lossless", "jpegxl_lossless", "jpegxl_lossless_e9")
BEST_OF = ("ccsds123", "jpegls")  # the README's ratio: peers at every E
BEST_OF_WITH_JXL = BEST_OF + ("jpegxl_lossless", "jpegxl_lossless_e9")


def _scene(path: Path):
    from cvae.edge.io.raster import as_integers, read_raster

    r = read_raster(path)
    return as_integers(r.pixels), r.valid


def ours(path: Path, e: int, bundle, codec, pixels: np.ndarray, valid: np.ndarray, repeats: int) -> dict:
    """Our whole encode, median time of ``repeats``; the ground decode checked against the bound."""
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    opts = EncodeOptions(max_error=(e,), scene_id=1)
    times, enc = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        enc = encode_scene(path, bundle, codec, opts)
        times.append(time.perf_counter() - t0)
    (scene,), _ = decode_streams([b"".join(enc.packets)], bundle, codec)
    err = int(np.abs(scene.pixels.astype(np.int64) - pixels.astype(np.int64)).max())
    if err > e or scene.tiles_lost:
        raise lp.PeerBoundError(f"ours on {path.name}: max |error| {err} > E={e} (lost {scene.tiles_lost})")
    return {"nbytes": enc.nbytes, "bits_per_sample": 8 * enc.nbytes / pixels.size, "max_abs_error": err,
            "encode_seconds_median": statistics.median(times),
            "encode_msamples_per_s": pixels.size / statistics.median(times) / 1e6,
            "psnr": _psnr(pixels, scene.pixels, valid)}


def _psnr(orig, rec, valid) -> float:
    from cvae.metrics import psnr_bands

    return psnr_bands(orig, rec, valid)


def peers(pixels: np.ndarray, valid: np.ndarray, e: int, repeats: int) -> dict:
    """Each peer on the nodata-filled image, its mask counted; bound checked on valid pixels."""
    filled = pixels.copy()
    mask_bytes = 0
    if not valid.all():
        for b in range(pixels.shape[0]):
            filled[b][~valid] = np.median(pixels[b][valid]).astype(pixels.dtype) if valid.any() else 0
        mask_bytes = len(zlib.compress(np.packbits(valid).tobytes(), 9))
    out = {}
    for name in PEER_NAMES:
        if name in lp.LOSSLESS_ONLY and e != 0:
            continue
        try:
            m = lp.measure(name, filled, e, repeats)
        except (lp.PeerUnavailableError, ValueError) as exc:
            out[name] = {"skipped": str(exc)}
            continue
        m["nbytes"] += mask_bytes
        m["bits_per_sample"] = 8 * m["nbytes"] / pixels.size
        out[name] = m
    return out


def rate_points(path: Path, bundle, codec, pixels, valid, levels) -> list[dict]:
    """The rate mode's (learned codec's) points at ``levels``: bits per sample and PSNR."""
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    out = []
    for lv in levels:
        enc = encode_scene(path, bundle, codec, EncodeOptions(level=lv, scene_id=1))
        (scene,), _ = decode_streams([b"".join(enc.packets)], bundle, codec)
        out.append({"level": lv, "bits_per_sample": 8 * enc.nbytes / pixels.size,
                    "psnr": _psnr(pixels, scene.pixels, valid)})
    return out


def _ratio(row: dict, names: tuple[str, ...]) -> float | None:
    best = [row[n]["bits_per_sample"] for n in names if "bits_per_sample" in row.get(n, {})]
    return row["ours"]["bits_per_sample"] / min(best) if best else None


def _medians(records: list[dict], key: str) -> dict:
    medians = {}
    for e in BOUNDS + WIDE_BOUNDS:
        r = [b[key] for rec in records for b in rec["bounds"] if b["max_error"] == e and b.get(key) is not None]
        if r:
            medians[str(e)] = {"median": statistics.median(r), "scenes": len(r), "worst": max(r), "best": min(r)}
    return medians


def run(scenes: list[Path], repeats: int, rate_levels: int, log=print,
        bounds: tuple[int, ...] | None = None, bundle_dir: str | Path | None = None) -> dict:
    """``bounds``: the E to measure (default BOUNDS, and WIDE_BOUNDS on data of more than 8 bits); ``bundle_dir``:
    the model bundle of the rate levels set beside the bounds (default: the shipped one)."""
    from cvae.edge.bundle import Bundle

    bundle = Bundle.load(bundle_dir)
    codec = bundle.codec("onnxruntime")
    records = []
    for path in scenes:
        reads = []
        _scene(path)  # untimed: the first read of a run also starts GDAL, which no later read (nor ours) pays
        for _ in range(repeats):  # what reading the GeoTIFF costs: ours includes it, the peers get pixels in memory
            t0 = time.perf_counter()
            pixels, valid = _scene(path)
            reads.append(time.perf_counter() - t0)
        scene_bounds = bounds if bounds is not None else BOUNDS + (WIDE_BOUNDS if lp.data_depth(pixels) > 8 else ())
        rec = {"scene": path.stem, "shape": list(pixels.shape), "dtype": str(pixels.dtype),
               "valid_fraction": float(valid.mean()), "read_seconds_median": statistics.median(reads), "bounds": []}
        for e in scene_bounds:
            row = {"max_error": e, "ours": ours(path, e, bundle, codec, pixels, valid, repeats),
                   **peers(pixels, valid, e, repeats)}
            row["ours_over_best_peer"] = _ratio(row, BEST_OF)
            row["ours_over_best_peer_with_jxl"] = _ratio(row, BEST_OF_WITH_JXL)
            row["ours_over"] = {n: _ratio(row, (n,)) for n in PEER_NAMES if _ratio(row, (n,)) is not None}
            rec["bounds"].append(row)
            log(f"{path.stem:32s} E={e:<3d} ours {row['ours']['bits_per_sample']:.3f} bps "
                f"({row['ours']['psnr']:.1f} dB, {row['ours']['encode_msamples_per_s']:.1f} MS/s)  "
                + "  ".join(f"{n} {row[n]['bits_per_sample']:.3f}" for n in PEER_NAMES
                            if "bits_per_sample" in row.get(n, {})))
        top = list(range(codec.levels - 1, max(-1, codec.levels - 1 - rate_levels), -1))
        rec["rate_points"] = rate_points(path, bundle, codec, pixels, valid, top)
        records.append(rec)
    return {"machine": machine_info(), "date": utc_now(), "bundle": bundle.model_id[:12], "repeats": repeats,
            "scenes": records, "median_ours_over_best_of_ccsds123_jpegls": _medians(records, "ours_over_best_peer"),
            "median_ours_over_best_of_ccsds123_jpegls_jpegxl": _medians(records, "ours_over_best_peer_with_jxl")}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Error-bounded coding against its peers (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             "Bits per sample (all samples; every packet byte for ours), encode MSamples/s (median of "
             f"{rec['repeats']}, one thread). ratio = ours / the better of CCSDS 123.0-B-2 and JPEG-LS at the same E; "
             "ratio+JXL = ours / the best of those and JPEG XL lossless at effort 7 and 9 (E = 0 only).",
             "", "## Median ratio per bound (losses first: worst scene)", "",
             "| E | median ratio | worst | best | scenes |", "|---|---|---|---|---|"]
    for e, m in rec["median_ours_over_best_of_ccsds123_jpegls"].items():
        lines.append(f"| {e} | {m['median']:.3f} | {m['worst']:.3f} | {m['best']:.3f} | {m['scenes']} |")
    with_jxl = rec.get("median_ours_over_best_of_ccsds123_jpegls_jpegxl", {})
    if "0" in with_jxl:
        m = with_jxl["0"]
        lines += ["", "With JPEG XL lossless (effort 7 and 9) among the peers at E = 0: median "
                  f"{m['median']:.3f}, worst {m['worst']:.3f}, best {m['best']:.3f} ({m['scenes']} scenes)."]
    lines += ["", "## Per scene", "",
              "| scene | E | ours bps | MS/s | PSNR dB | CCSDS 123 bps | MS/s | JPEG-LS bps | MS/s | J2K lossless bps | "
              "MS/s | JXL e7 bps | MS/s | JXL e9 bps | MS/s | ratio | ratio+JXL |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(row, name, key="bits_per_sample", fmt="{:.3f}"):
        v = row.get(name, {}).get(key)
        return fmt.format(v) if v is not None else "-"

    for s in rec["scenes"]:
        for b in s["bounds"]:
            ratio = f"{b['ours_over_best_peer']:.3f}" if b["ours_over_best_peer"] is not None else "-"
            rjxl = b.get("ours_over_best_peer_with_jxl")
            rjxl = f"{rjxl:.3f}" if rjxl is not None else "-"
            psnr = "exact" if b["ours"]["max_abs_error"] == 0 else f"{b['ours']['psnr']:.1f}"
            lines.append(f"| {s['scene']} | {b['max_error']} | {b['ours']['bits_per_sample']:.3f} | "
                         f"{b['ours']['encode_msamples_per_s']:.1f} | {psnr} | {f(b, 'ccsds123')} | "
                         f"{f(b, 'ccsds123', 'encode_msamples_per_s', '{:.1f}')} | {f(b, 'jpegls')} | "
                         f"{f(b, 'jpegls', 'encode_msamples_per_s', '{:.1f}')} | {f(b, 'jpeg2000_lossless')} | "
                         f"{f(b, 'jpeg2000_lossless', 'encode_msamples_per_s', '{:.1f}')} | "
                         f"{f(b, 'jpegxl_lossless')} | {f(b, 'jpegxl_lossless', 'encode_msamples_per_s', '{:.2f}')} | "
                         f"{f(b, 'jpegxl_lossless_e9')} | "
                         f"{f(b, 'jpegxl_lossless_e9', 'encode_msamples_per_s', '{:.2f}')} | {ratio} | {rjxl} |")
    if not any(s["rate_points"] for s in rec["scenes"]):  # --rate-levels 0
        return "\n".join(lines) + "\n"
    lines += ["", "## Rate mode (learned levels) and bounded mode where their PSNR overlap", "",
              "| scene | rate mode: level bps@dB | bounded mode: E bps@dB |", "|---|---|---|"]
    for s in rec["scenes"]:
        rate = ", ".join(f"L{p['level']} {p['bits_per_sample']:.2f}@{p['psnr']:.1f}" for p in s["rate_points"])
        bnd = ", ".join(f"E{b['max_error']} {b['ours']['bits_per_sample']:.2f}@{b['ours']['psnr']:.1f}"
                        for b in s["bounds"] if b["max_error"] > 0)
        lines.append(f"| {s['scene']} | {rate} | {bnd} |")
    return "\n".join(lines) + "\n"


def summary(rec: dict) -> str:
    """The README's block: the median ratio per bound (worst scene first) and our speed against JPEG 2000's."""
    lines = [f"# {rec['command']}", f"# bundle {rec['bundle']}, {rec['date'][:10]}; ratio = our bits / the better of "
             "CCSDS 123.0-B-2 and JPEG-LS at the same E (below 1: we need fewer)",
             "E     median   worst    best   scenes"]
    for e, m in rec["median_ours_over_best_of_ccsds123_jpegls"].items():
        lines.append(f"{e:<5} {m['median']:6.3f}  {m['worst']:6.3f}  {m['best']:6.3f}   {m['scenes']}")
    m = rec.get("median_ours_over_best_of_ccsds123_jpegls_jpegxl", {}).get("0")
    if m:
        lines.append(f"E = 0 with JPEG XL lossless (effort 7 and 9) among the peers: median {m['median']:.3f}, "
                     f"worst {m['worst']:.3f}, best {m['best']:.3f}, {m['scenes']} scenes")
    pairs = [(b["ours"]["encode_seconds_median"], b["jpeg2000_lossless"]["encode_seconds_median"],
              s.get("read_seconds_median", 0.0)) for s in rec["scenes"] for b in s["bounds"]
             if b["max_error"] == 0 and "encode_seconds_median" in b.get("jpeg2000_lossless", {})]
    if pairs:
        plain = [j / o for o, j, _ in pairs]
        read = [(j + r) / o for o, j, r in pairs]
        lines.append(f"lossless encode speed, ours (whole encode: GeoTIFF read to packets) / OpenJPEG lossless (one "
                     f"thread): median {statistics.median(plain):.2f}x (worst {min(plain):.2f}x) against OpenJPEG on "
                     f"pixels in memory, {statistics.median(read):.2f}x (worst {min(read):.2f}x) with the same GeoTIFF "
                     f"read added to OpenJPEG's time; {len(pairs)} scenes")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", nargs="*", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rate-levels", type=int, default=3, help="top levels of the rate mode to set beside the bounds")
    p.add_argument("--bounds", type=lambda v: tuple(int(x) for x in v.split(",")),
                   help="comma-separated E to measure (default: 0,1,2,4,8 and 16,32 on data of more than 8 bits)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="bounded")
    p.add_argument("--summarize", type=Path, help="only rewrite NAME_summary.txt from this results JSON")
    a = p.parse_args(argv)
    if a.summarize:
        rec = json.loads(a.summarize.read_text())
        (a.out / f"{a.name}_summary.txt").write_text(summary(rec))
        print(summary(rec))
        return 0
    rec = run(a.scenes, a.repeats, a.rate_levels, bounds=a.bounds)
    command = "python benchmarks/harness/bounded_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    rec["command"] = command
    a.out.mkdir(parents=True, exist_ok=True)
    write_results(a.out, a.name, rec, markdown(rec, command))
    (a.out / f"{a.name}_summary.txt").write_text(summary(rec))
    print(markdown(rec, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
