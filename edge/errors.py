"""The root error class of the edge and ground code, and its families."""
from __future__ import annotations

__all__ = ["CvaeError", "InputError", "BundleError", "CodecError", "CorruptTileError", "MissingDependencyError"]


class CvaeError(Exception):
    """Root of every error this project raises on purpose."""


class InputError(CvaeError, ValueError):
    """An input raster or argument that cannot be coded; the message names the problem and the fix."""


class BundleError(CvaeError, ValueError):
    """A model bundle that is missing, incomplete or does not match its manifest."""


class CodecError(CvaeError):
    """Encoding or decoding failed."""


class CorruptTileError(CodecError, ValueError):
    """A tile bitstream that does not parse, fails its checks, or was not consumed whole."""


class MissingDependencyError(CvaeError, ImportError):
    """An optional heavy dependency (TensorRT, pycuda, ...) that the chosen feature needs is absent."""
