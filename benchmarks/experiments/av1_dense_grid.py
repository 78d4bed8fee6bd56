"""The AV1 intra + KLT peer on a denser quantizer grid than the held-out check's (``rd_vs_av1.py``: 62 .. 3 in steps of
6, then 3), whose last two points (8 and 3) span 43-59 dB on the Landsat-8 scenes: does the BD-rate against it depend
on the interpolation between them?

For each scene: the scorer's own AV1 points (``av1_validation.json``, written by ``rd_vs_av1.py``) plus AV1 at
quantizers ``EXTRA`` (``benchmarks/harness/av1_peer.py``, the same preprocessing, masks as the scorer's
``valid_mask``: ``ladder_eval._valid``), and our curve from the scorer's ``rd.json``; the BD-rate (the scorer's PCHIP Bjontegaard) of ours
against the scorer's grid and against the dense one.

    python benchmarks/experiments/av1_dense_grid.py .dev/val benchmarks/results/782c7ed21f22/scorer_validation_rd.json \\
        benchmarks/results/782c7ed21f22/av1_validation.json
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from av1_peer import av1_klt_curve  # noqa: E402
from bench_common import sibling  # noqa: E402

#: quantizers added to the scorer's grid: between 20, 14, 8 and 3
EXTRA = (17, 11, 6, 5, 4)


def bd_rate(c1, c2) -> float:
    """The scorer's BD-rate (``rd_vs_jpeg2000.bd_rate``, the one ``rd_vs_av1.py`` uses too) of curve ``c2`` against
    ``c1``, each [(bpp, dB)], in %."""
    bd = sibling("ablation_scorer")._bd_rate()
    return bd([r for r, _ in c1], [p for _, p in c1], [r for r, _ in c2], [p for _, p in c2])


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
        masks = [sibling("ladder_eval")._valid(orig[b], nodata) for b in range(orig.shape[0])]  # the scorer's
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
