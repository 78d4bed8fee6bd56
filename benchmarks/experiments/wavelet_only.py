"""The codec without its network: every tile coded as the residual alone (KLT + CDF 9/7 + adaptive tables).

The honest counterfactual for the learned transform: the same bitstream, headers, masks and entropy coder,
with no latent component ever present, at residual steps spanning the shipped ladder's rates; BD-rate against
the strongest JPEG 2000 of a scorer ``rd.json``, as ``benchmarks/tools/ladder_eval.py`` computes it.

    python benchmarks/experiments/wavelet_only.py --rd benchmarks/results/782c7ed21f22/scorer_validation_rd.json .dev/val/*.tif

**Conclusion** (decided; rerun by reproduce_readme.sh, as README.md quotes it): with no network the codec scores a
median -6.4% against the hybrid's -7.9% and wins on 4 of 8 scenes; the learned base pays on the Sentinel-2 T33NZA
scenes and Landsat-5 at low rates: the network is kept, and README's 'Where it loses' reports the small margin.
Result: ``benchmarks/results/782c7ed21f22/wavelet_only.txt``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import sibling  # noqa: E402

make_codec, report = sibling("ladder_eval").make_codec, sibling("ladder_eval").report

STEPS = (0.7, 0.5, 0.35, 0.25, 0.2, 0.14, 0.1, 0.07, 0.05, 0.035, 0.025, 0.0175, 0.0125, 0.009)


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", nargs="+")
    p.add_argument("--rd", required=True, type=Path)
    a = p.parse_args(argv)
    bundle = Bundle.load()
    codec = make_codec(bundle, [0] * len(STEPS), list(STEPS), mode_search="residual")  # the residual-only tile alone
    report(a.scenes, a.rd, bundle, codec, label="wavelet only BD-rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
