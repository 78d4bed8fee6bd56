"""Peak memory of ``cvae-encode --level N`` (``--max-error E``: error-bounded; with ``--daemon``, of the daemon's ``--once`` run) at three
scene sizes: it must stay flat (the scene is read one tile row at a time, ``cvae.edge.encoder._encode_by_rows``
and ``cvae.edge.daemon.service.Service._units``).

The scenes are a real one (default: the NAIP RGBN validation scene) tiled up to N x N pixels, written as tiled
GeoTIFFs in a temporary folder; each encode runs in its own process and reports its peak RSS
(``getrusage``). ``--scene-bytes`` holds every tile's analysis for the allocation and is not bounded.

    python benchmarks/harness/memory.py [--scene PATH] [--sizes 1024 2048 4096] [--level 3 | --max-error E] [--tile-size T] [--daemon] [--out benchmarks/results/BUNDLE]
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT  # noqa: E402
PEAK_KB = """
import resource, sys

def peak_kb():
    # VmHWM: this process image's peak. ru_maxrss is not: Linux carries it over fork + exec, so a child of a
    # parent holding a big array would report the parent's size
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""
CHILD = PEAK_KB + """from cvae.edge.cli import encode_main
rc = encode_main(sys.argv[1:])
print("PEAK_KB", peak_kb(), "RC", rc)
"""
DAEMON_CHILD = PEAK_KB + """
from pathlib import Path
import yaml
from cvae.edge.daemon.config import DaemonConfig
from cvae.edge.daemon.service import Service
base, level = Path(sys.argv[1]), int(sys.argv[2])
cfg = base / "cfg.yaml"
cfg.write_text(yaml.safe_dump({"base_dir": str(base), "level": level, "max_scene_pixels": 2_000_000_000}))
rc = Service(DaemonConfig.from_yaml(cfg)).run(once=True)
assert not list((base / "inbox").iterdir()) and list((base / "done").iterdir()), "scene not done"
print("PEAK_KB", peak_kb(), "RC", rc)
"""


def make_scene(src: Path, dst: Path, side: int) -> None:
    import rasterio

    with rasterio.open(src) as ds:
        px = ds.read()
        profile = dict(ds.profile)
    reps = (1, -(-side // px.shape[1]), -(-side // px.shape[2]))
    big = np.tile(px, reps)[:, :side, :side]
    profile.update(width=side, height=side, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(dst, "w", **profile) as out:
        for y in range(0, side, 1024):  # written in strips: this script stays small too
            out.write(big[:, y:y + 1024], window=rasterio.windows.Window(0, y, side, min(1024, side - y)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", type=Path, default=ROOT.parent / "shared" / "data" / "scenes" / "naip_va_1m_rgbn.tif")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--level", type=int, default=3)
    p.add_argument("--tile-size", type=int, default=None, help="cvae-encode --tile-size (default: its own rule)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--daemon", action="store_true", help="measure the daemon (cvae-edge --once) instead")
    p.add_argument("--max-error", type=int, default=None,
                   help="cvae-encode --max-error E instead of --level (error-bounded coding, tile format v4)")
    a = p.parse_args(argv)
    if a.max_error is not None and a.daemon:
        p.error("--max-error measures cvae-encode; leave out --daemon")
    if not a.scene.is_file():
        print(f"memory.py: {a.scene} not found; pass --scene", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in a.sizes:
            scene = Path(tmp) / f"scene_{side}.tif"
            make_scene(a.scene, scene, side)
            t0 = time.perf_counter()
            if a.daemon:
                spool = Path(tmp) / f"spool_{side}"
                (spool / "inbox").mkdir(parents=True)
                scene = scene.rename(spool / "inbox" / scene.name)
                cmd = [sys.executable, "-c", DAEMON_CHILD, str(spool), str(a.level)]
            else:
                quality = ["--max-error", str(a.max_error)] if a.max_error is not None else ["--level", str(a.level)]
                tile = ["--tile-size", str(a.tile_size)] if a.tile_size else []
                cmd = [sys.executable, "-c", CHILD, str(scene), "-o", str(Path(tmp) / "out"), *quality, *tile, "-q"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if a.daemon:
                scene = spool / "done" / scene.name
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("PEAK_KB")]
            if r.returncode != 0 or not line:
                print(r.stdout, r.stderr, file=sys.stderr)
                return 1
            kb = int(line[0].split()[1])
            import rasterio

            with rasterio.open(scene) as ds:
                raw = ds.count * ds.width * ds.height * np.dtype(ds.dtypes[0]).itemsize
            rows.append({"side": side, "bands": ds.count, "raw_mb": raw / 1e6, "peak_rss_mb": kb / 1024,
                         "seconds": time.perf_counter() - t0})
            print(f"{side} x {side} x {ds.count}: raw {raw / 1e6:.1f} MB, peak RSS {kb / 1024:.0f} MB", file=sys.stderr)
    res = {"command": "python benchmarks/harness/memory.py " + " ".join(argv or sys.argv[1:]), "level": a.level,
           "max_error": a.max_error,
           "what": "daemon --once" if a.daemon else "cvae-encode",
           "scene": a.scene.name, "machine": f"{platform.machine()} {platform.python_version()}", "runs": rows,
           "growth_mb_per_raw_mb": (rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]) /
                                   max(1e-9, rows[-1]["raw_mb"] - rows[0]["raw_mb"])}
    a.out.mkdir(parents=True, exist_ok=True)
    stem = "memory_daemon" if a.daemon else ("memory_bounded" if a.max_error is not None else
                                             "memory" if a.level == 3 else f"memory_l{a.level}") + \
        (f"_t{a.tile_size}" if a.tile_size else "")
    (a.out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    md = ["| scene | raw MB | peak RSS MB | seconds |", "|---|---|---|---|"]
    md += [f"| {r['side']} x {r['side']} x {r['bands']} | {r['raw_mb']:.1f} | {r['peak_rss_mb']:.0f} | {r['seconds']:.0f} |"
           for r in rows]
    quality = f"max error {a.max_error}" if a.max_error is not None else f"level {a.level}"
    md.append(f"\nPeak RSS growth: {res['growth_mb_per_raw_mb']:.3f} MB per MB of raw scene "
              f"(`{res['command']}`, {quality}).")
    (a.out / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
