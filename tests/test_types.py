"""The type checker runs on the flight and ground packages (issue 24): ``mypy -p cvae.edge -p cvae.ground`` with
the settings of pyproject.toml's [tool.mypy], clean.

The source folders are installed under one namespace (``cvae.edge`` is ``edge/``, pyproject's package-dir) by an
import hook mypy cannot see, so the test lays them out as that namespace with symlinks in a temporary folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"edge": "edge", "ground": "ground", "models": "models", "export": "export"}


def _namespace(tmp: Path) -> Path:
    pkg = tmp / "cvae"
    pkg.mkdir()
    for entry in (ROOT / "cvae").iterdir():
        (pkg / entry.name).symlink_to(entry)
    for name, folder in FOLDERS.items():
        (pkg / name).symlink_to(ROOT / folder)
    return tmp


def test_mypy_is_clean_on_edge_and_ground(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")
    root = _namespace(tmp_path)
    run = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                          "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "cvae.edge", "-p", "cvae.ground"],
                         cwd=root, capture_output=True, text=True, env={**os.environ, "MYPYPATH": str(root)},
                         timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
