"""Rotations per wavelet detail level (tile format v11): a residual-only tile may code the detail subbands of
level ``j`` under their own rotation ``M_j`` instead of the tile's matrix ``M``.

Why: the tile's rotation (its KLT or its details' axes, :mod:`cvae.edge.codec.weighting`) is fitted where the energy
is, the coarse levels, but the finest level holds three quarters of the coefficients, and its cross-band correlation
differs: sensor noise mixes the bands otherwise than structure does, and in a multi-resolution stack the bands
resampled from 20 m or 60 m have almost nothing there. One rotation per level codes each level along its own axes.
Measured end to end on the validation scenes (``benchmarks/experiments/level_rotations.py``, every level, the side
bytes counted): see ``benchmarks/results/782c7ed21f22/level_rotations.md``.

What the bytes mean (docs/bitstream.md, "Version 11"): the coefficients of level ``j``'s three detail subbands are
``M_j`` applied to the bands' (normalised, mean-free) subbands; the decoder brings them to ``M``'s components with
``S_j = (M / 127) (M_j / 127)^-1`` (float64, per coefficient position, then float32), and the tile decodes as v10
from there (the inverse wavelet per component, then ``M``'s inverse). Only floats that shape pixels: the integers a
decoder derives from the stream are v10's.

How the encoder chooses (:func:`rotations`): for each detail level, the principal axes of that level's coefficients
(in the bands), weighted as :func:`TileCodec.weighted` weighs the tile's rotation, kept where
:func:`weighting.rate_proxy` (scaled to the level's coefficient count) plus the rotation's C x C bytes is below the
proxy under ``M``."""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import weighting
from cvae.edge.codec.spectral import MATRIX_SCALE

__all__ = ["rotations", "to_levels", "to_main", "SAMPLES"]

#: coefficients sampled per component and level for the axes and the rate proxy
SAMPLES = 16384


def _stack(subbands: list[list[np.ndarray]], j: int) -> np.ndarray:
    """float64[C, N]: level ``j``'s (1 = finest) three detail subbands of every component, flattened."""
    return np.stack([np.concatenate([bands[3 * (j - 1) + o].reshape(-1) for o in range(3)])
                     for bands in subbands]).astype(np.float64)


def rotations(subbands: list[list[np.ndarray]], matrix: np.ndarray, step: float, share: float,
              scale: np.ndarray | None, used: np.ndarray) -> tuple | None:
    """Per detail level (index ``j - 1``) int8[C, C] or None: the rotations a residual-only tile codes its levels
    with (module docstring), from its components' subbands ``subbands`` under ``matrix`` (int8[C, C], its rows
    weighted) at ``step``; ``share``, ``scale``, ``used``: as :meth:`TileCodec.weighted` gives
    :func:`weighting.error_covariance`, :func:`weighting.band_errors` and :func:`weighting.row_scales`. None where no
    level gains."""
    c = len(subbands)
    levels = (len(subbands[0]) - 1) // 3
    if c < 2 or levels < 1:
        return None
    m = matrix.astype(np.float64) / MATRIX_SCALE
    minv = np.linalg.inv(m)
    out: list[np.ndarray | None] = []
    for j in range(1, levels + 1):
        x = _stack(subbands, j)
        n = x.shape[1]
        x = x[:, ::max(1, n // SAMPLES)]
        bands = minv @ x
        w, v = np.linalg.eigh(bands @ bands.T)
        axes = v[:, np.argsort(w)[::-1]].T
        axes *= np.where(axes[np.arange(c), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
        rot = np.clip(np.round(axes * MATRIX_SCALE), -127, 127).astype(np.int8)
        if abs(np.linalg.det(rot.astype(np.float64) / MATRIX_SCALE)) < weighting.MIN_DET:
            out.append(None)
            continue
        samples = ((rot.astype(np.float64) / MATRIX_SCALE) @ bands).astype(np.float32)
        cov = weighting.error_covariance(samples, step, share)
        err = weighting.band_errors(cov, rot, scale)
        weighed = weighting.weighted_matrix(rot, weighting.row_scales(cov, err, rot, used))
        rot = rot if weighed is None else weighed
        moved = ((rot.astype(np.float64) / MATRIX_SCALE) @ bands).astype(np.float32)
        per = n / x.shape[1]  # proxy of the whole level from its sample
        gain = (weighting.rate_proxy(x.astype(np.float32), step) - weighting.rate_proxy(moved, step)) * per
        out.append(rot if gain > 8 * c * c else None)
    return tuple(out) if any(r is not None for r in out) else None


def _apply(subbands: list[list[np.ndarray]], maps: list[np.ndarray | None], dtype) -> list[list[np.ndarray]]:
    """``subbands`` with level ``j``'s details (component vectors) multiplied by ``maps[j - 1]`` where it is not
    None (float64 products, then ``dtype``); the other subbands as they are (converted to ``dtype``)."""
    c = len(subbands)
    out = [[np.asarray(b).astype(dtype) for b in bands] for bands in subbands]
    for j, t in enumerate(maps, start=1):
        if t is None:
            continue
        for o in range(3):
            i = 3 * (j - 1) + o
            v = np.tensordot(t, np.stack([np.asarray(subbands[k][i], np.float64) for k in range(c)]), axes=1)
            for k in range(c):
                out[k][i] = v[k].astype(dtype)
    return out


def to_levels(subbands: list[list[np.ndarray]], level_matrices: tuple, matrix: np.ndarray) -> list[list[np.ndarray]]:
    """The encoder's map: components' subbands under ``matrix`` -> each detail level's under its own rotation
    (float64: the values the quantiser divides by the step)."""
    minv = np.linalg.inv(matrix.astype(np.float64) / MATRIX_SCALE)
    maps = [None if r is None else (r.astype(np.float64) / MATRIX_SCALE) @ minv for r in level_matrices]
    return _apply(subbands, maps, np.float64)


def to_main(coefficients: list[list[np.ndarray]], level_matrices: tuple, matrix: np.ndarray) -> list[list[np.ndarray]]:
    """The decoder's map: coefficients of a v11 tile (per component its subbands, each detail level under its own
    rotation) -> float32 subbands under the tile's ``matrix`` (``S_j``, module docstring)."""
    m = matrix.astype(np.float64) / MATRIX_SCALE
    maps = [None if r is None else m @ np.linalg.inv(r.astype(np.float64) / MATRIX_SCALE) for r in level_matrices]
    return _apply(coefficients, maps, np.float32)
