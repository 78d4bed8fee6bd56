"""The inbox: which files wait, oldest first; which entries are refused (symlinks, FIFOs, sockets, devices,
folders); and quarantine, where refused and failed inputs go with a ``NAME.reason.txt`` beside them."""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cvae.edge.io.files import fsync_dir

__all__ = ["InboxScan", "scan_inbox", "refusal_reason", "quarantine_file", "bounded_name", "IGNORED_SUFFIXES"]

#: files still being written by whoever fills the inbox (as are names starting with a dot)
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


@dataclass(frozen=True)
class InboxScan:
    """files: regular files to encode, oldest first (mtime, then name); refused: entries that are not
    regular files, with the reason they are refused."""

    files: tuple[Path, ...]
    refused: tuple[tuple[Path, str], ...]


def refusal_reason(entry: os.DirEntry) -> str:
    """Why an inbox entry that is not a regular file is refused. Symlinks are never followed: they may point
    anywhere."""
    kind = ("symlink" + (" (dangling)" if not os.path.exists(entry.path) else "") if entry.is_symlink()
            else "folder" if entry.is_dir(follow_symlinks=False) else "special file (FIFO, socket or device)")
    return (f"InputError: {kind} in the inbox; only regular files are encoded: move or copy the GeoTIFF itself "
            "into the inbox")


def scan_inbox(inbox: Path) -> InboxScan:
    files, refused = [], []
    with os.scandir(inbox) as entries:
        for e in entries:
            if e.name.startswith(".") or e.name.lower().endswith(IGNORED_SUFFIXES):
                continue
            if e.is_symlink() or not e.is_file(follow_symlinks=False):
                refused.append((Path(e.path), refusal_reason(e)))
                continue
            files.append((e.stat().st_mtime_ns, e.name, Path(e.path)))
    return InboxScan(tuple(p for _, _, p in sorted(files)), tuple(refused))


def bounded_name(name: str, limit: int = 200) -> str:
    """``name`` short enough that ``name + '.reason.txt'`` fits NAME_MAX (255), kept unique by a hash."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name.encode()[:limit - 13].decode(errors="ignore") + "_" + digest


def quarantine_file(path: Path, inbox: Path, quarantine: Path, reason: str,
                    write_file: Callable[[Path, bytes], None]) -> str:
    """Move ``path`` from ``inbox`` into ``quarantine`` by rename (a second bad file of one name is kept beside
    the first) and write the reason beside it; returns the name it got there."""
    name = bounded_name(path.name)
    target = quarantine / name
    if target.exists():
        stem = hashlib.sha256(f"{path.name}{time.time_ns()}".encode()).hexdigest()[:8]
        name = bounded_name(f"{stem}_{path.name}")
        target = quarantine / name
    os.replace(path, target)
    write_file(quarantine / f"{name}.reason.txt", (reason + "\n").encode())
    fsync_dir(inbox)
    return name
