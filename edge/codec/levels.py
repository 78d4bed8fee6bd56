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

from cvae.edge.codec import _wavelet, weighting
from cvae.edge.codec.spectral import MATRIX_SCALE

__all__ = ["rotations", "to_levels", "to_main", "SAMPLES"]

#: a level's rotation is kept where the rate proxy falls by more than its bytes and this share of the level's proxy
#: (0: the same BD-rate within 0.1 point on five validation scenes, more tiles; 0.03: up to 0.7 point worse)
MIN_GAIN = 0.01
#: coefficients sampled per component and level for the axes and the rate proxy (16384: the same BD-rate within
#: 0.1 point on NAIP and the Sentinel-2 T33NZA scenes, and 2-3x the time)
SAMPLES = 4096


def _sample(subbands: list[list[np.ndarray]], j: int) -> tuple[np.ndarray, int]:
    """``(float64[C, n], N)``: every ``N // SAMPLES``-th coefficient (at least every one) of level ``j``'s (1 = the
    finest) three detail subbands of every component, and ``N`` the level's coefficients per component."""
    idx = [3 * (j - 1) + o for o in range(3)]
    total = sum(subbands[0][i].size for i in idx)
    every = max(1, total // SAMPLES)
    return np.stack([np.concatenate([bands[i].reshape(-1) for i in idx])[::every]
                     for bands in subbands]).astype(np.float64), total


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
        x, n = _sample(subbands, j)
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
        before = weighting.rate_proxy(x.astype(np.float32), step) * per
        gain = before - weighting.rate_proxy(moved, step) * per
        out.append(rot if gain > max(8 * c * c, MIN_GAIN * before) else None)
    return tuple(out) if any(r is not None for r in out) else None


def _mix_reference(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """float64[C, N]: ``y_r = sum_k t[r, k] x_k``, ``k = 0..C-1`` in order, each operation rounded: what
    ``_wavelet.mix`` computes (its reference, tests/edge/codec/test_levels.py)."""
    y = t[:, :1] * x[0]
    for k in range(1, len(x)):
        y = y + t[:, k:k + 1] * x[k]
    return y


def _apply(subbands: list[list[np.ndarray]], maps: list[np.ndarray | None], dtype,
           exact: bool) -> list[list[np.ndarray]]:
    """``subbands`` with level ``j``'s details (component vectors) multiplied by ``maps[j - 1]`` where it is not
    None, in float64, then ``dtype``; ``exact`` (the decoder's map, and the encoder's prediction of it): ``v_r =
    sum_k maps[r, k] x_k`` with ``k = 0..C-1`` in order, each operation rounded (the same bits on every platform:
    ``_wavelet.mix``, on int32 coefficients as they are), else a matrix product in the library's order (the encoder's
    map to the levels, which only it computes). The other subbands are the same arrays, unconverted."""
    out = [list(bands) for bands in subbands]
    c = len(subbands)
    for j, t in enumerate(maps, start=1):
        if t is None:
            continue
        for i in range(3 * (j - 1), 3 * j):
            shape = subbands[0][i].shape
            x = np.stack([np.asarray(bands[i]) for bands in subbands]).reshape(c, -1)
            if exact:
                x = x if x.dtype == np.int32 else x.astype(np.float64)
                y = np.empty(x.shape, dtype)
                _wavelet.mix(np.ascontiguousarray(t, np.float64), x, y, c, x.shape[1])
            else:
                y = (t @ x).astype(dtype, copy=False)
            for r in range(c):
                out[r][i] = y[r].reshape(shape)
    return out


def to_levels(subbands: list[list[np.ndarray]], level_matrices: tuple, matrix: np.ndarray) -> list[list[np.ndarray]]:
    """The encoder's map: components' subbands under ``matrix`` -> each detail level's under its own rotation
    (float64: the values the quantiser divides by the step)."""
    minv = np.linalg.inv(matrix.astype(np.float64) / MATRIX_SCALE)
    maps = [None if r is None else (r.astype(np.float64) / MATRIX_SCALE) @ minv for r in level_matrices]
    return _apply(subbands, maps, np.float64, exact=False)


def to_main(coefficients: list[list[np.ndarray]], level_matrices: tuple, matrix: np.ndarray) -> list[list[np.ndarray]]:
    """The decoder's map: coefficients of a v11 tile (per component its subbands, each detail level under its own
    rotation) -> float32 subbands under the tile's ``matrix`` (``S_j``, module docstring)."""
    m = matrix.astype(np.float64) / MATRIX_SCALE
    maps = [None if r is None else m @ np.linalg.inv(r.astype(np.float64) / MATRIX_SCALE) for r in level_matrices]
    return _apply(coefficients, maps, np.float32, exact=True)
