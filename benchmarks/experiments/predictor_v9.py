"""Tile format v9's coder against v8's, and candidate changes to it, measured (issue 25, round 2).

A variant is a tile format the release encoder writes (8 or 9: :class:`PredictiveKind` set to that version) and,
optionally, compile-time switches (``-DNAME=VALUE``) of ``edge/codec/_predictive.c`` compiled into a private module
swapped in for :mod:`cvae.edge.codec._predictive` (none are defined now: the candidates measured before v9 shipped
are in ``predictor_v9_ablation.md``, built from commits ca3fd6a and 80dce02). The scene's 256 x 256 tiles are
coded by the release encoder (valid mask, band fill, replication blocks, palettes, the per-band mode choice) and
decoded back by the same variant (every tile checked against its bound). Tile bytes only (no packets), bits per sample over all samples;
encode MSamples/s of the tile coder, best of two, one thread, the variants alternated in one process.

    python benchmarks/experiments/predictor_v9.py .dev/val/*.tif --bounds 0 1 2 4 8 --variants v8 v9

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

#: the variants: the tile format written, and compile-time switches of _predictive.c ({}: the installed module)
VARIANTS = {
    "v8": (8, {}),
    "v9": (9, {}),
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
    keep, keep_version = predictive._predictive, predictive.PredictiveKind.version
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mods = {v: build(v, VARIANTS[v][1], Path(tmp)) if VARIANTS[v][1] else keep for v in variants}
        for path in scenes:
            tiles, n = tiles_of(path)
            for e in bounds:
                row = {"scene": path.stem, "E": e}
                best = dict.fromkeys(mods, float("inf"))
                for _ in range(2):  # alternated, best of two
                    for v, mod in mods.items():
                        predictive._predictive, predictive.PredictiveKind.version = mod, VARIANTS[v][0]
                        try:
                            t0 = time.perf_counter()
                            datas = [codec.compress_bounded(t, e, va, f) for t, va, f in tiles]
                            best[v] = min(best[v], time.perf_counter() - t0)
                            for (t, va, f), data in zip(tiles, datas):
                                d = codec.decompress(data).pixels.astype(np.int64)
                                coded = np.broadcast_to(va, t.shape) & (~f if f is not None else True)
                                if (np.abs(d - t.astype(np.int64))[coded] > e).any():
                                    raise AssertionError(f"{v}: bound {e} broken on {path.stem}")
                        finally:
                            predictive._predictive, predictive.PredictiveKind.version = keep, keep_version
                        row[v] = {"bits_per_sample": 8 * sum(map(len, datas)) / n, "msamples_per_s": n / best[v] / 1e6}
                rows.append(row)
                base = row[variants[0]]["bits_per_sample"]
                log(f"{path.stem} E={e}: " + ", ".join(
                    f"{v} {row[v]['bits_per_sample']:.4f} ({row[v]['bits_per_sample'] / base:.4f}, "
                    f"{row[v]['msamples_per_s']:.2f} MS/s)" for v in mods))
    return {"date": utc_now(), "machine": machine_info(), "bounds": bounds,
            "variants": {v: {"version": VARIANTS[v][0], "switches": VARIANTS[v][1]} for v in variants}, "rows": rows}


def markdown(rec: dict, command: str) -> str:
    vs = list(rec["variants"])
    lines = [f"# Predictive coder variants (issue 25, round 2, {rec['date'][:10]})", "", "```bash", command, "```", "",
             "Tile bytes of 256 x 256 tiles (no packets), bits per sample; in brackets the ratio to the first variant, "
             "then the tile coder's encode MSamples/s (best of two, one thread, variants alternated; a shared 2-core "
             "machine). Every tile decoded within its bound by the same variant. Variants: " +
             "; ".join(f"{v} {rec['variants'][v]}" for v in vs), "",
             "| scene | E | " + " | ".join(vs) + " |", "|---|---|" + "---|" * len(vs)]
    for r in rec["rows"]:
        b = r[vs[0]]["bits_per_sample"]
        lines.append(f"| {r['scene']} | {r['E']} | " + " | ".join(
            f"{r[v]['bits_per_sample']:.4f} ({r[v]['bits_per_sample'] / b:.4f}; {r[v]['msamples_per_s']:.2f})"
            for v in vs) + " |")
    for e in rec["bounds"]:
        rs = [r for r in rec["rows"] if r["E"] == e]
        lines.append(f"| **median ratio (bits; speed)** | {e} | " + " | ".join(
            f"{np.median([r[v]['bits_per_sample'] / r[vs[0]]['bits_per_sample'] for r in rs]):.4f}; "
            f"{np.median([r[v]['msamples_per_s'] / r[vs[0]]['msamples_per_s'] for r in rs]):.2f}" for v in vs) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "predictor_v9", run, markdown,
                       [("--bounds", {"nargs": "+", "type": int, "default": [0]}),
                        ("--variants", {"nargs": "+", "default": ["v8", "v9"]})])


if __name__ == "__main__":
    sys.exit(main())
