"""What the no-network shortcut costs and saves: residual levels coded as the wavelet residual alone, no network.

For each scene, every level is encoded in the same run (one core, ONNX Runtime on one thread) with the full mode
search (every allowed latent level, one synthesis each), with the residual alone on every residual level (no
network: what ``mode_search='auto'`` does at and below ``NETWORK_FREE_STEP``), and, on the residual levels above it,
with the ladder's own mode only (one synthesis: what ``'auto'`` does there), decoded with the ground decoder and
scored with the independent scorer's PSNR. For each candidate threshold (a residual level's step) it reports the
BD-rate of the curve that uses the shortcut at and below that step against the full search (the shortcut's cost)
and the encode time of both; then the shipped default ``'auto'`` (ladder above the threshold, residual alone at
and below it) against the full search.

    python benchmarks/experiments/shortcut_eval.py .dev/val/*.tif

Writes ``shortcut.json`` and ``shortcut.md``.

**Conclusion** (decided; rerun by reproduce_readme.sh, as README.md quotes it): coding the residual levels at and
below step 0.035 as the residual alone, with no network, costs a median +0.02% BD-rate (worst scene +0.75%) and cuts
the encode CPU time on the residual levels from 202.9 s to 59.7 s: shipped as ``mode_search='auto'``
(``NETWORK_FREE_STEP``).
Result: ``benchmarks/results/782c7ed21f22/shortcut.md``.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402

_valid = sibling("ladder_eval")._valid


def points(scene: Path, bundle, codec, levels=None) -> list[dict]:
    """Per level: bits per sample (every packet byte), the scorer's PSNR, encode CPU seconds."""
    import rasterio

    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams
    from cvae.metrics import psnr_bands

    with rasterio.open(scene) as ds:
        orig, nodata = ds.read(), ds.nodata
    masks = [_valid(orig[k], nodata) for k in range(orig.shape[0])]
    out = []
    for level in range(codec.levels) if levels is None else levels:
        t0 = time.process_time()
        enc = encode_scene(scene, bundle, codec, EncodeOptions(level=level, scene_id=1, threads=1))
        seconds = time.process_time() - t0
        data = b"".join(enc.packets)
        (dec,), _ = decode_streams([data], bundle, codec)
        out.append({"level": level, "bpp": len(data) * 8 / orig.size, "seconds": seconds,
                    "psnr": psnr_bands(orig, dec.pixels, np.stack(masks))})  # the scorer's: a mask per band
    return out


def run(scenes: list[Path], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec.plan import NETWORK_FREE_STEP

    bundle = Bundle.load()
    full = bundle.codec("onnxruntime", mode_search="full", threads=1)
    alone = bundle.codec("onnxruntime", mode_search="residual", transforms=full.transforms)
    ladder = bundle.codec("onnxruntime", mode_search="ladder", transforms=full.transforms)
    steps = [float(s) for s in full.ladder.step]
    searched = [i for i, s in enumerate(steps) if s > NETWORK_FREE_STEP]  # where 'auto' runs the ladder's mode
    records = []
    for path in scenes:
        rec = {"scene": path.stem, "full": points(path, bundle, full), "residual_alone": points(path, bundle, alone)}
        lad = {p["level"]: p for p in points(path, bundle, ladder, searched)}
        rec["auto"] = [lad.get(i) or (a if s > 0 else f)
                       for i, (f, a, s) in enumerate(zip(rec["full"], rec["residual_alone"], steps))]
        records.append(rec)
        log(f"{path.stem}: " + " ".join(f"L{f['level']} {f['seconds']:.2f}s/{r['seconds']:.2f}s "
                                        f"{100 * (r['bpp'] / f['bpp'] - 1):+.1f}%b {r['psnr'] - f['psnr']:+.2f}dB"
                                        for f, r in zip(rec["full"], rec["residual_alone"])))
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "steps": steps,
            "network_free_step": NETWORK_FREE_STEP, "scenes": records,
            "thresholds": thresholds(records, steps), "auto": auto_cost(records, steps)}


