"""The CDF 9/7 lifting of :mod:`cvae.edge.codec.wavelet` in numpy: the definition its C lifting (``_wavelet.c``) is
tested against (same float32 operations, same bits), and the derivation of its synthesis gains. Test code: the
flight path runs the C lifting only.
"""
from __future__ import annotations

import numpy as np

from cvae.edge.codec.wavelet import _ALPHA, _BETA, _DELTA, _GAMMA, _K, _forward, _inverse

__all__ = ["forward_reference", "inverse_reference", "gains"]


def forward_reference(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """:func:`forward` in numpy: the definition the C lifting is tested against."""
    return _forward(np.asarray(x, np.float32), levels, _split_numpy)


def inverse_reference(bands: list[np.ndarray], levels: int) -> np.ndarray:
    """:func:`inverse` in numpy: the definition the C lifting is tested against."""
    return _inverse(bands, levels, _merge_numpy)


def gains(levels: int) -> list[tuple[float, float, float]]:
    """Synthesis gains of (LH, HL, HH) per level and of LL: the L2 norm of one coefficient's basis function
    (measured on a long interior signal, so it is the interior value; exact enough for rate allocation)."""
    n = 32 << max(levels, 1)
    g_lo, g_hi = [], []
    for j in range(1, levels + 1):
        lo, hi = [], []
        for band in (0, 1):
            coef = [np.zeros(n >> k, np.float32) for k in range(1, j + 1)]  # highs of levels 1..j
            ll = np.zeros(n >> j, np.float32)
            if band == 0:
                ll[len(ll) // 2] = 1
            else:
                coef[j - 1][len(coef[j - 1]) // 2] = 1
            x = ll
            for k in range(j - 1, -1, -1):
                x = _lift_inv(x, coef[k])
            (lo if band == 0 else hi).append(float(np.sqrt(np.sum(x.astype(np.float64) ** 2))))
        g_lo.append(lo[0])
        g_hi.append(hi[0])
    return [(g_lo[j] * g_hi[j], g_hi[j] * g_lo[j], g_hi[j] * g_hi[j]) for j in range(levels)] + \
        [(g_lo[-1] ** 2,) * 3 if levels else (1.0,) * 3]


def _lift_fwd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level along axis 0 of ``x: float32[n, ...]``: (low[ceil(n/2)], high[floor(n/2)])."""
    n = x.shape[0]
    s = x[0::2].copy()
    d = x[1::2].copy()
    if n < 2:
        return s, d
    for c_pred, c_upd in ((_ALPHA, _BETA), (_GAMMA, _DELTA)):
        d += np.float32(c_pred) * (s[:len(d)] + _right(s, len(d)))
        s += np.float32(c_upd) * (_left(d, len(s)) + _at(d, len(s)))
    return s * np.float32(1 / _K), d * np.float32(_K)


def _lift_inv(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    n = len(s) + len(d)
    out = np.empty((n,) + s.shape[1:], np.float32)
    if len(d) == 0:
        out[0::2] = s
        return out
    s = s * np.float32(_K)
    d = d * np.float32(1 / _K)
    for c_pred, c_upd in ((_GAMMA, _DELTA), (_ALPHA, _BETA)):
        s -= np.float32(c_upd) * (_left(d, len(s)) + _at(d, len(s)))
        d -= np.float32(c_pred) * (s[:len(d)] + _right(s, len(d)))
    out[0::2] = s
    out[1::2] = d
    return out


def _right(s: np.ndarray, nd: int) -> np.ndarray:
    """s[i + 1] for i < nd, mirrored at the end (x[n] = x[n - 2])."""
    if len(s) > nd:
        return s[1:nd + 1]
    return np.concatenate([s[1:nd], s[nd - 1:nd]])


def _left(d: np.ndarray, ns: int) -> np.ndarray:
    """d[i - 1] for i < ns, mirrored at the start (x[-1] = x[1])."""
    return np.concatenate([d[:1], _at(d, ns)[:-1]])


def _at(d: np.ndarray, ns: int) -> np.ndarray:
    """d[i] for i < ns, mirrored at the end when ns > len(d) (odd n: x[n] = x[n - 2])."""
    if ns > len(d):
        return np.concatenate([d, d[-1:]])
    return d[:ns]


def _split_numpy(a: np.ndarray) -> tuple[np.ndarray, ...]:
    lo, hi = _lift_fwd(a)               # rows: vertical split
    ll, lh = (t.T for t in _lift_fwd(lo.T))
    hl, hh = (t.T for t in _lift_fwd(hi.T))
    # naming: first letter vertical, second horizontal; "LH" = vertically low, horizontally high
    return ll, lh, hl, hh


def _merge_numpy(ll: np.ndarray, lh: np.ndarray, hl: np.ndarray, hh: np.ndarray) -> np.ndarray:
    lo = _lift_inv(ll.T, lh.T).T
    hi = _lift_inv(hl.T, hh.T).T
    return _lift_inv(lo, hi)
