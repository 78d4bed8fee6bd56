"""Learning curve of a training run: validation BD-rate against JPEG 2000 (real coded bits) by step.

    python benchmarks/harness/learning_curve.py [runs/default/log.jsonl] [--out benchmarks/results/BUNDLE]

Writes ``learning_curve.md`` (a table) and ``learning_curve.png`` (median and per-scene BD-rate by step).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", nargs="?", default=str(ROOT / "runs" / "default" / "log.jsonl"))
    p.add_argument("--out", default=str(DEFAULT_OUT))
    a = p.parse_args(argv)
    recs = [json.loads(line) for line in Path(a.log).read_text().splitlines() if line.strip()]
    vals = [r for r in recs if r.get("kind") == "validation" and r.get("real_bits")]
    if not vals:
        print(f"{a.log}: no validation records with real coded bits yet", file=sys.stderr)
        return 1
    names = list(vals[-1]["scenes"])
    lines = ["Validation BD-rate vs OpenJPEG (per band, PSNR, real coded bytes of one centre crop <= 256 px per "
             f"scene), from `{Path(a.log).name}`", "",
             "| step | median | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in vals:
        cells = [f"{r['scenes'][n]['bd_rate_vs_j2k']:+.1f}%" if n in r["scenes"] and not math.isnan(
            r["scenes"][n]["bd_rate_vs_j2k"]) else "n/a" for n in names]
        lines.append(f"| {r['step']} | {r['median_bd_rate']:+.1f}% | " + " | ".join(cells) + " |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib absent (pip install -e .[bench]): no PNG", file=sys.stderr)
        return 0
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in vals]
    for n in names:
        ax.plot(steps, [r["scenes"].get(n, {}).get("bd_rate_vs_j2k", float("nan")) for r in vals], alpha=0.4, label=n)
    ax.plot(steps, [r["median_bd_rate"] for r in vals], "k-o", lw=2, label="median")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("BD-rate vs JPEG 2000 (%)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