def auto_cost(records: list[dict], steps: list[float]) -> dict:
    """The shipped default against the full search: BD-rate per scene and encode time on the residual levels."""
    _bd_rate = sibling("ablation_scorer")._bd_rate

    bd_rate = _bd_rate()
    bds = [bd_rate([p["bpp"] for p in r["full"]], [p["psnr"] for p in r["full"]],
                   [p["bpp"] for p in r["auto"]], [p["psnr"] for p in r["auto"]]) for r in records]
    ok = [b for b in bds if b == b]
    return {"bd_rate_per_scene": dict(zip([r["scene"] for r in records], bds)),
            "bd_rate_median": statistics.median(ok) if ok else None, "bd_rate_worst": max(ok) if ok else None,
            "bd_rate_best": min(ok) if ok else None,
            "seconds_full": sum(p["seconds"] for r in records for p, s in zip(r["full"], steps) if s > 0),
            "seconds_auto": sum(p["seconds"] for r in records for p, s in zip(r["auto"], steps) if s > 0)}


def thresholds(records: list[dict], steps: list[float]) -> list[dict]:
    """For each residual step T: the BD-rate per scene of the curve taking the residual-alone points at levels
    with step <= T (full search elsewhere) against the full search, and the time of both at those levels."""
    _bd_rate = sibling("ablation_scorer")._bd_rate

    bd_rate = _bd_rate()
    out = []
    for t in sorted({s for s in steps if s > 0}):
        cut = [s > 0 and s <= t for s in steps]
        bds, t_full, t_cut = [], 0.0, 0.0
        for r in records:
            mixed = [(a if c else f) for f, a, c in zip(r["full"], r["residual_alone"], cut)]
            bds.append(bd_rate([p["bpp"] for p in r["full"]], [p["psnr"] for p in r["full"]],
                               [p["bpp"] for p in mixed], [p["psnr"] for p in mixed]))
            t_full += sum(p["seconds"] for p, c in zip(r["full"], cut) if c)
            t_cut += sum(p["seconds"] for p, c in zip(r["residual_alone"], cut) if c)
        ok = [b for b in bds if b == b]
        out.append({"step": t, "levels": [i for i, c in enumerate(cut) if c], "bd_rate_per_scene": bds,
                    "bd_rate_median": statistics.median(ok) if ok else None,
                    "bd_rate_worst": max(ok) if ok else None, "seconds_full": t_full, "seconds_shortcut": t_cut})
    return out


def markdown(rec: dict, command: str) -> str:
    lines = [f"# The no-network shortcut: cost and saving (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             "Residual levels at or below a step coded as the wavelet residual alone with no network, against the "
             "full mode search; BD-rate of the whole curve (all levels, the scorer's PSNR), encode CPU seconds at "
             f"the shortcut's levels (one core, one run each). Shipped threshold: step <= {rec['network_free_step']}.",
             "", "| shortcut at steps <= | levels | BD-rate median | worst scene | CPU s full search | CPU s shortcut |",
             "|---|---|---|---|---|---|"]
    for t in sorted(rec["thresholds"], key=lambda t: -t["step"]):
        lines.append(f"| {t['step']:.4g} | {t['levels'][0]}-{t['levels'][-1]} | {t['bd_rate_median']:+.2f}% | "
                     f"{t['bd_rate_worst']:+.2f}% | {t['seconds_full']:.1f} | {t['seconds_shortcut']:.1f} |")
    au = rec.get("auto")
    if au:
        lines += ["", f"**The shipped default** (`auto`: the ladder's own mode, one synthesis, on residual levels above "
                  f"step {rec['network_free_step']}; the residual alone at and below it) against the full search: "
                  f"BD-rate median {au['bd_rate_median']:+.2f}%, worst scene {au['bd_rate_worst']:+.2f}%, best "
                  f"{au['bd_rate_best']:+.2f}%; encode CPU seconds on the residual levels {au['seconds_full']:.1f} "
                  f"(full) -> {au['seconds_auto']:.1f} (auto).", "",
                  "| scene | auto vs full BD-rate |", "|---|---|"]
        lines += [f"| {k} | {v:+.2f}% |" for k, v in au["bd_rate_per_scene"].items()]
    lines += ["", "## Per scene and level (full search / residual alone)", "",
              "| scene | level | bpp full | bpp alone | PSNR full | PSNR alone | s full | s alone |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rec["scenes"]:
        for f, a in zip(r["full"], r["residual_alone"]):
            if rec["steps"][f["level"]] > 0:
                lines.append(f"| {r['scene']} | {f['level']} | {f['bpp']:.4f} | {a['bpp']:.4f} | {f['psnr']:.2f} | "
                             f"{a['psnr']:.2f} | {f['seconds']:.2f} | {a['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "shortcut", run, markdown, ())

if __name__ == "__main__":
    sys.exit(main())
