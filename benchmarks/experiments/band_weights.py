"""Component weights matched to the bands' mean PSNR, and the details' axes (:mod:`cvae.edge.codec.weighting`): what
each gains.

Each scene is coded tile by tile at every level twice in the same run, as ``cvae-encode --level`` cuts and codes it
(512-pixel tiles on the latent-only levels, 256 elsewhere; the scene's band ranges; ``TileCodec.analyze`` /
``encode`` / ``decompress``): with the rotation's rows weighted for the level (``TileCodec.weighted``, what the
encoder does) and with the tile's own KLT rows left as they are (one step for every component, the summed band
error served). Bytes are the tiles' (no packets, the same in both), PSNR the
independent scorer's (per band over valid pixels, the band's valid range as peak, mean over bands); the BD-rate is of
the weighted curve against the unweighted one (negative: the weights save bits).

    python benchmarks/experiments/band_weights.py .dev/val/*.tif --mode-search residual

Writes ``band_weights.json`` and ``band_weights.md``.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402


def _psnr(orig: np.ndarray, rec: np.ndarray, mask: np.ndarray) -> float:
    """The scorer's: the band's valid range as peak."""
    o = orig[mask].astype(np.float64)
    peak = o.max() - o.min()
    mse = np.mean((o - rec[mask].astype(np.float64)) ** 2)
    return 10 * math.log10(peak ** 2 / max(mse, 1e-12)) if peak > 0 else float("nan")


def curve(codec, r, band_range, masks, levels, weigh: bool, details: bool = False) -> list[dict]:
    from cvae.edge.encoder import DEFAULT_TILE, LOW_RATE_TILE
    from cvae.edge.io.tiling import tile_grid

    orig = r.pixels
    out = []
    for level in levels:
        rec = np.zeros(orig.shape, orig.dtype)
        nbytes, t0 = 0, time.process_time()
        size = DEFAULT_TILE if codec.has_residual(level) else LOW_RATE_TILE
        for w in tile_grid(orig.shape[1], orig.shape[2], size):
            valid = r.valid[w.slices] if r.valid is not None else None
            a = codec.analyze(orig[:, w.slices[0], w.slices[1]], valid, band_range=band_range)
            data = codec.encode(codec.weighted(a, level, details=details) if weigh else a, level)
            nbytes += len(data)
            rec[:, w.slices[0], w.slices[1]] = codec.decompress(data).pixels
        bands = [_psnr(orig[k], rec[k], masks[k]) for k in range(orig.shape[0])]
        out.append({"level": level, "bpp": nbytes * 8 / orig.size, "cpu_s": time.process_time() - t0,
                    "psnr": float(np.mean(bands)),  # the scorer's
                    # the PSNR of the bands' mean error (each against its peak): what the summed error serves
                    "psnr_of_mean": float(-10 * np.log10(np.mean([10 ** (-q / 10) for q in bands])))})
    return out


def run(scenes: list[Path], mode_search: str, log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.io.raster import band_ranges, read_raster

    bd_rate = sibling("ablation_scorer")._bd_rate()
    valid_of = sibling("ladder_eval")._valid
    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search=None if mode_search == "default" else mode_search)
    levels = list(range(codec.levels))
    records = []
    for path in scenes:
        r = read_raster(path)
        c = r.pixels.shape[0]
        br = band_ranges(r.pixels, r.valid, r.nodata)
        masks = [valid_of(r.pixels[k], r.nodata) for k in range(c)]
        plain = curve(codec, r, br, masks, levels, weigh=False)
        weighed = curve(codec, r, br, masks, levels, weigh=True)
        rotated = curve(codec, r, br, masks, levels, weigh=True, details=True)

        def bd_of(a, b, key):
            return bd_rate([p["bpp"] for p in a], [p[key] for p in a], [p["bpp"] for p in b], [p[key] for p in b])

        bd, bd_sum = bd_of(plain, weighed, "psnr"), bd_of(plain, weighed, "psnr_of_mean")
        bd_rot, bd_rot_sum = bd_of(weighed, rotated, "psnr"), bd_of(weighed, rotated, "psnr_of_mean")
        bd_all = bd_of(plain, rotated, "psnr")
        cpu = sum(p["cpu_s"] for p in rotated) / max(sum(p["cpu_s"] for p in plain), 1e-9)
        records.append({"scene": path.stem, "bands": c, "plain": plain, "weighted": weighed, "rotated": rotated,
                        "bd_rate": bd, "bd_rate_mean_error": bd_sum, "bd_rate_details": bd_rot,
                        "bd_rate_details_mean_error": bd_rot_sum, "bd_rate_both": bd_all, "cpu_ratio": cpu})
        log(f"{path.stem}: weighted {bd:+.2f}% BD-rate ({bd_sum:+.2f}% on the mean error's PSNR), the details' axes "
            f"on top {bd_rot:+.2f}% ({bd_rot_sum:+.2f}%), both {bd_all:+.2f}%, CPU time {cpu:.2f}x; " + " ".join(
            f"L{o['level']} {100 * (s['bpp'] / o['bpp'] - 1):+.1f}%b {s['psnr'] - o['psnr']:+.2f}dB"
            for o, s in zip(plain, weighed)))
    ok = [x["bd_rate"] for x in records if x["bd_rate"] == x["bd_rate"]]
    ok_sum = [x["bd_rate_mean_error"] for x in records if x["bd_rate_mean_error"] == x["bd_rate_mean_error"]]

    def median(key):
        v = [x[key] for x in records if x[key] == x[key]]
        return statistics.median(v) if v else None

    return {"bd_rate_details_median": median("bd_rate_details"),
            "bd_rate_details_mean_error_median": median("bd_rate_details_mean_error"),
            "bd_rate_both_median": median("bd_rate_both"),
            "date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "mode_search": mode_search,
            "levels": levels, "scenes": records, "bd_rate_median": statistics.median(ok) if ok else None,
            "bd_rate_worst": max(ok) if ok else None,
            "bd_rate_mean_error_median": statistics.median(ok_sum) if ok_sum else None,
            "bd_rate_mean_error_worst": max(ok_sum) if ok_sum else None}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Component weights matched to the bands' mean PSNR (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             f"Mode search '{rec['mode_search']}'. Per level: the weighted tiles' bytes and the scorer's PSNR against "
             "the unweighted ones (the tile's KLT rows as they are); BD-rate of the weighted curve against the "
             f"unweighted over levels 0-{rec['levels'][-1]}: median {rec['bd_rate_median']:+.2f}%, worst scene "
             f"{rec['bd_rate_worst']:+.2f}% (negative: the weights save bits). Measured instead with the PSNR of the "
             "bands' mean error (each band's error over its peak squared, averaged, then in dB: what one step for "
             "every component serves), the BD-rate the weights cost: median "
             f"{rec['bd_rate_mean_error_median']:+.2f}%, worst scene {rec['bd_rate_mean_error_worst']:+.2f}%. Then the "
             "details' axes where they code cheaper (``TileCodec.weighted(details=True)``, what the encoder does) "
             f"against the weights alone: median {rec['bd_rate_details_median']:+.2f}% (on the mean error's PSNR "
             f"{rec['bd_rate_details_mean_error_median']:+.2f}%); both against neither: median "
             f"{rec['bd_rate_both_median']:+.2f}%. CPU: the encoder's pass (both) encode + decode time over the "
             "plain pass'. Per level: the weights alone against the plain KLT.", "",
             "| scene | bands | weights | on the mean error | details' axes on top | on the mean error | both | CPU | "
             + " | ".join(f"L{lv}" for lv in rec["levels"]) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(rec["levels"])]
    for r in rec["scenes"]:
        cells = [f"{100 * (s['bpp'] / o['bpp'] - 1):+.1f}%, {s['psnr'] - o['psnr']:+.2f} dB"
                 for o, s in zip(r["plain"], r["weighted"])]
        lines.append(f"| {r['scene']} | {r['bands']} | {r['bd_rate']:+.2f}% | {r['bd_rate_mean_error']:+.2f}% | "
                     f"{r['bd_rate_details']:+.2f}% | {r['bd_rate_details_mean_error']:+.2f}% | "
                     f"{r['bd_rate_both']:+.2f}% | {r['cpu_ratio']:.2f}x | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "band_weights", run, markdown,
                       [("--mode-search", {"default": "default",
                                           "choices": ["default", "auto", "full", "ladder", "residual"]})])


if __name__ == "__main__":
    sys.exit(main())
