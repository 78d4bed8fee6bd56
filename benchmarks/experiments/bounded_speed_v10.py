"""Lossless whole-encode speed against OpenJPEG lossless, this tree against a baseline commit, alternated (issue 25).

Per scene and round, three coders run in turn (the order rotates from round to round): our whole encode at E = 0
(GeoTIFF read to packets, ``encode_scene``) of the ``--baseline`` commit, the same of this working tree, and OpenJPEG
lossless (imagecodecs' jpeg2k_encode, reversible 5/3, one thread, pixels in memory: the smaller of per-band streams
and one multi-component stream, as ``lossless_peers.jpeg2000_lossless``). Each of ours runs in its own worker
process (the baseline from ``git archive`` of the commit, its C extensions built there) that times the encode with
``perf_counter`` and ``process_time``; each coder keeps its fastest wall time and its fastest CPU time of
``--rounds``. Ratios are OpenJPEG's time over ours (above 1: ours is faster). The two trees' packets are compared
byte for byte (sha256) on every scene.

    python benchmarks/experiments/bounded_speed_v10.py .dev/val/*.tif --rounds 3 --baseline 2a6f7ff

Writes ``bounded_speed_v10.json`` and ``bounded_speed_v10.md``.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"edge": "edge", "ground": "ground", "models": "models", "export": "export"}  # pyproject's package-dir


def worker() -> int:
    """``--worker``: one JSON line in (a scene path), one out: the whole encode's wall and CPU seconds, bytes, sha256."""
    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, encode_scene

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime")
    for line in sys.stdin:
        path = json.loads(line)["path"]
        t0, c0 = time.perf_counter(), time.process_time()
        enc = encode_scene(path, bundle, codec, EncodeOptions(max_error=(0,), scene_id=1))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        digest = hashlib.sha256(b"".join(enc.packets)).hexdigest()
        print(json.dumps({"wall": wall, "cpu": cpu, "nbytes": enc.nbytes, "sha256": digest}), flush=True)
    return 0


class Worker:
    """A worker process (``pythonpath``: where its ``cvae`` comes from; None: this environment's)."""

    def __init__(self, pythonpath: str | None):
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)

    def encode(self, path: Path) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker ended while coding {path}")
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def baseline_tree(ref: str, tmp: Path) -> str:
    """The commit ``ref`` unpacked under ``tmp``, its C extensions built in place; the folder laid out as the installed
    namespace (cvae.edge = edge/, ...) to put first on a worker's PYTHONPATH."""
    src = tmp / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, check=True,
                   capture_output=True)
    ns = tmp / "ns"
    pkg = ns / "cvae"
    pkg.mkdir(parents=True)
    for entry in (src / "cvae").iterdir():
        (pkg / entry.name).symlink_to(entry)
    for name, folder in FOLDERS.items():
        (pkg / name).symlink_to(src / folder)
    return str(ns)


def openjpeg(pixels) -> dict:
    """OpenJPEG lossless of ``pixels[C, H, W]``, one thread: wall and CPU seconds and bytes of the smaller variant
    (per-band streams, one multi-component stream), encode calls only (lossless_peers.jpeg2000_lossless's choice)."""
    import imagecodecs as ic
    import numpy as np

    def timed(fn):
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "nbytes": n}

    bands = [np.ascontiguousarray(b) for b in pixels]
    per_band = timed(lambda: sum(len(ic.jpeg2k_encode(b, level=0, reversible=True, numthreads=1)) for b in bands))
    variants = [per_band]
    if pixels.shape[0] > 1:
        hwc = np.ascontiguousarray(np.moveaxis(pixels, 0, -1))
        variants.append(timed(lambda: len(ic.jpeg2k_encode(hwc, level=0, reversible=True, mct=pixels.shape[0] == 3,
                                                           numthreads=1))))
    return min(variants, key=lambda v: v["nbytes"])


