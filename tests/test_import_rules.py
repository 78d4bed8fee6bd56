"""Import contracts: flight and ground code never import torch (nor anything else heavy at import time); the edge
never imports ground, training, export, demo or metrics code; only edge/io reads rasters; edge/codec (the wire
contract) needs only the standard library, numpy, spacepackets, cryptography and itself.

Imports are read from the source (every ``import``, top level or inside a function), relative ones resolved."""
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"torch", "torchvision", "cvae.models", "cvae.export"}


#: source folder -> the package it is installed as (pyproject.toml [tool.setuptools] package-dir)
PACKAGES = {"edge": "cvae.edge", "ground": "cvae.ground", "models": "cvae.models", "export": "cvae.export"}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [PACKAGES.get(rel.parts[0], rel.parts[0]), *rel.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``: annotations only, never imported at run time."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of every module ``path`` imports at run time (``from a import b`` gives ``a`` and ``a.b``;
    imports under ``if TYPE_CHECKING:`` do not count)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = set()
    typing_only = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base:
                names.add(base)
            names.update(f"{base}.{a.name}" if base else a.name for a in node.names)
    return names


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _offenders(folder: str, rule) -> list[str]:
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(n for n in _imports(path) if rule(path, n))
        if bad:
            out.append(f"{path.relative_to(ROOT)}: {bad}")
    return out


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


EDGE_FORBIDDEN = ("torch", "torchvision", "cvae.ground", "cvae.models", "cvae.export", "cvae.demo", "cvae.metrics")


def test_edge_never_imports_ground_training_export_demo_or_metrics_code():
    assert _offenders("edge", lambda path, n: _under(n, EDGE_FORBIDDEN)) == []


#: modules outside edge/io that import rasterio: none (a new offender fails the test)
RASTERIO_OUTSIDE_EDGE_IO: set[str] = set()


def test_only_edge_io_imports_rasterio_on_the_edge():
    offenders = {str(p.relative_to(ROOT)) for p in (ROOT / "edge").rglob("*.py")
                 if p.parent != ROOT / "edge" / "io" and any(_under(n, ("rasterio",)) for n in _imports(p))}
    assert offenders == RASTERIO_OUTSIDE_EDGE_IO


CODEC_ALLOWED = ("numpy", "spacepackets", "cryptography", "cvae.edge.codec", "cvae.edge.errors")


def test_edge_codec_imports_only_stdlib_numpy_spacepackets_cryptography_and_itself():
    def bad(path, name):
        return not (name.split(".")[0] in sys.stdlib_module_names or _under(name, CODEC_ALLOWED))

    assert _offenders("edge/codec", bad) == []


def test_import_rules_see_relative_and_function_level_imports():
    """The checks above would pass vacuously if the import reader missed these."""
    assert "cvae.edge.codec._rangecoder" in _imports(ROOT / "edge" / "codec" / "rangecoder.py")
    assert "tensorrt" in _imports(ROOT / "edge" / "runtime" / "trt.py")  # imported inside a function
    assert "cvae.edge.runtime.protocol" not in _imports(ROOT / "edge" / "codec" / "tile.py")  # TYPE_CHECKING only
