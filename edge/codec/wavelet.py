"""The residual's spatial transform: the CDF 9/7 wavelet (JPEG 2000's irreversible filter) by lifting.

Why a transform on the residual: what the learned base leaves, ``z - g_s(y_hat)``, is not white. In the
frequencies the base reproduced, the residual is noise at the base's distortion; in those it dropped (fine
texture, edges), it is the signal itself, spatially correlated. As wavelet subbands it costs 3% to 21% fewer
bits than sample by sample at the same step, with the same or lower MSE (benchmarks/results/residual_transform.md).

Why by hand: the transform must be exactly this one on the satellite and the ground (the decoder inverts what
the encoder did), small, float32 only (numpy, with the lifting in C: ``_wavelet.c``), and invertible on any tile size (odd sizes included) with
whole-sample symmetric extension; PyWavelets' ``'bior4.4'`` is the same filter but with periodisation or
zero-padding modes that change the coefficient count and no lifting guarantee of perfect reconstruction at
odd sizes. Only the reconstruction depends on these floats: the coefficients' integers are what the stream
carries and what the decoder parses, so a float difference between platforms can never desynchronise it.

Layout: :func:`forward` returns the subbands of ``J`` levels, coarsest last, as a list ``[(LH, HL, HH) of
level 1, ..., of level J, LL_J]`` (see :func:`subband_shapes`); every subband is scaled by its synthesis gain,
so that a coefficient error of ``e`` costs ``e**2`` of squared error in pixels (one quantiser step for all).
"""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import _wavelet

__all__ = ["forward", "inverse", "subband_shapes", "levels_for"]

# lifting constants of the CDF 9/7 (Daubechies & Sweldens 1998; ISO/IEC 15444-1 Annex F)
_ALPHA, _BETA, _GAMMA, _DELTA = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971
_K = 1.230174104914001
#: at most this many levels; fewer when the tile is small (each level halves the LL band)
MAX_LEVELS = 5


def levels_for(h: int, w: int) -> int:
    """Levels for an ``h x w`` array: as many as keep the LL band at least 8 samples a side, at most MAX_LEVELS."""
    j = 0
    while j < MAX_LEVELS and min(h, w) >> (j + 1) >= 8:
        j += 1
    return j


def _split(n: int) -> tuple[int, int]:
    return (n + 1) // 2, n // 2


#: the synthesis gains (tests/edge/codec/wavelet_reference.py derives them), as constants (part of the format, docs/bitstream.md): per level j = 1..5 the squared
#: 1-D synthesis norms of the lowpass (``LL_j``, also the gain of a level-j LL band) and of the highpass
#: (``HH_j``); ``HL_j = LH_j = sqrt(LL_j * HH_j)``. Constants rather than computed at import, so that no
#: platform's summation order can change them (tests/edge/codec/test_wavelet.py rederives them).
LL_GAIN = (1.965907255313617, 4.122410234401326, 8.416743237365488, 16.93556578059223, 33.92491418373113)
HH_GAIN = (0.520218122554536, 0.967215944274607, 2.079255373335683, 4.300480601208342, 8.686719203695743)


def _gain_table(levels: int) -> list:
    """[(HL, LH, HH) of levels 1..levels, (LL,) * 3 of the last]: what forward() multiplies each subband by."""
    out = []
    for j in range(levels):
        hl = float(np.sqrt(LL_GAIN[j] * HH_GAIN[j]))
        out.append((hl, hl, HH_GAIN[j]))
    return out + [(LL_GAIN[levels - 1],) * 3 if levels else (1.0,) * 3]


def subband_shapes(h: int, w: int, levels: int) -> list[tuple[int, int]]:
    """Shapes of the subbands :func:`forward` returns, in its order: per level (vertical high, horizontal low),
    (vertical low, horizontal high), (both high), then the last low band (docs/bitstream.md, "Wavelet")."""
    out = []
    for _ in range(levels):
        (hl, hh), (wl, wh) = _split(h), _split(w)
        out += [(hh, wl), (hl, wh), (hh, wh)]
        h, w = hl, wl
    return out + [(h, w)]


def _halves(h: int, w: int) -> list[tuple[int, int]]:
    """Shapes of one level's ll, lh, hl, hh (first letter vertical) of an ``h x w`` array."""
    (hs, hd), (ws, wd) = _split(h), _split(w)
    return [(hs, ws), (hs, wd), (hd, ws), (hd, wd)]


def forward(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """``x: float32[H, W]`` -> subbands (see the module docstring), each scaled by its synthesis gain. The lifting
    runs in C (``_wavelet.c``): the same float32 operations as the numpy reference
    (tests/edge/codec/wavelet_reference.py), the same bits."""
    return _forward(np.ascontiguousarray(x, np.float32), levels, _split_c)


def inverse(bands: list[np.ndarray], levels: int) -> np.ndarray:
    """The inverse of :func:`forward`: float32[H, W] (in C, the same bits as the numpy reference)."""
    return _inverse(bands, levels, _merge_c)


def _forward(a: np.ndarray, levels: int, split) -> list[np.ndarray]:
    """``levels`` levels of ``split(a) -> (ll, lh, hl, hh)`` on the LL band, details scaled by their gains."""
    gains = _gain_table(levels)
    out = []
    for j in range(levels):
        ll, lh, hl, hh = split(a)
        g = gains[j]
        out += [hl * np.float32(g[0]), lh * np.float32(g[1]), hh * np.float32(g[2])]
        a = ll
    return out + [a * np.float32(gains[-1][0])]


def _inverse(bands: list[np.ndarray], levels: int, merge) -> np.ndarray:
    """The gains undone, then ``merge(ll, lh, hl, hh) -> a`` from the coarsest level up."""
    gains = _gain_table(levels)
    a = bands[-1] / np.float32(gains[-1][0])
    for j in range(levels - 1, -1, -1):
        g = gains[j]
        hl, lh, hh = bands[3 * j] / np.float32(g[0]), bands[3 * j + 1] / np.float32(g[1]), bands[3 * j + 2] / np.float32(g[2])
        a = merge(a, lh, hl, hh)
    return a


def _split_c(a: np.ndarray) -> tuple[np.ndarray, ...]:
    ll, lh, hl, hh = (np.empty(s, np.float32) for s in _halves(*a.shape))
    _wavelet.forward(a, a.shape[0], a.shape[1], ll, lh, hl, hh)
    return ll, lh, hl, hh


def _merge_c(ll: np.ndarray, lh: np.ndarray, hl: np.ndarray, hh: np.ndarray) -> np.ndarray:
    h, w = ll.shape[0] + hl.shape[0], ll.shape[1] + lh.shape[1]
    out = np.empty((h, w), np.float32)
    _wavelet.inverse(out, h, w, *(np.ascontiguousarray(t, np.float32) for t in (ll, lh, hl, hh)))
    return out
