"""``cvae-bench``: runs ``benchmarks/bench.py`` of the source checkout this package was installed from.

The benchmark harnesses live in the repository (with their results), not in the installed package; an
install from a wheel has no ``benchmarks/`` and says so.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv=None) -> int:
    """``argv``: the arguments (default: the command line's)."""
    if argv is not None:
        sys.argv[1:] = list(argv)
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
    if not script.is_file():
        print("cvae-bench: benchmarks/ is not next to this install; run it from a source checkout "
              "(pip install -e .) or as python benchmarks/bench.py", file=sys.stderr)
        return 2
    sys.argv[0] = str(script)
    sys.path.insert(0, str(script.parent))  # as `python benchmarks/bench.py` does: its sibling modules import
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0
