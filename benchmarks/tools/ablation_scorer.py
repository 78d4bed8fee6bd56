"""Ablation table against the strongest JPEG 2000, from the independent scorer's ``rd.json`` files.

Each row is one scorer run (``../shared/tools/rd_vs_jpeg2000.py SCENES WORK`` writes ``WORK/rd.json``),
optionally restricted to some of its levels; every BD-rate is computed with the scorer's own function against
the strongest of its three JPEG 2000 configurations (the one we beat least), as the scorer does.

    python benchmarks/tools/ablation_scorer.py --row "factorised (106dd01)" /tmp/base/rd.json \
        --row "adaptive, latent levels 0-3" /tmp/new/rd.json 0,1,2,3 --row "adaptive + residual" /tmp/new/rd.json \
        --out benchmarks/results/BUNDLE/ablation_v2
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SCORER = ROOT.parent / "shared" / "tools" / "rd_vs_jpeg2000.py"
BASES = ("j2k", "j2k_mct", "j2k_klt")


def _bd_rate():
    """The scorer's bd_rate, loaded without running its main program."""
    src = SCORER.read_text()
    head = src.split("\nresults = {}")[0]
    ns: dict = {"__name__": "scorer"}
    head = head.replace("scenes_dir, work = sys.argv[1], sys.argv[2]", "scenes_dir, work = '.', '.'")
    exec(compile(head, str(SCORER), "exec"), ns)  # noqa: S102 - the project's own scorer, read from shared/
    return ns["bd_rate"]


def scene_bd(bd_rate, r: dict, levels: list[int] | None) -> float:
    ours = [p for i, p in enumerate(r["ours"]) if levels is None or i in levels]
    if len(ours) < 3:
        return float("inf")
    pmin, pmax = min(p for _, p in ours), max(p for _, p in ours)
    got = []
    for key in BASES:
        j = [x for x in r.get(key) or [] if x[0] > 0 and pmin - 3 <= x[1] <= pmax + 3]
        if len(j) >= 3:
            b = bd_rate([x[0] for x in j], [x[1] for x in j], [x[0] for x in ours], [x[1] for x in ours])
            if not math.isnan(b):
                got.append(b)
    return max(got) if got else float("inf")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--row", nargs="+", action="append", required=True, metavar="LABEL RD_JSON [LEVELS]")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    bd_rate = _bd_rate()
    rows, scenes = [], None
    for spec in a.row:
        label, path = spec[0], Path(spec[1])
        levels = [int(x) for x in spec[2].split(",")] if len(spec) > 2 else None
        rd = json.loads(path.read_text())
        scenes = scenes or sorted(rd)
        per = {s: scene_bd(bd_rate, rd[s], levels) for s in scenes if s in rd}
        top = {s: max(pt[1] for i, pt in enumerate(rd[s]["ours"]) if levels is None or i in levels) for s in per}
        rows.append({"label": label, "source": str(path), "levels": levels, "per_scene": per,
                     "median": float(np.median(list(per.values()))), "top_psnr": top})
    lines = ["| change | median BD-rate vs strongest JPEG 2000 | " + " | ".join(scenes) + " |",
             "|---|---|" + "---|" * len(scenes)]
    for r in rows:
        cells = [f"{r['per_scene'][s]:+.1f}% ({r['top_psnr'][s]:.1f} dB)" if s in r["per_scene"] else "-" for s in scenes]
        lines.append(f"| {r['label']} | {r['median']:+.1f}% | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n\nCells: BD-rate (the scorer's PCHIP Bjontegaard, PSNR) and, in brackets, the highest PSNR reached.\n"
    print(table)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "command": "python benchmarks/tools/ablation_scorer.py "
                                                          + " ".join(sys.argv[1:])}, indent=1))
        a.out.with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
