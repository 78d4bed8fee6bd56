"""The rotation a multiband tile is coded with: the principal axes of its details where they code cheaper
(:func:`detail_rotation`), and component weights matched to the quality measure (the residual quantised more finely
on the components that carry the bands erring least).

Why the details' axes: the tile's KLT is fitted on its pixels, whose variance the low frequencies dominate, but most
coefficients (and, from the lowest rates up, most bits) are details, whose cross-band correlation can differ (textures
and noise that mix the bands otherwise than the smooth structure does): their errors stay correlated across
components (below) and the coder spends bits on the same detail in several components. :func:`detail_rotation` fits
the axes of the detail coefficients (every subband but LL); the encoder keeps whichever of the two rotations
:func:`rate_proxy` (sum of log2(1 + |x| / step) over a sample of all coefficients) prices lower at the tile's step.
Measured with the weights on both sides, every level, 7 multiband validation scenes: Sentinel-2 T33NZA 20 m -7.3%
BD-rate, NAIP -5.6%, Landsat-5 -1.3%, Landsat-8 b234 -0.9%, T33NZA 10 m -0.7%, the patch -0.3%, Elkton 0 (it keeps
its pixels' KLT); the same on the PSNR of the bands' mean error (a coding gain, not the metric's). Fitting the details
of the finest level only instead: -11% on NAIP but +11.5% on T33NZA 10 m; the details' axes everywhere, no choice:
+2.6% on Elkton.

Why the weights: a multiband scene's quality is the mean over bands of each band's PSNR (``cvae.edge.quality``, the project's
scorer, the remote-sensing habit), so a band's error counts in proportion to 1 / (its error): lowering the error of
a band that already errs little gains as many dB as lowering a large one by the same share. One step for every
KLT component minimises the *sum* of the band errors instead. At high rates the two agree (every component errs
step^2 / 12, every band the same); at low and middle rates the weak components round mostly to zero and the bands
err unevenly (1.5 to 4 dB apart on the 6-12 band validation scenes), and the sum is the wrong target.

How: from a sample of the tile's wavelet coefficients, the covariance of the components' errors at the step
(:func:`error_covariance`, the rounding model ``--psnr``'s step estimate uses), carried to the bands through the
inverse rotation (:func:`band_errors`); each band's sensitivity ``s_b = 1 / err_b``; each component's weight ``g_c``
(:func:`row_scales`; with uncorrelated errors ``sum_b Rinv_bc^2 s_b``), the derivative of the sum of the bands' log
errors. The high-rate optimum of that sum is
component c quantised with a step proportional to ``g_c^-1/2``: the encoder multiplies row ``c`` of the tile's
int8 rotation by ``h_c = g_c^1/2`` (normalised to a geometric mean of 1, so the determinant stays near 1, and kept
in ``[H_MIN, H_MAX]`` and int8's range), which scales the component itself, so the one step the tile sends is
``step / h_c`` in the component's own units. No format change: the header sends any invertible rotation and the
decoder inverts what it reads (docs/bitstream.md, "Decoding a tile"); only the encoder decides.

Measured (``benchmarks/experiments/band_weights.py``, ``results/782c7ed21f22/band_weights.md``, 8 validation scenes,
every level, the same tiles with and without): BD-rate on the scorer's PSNR -2.92% (Landsat-8 Elkton, 7 bands),
-1.44% (Landsat-5, 6), -0.50% (Sentinel-2 T33NZA 20 m, 12), -0.25% / -0.29% (NAIP, Sentinel-2 patch, 4), 0 to +0.11%
on the 3-4 band Sentinel-2 10 m and Landsat-8 scenes; on the PSNR of the bands' mean error, which they do not serve,
+2.46% / +2.36% / +0.27% / +0.45% / +0.25%. The same with the networks ('auto'). Its cost: one more wavelet transform
and the model per tile and level, 0.97-1.16x the CPU time of encode + decode. The scorer's median over the scenes,
-12.7% -> -13.6% with the weights, -16.1% with the details' axes too; given both, JPEG 2000 + KLT gains up to 6.5%
and ours against it is -10.6% (``benchmarks/experiments/weighted_peers.py``). A first model that summed the components' errors alone (no covariance) got the bands' errors up to
2 dB wrong and half the gain; weights from the coded tile's own band errors (an oracle two-pass encoder) gain the same
as this model's."""
from __future__ import annotations

import math

import numpy as np

from cvae.edge.codec.spectral import MATRIX_SCALE