def run(scenes: list[Path], rounds: int, baseline: str, log=print) -> dict:
    bench = sibling("bounded_bench")
    base_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", baseline], check=True,
                              capture_output=True, text=True).stdout.strip()
    head_rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workers = {"old": Worker(baseline_tree(baseline, Path(tmp))), "new": Worker(None)}
        try:
            for path in scenes:
                pixels, _ = bench._scene(path)
                runs = {"old": workers["old"].encode, "new": workers["new"].encode, "openjpeg": lambda _: openjpeg(pixels)}
                best = {k: {"wall": float("inf"), "cpu": float("inf")} for k in runs}
                digests: dict[str, set] = {"old": set(), "new": set()}
                nbytes = {}
                for r in range(rounds):
                    order = list(runs)[r % 3:] + list(runs)[:r % 3]
                    for name in order:
                        m = runs[name](path)
                        for clock in ("wall", "cpu"):
                            best[name][clock] = min(best[name][clock], m[clock])
                        nbytes[name] = m["nbytes"]
                        if name in digests:
                            digests[name].add(m["sha256"])
                n = int(pixels.size)
                row = {"scene": path.stem, "samples": n, "seconds": best, "nbytes": nbytes,
                       "identical_bytes": len(digests["old"] | digests["new"]) == 1,
                       "msamples_per_s": {k: n / best[k]["wall"] / 1e6 for k in runs}}
                for name in ("old", "new"):
                    for clock in ("wall", "cpu"):
                        row[f"{name}_over_openjpeg_{clock}"] = best["openjpeg"][clock] / best[name][clock]
                row["new_over_old_wall"] = best["old"]["wall"] / best["new"]["wall"]
                row["new_over_old_cpu"] = best["old"]["cpu"] / best["new"]["cpu"]
                rows.append(row)
                log(f"{path.stem}: OpenJPEG / ours (wall, CPU): old {row['old_over_openjpeg_wall']:.2f}, "
                    f"{row['old_over_openjpeg_cpu']:.2f}; new {row['new_over_openjpeg_wall']:.2f}, "
                    f"{row['new_over_openjpeg_cpu']:.2f}; new / old {row['new_over_old_wall']:.2f}x; identical bytes "
                    f"{row['identical_bytes']}")
        finally:
            for w in workers.values():
                w.close()
    keys = [f"{n}_over_openjpeg_{c}" for n in ("old", "new") for c in ("wall", "cpu")] + ["new_over_old_wall",
                                                                                         "new_over_old_cpu"]
    return {"date": utc_now(), "machine": machine_info(), "rounds": rounds, "baseline": base_rev, "head": head_rev,
            "rows": rows, "median": {k: statistics.median(r[k] for r in rows) for k in keys},
            "worst": {k: min(r[k] for r in rows) for k in keys},
            "all_identical": all(r["identical_bytes"] for r in rows)}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Lossless whole-encode speed against OpenJPEG lossless: {rec['head']} against {rec['baseline']} "
             f"({rec['date'][:10]})", "", "```bash", command, "```", "",
             f"Per scene, {rec['rounds']} rounds alternating the baseline ({rec['baseline']}), this tree ({rec['head']}"
             "; uncommitted changes included) and OpenJPEG, one thread each, on a shared 2-core machine; each keeps its "
             "fastest wall time and its fastest CPU time. Ours: GeoTIFF read to packets at E = 0; OpenJPEG: pixels in "
             "memory. Ratios: OpenJPEG's time / ours (above 1: ours faster). Packets of the two trees identical "
             f"(sha256) on every scene: {'yes' if rec['all_identical'] else 'NO'}.", "",
             "| scene | samples | OpenJPEG MS/s | old MS/s | new MS/s | old / OpenJPEG (wall, CPU) | "
             "new / OpenJPEG (wall, CPU) | new / old (wall, CPU) | same bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        m = r["msamples_per_s"]
        lines.append(f"| {r['scene']} | {r['samples']} | {m['openjpeg']:.2f} | {m['old']:.2f} | {m['new']:.2f} | "
                     f"{r['old_over_openjpeg_wall']:.2f}, {r['old_over_openjpeg_cpu']:.2f} | "
                     f"**{r['new_over_openjpeg_wall']:.2f}**, {r['new_over_openjpeg_cpu']:.2f} | "
                     f"{r['new_over_old_wall']:.2f}, {r['new_over_old_cpu']:.2f} | "
                     f"{'yes' if r['identical_bytes'] else 'NO'} |")
    for label in ("median", "worst"):
        s = rec[label]
        lines.append(f"| **{label}** | | | | | {s['old_over_openjpeg_wall']:.2f}, {s['old_over_openjpeg_cpu']:.2f} | "
                     f"**{s['new_over_openjpeg_wall']:.2f}**, {s['new_over_openjpeg_cpu']:.2f} | "
                     f"{s['new_over_old_wall']:.2f}, {s['new_over_old_cpu']:.2f} | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "bounded_speed_v10", run, markdown,
                       [("--rounds", {"type": int, "default": 3}),
                        ("--baseline", {"default": "2a6f7ff", "help": "the commit to compare with"})])


if __name__ == "__main__":
    sys.exit(worker() if sys.argv[1:] == ["--worker"] else main())
