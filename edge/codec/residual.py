"""How a residual is laid out as groups: the arrays one component's residual is coded as, cut into square blocks.

The read-only tile formats v3 and v2 carry a component's residual as groups of the side and main streams: v3 the
CDF 9/7 subbands of :mod:`cvae.edge.codec.wavelet`, each cut into 16 x 16 blocks (also the encoder's bit estimate of
a residual, :mod:`cvae.edge.codec.plan`), v2 the pixels in 32 x 32 blocks (formats v5 and v6, written now, code it
in a stream of its own, :mod:`cvae.edge.codec.coefs`). A
block is one group of the adaptive entropy model (one scale index each, :mod:`cvae.edge.codec.adaptive`). Blocks
run component-major, then array by array in coding order, then in raster order; the values of a block in raster
order. Both sides derive the layout from the tile's size alone.
"""
from __future__ import annotations

import functools

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, wavelet

__all__ = ["shapes", "block_size", "shape_counts", "block_counts", "blocks_of", "unblock"]


def shapes(h: int, w: int, kind: int) -> list[tuple[int, int]]:
    """The arrays one component's residual is coded as: the pixels (v2), or the wavelet subbands in coding order."""
    if kind == bitstream.RESIDUAL_WAVELET:
        return wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    return [(h, w)]


def block_size(kind: int) -> int:
    """Side of a residual group: 32 pixels (v2), or 16 coefficients of a subband (measured: -0.5% to -1% BD-rate
    against 32, the side information of smaller groups costing more than they gain below 16)."""
    return am.WAVELET_BLOCK if kind == bitstream.RESIDUAL_WAVELET else am.RESIDUAL_BLOCK


def shape_counts(array_shapes: list[tuple[int, int]], b: int) -> np.ndarray:
    """int64[nb]: values of each b x b block of each array, arrays in order, blocks in raster order."""
    return _shape_counts(tuple(tuple(int(v) for v in s) for s in array_shapes), b).copy()


@functools.lru_cache(maxsize=64)
def _shape_counts(array_shapes: tuple[tuple[int, int], ...], b: int) -> np.ndarray:
    out = []
    for h, w in array_shapes:
        bh = np.minimum(b, h - np.arange(0, h, b))
        bw = np.minimum(b, w - np.arange(0, w, b))
        out.append(np.outer(bh, bw).reshape(-1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def block_counts(c: int, h: int, w: int, kind: int) -> np.ndarray:
    """int64[C * nb]: values of each residual block of a C x H x W tile, component-major."""
    return np.tile(shape_counts(shapes(h, w, kind), block_size(kind)), c)


def blocks_of(arrays: list[np.ndarray], b: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 2-D arrays -> (int32[nb, b*b] block values in raster order, zero-padded; counts int64[nb])."""
    counts = shape_counts([x.shape for x in arrays], b)
    out = np.zeros((len(counts), b * b), np.int32)
    i = 0
    for q in arrays:  # whole blocks by one reshape; the partial ones at the right and bottom edges one by one
        h, w = q.shape
        fh, fw = h - h % b, w - w % b
        nbx = -(-w // b)
        if fh and fw:
            full = q[:fh, :fw].reshape(fh // b, b, fw // b, b).swapaxes(1, 2).reshape(fh // b, fw // b, b * b)
            rows = i + np.arange(fh // b)[:, None] * nbx + np.arange(fw // b)[None, :]
            out[rows.reshape(-1)] = full.reshape(-1, b * b)
        for y in range(0, h, b):
            for x in range(fw if y < fh else 0, w, b):
                v = q[y:y + b, x:x + b].reshape(-1)
                out[i + (y // b) * nbx + x // b, :len(v)] = v
        i += -(-h // b) * nbx
    return out, counts


def unblock(values: np.ndarray, array_shapes: list[tuple[int, int]], b: int) -> list[np.ndarray]:
    """Inverse of :func:`blocks_of` for the concatenated real values (no padding): int32 arrays of ``array_shapes``."""
    out, pos = [], 0
    for h, w in array_shapes:
        q = np.zeros((h, w), np.int32)
        for y in range(0, h, b):
            for x in range(0, w, b):
                bh, bw = min(b, h - y), min(b, w - x)
                q[y:y + bh, x:x + bw] = values[pos:pos + bh * bw].reshape(bh, bw)
                pos += bh * bw
        out.append(q)
    return out
