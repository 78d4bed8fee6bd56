"""The spool's folders: inbox, outbox, done, quarantine and state, created and checked at start; temp files
of writes cut short dropped; finished inputs moved to done (or deleted); the outbox measured for its quota."""
from __future__ import annotations

import os
from pathlib import Path

from cvae.edge.daemon.config import ConfigError, DaemonConfig
from cvae.edge.io.files import PARTIAL_SUFFIX, fsync_dir

__all__ = ["prepare_folders", "clear_partials", "outbox_bytes", "finish_input"]


def prepare_folders(cfg: DaemonConfig) -> None:
    """Create the folders; refuse done/ or quarantine/ on another filesystem than the inbox (inputs move there
    by rename: a copy across filesystems is not atomic)."""
    for d in (cfg.inbox, cfg.outbox, cfg.done, cfg.quarantine, cfg.state):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("done", "quarantine"):
        if os.stat(getattr(cfg, name)).st_dev != os.stat(cfg.inbox).st_dev:
            raise ConfigError(f"{name}: {getattr(cfg, name)} is on another filesystem than inbox {cfg.inbox}; "
                              "inputs are moved by an atomic rename, so put both on one filesystem")


def clear_partials(folder: Path) -> None:
    """Drop the temp files of writes cut short (``.*.part``): never visible under their final name, safe."""
    for stale in folder.glob(f".*{PARTIAL_SUFFIX}"):
        stale.unlink(missing_ok=True)


def outbox_bytes(outbox: Path) -> int:
    with os.scandir(outbox) as entries:
        return sum(e.stat().st_size for e in entries if e.is_file())


def finish_input(cfg: DaemonConfig, path: Path) -> None:
    """A coded input leaves the inbox, after every packet file of it is durable."""
    fsync_dir(cfg.outbox)
    if cfg.after_success == "delete":
        path.unlink()
    else:
        os.replace(path, cfg.done / path.name)
        fsync_dir(cfg.done)
    fsync_dir(cfg.inbox)
