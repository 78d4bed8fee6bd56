"""cvae: onboard learned satellite image compression.

The sub-packages map the repository's top-level folders: ``cvae.edge`` (flight code, no torch),
``cvae.ground`` (decoder), ``cvae.models`` (torch training), ``cvae.export`` (ONNX/TensorRT).
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cvae-satcomp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
