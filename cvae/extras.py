"""Entry points of the commands that need optional extras: a missing module names the extra to install.

``pip install cvae-satcomp`` installs what the satellite and the ground need (numpy, onnxruntime, rasterio,
...); training, export and the benchmarks need extras. Without them these commands would end in a traceback
(``No module named 'torch'``); here they end in one line naming the extra, exit status 2.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Sequence

__all__ = ["EXTRA_OF", "train_main", "export_main", "bench_main"]

#: top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF = {"torch": "train", "onnx": "train", "tqdm": "train", "threadpoolctl": "train", "scipy": "bench",
            "imagecodecs": "bench", "matplotlib": "bench", "constriction": "bench", "tensorrt": "trt",
            "pycuda": "trt"}


def _missing_extra(e: BaseException) -> str | None:
    """The extra's module whose absence caused ``e`` (libraries wrap it: torch.onnx raises its own error
    'from' the ModuleNotFoundError), or None."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in EXTRA_OF:
            return e.name.split(".")[0]
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _guarded(command: str, target: str) -> Callable[[Sequence[str] | None], int]:
    module_name, func = target.split(":")

    def main(argv: Sequence[str] | None = None) -> int:
        try:
            return getattr(importlib.import_module(module_name), func)(argv)
        except Exception as e:  # noqa: BLE001 - re-raised unless a missing extra is its cause
            top = _missing_extra(e)
            if top is None:
                raise
            extra = EXTRA_OF[top]
            hint = "install TensorRT with JetPack on the Jetson" if extra == "trt" else \
                f"pip install 'cvae-satcomp[{extra}]'"
            print(f"{command}: needs the Python module '{top}' (extra '{extra}'): {hint}", file=sys.stderr)
            return 2
    main.__name__ = f"{command.replace('-', '_')}_main"
    return main


train_main = _guarded("cvae-train", "cvae.models.train:main")
export_main = _guarded("cvae-export", "cvae.export.cli:main")
bench_main = _guarded("cvae-bench", "cvae.bench_entry:main")
