"""``benchmarks/results/README.md`` and ``ARCHIVE.md``, generated from the result files: never typed by hand.

Every result set (the files of one stem: ``X.json``, ``X.md``, ``X.txt``, ``X_rd.json``, ``X.png``, ``X_plots/``)
is filed under the model bundle it measured, found from the files themselves, in this order:

1. a JSON object's ``bundle`` or ``model_id``;
2. ``bundle <id>`` in the first three lines (the header a scorer output or a Markdown report starts with);
3. a 12-hex-digit bundle id in the file name (``scorer_adaptive_a950e956245d.txt``);
4. the shipped bundle's id anywhere in the text or command (an ablation whose last step is the shipped bundle);
5. the bundle of a result file the command names (``curve_gap.txt`` was computed from
   ``scorer_validation_rd.json``, whose set's ``scorer_validation.txt`` names its bundle);
6. the last bundle id the text mentions (the newest step of a retired ablation).

A file that names no bundle at all is listed as such. The shipped bundle (``cvae/bundles/default``) and those
files go to ``README.md``; every retired bundle's files to ``ARCHIVE.md`` (bundles in id order, result sets by
name within a bundle).

    python benchmarks/make_results_readme.py [--results benchmarks/results] [--bundle cvae/bundles/default]
"""
from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{12})(?:[0-9a-f]{4,52})?(?![0-9a-f])")
HEADER_ID = re.compile(r"bundle\W{0,3}([0-9a-f]{12})")
GENERATED = {"README.md", "ARCHIVE.md"}
SUFFIXES = (".json", ".md", ".txt")
NOT_RECORDED = "bundle not recorded"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _json(path: Path):
    if path.suffix != ".json":
        return None
    try:
        return json.loads(_read(path))
    except ValueError:
        return None


def stem(path: Path) -> str:
    """The result set a file belongs to: ``X.json``, ``X.md``, ``X.txt``, ``X_rd.json``, ``X.png`` and the folder
    ``X_plots`` are one set."""
    s = path.stem if path.is_file() else path.name
    for tail in ("_rd", "_plots"):
        if s.endswith(tail):
            return s[: -len(tail)]
    return s


def own_bundle(path: Path) -> str | None:
    """Steps 1-3: the bundle the file names itself."""
    rec = _json(path)
    if isinstance(rec, dict):
        for key in ("bundle", "model_id"):
            if isinstance(rec.get(key), str) and ID.match(rec[key]):
                return rec[key][:12]
    head = "\n".join(_read(path).splitlines()[:3]) if path.suffix in (".md", ".txt") else ""
    m = HEADER_ID.search(head)
    if m:
        return m[1]
    m = ID.search(path.name)
    return m[1] if m else None


def command_of(path: Path) -> str | None:
    """The command that wrote the file, where it records one: a JSON ``command``, a ``# command`` first line,
    or the first backticked line of a Markdown report."""
    rec = _json(path)
    if isinstance(rec, dict) and isinstance(rec.get("command"), str):
        return rec["command"]
    lines = _read(path).splitlines()
    if path.suffix == ".txt" and lines and lines[0].startswith("# "):
        return re.split(r"\s{3,}\(", lines[0][2:].strip())[0]  # the command, without its (annotation)
    if path.suffix == ".md":
        for line in lines[:6]:
            m = re.match(r"`([^`]+)`", line.strip())
            if m:
                return m[1]
    return None


def set_bundle(members: list[Path], files: dict[str, Path], current: str, seen: frozenset = frozenset()) -> str | None:
    """Steps 1-6 (see the module docstring) for one result set (the files of one stem)."""
    for p in members:
        if b := own_bundle(p):
            return b
    seen = seen | {stem(p) for p in members}
    cmds = " ".join(c for p in members if (c := command_of(p)))
    named = [files[n] for n in re.findall(r"[\w.-]+\.(?:json|txt|md)", cmds) if n in files]
    ids = [m for p in members if p.suffix in SUFFIXES for m in ID.findall(_read(p)) if not m.isdigit()]
    ids += [m for m in ID.findall(cmds) if not m.isdigit()]
    if current in ids:
        return current
    for p in named:
        if stem(p) not in seen:
            mates = [q for q in files.values() if stem(q) == stem(p)]
            if b := set_bundle(mates, files, current, seen):
                return b
    return ids[-1] if ids else None


