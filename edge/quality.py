"""Quality asked as a PSNR: each tile at the cheapest coding that reaches it (``cvae-encode --psnr DB``).

A tile's PSNR is the mean over bands of ``10 log10(peak_b^2 / MSE_b)`` over its coded samples (valid pixels,
band-fill samples left out: they come back exactly), with ``peak_b`` the scene's valid range of band ``b``: the
definition the independent scorer uses for whole scenes. The candidates are the bundle's rate levels (the lowest
that reaches the target, found by bisection: quality rises with the level) and an error bound per band (the
largest ``E_b`` whose uniform quantisation error, ``E(E + 1) / 3``, meets the band's share, lowered until the
decoded tile reaches the target). Both candidates are coded and decoded here, so the PSNR is measured, not
estimated; the fewer bytes win. Decoding is deterministic, so the ground sees the PSNR measured here (up to the
float network's rounding on another machine, for rate levels).
"""
from __future__ import annotations

import math

import numpy as np

from cvae.edge.codec import bitstream
from cvae.edge.codec.tile import AnalyzedTile, BoundedTile, TileCodec
from cvae.edge.errors import InputError

__all__ = ["psnr_db", "psnr_bands", "tile_psnr", "choose_for_psnr", "bound_for_mse", "check_psnr", "check_max_error", "TargetError",
           "PSNR_MIN", "PSNR_MAX", "MAX_ERROR_LIMIT"]

#: PSNR counted for a band decoded exactly (keeps the mean finite)
EXACT_DB = 200.0
#: the PSNR targets accepted (dB): below 10 the error is a third of the band's range (nothing worth sending), and
#: no tile measures above EXACT_DB
PSNR_MIN, PSNR_MAX = 10.0, EXACT_DB
#: the largest error bound a v4 tile carries (digital numbers, per band; bitstream.PREDICTIVE_LIMIT)
MAX_ERROR_LIMIT = bitstream.PREDICTIVE_LIMIT


class TargetError(InputError):
    """A quality target (``--psnr``/``psnr``, ``--max-error``/``max_error``) the format cannot carry; the message
    names the key and the accepted range."""


def check_psnr(value, key: str = "psnr") -> float:
    """``value`` as a PSNR target in dB, or :class:`TargetError`: a finite number in PSNR_MIN..PSNR_MAX (not a bool).
    The one check of ``cvae-encode --psnr``, the daemon's ``psnr`` and ``cvae-edge check``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not math.isfinite(value) or not PSNR_MIN <= value <= PSNR_MAX:
        raise TargetError(f"{key}: {value!r} must be a number of dB between {PSNR_MIN:g} and {PSNR_MAX:g} "
                          "(e.g. 45)")
    return float(value)


def check_max_error(value, key: str = "max_error") -> tuple[int, ...]:
    """``value`` (one bound or a sequence of them, one per band) as a tuple of whole digital numbers in
    0..MAX_ERROR_LIMIT, or :class:`TargetError`. The one check of ``cvae-encode --max-error``, the daemon's
    ``max_error`` and ``cvae-edge check``; whether the count fits a scene's bands is known only per scene."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) for e in values):
        raise TargetError(f"{key}: {value!r} must be a whole number of digital numbers >= 0 (0 = lossless), or "
                          "one per band (e.g. 1,1,2,4)")
    if any(not 0 <= e <= MAX_ERROR_LIMIT for e in values):
        shown = ",".join(str(e) for e in values) if isinstance(value, (list, tuple)) else repr(value)
        raise TargetError(f"{key}: {shown} is out of range: each bound must lie in 0 (lossless) .. "
                          f"{MAX_ERROR_LIMIT} (the largest a v4 tile carries)")
    return tuple(int(e) for e in values)


def psnr_db(peak, mse: float, exact_db: float | None = None) -> float:
    """``10 log10(peak^2 / mse)``: the project's one PSNR. With ``exact_db`` (the encoder's targets: EXACT_DB) an
    exact band (``mse`` 0) counts as ``exact_db`` and nothing measures above it; without (the benchmarks, the
    demo, training validation) ``mse`` counts as at least 1e-12."""
    if exact_db is None:
        return 10 * math.log10(peak ** 2 / max(mse, 1e-12))
    return exact_db if mse == 0 else min(exact_db, 10 * math.log10(peak ** 2 / mse))


