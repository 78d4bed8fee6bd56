"""Helpers shared by the benchmark scripts: sibling imports, machine info, scene listing, the pixels the encoder
codes, JSON-safe records and result files (the folder of the bundle they measured).

``benchmarks/`` is a folder of scripts, not a package: ``harness/``, ``experiments/`` and ``tools/`` each start
with ``sys.path.insert(0, .../common)`` (a script run as ``python benchmarks/harness/NAME.py`` has only its own
folder on ``sys.path``; pytest adds ``benchmarks/common`` through ``pythonpath`` in pyproject.toml), so
``import bench_common`` just works; the scripts load each other with :func:`sibling` (as ``_bench_NAME``, the
names the tests use too), wherever the other script lives.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = ["BENCH", "CODEC_ERRORS", "DEFAULT_OUT", "HERE", "NO_BUNDLE", "RESULTS", "ROOT", "bar", "bundle_id", "clean",
           "find_scenes", "fmt", "machine_info", "native_pixels", "results_dir", "scenes_main", "script_path",
           "sibling", "utc_now", "write_results"]

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
FOLDERS = ("harness", "experiments", "tools", "common")  # where sibling() looks, in this order
RESULTS = BENCH / "results"
NO_BUNDLE = RESULTS / "no-bundle"  # results that do not depend on a model bundle (coder, peers, fuzzing)
CODEC_ERRORS = (RuntimeError, ValueError, TypeError)  # imagecodecs' errors derive from RuntimeError


def bundle_id(bundle: str | Path | None = None) -> str:
    """The first 12 hex digits of a bundle's ``model_id`` (default: the shipped ``cvae/bundles/default``)."""
    manifest = Path(bundle or ROOT / "cvae" / "bundles" / "default") / "manifest.json"
    return json.loads(manifest.read_text())["model_id"][:12]


def results_dir(bundle: str | Path | None = None) -> Path:
    """``benchmarks/results/<bundle id>``: where the figures measured with ``bundle`` (default: shipped) go."""
    return RESULTS / bundle_id(bundle)


DEFAULT_OUT = results_dir()


def validation_scene_parser(doc: str):
    """``--scenes`` (default: the validation scenes of configs/default.yaml), ``--bundle`` and ``--out``: the
    arguments of the harnesses that measure one bundle on the held-out scenes."""
    import argparse

    import yaml

    cfg = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--scenes", nargs="+",
                   default=[str((ROOT / "configs" / s).resolve()) for s in cfg["validation_scenes"]])
    p.add_argument("--bundle")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    return p


def script_path(name: str) -> Path:
    """``benchmarks/FOLDER/NAME.py`` for the first of :data:`FOLDERS` that holds it."""
    for folder in FOLDERS:
        if (path := BENCH / folder / f"{name}.py").is_file():
            return path
    raise FileNotFoundError(f"no benchmarks/{{{','.join(FOLDERS)}}}/{name}.py")


def sibling(name: str) -> ModuleType:
    """Import ``benchmarks/FOLDER/NAME.py`` (plain script folders, not packages) once, as ``_bench_NAME``."""
    mod = sys.modules.get(f"_bench_{name}")
    if mod is None:
        path = script_path(name)
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


def bar(it: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A tqdm progress bar on stderr when tqdm is installed, else ``it`` unchanged."""
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar, same results
        return it
    return tqdm(it, desc=desc, total=total, file=sys.stderr, leave=False)


def machine_info() -> dict:
    """platform, CPU model (/proc/cpuinfo), and versions of every package the numbers depend on."""
    info = sibling("coder_speed").machine_info()
    versions = {}
    for pkg in ("numpy", "scipy", "onnxruntime", "onnx", "imagecodecs", "constriction", "rasterio", "torch",
                "tensorrt", "matplotlib", "cvae-satcomp"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    gpu = None
    if versions["torch"]:
        import torch

        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {**info, "gpu": gpu, "versions": versions}


def utc_now() -> str:
    """The record's timestamp: ISO 8601, UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def clean(x):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def fmt(v, spec: str = "+.1f", suffix: str = "%") -> str:
    """``v`` formatted for a Markdown table; ``n/a`` for None or NaN."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{spec}}{suffix}"


def find_scenes(data: str | Path, limit: int | None = None) -> list[Path]:
    """``data`` itself if a file, else every ``*.tif``/``*.tiff`` under it (recursive, sorted), the first ``limit``."""
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise SystemExit(f"--data {data}: no such file or folder; point it at a folder of GeoTIFFs")
    found = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".tif", ".tiff") and p.is_file())
    if not found:
        raise SystemExit(f"--data {data}: no *.tif/*.tiff under it")
    return found[:limit] if limit else found


def native_pixels(pixels: np.ndarray) -> np.ndarray:
    """The array the encoder codes: float rasters holding integers become integers (as encode_scene does)."""
    from cvae.edge.io.raster import as_integers

    return as_integers(pixels)


def analysed_tiles(path: str | Path, codec, size: int = 256):
    """``(info, window, analysed tile)`` for every tile of ``path`` with a valid pixel, read and analysed as
    ``cvae-encode`` does (``encoder.prepare_tile`` at a fixed level: band fill, spectral transform; the networks run
    when a level first needs them)."""
    from cvae.edge.encoder import prepare_tile
    from cvae.edge.io.raster import scan_raster
    from cvae.edge.io.raster import open_rows
    from cvae.edge.io.tiling import tile_grid

    info = scan_raster(path, rows=size)
    _, h, w = info.shape
    with open_rows(path, info) as reader:
        for win in tile_grid(h, w, size):
            px, valid = reader.tile(win)
            if valid.any():
                yield info, win, prepare_tile(codec, px, valid, info, level=0)[0]


def repo_path(path: str | Path) -> str:
    """``path`` relative to the repository root, symlinks kept: how a recorded command names it (run from the root)."""
    return os.path.relpath(os.path.abspath(path), ROOT)


def write_results(out: Path, name: str, record: dict, markdown: str) -> Path:
    """``out/NAME.json`` (JSON-safe, via coder_speed.write_json) and ``out/NAME.md``; returns the JSON path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    sibling("coder_speed").write_json(path, clean(record))
    (out / f"{name}.md").write_text(markdown)
    return path


def scenes_main(argv, doc: str, script: str, name: str, run, markdown, options=()) -> int:
    """The ``main`` of a benchmark over scene files: arguments ``SCENE...``, each of ``options`` (``(flag,
    add_argument keywords)``) and ``--out``; ``run(scenes, *option values) -> record``; the record and
    ``markdown(record, command)`` written as ``NAME.json`` / ``NAME.md`` with the command that reproduces them.
    ``script``: the benchmark's ``__file__``."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("scenes", nargs="+", type=Path)
    for flag, kw in options:
        p.add_argument(flag, **kw)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    values = [getattr(a, flag.lstrip("-").replace("-", "_")) for flag, _ in options]
    rec = run(a.scenes, *values)
    parts = [f"python {repo_path(script)}", *(repo_path(s) for s in a.scenes)]
    for (flag, _), v in zip(options, values):
        parts += [flag, *(map(str, v) if isinstance(v, list) else [str(v)])]
    command = " ".join(parts + ["--out", repo_path(a.out)])
    rec["command"] = command
    write_results(a.out, name, rec, markdown(rec, command))
    return 0
