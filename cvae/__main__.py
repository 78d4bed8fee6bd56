"""``python -m cvae COMMAND ...``: one entry point for every command (the same as the ``cvae-*`` scripts)."""
from __future__ import annotations

import sys
from importlib import import_module
from typing import Sequence

#: command -> (module, function); the same targets as [project.scripts] in pyproject.toml
COMMANDS = {
    "encode": ("cvae.edge.cli", "encode_main"),
    "decode": ("cvae.ground.cli", "main"),
    "edge": ("cvae.edge.daemon.cli", "main"),
    "export": ("cvae.export.cli", "main"),
    "train": ("cvae.models.train", "main"),
    "demo": ("cvae.demo", "main"),
    "bench": ("cvae.bench_entry", "main"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m cvae {" + ",".join(COMMANDS) + "} [ARGS...]   (python -m cvae --version)")
        return 0 if argv else 2
    if argv[0] == "--version":
        from cvae.edge.cliutil import version_line

        print(version_line())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"python -m cvae: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, func = COMMANDS[name]
    target = getattr(import_module(module), func)
    if name == "bench":  # runs a script that reads sys.argv
        sys.argv = ["cvae-bench", *rest]
        return int(target() or 0)
    return int(target(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
