"""Memory of the daemon across reloads, in-process: code a small scene, reload (as SIGHUP does), repeat; RSS and
whether the replaced networks (their ONNX Runtime sessions) are still alive after each reload.

    python benchmarks/harness/reload_memory.py --reloads 12 --threads 2
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import weakref
from pathlib import Path

import rasterio
import yaml
from rasterio.transform import from_origin


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reloads", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--level", type=int, default=3)
    p.add_argument("--size", type=int, default=256, help="edge of the SYNTHETIC scene coded between reloads")
    a = p.parse_args(argv)
    from cvae.demo import synthetic_pixels
    from cvae.edge.daemon.config import DaemonConfig
    from cvae.edge.daemon.service import Service

    base = Path(tempfile.mkdtemp(prefix="cvae-reload-")) / "spool"
    (base / "inbox").mkdir(parents=True)
    cfg = base.parent / "cvae-edge.yaml"
    cfg.write_text(yaml.safe_dump({"base_dir": str(base), "level": a.level, "threads": a.threads}))
    px = synthetic_pixels(a.size, bands=4, seed=3)
    svc = Service(DaemonConfig.from_yaml(cfg))
    replaced = []
    print(f"# {' '.join(['benchmarks/harness/reload_memory.py', *(argv or sys.argv[1:])])}")
    print("reload  rss_mb  replaced_networks_alive")
    for i in range(a.reloads):
        path = base / "inbox" / f"s{i}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=a.size, height=a.size, count=4, dtype=px.dtype,
                           crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as d:
            d.write(px)
        svc.process(path)  # the network's sessions are made on first use
        replaced.append(weakref.ref(svc.codec.transforms))
        svc.do_reload(cfg)
        print(f"{i + 1:6d}  {_rss_mb():6.0f}  {sum(r() is not None for r in replaced)}", flush=True)
    gc.collect()
    print(f"after a full collection: {_rss_mb():.0f} MB, {sum(r() is not None for r in replaced)} alive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
