"""Ceiling of decoder-side reconstruction offsets for the residual's coefficients (issue 22, dropped).

The decoder puts a coefficient coded as ``q`` at ``q * step``, the middle of its quantisation interval. A decoder
could instead put it at the centroid of the values the encoder mapped to ``q`` (a per-tile offset sent per subband
and magnitude class, as JPEG 2000 decoders bias toward zero). This measures how much that could gain, at most: every
residual the planner codes at a fixed level is re-derived (the same subbands, the same rotations), and per subband
position in ``wavelet.forward``'s order and magnitude class (``|q|`` = 1, 2, >= 3) the mean of ``|x| - |q|`` (``x``
the coefficient in steps) is the centroid's offset; its squared error reduction, ``n * mean^2`` per class, is set
against the coefficients' whole squared error. The offsets are fitted on the very data they are scored on and cost
no side bits: a ceiling, not a codec.

    python benchmarks/experiments/reconstruction_offsets.py .dev/val/*.tif --levels 3 6 9

Writes ``reconstruction_offsets.json`` / ``.md``.
"""
from __future__ import annotations

import collections
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402


def run(scenes: list[Path], levels: list[int]) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import levels as levels_mod
    from cvae.edge.codec import plan as plan_mod
    from cvae.edge.codec import wavelet
    from cvae.edge.encoder import EncodeOptions, encode_scene

    bundle = Bundle.load(None)
    codec = bundle.codec()
    original = plan_mod.Planner.residual_part
    stats: dict = collections.defaultdict(lambda: np.zeros(2))  # (subband, class) -> n, sum of (|x| - |q|) step
    total = [0.0]  # squared error of the coefficients (in pixel units squared: x step)

    def observed(self, a, level, lat, step=None, keep=None, rotate=False):
        part = original(self, a, level, lat, step, keep, rotate)
        step = self.model.preset_step(level) if step is None else float(step)
        r = a.z - self.reconstruction(a, lat, keep) if lat is not None else a.z
        c, h, w = r.shape
        lm = a.level_matrices if rotate and lat is None else None
        bands = [wavelet.forward(r[k], wavelet.levels_for(h, w)) for k in range(c)] if lat is not None \
            else self.z_subbands(a)
        if lm is not None:
            bands = levels_mod.to_levels(bands, lm, a.spectral.matrix)
        for comp in range(c):
            for s, (x, q) in enumerate(zip(bands[comp], part.arrays[comp])):
                x = np.asarray(x, np.float64) / step
                q = np.asarray(q)
                total[0] += float(np.sum((x - q) ** 2)) * step * step
                d = (np.abs(x) - np.abs(q)) * step
                cls = np.minimum(np.abs(q), 3)
                for k in (1, 2, 3):
                    m = cls == k
                    if m.any():
                        stats[(s, k)] += (m.sum(), d[m].sum())
        return part

    rows = []
    plan_mod.Planner.residual_part = observed
    try:
        for path in scenes:
            for level in levels:
                stats.clear()
                total[0] = 0.0
                encode_scene(path, bundle, codec, EncodeOptions(level=level, scene_id=1, threads=1))
                gain = sum(s1 * s1 / n for n, s1 in stats.values() if n)
                share = gain / total[0] if total[0] > 0 else 0.0
                rows.append({"scene": path.stem, "level": level, "error_reduction": share,
                             "db": -10 * math.log10(1 - share) if share < 1 else float("inf"),
                             "classes": len(stats)})
                print(f"{path.stem} level {level}: squared error -{100 * share:.3f}% "
                      f"(+{rows[-1]['db']:.4f} dB) at most", flush=True)
    finally:
        plan_mod.Planner.residual_part = original
    return {"date": utc_now(), "machine": machine_info(), "levels": levels, "rows": rows}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Reconstruction offsets: the ceiling (issue 22, dropped; {rec['date'][:10]})", "", "```bash", command,
             "```", "", "Squared error of the residual's coefficients removed by putting each coefficient at the "
             "centroid of its subband and magnitude class (|q| = 1, 2, >= 3) instead of at q * step, fitted on the "
             "data it is scored on, no side bits: an upper bound on what signalled offsets could gain. Every "
             "residual the planner quantises counts (the candidates it drops too).", "",
             "| scene | level | squared error | PSNR gain at most |", "|---|---|---|---|"]
    for r in rec["rows"]:
        lines.append(f"| {r['scene']} | {r['level']} | -{100 * r['error_reduction']:.3f}% | +{r['db']:.4f} dB |")
    if rec["rows"]:
        lines += ["", f"Median: +{np.median([r['db'] for r in rec['rows']]):.4f} dB, largest "
                      f"+{max(r['db'] for r in rec['rows']):.4f} dB."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "reconstruction_offsets", run, markdown,
                       [("--levels", {"nargs": "+", "type": int, "default": [3, 6, 9]})])


if __name__ == "__main__":
    sys.exit(main())
