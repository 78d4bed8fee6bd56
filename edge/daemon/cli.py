"""``cvae-edge --config FILE [--once]``: the onboard daemon; ``cvae-edge status --config FILE``: its counters
(read-only); ``cvae-edge check --config FILE``: validate the config, bundle, key and folders, creating nothing."""
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

    sub = argv[0] if argv and argv[0] in ("status", "check") else None
    p = argparse.ArgumentParser(prog=f"cvae-edge {sub}" if sub else "cvae-edge", description=__doc__.splitlines()[0],
                                epilog="subcommands: cvae-edge status --config FILE (counters, read-only); "
                                       "cvae-edge check --config FILE (validate, create nothing)")
    from cvae.edge.cliutil import VersionAction

    p.add_argument("--version", action=VersionAction)
    p.add_argument("--config", required=True, help="YAML config (see deploy/cvae-edge.yaml)")
    if not sub:
        p.add_argument("--once", action="store_true", help="process what is in the inbox, then exit")
    a = p.parse_args(argv[1:] if sub else argv)
    status = sub == "status"
    try:
        cfg = DaemonConfig.from_yaml(a.config)
        if sub == "check":
            print(json.dumps(check(cfg), indent=1))
            return 0
        if status:
            from cvae.edge.daemon.journal import Journal

            path = cfg.state / "journal.sqlite"
            if not path.is_file():
                out: dict = {"counters": {}, "active": [], "note": f"no journal at {path}: the daemon has not run yet"}
            else:
                j = Journal(path, read_only=True)
                out = j.status()
                j.close()

            inbox = [f.name for f in cfg.inbox.iterdir() if not f.name.startswith(".")] if cfg.inbox.is_dir() else []
            out["queue_depth"] = len(inbox)
            from cvae.edge.daemon.spool import outbox_bytes

            out["outbox_bytes"] = outbox_bytes(cfg.outbox) if cfg.outbox.is_dir() else 0
            print(json.dumps(out, indent=1))
            return 0
        from cvae.edge.daemon.service import Service

        svc = Service(cfg)
        svc.install_signals()
        return svc.run(once=a.once, config_path=Path(a.config))
    except CvaeError as e:
        print(f"cvae-edge: {e}", file=sys.stderr)
        return 2


def check(cfg) -> dict:
    """Everything the daemon would refuse at start, checked without creating or changing anything."""
    import os

    from cvae.edge.bundle import Bundle
    from cvae.edge.daemon.config import ConfigError

    bundle = Bundle.load(cfg.bundle)
    if cfg.level is not None and cfg.level >= bundle.levels:
        raise ConfigError(f"level: {cfg.level} is beyond this bundle's levels 0..{bundle.levels - 1}")
    if cfg.key_file is not None:  # read, and refused when others may read it, as at start
        from cvae.edge.cliutil import load_key
        from cvae.edge.daemon.service import key_exposed

        load_key(cfg.key_file, key_exposed(cfg))
    devices = {}
    for name in ("inbox", "outbox", "done", "quarantine", "state"):
        d = getattr(cfg, name)
        existing = d
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK):
            raise ConfigError(f"{name}: {d} cannot be created or written (nearest existing folder {existing} is "
                              "not writable by this user); fix its owner or mode")
        devices[name] = os.stat(existing).st_dev
    for name in ("done", "quarantine"):
        if devices[name] != devices["inbox"]:
            raise ConfigError(f"{name}: {getattr(cfg, name)} is on another filesystem than inbox {cfg.inbox}; "
                              "inputs are moved by an atomic rename, so put both on one filesystem")
    return {"config": "ok", "model_id": bundle.model_id[:16], "levels": bundle.levels, "level": cfg.level,
            "sealed": cfg.key_file is not None, "inbox": str(cfg.inbox), "outbox": str(cfg.outbox)}


if __name__ == "__main__":
    sys.exit(main())
