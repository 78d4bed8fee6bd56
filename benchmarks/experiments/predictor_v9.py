"""Candidate changes to the predictive tile coder's lossless / error-bounded modelling, measured (issue 25, round 2).

Each variant is ``edge/codec/_predictive.c`` compiled with compile-time switches (``-DNAME=VALUE``) into a private
module and swapped in for :mod:`cvae.edge.codec._predictive` while the scene's 256 x 256 tiles are coded by the
release encoder (valid mask, band fill, replication blocks, palettes and the per-band mode choice as shipped) and
decoded back by the same variant (every tile checked against its bound). Tile bytes only (no packets), bits per
sample over all samples.

    python benchmarks/experiments/predictor_v9.py .dev/val/*.tif --bounds 0 --variants base bias ctx

Writes ``predictor_v9.json`` and ``predictor_v9.md``.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import ROOT, machine_info, scenes_main, sibling, utc_now  # noqa: E402

#: the variants: compile-time switches of _predictive.c
VARIANTS = {
    "base": {},
    "bias": {"EXP_BIAS": 1},
    "ctx": {"EXP_CTX": 1},
    "bias_ctx": {"EXP_BIAS": 1, "EXP_CTX": 1},
    "pmax5": {"PMAX": 5},
    "pmax7": {"PMAX": 7},
    "pmax11": {"PMAX": 11},
    "ef": {"EXP_EF": 1},
    "warmup": {"EXP_WARMUP": 1},
    "ef2": {"EXP_EF": 2},
    "all": {"PMAX": 11, "EXP_EF": 1, "EXP_WARMUP": 1, "EXP_CTX": 1},
    "all2": {"PMAX": 11, "EXP_EF": 2, "EXP_WARMUP": 1, "EXP_CTX": 1},
    "all3": {"PMAX": 11, "EXP_EF": 3, "EXP_WARMUP": 1, "EXP_CTX": 1},
    "v9p7": {"PMAX": 7, "EXP_EF": 3, "EXP_WARMUP": 1, "EXP_CTX": 1},
    "all_noctx": {"PMAX": 11, "EXP_EF": 1, "EXP_WARMUP": 1},
}


def build(name: str, flags: dict, where: Path):
    """The variant's module, compiled from this checkout's _predictive.c."""
    src = ROOT / "edge" / "codec" / "_predictive.c"
    so = where / name / ("_predictive" + sysconfig.get_config_var("EXT_SUFFIX"))
    so.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["cc", "-O3", "-std=c99", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
           f"-I{src.parent}", *[f"-D{k}={v}" for k, v in flags.items()], str(src), "-o", str(so)]
    subprocess.run(cmd, check=True)
    spec = importlib.util.spec_from_file_location("cvae.edge.codec._predictive", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(scenes: list[Path], bounds: list[int], variants: list[str], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import predictive

    tiles_of = sibling("predictor_modes")._tiles
    codec = Bundle.load(None).codec()
    keep = predictive._predictive
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mods = {v: build(v, VARIANTS[v], Path(tmp)) for v in variants}
        for path in scenes:
            tiles, n = tiles_of(path)
            for e in bounds:
                row = {"scene": path.stem, "E": e}
                for v, mod in mods.items():
                    predictive._predictive = mod
                    try:
                        t0 = time.perf_counter()
                        datas = [codec.compress_bounded(t, e, va, f) for t, va, f in tiles]
                        sec = time.perf_counter() - t0
                        for (t, va, f), data in zip(tiles, datas):
                            d = codec.decompress(data).pixels.astype(np.int64)
                            coded = np.broadcast_to(va, t.shape) & (~f if f is not None else True)
                            if (np.abs(d - t.astype(np.int64))[coded] > e).any():
                                raise AssertionError(f"{v}: bound {e} broken on {path.stem}")
                    finally:
                        predictive._predictive = keep
                    row[v] = {"bits_per_sample": 8 * sum(map(len, datas)) / n, "msamples_per_s": n / sec / 1e6}
                rows.append(row)
                base = row[variants[0]]["bits_per_sample"]
                log(f"{path.stem} E={e}: " + ", ".join(
                    f"{v} {row[v]['bits_per_sample']:.4f} ({row[v]['bits_per_sample'] / base:.4f})" for v in mods))
    return {"date": utc_now(), "machine": machine_info(), "bounds": bounds, "variants": {v: VARIANTS[v] for v in
                                                                                           variants}, "rows": rows}


def markdown(rec: dict, command: str) -> str:
    vs = list(rec["variants"])
    lines = [f"# Predictive coder variants (issue 25, round 2, {rec['date'][:10]})", "", "```bash", command, "```", "",
             "Tile bytes of 256 x 256 tiles (no packets), bits per sample; in brackets the ratio to the first variant. "
             "Every tile decoded within its bound by the same variant. Switches: " +
             "; ".join(f"{v} {rec['variants'][v]}" for v in vs), "",
             "| scene | E | " + " | ".join(vs) + " |", "|---|---|" + "---|" * len(vs)]
    for r in rec["rows"]:
        b = r[vs[0]]["bits_per_sample"]
        lines.append(f"| {r['scene']} | {r['E']} | " + " | ".join(
            f"{r[v]['bits_per_sample']:.4f} ({r[v]['bits_per_sample'] / b:.4f})" for v in vs) + " |")
    for e in rec["bounds"]:
        rs = [r for r in rec["rows"] if r["E"] == e]
        lines.append(f"| **median ratio** | {e} | " + " | ".join(
            f"{np.median([r[v]['bits_per_sample'] / r[vs[0]]['bits_per_sample'] for r in rs]):.4f}" for v in vs) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "predictor_v9", run, markdown,
                       [("--bounds", {"nargs": "+", "type": int, "default": [0]}),
                        ("--variants", {"nargs": "+", "default": ["base", "bias", "ctx", "bias_ctx"]})])


if __name__ == "__main__":
    sys.exit(main())
