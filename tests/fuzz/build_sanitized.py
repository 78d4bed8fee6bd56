"""Build the C decoders (edge/codec/_*.c) with AddressSanitizer + UndefinedBehaviorSanitizer into a folder of their own.

The normal extensions in the tree (built by ``pip install -e .``) are left alone: other processes load them. The
sanitized ones are loaded by tests/fuzz/fuzz_decoders.py under ``LD_PRELOAD`` of gcc's libasan (the ASan runtime
must come first; Python itself is not instrumented).

    python tests/fuzz/build_sanitized.py OUT_DIR
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

__all__ = ["MODULES", "FLAGS", "compiler", "asan_runtime", "build"]

ROOT = Path(__file__).resolve().parents[2]
CODEC = ROOT / "edge" / "codec"
#: every C extension the decoder runs (the three entropy decoders and the inverse wavelet)
MODULES = ("_rangecoder", "_predictive", "_coefs", "_wavelet")
#: every finding is fatal (no recovery), with symbolised stacks; -O1 keeps the fuzz loop fast
FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1",
         "-std=c99", "-ffp-contract=off", "-shared", "-fPIC")


def compiler() -> str | None:
    """gcc (what .ci/run's machine has), else cc; None when there is none."""
    return shutil.which("gcc") or shutil.which("cc")


def asan_runtime(cc: str) -> Path | None:
    """The compiler's shared ASan runtime (the file LD_PRELOAD needs), None when it has none."""
    out = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    p = Path(out)
    return p.resolve() if p.is_absolute() and p.exists() else None


def build(out_dir: Path, cc: str | None = None) -> dict[str, Path]:
    """Compile every module of MODULES into ``out_dir``; ``{module: path}``. Raises CalledProcessError with the
    compiler's message when a build fails."""
    cc = cc or compiler()
    if cc is None:
        raise FileNotFoundError("no C compiler (gcc or cc) on PATH")
    out_dir.mkdir(parents=True, exist_ok=True)
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    built = {}
    for name in MODULES:
        target = out_dir / f"{name}{suffix}"
        src = CODEC / f"{name}.c"
        deps = [src, CODEC / "_bincoder.h", CODEC / "_coefmix.h"]
        if not target.exists() or target.stat().st_mtime < max(d.stat().st_mtime for d in deps):
            subprocess.run([cc, *FLAGS, f"-I{include}", f"-I{CODEC}", str(src), "-o", str(target)], check=True,
                           capture_output=True, text=True)
        built[name] = target
    return built


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, path in build(Path(sys.argv[1])).items():
        print(name, path)
