"""The AV1 intra + KLT peer on a denser quantizer grid than the held-out check's (``rd_vs_av1.py``: 62 .. 3 in steps of
6, then 3), whose last two points (8 and 3) span 43-59 dB on the Landsat-8 scenes: does the BD-rate against it depend
on the interpolation between them?

For each scene: the scorer's own AV1 points (``av1_validation.json``, written by ``rd_vs_av1.py``) plus AV1 at
quantizers ``EXTRA`` (``benchmarks/harness/av1_peer.py``, the same preprocessing, masks as the scorer's
``valid_mask``), and our curve from the scorer's ``rd.json``; the BD-rate (the scorer's PCHIP Bjontegaard) of ours
against the scorer's grid and against the dense one.

    python benchmarks/experiments/av1_dense_grid.py .dev/val benchmarks/results/782c7ed21f22/scorer_validation_rd.json \\
        benchmarks/results/782c7ed21f22/av1_validation.json
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from av1_peer import av1_klt_curve  # noqa: E402

#: quantizers added to the scorer's grid: between 20, 14, 8 and 3
EXTRA = (17, 11, 6, 5, 4)


def valid_mask(a: np.ndarray, nodata) -> np.ndarray:
    """The scorer's valid pixels (``rd_vs_av1.valid_mask``): != nodata, else uint16 zeros where over 1% are zero."""
    if nodata is not None:
        return a != nodata
    if a.dtype == np.uint16 and (a == 0).mean() > 0.01:
        return a != 0
    return np.ones(a.shape, bool)


def bd_rate(c1, c2) -> float:
    """The scorer's BD-rate (``rd_vs_av1.bd_rate``) of curve ``c2`` against ``c1``: [(bpp, dB)] each, in %."""
    from scipy.interpolate import PchipInterpolator

    def curve(c):
        pts = sorted((p, math.log(r)) for r, p in c if p >= 20 and r > 0)
        xs, ys = [], []
        for p, lr in pts:
            if not xs or p > xs[-1] + 1e-6:
                xs.append(p)
                ys.append(lr)
        return xs, ys
    x1, y1 = curve(c1)
    x2, y2 = curve(c2)
    lo, hi = max(x1[0], x2[0]), min(x1[-1], x2[-1])
    g = np.linspace(lo, hi, 200)
    diff = PchipInterpolator(x2, y2)(g) - PchipInterpolator(x1, y1)(g)
    return (math.exp(float(np.trapezoid(diff, g)) / (hi - lo)) - 1) * 100


def main(argv: list[str]) -> int:
    import rasterio

    if len(argv) != 3:
        print(__doc__)
        return 2
    scenes, rd, av1 = Path(argv[0]), json.loads(Path(argv[1]).read_text()), json.loads(Path(argv[2]).read_text())
    coarse, dense = [], []
    for name in rd:
        with rasterio.open(scenes / f"{name}.tif") as src:
            orig, nodata = src.read(), src.nodata
        masks = [valid_mask(orig[b], nodata) for b in range(orig.shape[0])]
        extra = av1_klt_curve(orig, masks, EXTRA)
        base = [tuple(p) for p in av1[name]["avif_klt"]]
        a, b = bd_rate(base, rd[name]["ours"]), bd_rate(sorted(base + extra), rd[name]["ours"])
        coarse.append(a)
        dense.append(b)
        print(f"{name:26s} AV1 at q {EXTRA}: " + ", ".join(f"{r:.3f} bpp {p:.2f} dB" for r, p in extra))
        print(f"{name:26s} ours vs AV1 intra + KLT: scorer's grid {a:+.2f}%, dense grid {b:+.2f}%", flush=True)
    print(f"median over {len(dense)} scenes: scorer's grid {statistics.median(coarse):+.2f}%, "
          f"dense grid {statistics.median(dense):+.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
