"""``cvae-edge --config FILE [--once]``: the onboard daemon; ``cvae-edge status --config FILE``: its counters."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from cvae.edge.daemon.config import DaemonConfig
    from cvae.edge.errors import CvaeError

    status = bool(argv) and argv[0] == "status"
    p = argparse.ArgumentParser(prog="cvae-edge status" if status else "cvae-edge", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML config (see deploy/cvae-edge.yaml)")
    if not status:
        p.add_argument("--once", action="store_true", help="process what is in the inbox, then exit")
        p.add_argument("--version", action="store_true")
    a = p.parse_args(argv[1:] if status else argv)
    try:
        cfg = DaemonConfig.from_yaml(a.config)
        if status:
            from cvae.edge.daemon.journal import Journal

            j = Journal(cfg.state / "journal.sqlite")
            out = j.status()
            j.close()
            from cvae.edge.daemon.service import Service  # noqa: F401  (import check only)

            inbox = [f.name for f in cfg.inbox.iterdir() if not f.name.startswith(".")] if cfg.inbox.is_dir() else []
            out["queue_depth"] = len(inbox)
            out["outbox_bytes"] = sum(f.stat().st_size for f in cfg.outbox.iterdir()) if cfg.outbox.is_dir() else 0
            print(json.dumps(out, indent=1))
            return 0
        from cvae.edge.daemon.service import Service

        svc = Service(cfg)
        if a.version:
            from cvae.edge.cli import version_string

            print(version_string(svc.bundle))
            return 0
        svc.install_signals()
        return svc.run(once=a.once, config_path=Path(a.config))
    except CvaeError as e:
        print(f"cvae-edge: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