def _demote(md: str, by: int = 3) -> str:
    """Headings of an included report, ``by`` levels down (they sit under this file's own headings)."""
    return re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m[1]) + by) + " ", md, flags=re.M)


def _json_summary(rec) -> list[str]:
    """The scalar top-level fields of a JSON result (its nested data is in the file)."""
    if not isinstance(rec, dict):
        return [f"- {type(rec).__name__} of {len(rec)} records" if hasattr(rec, "__len__") else "- (no summary)"]
    out = []
    for k, v in rec.items():
        if k == "command" or isinstance(v, (dict, list)):
            continue
        if isinstance(v, float):
            v = f"{v:.4g}"
        out.append(f"- `{k}`: {v}")
    nested = [k for k, v in rec.items() if isinstance(v, (dict, list))]
    if nested:
        out.append(f"- nested: {', '.join(f'`{k}`' for k in nested)}")
    return out


def section(name: str, paths: list[Path]) -> list[str]:
    """One result set: its files, the command that wrote it, and its report (Markdown verbatim, text in a
    fence; a JSON without a report: its scalar fields)."""
    out = [f"### {name}", ""]
    out.append("Files: " + ", ".join(f"[`{p.name}`]({p.name}{'/' if p.is_dir() else ''})" for p in paths))
    cmds = sorted({c for p in paths if (c := command_of(p))})
    out.append("Command: " + ("; ".join(f"`{c}`" for c in cmds) if cmds else "not recorded in the files"))
    out.append("")
    reports = [p for p in paths if p.suffix in (".md", ".txt")]
    for p in reports:
        body = _read(p).rstrip()
        out += [_demote(body) if p.suffix == ".md" else f"```\n{body}\n```", ""]
    if not reports:
        for p in paths:
            if p.suffix == ".json":
                out += _json_summary(_json(p)) + [""]
    return out


def collect(results: Path, current: str) -> dict[str, dict[str, list[Path]]]:
    """``{bundle id or NOT_RECORDED: {result set: [files]}}``."""
    files = {p.name: p for p in sorted(results.iterdir())
             if p.name not in GENERATED and not p.name.startswith(".")
             and (p.is_dir() or p.suffix in SUFFIXES + (".png",))}
    sets: dict[str, list[Path]] = {}
    for p in files.values():
        sets.setdefault(stem(p), []).append(p)
    groups: dict[str, dict[str, list[Path]]] = {}
    for s, members in sets.items():
        b = set_bundle(members, files, current) or NOT_RECORDED
        groups.setdefault(b, {})[s] = members
    return groups


def render(groups: dict[str, dict[str, list[Path]]], current: str, archive: bool) -> str:
    gen = "<!-- generated by benchmarks/make_results_readme.py from the files in this folder: do not edit -->"
    if archive:
        keys = sorted(k for k in groups if k not in (current, NOT_RECORDED))
        out = [gen, "# Results of retired bundles", "",
               f"Figures measured on bundles other than the shipped one (`{current}`): kept for the record, not "
               "current. Which bundle each file belongs to is read from the file (`make_results_readme.py`).", ""]
    else:
        keys = [k for k in (current, NOT_RECORDED) if k in groups]
        out = [gen, "# Benchmark results", "",
               f"Grouped by the model bundle they measured. The shipped bundle is `{current}` "
               "(`cvae/bundles/default/manifest.json`); results of retired bundles are in [ARCHIVE.md](ARCHIVE.md). "
               "Regenerate with `python benchmarks/make_results_readme.py`.", ""]
    out += ["Bundles: " + ", ".join(f"`{k}` ({len(groups[k])} result sets)" for k in keys), ""]
    for k in keys:
        title = {current: f"Bundle `{current}` (shipped)",
                 NOT_RECORDED: "Files that record no bundle (coder, daemon, memory, training profiles, ...)"}
        out += [f"## {title.get(k, f'Bundle `{k}`')}", ""]
        for s in sorted(groups[k]):
            out += section(s, sorted(groups[k][s]))
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--bundle", default=str(ROOT / "cvae" / "bundles" / "default"),
                   help="the shipped bundle (its manifest's model_id decides what is current)")
    a = p.parse_args(argv)
    results = Path(a.results)
    current = json.loads((Path(a.bundle) / "manifest.json").read_text())["model_id"][:12]
    groups = collect(results, current)
    for name, archive in (("README.md", False), ("ARCHIVE.md", True)):
        (results / name).write_text(render(groups, current, archive))
        print(f"wrote {results / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