__all__ = ["ZERO_FLOOR", "ZERO_RISE", "H_MIN", "H_MAX", "MIN_DET", "error_samples", "error_covariance",
           "detail_rotation", "rate_proxy",
           "band_errors", "rounded_mse", "row_scales", "weighted_matrix"]

#: the model of the planner's rate-distortion quantisation: a coefficient of x steps codes as 0 under
#: ZERO_FLOOR + ZERO_RISE * p0^2 steps (p0: the component's share rounding to zero), else as the nearest integer.
#: ZERO_RISE was fitted to the quantisation's squared error on six validation scenes (steps 0.0025-0.3); ZERO_FLOOR
#: (0.6 then) was refitted with the per-band estimate to the fewest tries of the search over the 8 validation scenes
#: at 35, 40 and 45 dB: 0.6 705 tries, 0.63 660, 0.66 699 (the mean-error estimate with 0.6: 700; its first tries
#: landed +0.7 to +1.1 dB above their aim on the 6-7 band Landsat scenes, now +0.04 to +0.3 there, -0.15 on
#: Sentinel-2 T33NZA)
ZERO_FLOOR, ZERO_RISE = 0.63, 0.2
#: the row scales' range: a component's step at most 2x finer or coarser than the tile's
H_MIN, H_MAX = 0.5, 2.0
#: rotations whose |det| falls under this are not sent (decoders reject under 0.25: bitstream.py)
MIN_DET = 0.5
#: coefficients sampled per component for the error model
SAMPLES = 32768


