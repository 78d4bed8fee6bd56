"""Cost of the daemon's outbox quota check per unit, against the number of packet files waiting in the outbox:
a full scan (what ran before each unit until issue 23) and the kept count (spool.OutboxMeter, what runs now).

    python benchmarks/experiments/outbox_quota.py --files 0 1000 16000

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): the full scan cost 180 ms per unit
with 16,000 files waiting in the outbox against 0.5 us for the kept count: the daemon keeps the count
(``spool.OutboxMeter``, issue 23).
Result: ``benchmarks/results/782c7ed21f22/soak_reloads.md (section 'Quota check per unit')``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, nargs="+", default=[0, 1000, 16000])
    p.add_argument("--calls", type=int, default=50)
    a = p.parse_args(argv)
    from cvae.edge.daemon.spool import OutboxMeter, outbox_bytes

    print(f"# {' '.join(['benchmarks/experiments/outbox_quota.py', *(argv or sys.argv[1:])])}")
    print("files   full scan ms/unit   kept count us/unit   scans while coding (kept count)")
    for n in a.files:
        d = Path(tempfile.mkdtemp(prefix="cvae-outbox-"))
        for i in range(n):
            (d / f"{i:08d}_00001.pkt").write_bytes(b"\0" * 200)
        t = time.perf_counter()
        for _ in range(a.calls):
            outbox_bytes(d) >= 1 << 30
        scan_ms = 1e3 * (time.perf_counter() - t) / a.calls
        meter = OutboxMeter(d, rescan_s=2.0)
        t = time.perf_counter()
        for _ in range(a.calls):
            meter.over(1 << 30)
            meter.add(30000)  # a written packet file
        kept_us = 1e6 * (time.perf_counter() - t) / a.calls
        print(f"{n:5d}   {scan_ms:17.2f}   {kept_us:18.1f}   {meter.scans - 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
