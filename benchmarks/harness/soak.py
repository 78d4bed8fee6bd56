"""Soak benchmark of cvae-edge: throughput, latency, RSS and open files over time, through reloads and an
outbox that fills between ground passes.

Runs the daemon as a subprocess on a fresh spool, feeds copies of one scene into its inbox (renamed in, as a
payload would) keeping ``--queue`` waiting, and samples /proc/PID every second. The downlink drains the outbox
only during ground passes (``--pass-every`` seconds apart, ``--pass-seconds`` long; 0: always drains), so the
outbox fills between passes; ``--outbox-files`` packet files that are never drained sit there from the start (a
backlog: the quota check must not slow with it). ``--reload-every`` sends SIGHUP that often and records the RSS
after each reload and how long the reload took to be taken (SIGHUP to the daemon's ``reloaded`` line). The
series (``--window`` seconds each) gives tiles/s, scenes/s, tile latency, RSS, files and outbox files over time.

    python benchmarks/harness/soak.py --minutes 10 [--scene ../shared/data/scenes/naip_va_1m_rgbn.tif]
    python benchmarks/harness/soak.py --minutes 20 --threads 2 --reload-every 120 --pass-every 180 --pass-seconds 30 \
        --outbox-files 16000 --out benchmarks/results/782c7ed21f22/soak_reloads.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT  # noqa: E402


def _proc(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _journal_since(path: Path, after_rowid: int) -> tuple[int, list[float], int]:
    """(last unit rowid, latencies of the tiles committed after ``after_rowid``, scenes done) read-only."""
    if not path.is_file():
        return after_rowid, [], 0
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT rowid, seconds FROM units WHERE rowid > ? AND state = 'done' AND level IS NOT "
                              "NULL", (after_rowid,)).fetchall()
            done = db.execute("SELECT COUNT(*) FROM scenes WHERE status = 'done'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return after_rowid, [], -1
    return max([after_rowid] + [r[0] for r in rows]), [r[1] for r in rows if r[1] is not None], done


def _pct(values, q: float):
    return float(np.percentile(values, q)) if len(values) else None


def _reload_events(log_path: Path) -> list[float]:
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"event": "reloaded"' in line:
            try:
                out.append(float(json.loads(line)["t"]))
            except (ValueError, KeyError):
                pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--scene", default=str(ROOT.parent / "shared" / "data" / "scenes" / "naip_va_1m_rgbn.tif"))
    p.add_argument("--level", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="the daemon's threads: (tiles coded in parallel)")
    p.add_argument("--queue", type=int, default=3, help="scenes kept waiting in the inbox")
    p.add_argument("--reload-every", type=float, default=0, help="seconds between SIGHUPs (0: none)")
    p.add_argument("--pass-every", type=float, default=0, help="seconds between ground passes (0: always drained)")
    p.add_argument("--pass-seconds", type=float, default=30, help="length of a ground pass")
    p.add_argument("--outbox-files", type=int, default=0, help="backlog packet files never drained")
    p.add_argument("--window", type=float, default=60, help="seconds per point of the series")
    p.add_argument("--out", default=str(DEFAULT_OUT / "soak.json"))
    a = p.parse_args(argv)
    scene = Path(a.scene)
    if not scene.is_file():
        from cvae.demo import synthetic_scene

        scene = synthetic_scene(Path(tempfile.mkdtemp()) / "SYNTHETIC_soak.tif", size=512)
    base = Path(tempfile.mkdtemp(prefix="cvae-soak-"))
    cfg = base / "cvae-edge.yaml"
    cfg.write_text(yaml.safe_dump({"base_dir": str(base / "spool"), "level": a.level, "poll_interval_s": 0.2,
                                   "after_success": "delete", "threads": a.threads}))
    inbox, outbox = base / "spool" / "inbox", base / "spool" / "outbox"
    inbox.mkdir(parents=True)
    backlog = set()
    if a.outbox_files:
        outbox.mkdir(parents=True)
        for i in range(a.outbox_files):  # names the daemon never uses (its own are SCENE_UNIT.pkt)
            name = f"backlog{i:06d}.pkt"
            (outbox / name).write_bytes(b"\0" * 200)
            backlog.add(name)
    log_path = base / "daemon.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "cvae.edge.daemon.cli", "--config", str(cfg)], stderr=log_file)
    journal = base / "spool" / "state" / "journal.sqlite"
    samples, series, reloads, fed, t0 = [], [], [], 0, time.time()
    last_reload, win_start, rowid, win_lat, tiles_total, done_before = t0, t0, 0, [], 0, 0
    try:
        while time.time() - t0 < 60 * a.minutes:
            now = time.time()
            while sum(1 for f in inbox.iterdir() if not f.name.startswith(".")) < a.queue:  # keep a queue
                tmp = inbox / f".feed{fed}.part"
                shutil.copy(scene, tmp)
                os.replace(tmp, inbox / f"scene{fed:06d}.tif")
                fed += 1
            in_pass = not a.pass_every or (now - t0) % a.pass_every < a.pass_seconds
            if outbox.is_dir() and in_pass:
                for f in outbox.glob("*.pkt"):
                    if f.name not in backlog:
                        f.unlink(missing_ok=True)
            if a.reload_every and now - last_reload >= a.reload_every:
                proc.send_signal(signal.SIGHUP)
                reloads.append({"sent_s": now - t0, "sent_t": now})
                last_reload = now
            rss, fds = _proc(proc.pid)
            samples.append((now - t0, rss, fds))
            rowid, lat, done = _journal_since(journal, rowid)
            win_lat += lat
            tiles_total += len(lat)
            if now - win_start >= a.window:
                files = sum(1 for _ in os.scandir(outbox)) if outbox.is_dir() else 0
                series.append({"t_s": round(now - t0, 1), "tiles_per_s": round(len(win_lat) / (now - win_start), 3),
                               "scenes_per_min": round(60 * (done - done_before) / (now - win_start), 2),
                               "tile_latency_p50_s": _pct(win_lat, 50), "tile_latency_p99_s": _pct(win_lat, 99),
                               "rss_mb": round(rss / 2 ** 20, 1), "open_files": fds, "outbox_files": files,
                               "queue": sum(1 for f in inbox.iterdir() if not f.name.startswith("."))})
                print(json.dumps(series[-1]), flush=True)
                win_start, win_lat, done_before = now, [], done
            for r in reloads:  # RSS once the reload was taken
                if "rss_after_mb" not in r:
                    taken = [t for t in _reload_events(log_path) if t >= r["sent_t"]]
                    if taken:
                        r["taken_after_s"] = round(taken[0] - r["sent_t"], 3)
                        r["rss_after_mb"] = round(rss / 2 ** 20, 1)
            time.sleep(1.0)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    from cvae.edge.daemon.journal import Journal

    j = Journal(journal)
    st = j.status()
    j.close()
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples], float)
    fds = np.array([s[2] for s in samples], float)
    half = t >= t[-1] / 2  # growth judged on the second half, after warm-up
    slope = lambda y: float(np.polyfit(t[half], y[half], 1)[0]) if half.sum() > 2 else float("nan")
    tiles = st["counters"].get("tiles", 0)
    taken = [r["taken_after_s"] for r in reloads if "taken_after_s" in r]
    result = {
        "command": " ".join(["benchmarks/harness/soak.py", *(argv or sys.argv[1:])]), "scene": str(scene),
        "machine": platform.platform(), "cpu_count": os.cpu_count(), "seconds": float(t[-1]), "scenes_fed": fed,
        "scenes_done": st["counters"].get("scenes_done", 0), "tiles": tiles, "tiles_per_s": tiles / float(t[-1]),
        "tile_latency_p50_s": st["tile_latency_p50_s"], "tile_latency_p99_s": st["tile_latency_p99_s"],
        "rss_peak_mb": float(rss.max() / 2**20), "rss_slope_mb_per_min_second_half": slope(rss) * 60 / 2**20,
        "open_files_first": int(fds[0]), "open_files_last": int(fds[-1]), "open_files_max": int(fds.max()),
        "threads": a.threads, "queue": a.queue, "outbox_backlog_files": a.outbox_files,
        "reloads_sent": len(reloads), "reloads_taken": len(taken),
        "reload_taken_after_s_max": max(taken) if taken else None,
        "rss_after_reloads_mb": [r.get("rss_after_mb") for r in reloads],
        "series": series,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({k: v for k, v in result.items()}, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
