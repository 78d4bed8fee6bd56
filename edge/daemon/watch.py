"""Waiting for the inbox: inotify (Linux, through libc with ctypes) where available, polling otherwise.

Written by hand because the inotify packages on PyPI are either unmaintained or pull in an event framework;
the kernel interface is three calls. Writers rename complete files into the inbox, so IN_MOVED_TO and
IN_CLOSE_WRITE are the events that matter.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from pathlib import Path

__all__ = ["InboxWatcher"]

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class InboxWatcher:
    def __init__(self, folder: Path):
        self.fd = -1
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(str(folder)), _IN_MOVED_TO | _IN_CLOSE_WRITE) >= 0:
                self.fd = fd
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            self.fd = -1  # no inotify (not Linux, or seccomp): polling only

    @property
    def mode(self) -> str:
        return "inotify" if self.fd >= 0 else "polling"

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s; True if an inotify event arrived (polling always returns False)."""
        if self.fd < 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass
            return True
        return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