def error_samples(subbands: list[list[np.ndarray]]) -> np.ndarray:
    """float32[C, N]: the wavelet coefficients ``subbands[c]`` (every subband of each component, finest to
    coarsest, as :func:`wavelet.forward`) at about :data:`SAMPLES` places in all, the same places in every component
    (their quantisation errors are correlated across components: the KLT decorrelates the tile's pixels, which its
    low frequencies dominate, not its details)."""
    flat = [np.concatenate([x.reshape(-1) for x in bands]) for bands in subbands]
    every = max(1, len(flat) * flat[0].size // SAMPLES)
    return np.stack([f[::every] for f in flat]).astype(np.float32)


def detail_rotation(subbands: list[list[np.ndarray]], matrix: np.ndarray) -> np.ndarray | None:
    """int8[C, C]: the rotation whose rows are the principal axes (in the bands) of the tile's *detail* coefficients
    (every subband but the coarsest LL, each coefficient once), from the components' subbands ``subbands`` under
    ``matrix``; None where it comes near singular or the tile has no details (too small for a wavelet level)."""
    c = len(subbands)
    if len(subbands[0]) < 2 or sum(b.size for b in subbands[0][:-1]) < 2 * c:  # no wavelet level: no details
        return None
    x = np.stack([np.concatenate([b.reshape(-1) for b in bands[:-1]]) for bands in subbands]).astype(np.float64)
    every = max(1, c * x.shape[1] // (4 * SAMPLES))
    x = x[:, ::every]
    w, v = np.linalg.eigh(x @ x.T)
    r = v[:, np.argsort(w)[::-1]].T  # rows: the axes in the components' space, largest first
    axes = r @ (matrix.astype(np.float64) / MATRIX_SCALE)  # ... in the bands'
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    axes *= np.where(axes[np.arange(c), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    m = np.clip(np.round(axes * MATRIX_SCALE), -127, 127).astype(np.int8)
    return m if abs(np.linalg.det(m.astype(np.float64) / MATRIX_SCALE)) >= MIN_DET else None


def rate_proxy(samples: np.ndarray, step: float) -> float:
    """A relative measure of the bits of coefficients ``samples`` quantised with ``step``: sum of log2(1 + |x| / step)."""
    return float(np.sum(np.log2(1.0 + np.abs(samples.astype(np.float64)) * (1.0 / step))))


def error_covariance(samples: np.ndarray, step: float, share: float = 1.0) -> np.ndarray:
    """float64[C, C]: the covariance per valid pixel of the components' errors quantised with ``step`` (the subbands
    are scaled so that one step suits them all: their error is about the pixels'), from :func:`error_samples`: the
    planner rounds to the nearest, then its rate-distortion choice zeroes coefficients under about 0.6 to 0.8 steps
    (the more of a component's coefficients round to zero, the more an isolated one costs: ZERO_FLOOR, ZERO_RISE).
    ``share``: the tile's share of valid pixels (nodata zeros err nothing). The diagonal is each component's error."""
    # in float32 (the samples' own precision; 3x faster than float64, covariances within 1e-6 of it): ``--psnr``
    # evaluates this 8-10 times per tile searched, and 11 times per tile in the curves' pass
    x = np.asarray(samples, np.float32) * np.float32(1 / step)
    mag = np.abs(x)
    n = max(x.shape[1], 1)
    zero = (ZERO_FLOOR + ZERO_RISE * (np.count_nonzero(mag < 0.5, axis=1) / n) ** 2).astype(np.float32)
    e = np.where(mag < zero[:, None], x, x - np.rint(x))  # zeroed, else rounded to the nearest (ties: no matter)
    return (e @ e.T).astype(np.float64) * (step * step / n / share)


def band_errors(cov: np.ndarray, matrix: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """float64[B]: each band's mean squared error (in its normalised units) from the components' error covariance
    ``cov`` through the inverse of the int8 rotation ``matrix`` (``diag(Rinv cov Rinv^T)``); ``scale``: float[B]
    digital numbers per normalised unit of an integer band (the decoder rounds to integers: the error too,
    :func:`rounded_mse`), None for float data."""
    inv = np.linalg.inv(matrix.astype(np.float64) / MATRIX_SCALE)
    band = np.einsum("bc,cd,bd->b", inv, cov, inv)
    if scale is not None:
        dn2 = np.square(np.where(scale > 0, scale, 1.0).astype(np.float64))
        band = rounded_mse(band * dn2) / dn2
    return band


_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def rounded_mse(var: np.ndarray) -> np.ndarray:
    """float64[B]: the mean square of an error of variance ``var`` (digital numbers squared) rounded to an integer
    (an integer sample decoded with a float error ``e`` comes back ``round(e)`` off), taking ``e`` Gaussian:
    ``sum_k (2k - 1) P(|e| >= k - 1/2)``. About ``var + 1/12`` from a variance of 1 up; far less below (an error
    mostly under half a digital number rounds away: fine steps on 8-bit bands)."""
    var = np.asarray(var, np.float64)
    out = var + 1 / 12
    small = var < 9.0  # sigma under 3: the sum, to 9 sigma
    if small.any():
        sigma = np.sqrt(np.maximum(var[small], 1e-300))
        k = np.arange(1, 29, dtype=np.float64)[:, None]
        out[small] = np.sum((2 * k - 1) * _erfc((k - 0.5) / (sigma * math.sqrt(2))), axis=0)
    return out


def row_scales(cov: np.ndarray, band_err: np.ndarray, matrix: np.ndarray, used: np.ndarray) -> np.ndarray:
    """float64[C]: the scale ``h_c`` of each row of the int8 rotation ``matrix`` (module docstring) from the
    components' error covariance ``cov`` and the bands' errors ``band_err`` at the tile's step; ``used: bool[B]`` the
    bands the quality counts (a flat band counts nowhere). ``g_c``: how much the sum of the bands' log errors falls
    per unit of component c's own error as its step shrinks (``sum_b s_b Rinv_bc (Rinv cov)_bc / cov_cc``; with
    uncorrelated errors ``sum_b s_b Rinv_bc^2``). All ones where fewer than two bands count."""
    c = matrix.shape[0]
    if int(used.sum()) < 2:
        return np.ones(c)
    inv = np.linalg.inv(matrix.astype(np.float64) / MATRIX_SCALE)  # [band, component]
    sens = np.where(used, 1.0 / np.maximum(band_err, 1e-30), 0.0)
    sens /= sens[used].mean()
    diag = np.diag(cov)
    g = np.einsum("b,bc,bc->c", sens, inv, inv @ cov) / np.maximum(diag, 1e-30)
    g = np.where(diag > 1e-30, g, np.square(inv).T @ sens)
    h = np.sqrt(np.maximum(g, 1e-12))
    h = np.clip(h / math.exp(float(np.mean(np.log(h)))), H_MIN, H_MAX)
    room = MATRIX_SCALE / np.maximum(np.abs(matrix.astype(np.float64)).max(axis=1), 1.0)  # int8's range
    return np.minimum(h, room)


def weighted_matrix(matrix: np.ndarray, h: np.ndarray) -> np.ndarray | None:
    """int8[C, C]: ``matrix`` with row ``c`` scaled by ``h[c]``; None where that is ``matrix`` itself or would come
    near singular (|det| under :data:`MIN_DET`)."""
    m = np.clip(np.round(matrix.astype(np.float64) * h[:, None]), -127, 127).astype(np.int8)
    if np.array_equal(m, matrix) or abs(np.linalg.det(m.astype(np.float64) / MATRIX_SCALE)) < MIN_DET:
        return None
    return m
