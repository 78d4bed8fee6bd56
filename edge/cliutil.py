"""What every command line shares, flight and ground alike: ``--version``, tile progress on stderr and key files.

Torch-free and daemon-free, so ``cvae-encode``, ``cvae-edge``, ``cvae-decode``, ``cvae-export`` and ``cvae-demo``
all import it (tests/test_import_rules.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

__all__ = ["VersionAction", "version_string", "version_line", "Progress", "load_key", "warn_on_stderr"]


def version_string(bundle=None) -> str:
    """``cvae V model ID onnxruntime V numpy V``: the package, the first 16 hex digits of ``bundle``'s model id
    (``-`` without one) and the runtime versions."""
    import numpy
    import onnxruntime

    import cvae

    mid = bundle.model_id[:16] if bundle is not None else "-"
    return f"cvae {cvae.__version__} model {mid} onnxruntime {onnxruntime.__version__} numpy {numpy.__version__}"


def version_line(bundle_path: str | Path | None = None, extra: tuple[str, ...] = ()) -> str:
    """:func:`version_string` of the bundle at ``bundle_path`` (default: the shipped one; ``-`` when it does not
    load), then the versions of the modules named in ``extra`` (``(not installed)`` for a missing one)."""
    from cvae.edge.bundle import Bundle
    from cvae.edge.errors import CvaeError

    try:
        line = version_string(Bundle.load(bundle_path))
    except CvaeError:
        line = version_string(None)
    for name in extra:
        try:
            line += f" {name} {__import__(name).__version__}"
        except ImportError:
            line += f" {name} (not installed)"
    return line


class VersionAction(argparse.Action):
    """``--version`` for every command: :func:`version_line`, printed before any other argument is checked (so
    ``cvae-edge --version`` needs no --config); the bundle of a ``--bundle`` given before it, else the shipped
    one."""

    def __init__(self, option_strings, dest, extra=(), **kwargs):
        self.extra = tuple(extra)  # more module names whose versions matter to this command (torch, onnx)
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line(getattr(namespace, "bundle", None), self.extra))
        parser.exit(0)


class Progress:
    """Tiles done on stderr: one updating line on a terminal, else a line at every tenth."""

    def __init__(self, label: str):
        self.label, self.tty, self.last = label, sys.stderr.isatty(), -1

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            end = "\n" if done == total else ""
            print(f"\r{self.label}: tile {done}/{total}", end=end, file=sys.stderr, flush=True)
        elif total >= 10:
            tenth = 10 * done // total
            if tenth != self.last:
                self.last = tenth
                print(f"{self.label}: tile {done}/{total}", file=sys.stderr, flush=True)


def warn_on_stderr(prog: str) -> Callable[[str], None]:
    """``prog: warning: WHY`` on stderr: what a command does with a key file others may read (:func:`load_key`)."""
    return lambda why: print(f"{prog}: warning: {why}", file=sys.stderr)


def load_key(path: str | Path, exposed: Callable[[str], None]) -> tuple[int, bytes]:
    """``(spi, key)`` of the key file at ``path`` (``SPI:HEX``, :func:`cvae.edge.codec.security.load_key_file`,
    which raises ``KeyFileError``); ``exposed(why)`` is called when group or others may read or change it (a
    command warns, :func:`warn_on_stderr`; the daemon refuses unless told otherwise)."""
    from cvae.edge.codec.security import key_file_exposure, load_key_file

    key = load_key_file(path)
    why = key_file_exposure(path)
    if why:
        exposed(why)
    return key
