"""Flight and ground code never import torch (nor anything else heavy at import time)."""
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"torch", "torchvision", "cvae.models", "cvae.export"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_edge_and_ground_sources_never_import_torch_or_training_code():
    offenders = []
    for folder in ("edge", "ground"):
        for path in (ROOT / folder).rglob("*.py"):
            bad = {n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_ground_never_imports_the_daemon():
    offenders = [str(p) for p in (ROOT / "ground").rglob("*.py")
                 if any(n.startswith("cvae.edge.daemon") for n in _imports(p))]
    assert not offenders, offenders


def test_edge_and_ground_import_with_torch_poisoned():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        "import pkgutil, importlib\n"
        "import cvae.edge, cvae.ground\n"
        "for pkg in (cvae.edge, cvae.ground):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
