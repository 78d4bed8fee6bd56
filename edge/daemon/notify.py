"""systemd's sd_notify protocol, by hand: one datagram to ``$NOTIFY_SOCKET`` (no libsystemd needed).

Written here because the protocol is a few lines and the Python bindings (systemd-python) need
libsystemd headers to build, which a Jetson image may not carry.
"""
from __future__ import annotations

import os
import socket

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    def __init__(self, address: str | None = None):
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines; False when not under systemd (or the socket is gone)."""
        if self._sock is None or not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        try:
            self._sock.sendto("\n".join(lines).encode(), addr)
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
