"""Soak benchmark of cvae-edge: sustained tiles/s, peak RSS, and growth of memory and open files.

Runs the daemon as a subprocess on a fresh spool, feeds copies of one scene into its inbox (renamed in,
as a payload would), drains the outbox as a downlink would, and samples /proc/PID every second.

    python benchmarks/soak.py --minutes 10 [--scene ../shared/data/scenes/naip_va_1m_rgbn.tif]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _proc(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--scene", default=str(ROOT.parent / "shared" / "data" / "scenes" / "naip_va_1m_rgbn.tif"))
    p.add_argument("--level", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    a = p.parse_args(argv)
    scene = Path(a.scene)
    if not scene.is_file():
        from cvae.demo import synthetic_scene

        scene = synthetic_scene(Path(tempfile.mkdtemp()) / "SYNTHETIC_soak.tif", size=512)
    base = Path(tempfile.mkdtemp(prefix="cvae-soak-"))
    cfg = base / "cvae-edge.yaml"
    cfg.write_text(yaml.safe_dump({"base_dir": str(base / "spool"), "level": a.level, "poll_interval_s": 0.2,
                                   "after_success": "delete"}))
    inbox = base / "spool" / "inbox"
    inbox.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-m", "cvae.edge.daemon.cli", "--config", str(cfg)],
                            stderr=subprocess.DEVNULL)
    samples, fed, t0 = [], 0, time.time()
    try:
        while time.time() - t0 < 60 * a.minutes:
            while sum(1 for f in inbox.iterdir() if not f.name.startswith(".")) < 3:  # keep the queue non-empty
                tmp = inbox / f".feed{fed}.part"
                shutil.copy(scene, tmp)
                os.replace(tmp, inbox / f"scene{fed:06d}.tif")
                fed += 1
            outbox = base / "spool" / "outbox"
            if outbox.is_dir():
                for f in outbox.glob("*.pkt"):
                    f.unlink()
            rss, fds = _proc(proc.pid)
            samples.append((time.time() - t0, rss, fds))
            time.sleep(1.0)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    from cvae.edge.daemon.journal import Journal

    j = Journal(base / "spool" / "state" / "journal.sqlite")
    st = j.status()
    j.close()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], float)
    fds = np.array([s[2] for s in samples], float)
    half = t >= t[-1] / 2  # growth judged on the second half, after warm-up
    slope = lambda y: float(np.polyfit(t[half], y[half], 1)[0]) if half.sum() > 2 else float("nan")
    tiles = st["counters"].get("tiles", 0)
    result = {
        "command": " ".join(["benchmarks/soak.py", *(argv or sys.argv[1:])]), "scene": str(scene),
        "machine": platform.platform(), "cpu_count": os.cpu_count(), "seconds": float(t[-1]), "scenes_fed": fed,
        "scenes_done": st["counters"].get("scenes_done", 0), "tiles": tiles, "tiles_per_s": tiles / float(t[-1]),
        "tile_latency_p50_s": st["tile_latency_p50_s"], "tile_latency_p99_s": st["tile_latency_p99_s"],
        "rss_peak_mb": float(rss.max() / 2**20), "rss_slope_mb_per_min_second_half": slope(rss) * 60 / 2**20,
        "open_files_first": int(fds[0]), "open_files_last": int(fds[-1]), "open_files_max": int(fds.max()),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
