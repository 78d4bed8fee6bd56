"""The spool's folders: inbox, outbox, done, quarantine and state, created and checked at start; temp files
of writes cut short dropped; finished inputs moved to done (or deleted); the outbox measured for its quota."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cvae.edge.daemon.config import ConfigError, DaemonConfig
from cvae.edge.io.files import PARTIAL_SUFFIX, fsync_dir

__all__ = ["prepare_folders", "clear_partials", "outbox_bytes", "OutboxMeter", "finish_input"]


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
    """Bytes of the files in ``outbox``; a file the downlink removes during the scan counts as gone."""
    total = 0
    with os.scandir(outbox) as entries:
        for e in entries:
            try:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
    return total


class OutboxMeter:
    """The outbox's size for the quota, at a cost that does not grow with its file count: one scan at start, the
    bytes of each packet file written added as it is written, and a fresh scan (which subtracts what the downlink
    removed) only when the count reaches the quota, at most once per ``rescan_s``.

    Only the daemon adds files to the outbox and the downlink only removes them, so the count kept is never below
    the true size: the quota holds. Between ground passes the outbox fills and no scan runs at all."""

    def __init__(self, outbox: Path, rescan_s: float, clock=time.monotonic):
        self.outbox, self.rescan_s, self._clock = outbox, rescan_s, clock
        self._lock = threading.Lock()  # the emit thread adds; the main loop may rescan
        self.scans = 0
        self.rescan()

    def rescan(self) -> int:
        size = outbox_bytes(self.outbox)
        with self._lock:
            self.bytes, self._at = size, self._clock()
            self.scans += 1
        return size

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes

    def over(self, quota: int) -> bool:
        """Whether the outbox holds ``quota`` bytes or more (rescanned first if the count says so and the last
        scan is older than ``rescan_s``)."""
        if self.bytes < quota:
            return False
        if self._clock() - self._at >= self.rescan_s:
            self.rescan()
        return self.bytes >= quota


def finish_input(cfg: DaemonConfig, path: Path) -> None:
    """A coded input leaves the inbox, after every packet file of it is durable."""
    fsync_dir(cfg.outbox)
    if cfg.after_success == "delete":
        path.unlink()
    else:
        os.replace(path, cfg.done / path.name)
        fsync_dir(cfg.done)
    fsync_dir(cfg.inbox)
