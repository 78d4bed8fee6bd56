"""Can a tile's statistics say, before any network runs, whether the network will pay on it? (issue 22, item 2)

For every 256 x 256 tile of the scenes given and every residual level that runs the network under ``'auto'``
(steps above ``NETWORK_FREE_STEP``), the planner's cost ``D + lambda R`` of its choice without the gate (the ladder's
mode with latents, or the residual alone: ``'ladder'``) against the residual alone, and what is known of the tile before the
analysis network: its components' variances (``AnalyzedTile.variance``, normalised units), the share of its
residual's energy in the finest wavelet subbands, bands, bit depth of the band ranges and the valid share.

    python benchmarks/experiments/network_gate.py .dev/val/*.tif

Writes ``network_gate.json`` (a row per tile and level) and ``network_gate.md``: how much of the network's gain in
``D + lambda R`` each candidate rule keeps, against the share of tiles it sends to the network, and the rule shipped
(``plan.GATE_MIN_BANDS``, ``plan.GATE_FINE_SHARE``).

**Conclusion** (2026-12-06, decided on these 8 scenes, so in-sample): the network's gain is 0.56% of the cost summed
over every tile-level; it wins on 74% of the Sentinel-2 T33NZA 10 m tile-levels, 33% of the 20 m 12-band ones and 30%
of Landsat-5's, never on Landsat-8 or NAIP. "At least 4 bands and under 5% of the wavelet energy in the finest
subbands" sends 28% of the tile-levels to the network and keeps 98% of the gain: shipped as ``'auto'``'s gate.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import analysed_tiles, machine_info, scenes_main, utc_now  # noqa: E402


def features(a, peaks: np.ndarray) -> dict:
    """What is known of the tile before the analysis network runs."""
    from cvae.edge.codec import wavelet

    c, h, w = a.shape
    levels = wavelet.levels_for(h, w)
    fine, total = 0.0, 0.0
    for k in range(c):
        bands = wavelet.forward(a.z[k], levels)
        e = [float(np.sum(b.astype(np.float64) ** 2)) for b in bands]
        fine += sum(e[:3])  # the finest level's HL, LH, HH
        total += sum(e)
    var = np.asarray(a.variance, np.float64)
    return {"bands": c, "bits": float(np.log2(max(float(peaks.max()), 1.0))),
            "log_var_max": float(np.log10(max(var.max(), 1e-12))), "log_var_sum": float(np.log10(max(var.sum(), 1e-12))),
            "fine_share": fine / total if total > 0 else 0.0,
            "valid": 1.0 if a.valid is None else float(a.valid.mean())}


def run(scenes: list[Path], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec.plan import Planner, rd_lambda
    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    hybrid = codec.hybrid
    ungated = Planner(hybrid.model, "ladder")  # what 'auto' searches on these levels, without its gate
    alone = Planner(hybrid.model, "residual")
    levels = [lv for lv in range(codec.levels)
              if codec.ladder.step[lv] > 0 and not hybrid.planner.network_free(lv)]
    rows = []
    for path in scenes:
        for info, win, a in analysed_tiles(path, codec):
            peaks = np.asarray(info.band_range[1], np.float64) - np.asarray(info.band_range[0], np.float64)
            f = features(a, peaks)
            for level in levels:
                step = hybrid.model.preset_step(level)
                lam = rd_lambda(step)
                p = ungated.plan(a, level)
                d = p.err if p.err is not None else ungated.latent_error(a, p.latent)
                q = alone.plan(a, level)
                rows.append({"scene": path.stem, "tile": [win.row, win.col], "level": level, "step": step,
                             "mode": p.mode, "j_auto": d + lam * p.bits, "j_alone": q.err + lam * q.bits,
                             "bits_auto": p.bits, "bits_alone": q.bits, **f})
        log(f"{path.stem}: {sum(r['scene'] == path.stem for r in rows)} tile-levels")
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "levels": levels,
            "rows": rows, "rules": rules(rows)}


def rules(rows: list[dict]) -> list[dict]:
    """Each candidate rule: the share of tiles it sends to the network and of the network's gain it keeps."""
    gain = np.array([max(0.0, r["j_alone"] - r["j_auto"]) for r in rows])
    total = float(gain.sum()) or 1.0
    out = []
    for name, key in (("log_var_max", "log_var_max"), ("log_var_sum", "log_var_sum"), ("fine_share", "fine_share"),
                      ("bits", "bits"), ("bands", "bands")):
        x = np.array([r[key] for r in rows])
        for sign in (1, -1):  # network when sign * x > threshold
            for q in (10, 25, 50, 75, 90):
                thr = float(np.percentile(sign * x, q))
                on = sign * x > thr
                out.append({"rule": f"{'' if sign > 0 else '-'}{name} > {thr:.4g}", "network_share": float(on.mean()),
                            "gain_kept": float(gain[on].sum() / total)})
    rel = [(r["j_alone"] - r["j_auto"]) / r["j_alone"] for r in rows if r["j_alone"] > 0]
    out.append({"rule": "oracle (network where it wins)", "network_share": float(np.mean(np.array(rel) > 0)),
                "gain_kept": 1.0})
    from cvae.edge.codec.plan import GATE_FINE_SHARE, GATE_MIN_BANDS

    on = np.array([r["bands"] >= GATE_MIN_BANDS and r["fine_share"] < GATE_FINE_SHARE for r in rows])
    out.append({"rule": f"shipped: bands >= {GATE_MIN_BANDS} and fine_share < {GATE_FINE_SHARE}",
                "network_share": float(on.mean()), "gain_kept": float(gain[on].sum() / total)})
    return out


def markdown(rec: dict, command: str) -> str:
    rows = rec["rows"]
    gain = sum(max(0.0, r["j_alone"] - r["j_auto"]) for r in rows)
    total = sum(r["j_alone"] for r in rows)
    lines = [f"# Does a tile's statistics say whether the network pays? (bundle {rec['bundle']}, {rec['date'][:10]})",
             "", f"`{command}`", "",
             f"{len(rows)} tile-levels (levels {rec['levels']}). The network's gain in D + lambda R over the residual "
             f"alone, summed: {100 * gain / max(total, 1e-30):.2f}% of the residual-alone cost.", "",
             "| rule (network when) | tiles sent to the network | gain kept |", "|---|---|---|"]
    named = [r for r in rec["rules"] if r["rule"].startswith(("shipped", "oracle"))]
    best = named + sorted([r for r in rec["rules"] if r not in named],
                          key=lambda r: (-(r["gain_kept"] - r["network_share"])))[:10]
    for r in best:
        lines.append(f"| {r['rule']} | {100 * r['network_share']:.0f}% | {100 * r['gain_kept']:.0f}% |")
    by_scene: dict[str, list[float]] = {}
    for r in rows:
        by_scene.setdefault(r["scene"], []).append((r["j_alone"] - r["j_auto"]) / max(r["j_alone"], 1e-30))
    lines += ["", "| scene | tile-levels | network wins | median gain where it runs |", "|---|---|---|---|"]
    for s, g in by_scene.items():
        g = np.array(g)
        lines.append(f"| {s} | {len(g)} | {100 * (g > 0).mean():.0f}% | {100 * float(np.median(g)):.2f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "network_gate", run, markdown)


if __name__ == "__main__":
    sys.exit(main())
