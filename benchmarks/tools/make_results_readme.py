"""``benchmarks/results/README.md`` and ``ARCHIVE.md``, generated from the result files: never typed by hand.

``benchmarks/results/`` holds one folder per model bundle, named by the first 12 hex digits of the bundle's
``model_id`` (the files measured with it), and ``no-bundle/`` for figures no model enters (the range coder, the
lossless peers, the predictive coder, fuzzing). A file's bundle is its folder: nothing is guessed from its text.
A result set is the files of one stem in one folder (``X.json``, ``X.md``, ``X.txt``, ``X_rd.json``, ``X.png``,
``X_plots/``). The shipped bundle (``cvae/bundles/default``) and ``no-bundle/`` go to ``README.md``; every
retired bundle's folder to ``ARCHIVE.md`` (bundles in id order, result sets by name within a bundle).

    python benchmarks/tools/make_results_readme.py [--results benchmarks/results] [--bundle cvae/bundles/default]
"""
from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_DIR = re.compile(r"[0-9a-f]{12}")
NO_BUNDLE = "no-bundle"
GENERATED = {"README.md", "ARCHIVE.md"}
SUFFIXES = (".json", ".md", ".txt")


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


def recorded_bundle(path: Path) -> str | None:
    """The bundle a JSON result records itself (``bundle`` or ``model_id``), first 12 hex digits; for checks."""
    rec = _json(path)
    if isinstance(rec, dict):
        for key in ("bundle", "model_id"):
            if isinstance(rec.get(key), str) and re.match(r"[0-9a-f]{12}", rec[key]):
                return rec[key][:12]
    return None


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
    out.append("Files: " + ", ".join(f"[`{p.name}`]({p.parent.name}/{p.name}{'/' if p.is_dir() else ''})"
                                    for p in paths))
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


def collect(results: Path) -> dict[str, dict[str, list[Path]]]:
    """``{bundle id or NO_BUNDLE: {result set: [files]}}``, read from the folders of ``results``."""
    groups: dict[str, dict[str, list[Path]]] = {}
    for folder in sorted(results.iterdir()):
        if not folder.is_dir():
            continue
        if not (BUNDLE_DIR.fullmatch(folder.name) or folder.name == NO_BUNDLE):
            raise SystemExit(f"{folder}: not a bundle folder; name it by the bundle's 12-hex-digit id or {NO_BUNDLE}")
        sets = groups.setdefault(folder.name, {})
        for p in sorted(folder.iterdir()):
            if not p.name.startswith(".") and (p.is_dir() or p.suffix in SUFFIXES + (".png",)):
                sets.setdefault(stem(p), []).append(p)
    return groups


def render(groups: dict[str, dict[str, list[Path]]], current: str, archive: bool) -> str:
    gen = "<!-- generated by benchmarks/tools/make_results_readme.py from the files in this folder: do not edit -->"
    if archive:
        keys = sorted(k for k in groups if k not in (current, NO_BUNDLE))
        out = [gen, "# Results of retired bundles", "",
               f"Figures measured on bundles other than the shipped one (`{current}`): kept for the record, not "
               "current. A file's bundle is the folder it is in (`tools/make_results_readme.py`).", ""]
    else:
        keys = [k for k in (current, NO_BUNDLE) if k in groups]
        out = [gen, "# Benchmark results", "",
               f"One folder per model bundle measured, `{NO_BUNDLE}/` for figures no model enters. The shipped bundle "
               f"is `{current}` "
               "(`cvae/bundles/default/manifest.json`); results of retired bundles are in [ARCHIVE.md](ARCHIVE.md). "
               "Which harness answers which question: [../README.md](../README.md). Regenerate with "
               "`python benchmarks/tools/make_results_readme.py`.", ""]
    out += ["Bundles: " + ", ".join(f"`{k}` ({len(groups[k])} result sets)" for k in keys), ""]
    for k in keys:
        title = {current: f"Bundle `{current}` (shipped)",
                 NO_BUNDLE: f"`{NO_BUNDLE}/`: figures no model enters (range coder, lossless peers, predictive "
                            "coder, fuzzing)"}
        out += [f"## {title.get(k, f'Bundle `{k}`')}", ""]
        for s in sorted(groups[k]):
            out += section(s, sorted(groups[k][s]))
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--bundle", default=str(ROOT / "cvae" / "bundles" / "default"),
                   help="the shipped bundle (its manifest's model_id decides what is current)")
    a = p.parse_args(argv)
    results = Path(a.results)
    current = json.loads((Path(a.bundle) / "manifest.json").read_text())["model_id"][:12]
    groups = collect(results)
    for name, archive in (("README.md", False), ("ARCHIVE.md", True)):
        (results / name).write_text(render(groups, current, archive))
        print(f"wrote {results / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
