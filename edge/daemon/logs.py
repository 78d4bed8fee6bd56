"""The daemon's log: one JSON object per line on stderr, with a syslog priority journald understands."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

__all__ = ["log", "capture_warnings", "PRIORITY"]

#: syslog priority of each event (journald: 3 err, 4 warning, 5 notice, 6 info); unlisted events are info
PRIORITY = {"giving_up": 3, "quarantine_failed": 3, "refuse_failed": 3, "reload_failed": 3, "state_error": 3,
            "write_error": 3, "scene_failed": 4, "quarantined": 4, "outbox_full": 4, "warning": 4, "vanished": 5}


def log(event: str, **fields) -> None:
    """One JSON object per line on stderr, with its syslog ``priority``. Under systemd (``JOURNAL_STREAM`` set)
    the line starts with ``<N>``, which journald takes as the priority and strips (``journalctl -p warning``
    then shows the warnings and errors); elsewhere the line is plain JSON."""
    prio = PRIORITY.get(event, 6)
    line = json.dumps({"t": round(time.time(), 3), "event": event, "priority": prio, **fields}, default=str)
    print(f"<{prio}>{line}" if os.environ.get("JOURNAL_STREAM") else line, file=sys.stderr, flush=True)


def capture_warnings() -> None:
    """Python and rasterio warnings become ``warning`` log lines instead of free text in the JSON stream."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        log("warning", category=category.__name__, message=str(message)[:500], where=f"{Path(filename).name}:{lineno}")

    warnings.showwarning = show