def psnr_bands(orig: np.ndarray, rec: np.ndarray, valid: np.ndarray, peaks: np.ndarray | None = None,
               exact_db: float | None = None) -> float:
    """Mean over bands of :func:`psnr_db` over the ``valid`` samples (``bool[H, W]`` for every band, or
    ``bool[C, H, W]`` one mask per band) of ``orig``/``rec: [C, H, W]``; ``peaks: float[C]``, default the band's
    valid range in ``orig`` (max - min). A band with no valid sample or a peak <= 0 is left out; with none left the
    mean is ``exact_db``, or NaN without it."""
    out = []
    for b in range(orig.shape[0]):
        m = valid[b] if valid.ndim == 3 else valid
        o = orig[b][m].astype(np.float64)
        if o.size == 0:
            continue
        peak = o.max() - o.min() if peaks is None else peaks[b]
        if peak <= 0:
            continue
        mse = float(np.mean((o - rec[b][m].astype(np.float64)) ** 2))
        out.append(psnr_db(peak, mse, exact_db))
    return float(np.mean(out)) if out else (float("nan") if exact_db is None else exact_db)


def tile_psnr(orig: np.ndarray, rec: np.ndarray, coded: np.ndarray, peaks: np.ndarray) -> float:
    """Mean over bands of PSNR over ``coded: bool[C, H, W]`` samples; ``peaks: float[C]`` (0: band skipped): the
    scene's band ranges, an exact band EXACT_DB (:func:`psnr_bands`)."""
    return psnr_bands(orig, rec, coded, peaks, EXACT_DB)


def bound_for_mse(mse: np.ndarray) -> np.ndarray:
    """int64[C]: the largest E with E(E + 1) / 3 <= mse (the mean square error of uniform rounding to 2E + 1)."""
    e = np.floor((np.sqrt(1 + 12 * np.maximum(mse, 0)) - 1) / 2).astype(np.int64)
    return np.maximum(e, 0)


def choose_for_psnr(codec: TileCodec, px: np.ndarray, valid: np.ndarray, fill: np.ndarray | None,
                    band_range: tuple[np.ndarray, np.ndarray] | None, target: float,
                    scene: bitstream.SceneSide | None = None
                    ) -> tuple[AnalyzedTile | BoundedTile, int, float]:
    """``(tile, level, psnr)`` for :meth:`TileCodec.encode`: the cheaper of the lowest rate level and the
    loosest error bound that reach ``target`` dB on this tile (a rate level when neither does: the top one; a
    rate level always on a tile of true floats, which no error bound in digital numbers fits)."""
    coded = np.broadcast_to(valid, px.shape).copy()
    if fill is not None:
        coded &= ~fill
    peaks = (np.asarray(band_range[1], np.float64) - np.asarray(band_range[0], np.float64)) \
        if band_range is not None else np.ones(px.shape[0])  # None: no valid pixel in the scene, nothing to measure
    a = codec.analyze(px, valid, band_range=band_range, band_fill=fill, scene=scene)
    if not coded.any():
        return a, 0, EXACT_DB

    def rate(level: int) -> tuple[int, float]:
        data = codec.encode(a, level)
        return len(data), tile_psnr(px, codec.decompress(data, scene).pixels, coded, peaks)

    lo, hi = 0, codec.levels - 1
    top = rate(hi)
    best = (hi, *top)
    while lo < hi and top[1] >= target:  # lowest level reaching the target
        mid = (lo + hi) // 2
        n, q = rate(mid)
        if q >= target:
            hi, best = mid, (mid, n, q)
        else:
            lo = mid + 1
    rate_choice = best if best[2] >= target else None

    share = peaks ** 2 / 10 ** (target / 10)  # each band at the target's MSE
    e = bound_for_mse(share)
    bounded = None
    for _ in range(8):
        t = codec.bound(px, e, valid, fill)
        try:
            data = codec.encode(t, 0)
        except InputError:  # true float samples have no bound in digital numbers: the rate levels alone
            break
        q = tile_psnr(px, codec.decompress(data).pixels, coded, peaks)
        if q >= target:
            bounded = (t, len(data), q)
            break
        if not e.any():
            break
        e = e // 2
    if bounded is not None and (rate_choice is None or bounded[1] <= rate_choice[1]):
        return bounded[0], 0, bounded[2]
    if rate_choice is None:
        return a, codec.levels - 1, top[1]
    return a, rate_choice[0], rate_choice[2]
