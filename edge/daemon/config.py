"""Daemon configuration: a frozen dataclass loaded from YAML and validated in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from cvae.edge.codec.plan import MODE_SEARCHES
from cvae.edge.encoder import DEFAULT_APID, DEFAULT_TILE
from cvae.edge.errors import InputError
from cvae.edge.quality import TargetError, check_max_error, check_psnr
from cvae.edge.runtime import BACKENDS

__all__ = ["DaemonConfig", "ConfigError"]


class ConfigError(InputError):
    """A config file that does not validate; the message names the key and the fix."""


@dataclass(frozen=True)
class DaemonConfig:
    base_dir: Path = Path("/var/lib/cvae-edge")
    # the folders: None (or absent) is base_dir/NAME; __post_init__ resolves them, so they are Paths once built
    inbox: Path = None  # type: ignore[assignment]
    outbox: Path = None  # type: ignore[assignment]
    done: Path = None  # type: ignore[assignment]
    quarantine: Path = None  # type: ignore[assignment]
    state: Path = None  # type: ignore[assignment]
    bundle: Path | None = None          # default: the shipped bundle
    backend: str = "auto"
    mode_search: str | None = None      # None: "auto" on a GPU, "residual" on a CPU (plan.default_mode_search);
    #                                     "auto" (no network on levels 0-1 and the finest), "full", "ladder" or
    #                                     "residual" (no network on any level: fastest on a CPU)
    level: int | None = 3
    tile_bytes: int | None = None
    max_error: int | list[int] | None = None  # error-bounded coding (tile format v9): one bound or one per band
    psnr: float | None = None           # or each tile at the cheapest rate level or error bound reaching this dB
    tile_size: int = DEFAULT_TILE
    threads: int = 1                    # tiles coded in parallel (packets identical for any value); 0: every core
    apid: int = DEFAULT_APID
    key_file: Path | None = None
    allow_shared_key: bool = False      # accept a key file readable by group/others (refused by default)
    after_success: str = "move"         # move to done/, or delete
    outbox_quota_bytes: int = 1 << 30   # the downlink buffer: encoding pauses above it
    max_scene_pixels: int = 2_000_000_000  # bands x height x width; bigger inputs are quarantined (13-band S2 fits)
    poll_interval_s: float = 2.0
    retry_max_s: float = 60.0           # back-off cap for write errors (ENOSPC, EIO)

    def __post_init__(self) -> None:
        base = Path(self.base_dir)
        object.__setattr__(self, "base_dir", base)
        for name in ("inbox", "outbox", "done", "quarantine", "state"):
            v = getattr(self, name)
            object.__setattr__(self, name, Path(v) if v is not None else base / name)
        for name in ("bundle", "key_file"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, Path(v))
        self.validate()

    @property
    def coding_threads(self) -> int:
        """Tiles coded at once: ``threads``, or the usable cores when it is 0."""
        return self.threads or len(os.sched_getaffinity(0))

    def validate(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"threads: {self.threads} must be 0 (every core) or more")
        if self.tile_size <= 0 or self.tile_size % 16:
            raise ConfigError(f"tile_size: {self.tile_size} is not a positive multiple of 16 (the network's stride)")
        if sum(v is not None for v in (self.level, self.tile_bytes, self.max_error, self.psnr)) != 1:
            raise ConfigError("level / tile_bytes / max_error / psnr: set exactly one (e.g. level: 3; or tile_bytes: "
                              "8000, max_error: 0 for lossless, or psnr: 45, each with level: null)")
        try:  # the one check of both targets, shared with cvae-encode (quality.py: the format's limits)
            if self.psnr is not None:
                check_psnr(self.psnr, "psnr")
            if self.max_error is not None:
                check_max_error(self.max_error, "max_error")
        except TargetError as e:
            raise ConfigError(str(e)) from None
        if self.level is not None and not 0 <= self.level < 64:
            raise ConfigError(f"level: {self.level} is not a rate level; use 0 (lowest rate) .. the bundle's last level")
        if self.tile_bytes is not None and self.tile_bytes <= 0:
            raise ConfigError(f"tile_bytes: {self.tile_bytes} must be a positive byte budget")
        if self.after_success not in ("move", "delete"):
            raise ConfigError(f"after_success: {self.after_success!r} must be 'move' or 'delete'")
        if self.mode_search is not None and self.mode_search not in MODE_SEARCHES:
            named = ", ".join(repr(m) for m in MODE_SEARCHES[:-1])
            raise ConfigError(f"mode_search: {self.mode_search!r} must be {named} or {MODE_SEARCHES[-1]!r} (or "
                              "left out: 'auto' on a GPU, 'residual' on a CPU)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: {self.backend!r} must be {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}")
        if not 0 <= self.apid < 2047:
            raise ConfigError(f"apid: {self.apid} must lie in 0..2046")
        if self.outbox_quota_bytes <= 0:
            raise ConfigError(f"outbox_quota_bytes: {self.outbox_quota_bytes} must be positive")
        if self.poll_interval_s <= 0 or self.retry_max_s <= 0:
            raise ConfigError("poll_interval_s / retry_max_s: must be positive seconds")
        if len({self.inbox, self.outbox, self.done, self.quarantine}) < 4:
            raise ConfigError("inbox, outbox, done, quarantine: must be four different folders")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DaemonConfig":
        p = Path(path)
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found; copy deploy/cvae-edge.yaml and edit it") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e})") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: expected a mapping of keys to values")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"{p}: unknown key(s) {unknown}; known keys: {sorted(known)}")
        for k in ("tile_size", "apid", "outbox_quota_bytes", "max_scene_pixels", "level", "tile_bytes", "threads"):
            nullable = k in ("level", "tile_bytes")
            if k in raw and not (isinstance(raw[k], int) and not isinstance(raw[k], bool)) and not (
                    nullable and raw[k] is None):
                raise ConfigError(f"{p}: {k}: {raw[k]!r} is not an integer" + (" (or null)" if nullable else ""))
        for k in ("poll_interval_s", "retry_max_s"):
            if k in raw and not isinstance(raw[k], (int, float)):
                raise ConfigError(f"{p}: {k}: {raw[k]!r} is not a number of seconds")
        try:
            return cls(**raw)
        except TypeError as e:
            raise ConfigError(f"{p}: {e}") from e
