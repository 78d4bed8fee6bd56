"""benchmarks/reproduce_readme.sh names only scripts that exist and makes every result file README.md cites;
benchmarks/results/ is one folder per bundle. Fast: the script runs with --dry-run (it prints, runs nothing)."""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from bench_common import BENCH, FOLDERS, RESULTS, ROOT, bundle_id

RESULT_PATH = re.compile(r"benchmarks/results/[\w./*-]+\.(?:md|txt|json|png)")


@pytest.fixture(scope="module")
def dry_run() -> str:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    r = subprocess.run(["bash", str(BENCH / "reproduce_readme.sh"), "--dry-run"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _outputs(dry: str) -> list[str]:
    return [f for line in dry.splitlines() if line.startswith("#   -> ") for f in line[7:].split()]


def test_every_script_the_reproduction_runs_exists(dry_run):
    commands = "\n".join(line for line in dry_run.splitlines() if not line.startswith("#"))
    named = set(re.findall(r"(?<![\w./-])((?:benchmarks|tests)/[\w./-]+\.(?:py|sh))", commands))
    assert named, "no script found in the dry run"
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, missing


def test_every_result_file_the_readme_cites_exists_and_is_reproduced(dry_run):
    readme = (ROOT / "README.md").read_text()
    cited = set(RESULT_PATH.findall(readme)) - {"benchmarks/results/README.md", "benchmarks/results/ARCHIVE.md"}
    assert cited, "README.md cites no result file"
    missing = sorted(c for c in cited if not list(ROOT.glob(c)))
    assert not missing, missing
    outputs = _outputs(dry_run)
    unmade = sorted(c for c in cited if not any(fnmatch.fnmatch(o, c) for o in outputs))
    assert not unmade, f"cited by README.md but made by no step of reproduce_readme.sh: {unmade}"


def test_every_readme_command_names_an_existing_script():
    for doc in [ROOT / "README.md", BENCH / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        named = set(re.findall(r"python (benchmarks/[\w./-]+\.py)", text))
        missing = sorted(p for p in named if not (ROOT / p).is_file())
        assert not missing, (doc.name, missing)


def test_the_reproduction_writes_into_the_shipped_bundles_folder(dry_run):
    current = bundle_id()
    for out in _outputs(dry_run):
        if out.startswith("benchmarks/results/") and out.count("/") == 3:
            assert out.split("/")[2] in (current, "no-bundle"), out


def test_results_are_one_folder_per_bundle_and_files_sit_in_their_own():
    """A folder is a bundle id (12 hex digits) or no-bundle; a JSON result that records its bundle is in it."""
    for entry in RESULTS.iterdir():
        if entry.is_file():
            assert entry.name in ("README.md", "ARCHIVE.md"), entry
            continue
        assert re.fullmatch(r"[0-9a-f]{12}", entry.name) or entry.name == "no-bundle", entry
        for p in entry.glob("*.json"):
            rec = json.loads(p.read_text())
            own = next((rec[k][:12] for k in ("bundle", "model_id") if isinstance(rec, dict)
                        and isinstance(rec.get(k), str) and re.match(r"[0-9a-f]{12}", rec[k])), None)
            assert own in (None, entry.name), f"{p.relative_to(ROOT)} records bundle {own}"


def test_scripts_live_in_their_folders():
    """Only the cvae-bench entry sits on top of benchmarks/; every other script is in a folder of its role."""
    assert sorted(p.name for p in BENCH.glob("*.py")) == ["bench.py"]
    for folder in FOLDERS:
        assert list((BENCH / folder).glob("*.py")), folder


def test_every_script_the_reproduction_runs_starts(dry_run):
    """Each script the reproduction runs imports what it names and answers --help (a renamed helper once broke
    shortcut_eval.py and two experiments only when they were rerun), and names no helper module that is gone."""
    import sys

    commands = "\n".join(line for line in dry_run.splitlines() if not line.startswith("#"))
    scripts = sorted(set(re.findall(r"(?<![\w./-])(benchmarks/[\w./-]+\.py)", commands)))
    here = {p.stem for p in BENCH.rglob("*.py")}
    for script in scripts:
        text = (ROOT / script).read_text()
        gone = [m for m in re.findall(r"^\s*from (\w+) import", text, re.M) if m.startswith(("bench_", "ablation_",
                "ladder_")) and m not in here]
        assert not gone, (script, gone)
        compile(text, script, "exec")
        if "argparse" not in text and "scenes_main" not in text:
            continue  # reads sys.argv itself: --help would be a file name
        r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 0, (script, r.stderr[-2000:])
