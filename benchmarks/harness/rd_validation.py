"""Rate-distortion of the bundle on whole scenes against OpenJPEG JPEG 2000: BD-rate in PSNR and MS-SSIM.

Our codec: every level, bits = every byte of the CCSDS packet file (headers, metadata copies, CRCs).
JPEG 2000: imagecodecs (OpenJPEG) per band at quality levels 24..100, and with its colour transform on
3-band scenes; against two baselines the one we beat least counts (as in shared/tools/rd_vs_jpeg2000.py).
PSNR per band in native units over valid pixels, peak = max - min of the valid original; MS-SSIM per band
with the same peak; both averaged over bands. BD-rate: PCHIP Bjontegaard (models/metrics.py).

    python benchmarks/harness/rd_validation.py [--scenes A.tif B.tif ...] [--bundle DIR] [--out benchmarks/results/BUNDLE]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT  # noqa: E402


def j2k_curves(orig: np.ndarray, valid: np.ndarray, metrics) -> dict[str, list]:
    import imagecodecs

    c = orig.shape[0]
    curves = {"j2k": []}
    for q in range(24, 101, 3):
        bits, rec = 0, np.empty_like(orig)
        for b in range(c):
            e = imagecodecs.jpeg2k_encode(np.ascontiguousarray(orig[b]), level=q)
            bits += 8 * len(e)
            rec[b] = imagecodecs.jpeg2k_decode(e)
        curves["j2k"].append((bits / orig.size, *metrics(orig, rec, valid)))
    if c == 3:
        curves["j2k_mct"] = []
        img = np.ascontiguousarray(np.moveaxis(orig, 0, -1))
        for q in range(24, 101, 3):
            e = imagecodecs.jpeg2k_encode(img, level=q, mct=True)
            rec = np.moveaxis(imagecodecs.jpeg2k_decode(e), -1, 0)
            curves["j2k_mct"].append((8 * len(e) / orig.size, *metrics(orig, rec, valid)))
    return curves


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.edge.io.raster import read_raster
    from cvae.ground.decoder import decode_streams
    from cvae.metrics import bd_rate, ms_ssim_bands, psnr_bands

    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    default_scenes = [str((ROOT / "configs" / p).resolve()) for p in cfg["validation_scenes"]]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", nargs="+", default=default_scenes)
    p.add_argument("--bundle")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--name", default="rd_validation")
    a = p.parse_args(argv)

    def metrics(o, r, v):
        psnr = psnr_bands(o, r, v)
        ms = ms_ssim_bands(o, r, v)
        return psnr, -10 * math.log10(max(1 - ms, 1e-10))  # MS-SSIM in dB for BD-rate

    bundle = Bundle.load(a.bundle)
    codec = bundle.codec(mode_search="auto")
    results = {}
    for path in a.scenes:
        t0 = time.time()
        r = read_raster(path)
        ours = []
        for level in range(bundle.levels):
            enc = encode_scene(path, bundle, codec, EncodeOptions(level=level))
            [scene], _ = decode_streams([b"".join(enc.packets)], bundle, codec)
            payload = sum(len(pk) - 27 for pk in enc.packets)
            ours.append((8 * enc.nbytes / r.pixels.size, *metrics(r.pixels, scene.pixels, r.valid),
                         8 * payload / r.pixels.size))
        base = j2k_curves(r.pixels, r.valid, metrics)
        bd = {}
        for i, metric, floor in ((1, "psnr", 20.0), (2, "msssim_db", 0.0)):
            vals = [bd_rate([(x[0], x[i]) for x in c], [(x[0], x[i]) for x in ours], min_psnr=floor)
                    for c in base.values()]
            vals = [v for v in vals if not math.isnan(v)]
            bd[metric] = max(vals) if vals else float("nan")
        results[Path(path).stem] = {"shape": list(r.pixels.shape), "dtype": str(r.pixels.dtype), "ours": ours,
                                    **base, "bd_rate_psnr": bd["psnr"], "bd_rate_msssim": bd["msssim_db"],
                                    "seconds": time.time() - t0}
        print(f"{Path(path).stem:28s} BD-rate PSNR {bd['psnr']:7.1f}%  MS-SSIM {bd['msssim_db']:7.1f}%  "
              f"bpp {ours[0][0]:.3f}-{ours[-1][0]:.3f}  PSNR {ours[0][1]:.2f}-{ours[-1][1]:.2f}", file=sys.stderr)
    med = {k: float(np.nanmedian([v[k] for v in results.values()])) for k in ("bd_rate_psnr", "bd_rate_msssim")}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), "bundle": bundle.model_id,
              "training_step": bundle.manifest["training"]["step"], "machine": platform.platform(),
              "processor": platform.processor(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "median": med, "scenes": results}
    (out / f"{a.name}.json").write_text(json.dumps(record, indent=1))
    lines = [f"Bundle `{bundle.model_id[:16]}` (training step {record['training_step']}), `{record['command']}`",
             "", "| scene | bands | dtype | bpp range (all packet bytes) | PSNR range dB | BD-rate PSNR | BD-rate MS-SSIM |",
             "|---|---|---|---|---|---|---|"]
    for name, v in results.items():
        o = v["ours"]
        lines.append(f"| {name} | {v['shape'][0]} | {v['dtype']} | {o[0][0]:.3f}-{o[-1][0]:.3f} | "
                     f"{o[0][1]:.2f}-{o[-1][1]:.2f} | {v['bd_rate_psnr']:+.1f}% | {v['bd_rate_msssim']:+.1f}% |")
    lines.append(f"| **median** | | | | | **{med['bd_rate_psnr']:+.1f}%** | **{med['bd_rate_msssim']:+.1f}%** |")
    (out / f"{a.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
