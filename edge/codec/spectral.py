"""Band normalisation and the per-tile spectral transform (a quantised Karhunen-Loeve transform).

Why: multispectral bands are strongly correlated. Coding them one by one (as JPEG 2000 does without its
colour transform) spends bits on the same structure several times. Each tile's bands are first mapped to
[0, 1] with their value range (the same peak the PSNR uses), then rotated onto their principal axes; the
band-wise network codes the components, most of whose energy sits in the first one. The rotation matrix
travels with the tile as int8, so the decoder inverts exactly the matrix the encoder applied.

Shapes: ``x`` is ``float32[C, H, W]`` in native units; ``z`` is ``float32[C, H, W]`` (components, zero mean).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SpectralTransform", "MATRIX_SCALE"]

#: int8 quantisation scale of the rotation matrix (entries of an orthonormal matrix lie in [-1, 1]).
MATRIX_SCALE = 127.0


@dataclass(frozen=True)
class SpectralTransform:
    """What the decoder needs to undo the normalisation and rotation of one tile.

    lo, hi: float32[C]   value range per band in native units (hi > lo, or hi == lo for a flat band)
    mean:   float32[C]   mean of each normalised band over valid pixels (float16-exact)
    matrix: int8[C, C]   rows are the components' axes, times MATRIX_SCALE
    """

    lo: np.ndarray
    hi: np.ndarray
    mean: np.ndarray
    matrix: np.ndarray

    @property
    def bands(self) -> int:
        return int(self.lo.shape[0])

    @classmethod
    def fit(cls, x: np.ndarray, valid: np.ndarray | None = None,
            band_range: tuple[np.ndarray, np.ndarray] | None = None, rotate: bool = True,
            matrix: np.ndarray | None = None) -> "SpectralTransform":
        """Fit to a tile ``x: float[C, H, W]`` over ``valid: bool[H, W]`` pixels (all when None).

        ``band_range`` fixes (lo, hi) per band, e.g. the scene's range, so that every tile of a scene is
        coded to the same absolute error; by default the tile's own valid range is used. ``matrix`` (int8[C, C])
        replaces the tile's own KLT, for comparison (a scene-wide rotation: benchmarks/scene_klt.py).
        """
        c = x.shape[0]
        flat = x.reshape(c, -1).astype(np.float64)
        if valid is not None:
            flat = flat[:, valid.reshape(-1)]
        if band_range is not None:
            lo = np.asarray(band_range[0], np.float32).reshape(c)
            hi = np.asarray(band_range[1], np.float32).reshape(c)
        elif flat.shape[1] == 0:
            lo = np.zeros(c, np.float32)
            hi = np.ones(c, np.float32)
        else:
            lo = flat.min(axis=1).astype(np.float32)
            hi = flat.max(axis=1).astype(np.float32)
        scale = _scale(lo, hi)
        n = (flat - lo[:, None].astype(np.float64)) / scale[:, None]
        mean = (n.mean(axis=1) if n.shape[1] else np.zeros(c)).astype(np.float16).astype(np.float32)
        if matrix is not None:
            matrix = np.asarray(matrix, np.int8).reshape(c, c)
        elif rotate and c > 1 and n.shape[1] > 1:
            cov = np.cov(n)
            w, v = np.linalg.eigh(cov)
            v = v[:, np.argsort(w)[::-1]].T  # rows = axes, largest variance first
            v *= np.where(v[np.arange(c), np.abs(v).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]  # sign convention
            matrix = np.clip(np.round(v * MATRIX_SCALE), -127, 127).astype(np.int8)
            if abs(np.linalg.det(matrix.astype(np.float64) / MATRIX_SCALE)) < 0.5:  # degenerate: fall back
                matrix = _identity(c)
        else:
            matrix = _identity(c)
        return cls(lo=lo, hi=hi, mean=mean, matrix=matrix)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Native ``float[C, H, W]`` -> components ``float32[C, H, W]``."""
        c, h, w = x.shape
        n = (x.reshape(c, -1).astype(np.float32) - self.lo[:, None]) / _scale(self.lo, self.hi)[:, None]
        n -= self.mean[:, None]
        a = self.matrix.astype(np.float32) / np.float32(MATRIX_SCALE)
        return (a @ n).reshape(c, h, w).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Components ``float[C, H, W]`` -> native units ``float32[C, H, W]`` (not rounded or clipped), in the order
        docs/bitstream.md states (step 3): ``xn[i] = ((Rinv[i,0] z[0] + Rinv[i,1] z[1]) + ...) + mean[i]``, each
        product and sum rounded to float32, no fused multiply-add. (A BLAS matrix product sums in its own order and
        may fuse: it moved about one sample in 30,000 by one unit against a decoder written from the spec.)"""
        c, h, w = z.shape
        a_inv = np.linalg.inv(self.matrix.astype(np.float64) / MATRIX_SCALE).astype(np.float32)
        zf = z.reshape(c, -1).astype(np.float32, copy=False)
        scale = _scale(self.lo, self.hi)
        out = np.empty((c, h * w), np.float32)
        for i in range(c):
            acc = a_inv[i, 0] * zf[0]
            for j in range(1, c):
                acc = acc + a_inv[i, j] * zf[j]  # numpy rounds the product, then the sum: never fused
            out[i] = (acc + self.mean[i]) * scale[i] + self.lo[i]
        return out.reshape(c, h, w)


def _scale(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    d = (hi.astype(np.float32) - lo.astype(np.float32))
    return np.where(d > 0, d, np.float32(1.0)).astype(np.float32)


def _identity(c: int) -> np.ndarray:
    return (np.eye(c) * MATRIX_SCALE).astype(np.int8)
