"""Quality asked as a PSNR: the scene lands just above it, each tile at the cheapest coding of its share
(``cvae-encode --psnr DB``, the daemon's ``psnr``).

A scene's PSNR (the independent scorer's definition) is the mean over bands of ``10 log10(peak_b^2 / MSE_b)`` over
its coded samples (valid pixels; band-fill samples come back exactly and are left out), ``peak_b`` the scene's valid
range of band ``b``; a tile's (:func:`tile_psnr`) the same over its own samples. The encoder aims the *scene* at
``DB + SCENE_AIM_DB`` (:class:`SceneTarget`): each tile, in scene order, is given the PSNR that would bring the tiles
coded before it, itself and those still to come to the aim, counting the tiles no coding can bring down to it (flat
ones, from the scan's per-tile variances) at their own error, so the others may spend less; a tile is scored by what
it does to the scene (:class:`ShareGauge`: its band errors weighted by the scene's sensitivity), so one flat band
cannot carry a tile whose other bands err more than their share. Tile format v7 carries any residual step
(:mod:`cvae.edge.codec.stepcode`), so a tile can land on its share instead of on the ladder's 12 levels (which
overshot by up to 1.7 dB).

On a scene of more than 2 LAG tiles, those before the tail (the last LAG) are coded once at the scene's one step
(:meth:`SceneTarget.scene_step`, from every tile's error curve modelled before coding: encoder.scene_curves; the
latent-only levels and bounds below replace it where they reach its PSNR for fewer bytes); the tail is searched to its
shares and lands the scene. One step spends at equal rate-distortion slopes: -13% / -6% / -4% bytes on Landsat-8 b2 at
35 / 40 / 45 dB against a PSNR share per tile, within 1% elsewhere (``benchmarks/experiments/psnr_one_step.py``).

A searched tile's candidates, measured on the pixels the decoder will make (``HybridKind.pixels``), the fewest bytes
winning among those that reach the tile's share:

- **a residual step**: a secant search on ``(ln step, PSNR)`` from a wavelet-domain estimate (the error of
  quantising a sample of the tile's coefficients, no coding), with the residual alone (no network), keeping
  brackets, until the tile lands within TILE_TOL_DB of its share (the scene's last tile: where the scene lands within
  TAIL_TOL_DB of its aim); then the codec's own plan at that step (networks and all, once), kept as it comes out;
- the **latent-only levels** (the ladder's levels without a residual), when the step found is coarser than the
  coarsest residual preset (below it they cannot reach the share);
- **an error bound per band** (near-lossless, no network), when the step found is under ``BOUND_DN`` digital
  numbers in the median band (both :mod:`cvae.edge.psnr_search`): from the largest ``E_b`` whose uniform quantisation
  error ``E(E + 1) / 3`` meets the band's share, halved until the tile reaches it or doubled while it still does.

Called for one tile alone (no :class:`SceneTarget`), the tile is searched into ``[DB, DB + WINDOW_DB]`` with the
codec's own plans. A bundle without residual levels keeps the ladder's levels (the lowest that reaches the target,
by bisection). Decoding is deterministic, so the ground sees the PSNR measured here (up to the float network's
rounding on another machine, for tiles with latents). Where scenes land, and what it costs against a fixed level:
``benchmarks/harness/psnr_targets.py``.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from cvae.edge.codec import bitstream, stepcode
from cvae.edge.codec.tile import AnalyzedTile, BoundedTile, TileCodec
from cvae.edge.errors import InputError

__all__ = ["psnr_db", "psnr_bands", "tile_psnr", "choose_for_psnr", "Gauge", "ShareGauge", "SceneTarget", "WINDOW_DB", "check_psnr", "check_max_error", "TargetError",
           "PSNR_MIN", "PSNR_MAX", "MAX_ERROR_LIMIT", "solve_falling"]

#: PSNR counted for a band decoded exactly (keeps the mean finite)
EXACT_DB = 200.0
#: the PSNR targets accepted (dB): below 10 the error is a third of the band's range (nothing worth sending), and
#: no tile measures above EXACT_DB
PSNR_MIN, PSNR_MAX = 10.0, EXACT_DB
#: a tile's PSNR is searched into [target, target + WINDOW_DB] (alone: ``choose_for_psnr`` without a scene)
WINDOW_DB = 0.1
#: a scene's PSNR is aimed at target + SCENE_AIM_DB (SceneTarget), the middle of what the issue allows (0 .. 0.2)
SCENE_AIM_DB = 0.1
#: a tile may be asked at most this far below the target to make up for the tiles before it (SceneTarget)
MAX_DIP_DB = 3.0
#: with a scene to land (SceneTarget), a tile is searched to within this of its share of the target
TILE_TOL_DB = 0.2
#: ... and the scene's last tile, whose miss no tile after it sees, to the PSNRs that land the scene within this of
#: its aim (SceneTarget.tile_target; 0.05 dB of the tile's own PSNR until 2026-12-07)
TAIL_TOL_DB = 0.05
#: SceneTarget's tile targets put the scene within this of its aim (dB)
TARGET_SOLVE_DB = 1e-4
#: a tile within this of its share teaches SceneTarget the spread of PSNR between bands
OFFSET_DB = 0.5
#: dB per unit of ln(step) when the estimate has none (a uniform quantiser's is -8.7 at high rates; tiles measure
#: about -4 to -10 at the validation set's rates)
SLOPE_DB = -6.0
#: SceneTarget.scene_step: the known tiles' error against their curves scales the others' by at most this (or 1 / it)
RATIO_MAX = 4.0
#: SceneTarget.scene_step: a tile's step is within this factor of the tile's before it (a tail of flat tiles that
#: cannot make up for a miss must not buy the scene's last 0.01 dB near-losslessly: Landsat-8 b2, 52 kB for one tile)
STEP_SWING = 1.25
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
        peak = (o.max() - o.min() if peaks is None else peaks[b]) if o.size else 0  # no valid sample: left out
        if peak <= 0:
            continue
        mse = float(np.mean((o - rec[b][m].astype(np.float64)) ** 2))
        out.append(psnr_db(peak, mse, exact_db))
    return float(np.mean(out)) if out else (float("nan") if exact_db is None else exact_db)


def tile_psnr(orig: np.ndarray, rec: np.ndarray, coded: np.ndarray, peaks: np.ndarray) -> float:
    """Mean over bands of PSNR over ``coded: bool[C, H, W]`` samples; ``peaks: float[C]`` (0: band skipped): the
    scene's band ranges, an exact band EXACT_DB (:func:`psnr_bands`)."""
    return psnr_bands(orig, rec, coded, peaks, EXACT_DB)


def solve_falling(fn, aim: float, x: float, lo: float, hi: float, slope: float, tol: float) -> tuple[float, float]:
    """``(x, fn(x))`` where ``fn`` (falling as ``x`` grows, in ``[lo, hi]``) meets ``aim`` within ``tol``, from the
    guess ``x``: a secant kept inside the bracket it builds (halving it where the secant would leave it), ``slope``
    where it has no two points to draw one through (or they rise); pinned at ``lo`` or ``hi`` when ``fn`` does not
    reach ``aim`` inside. A handful of evaluations where a bisection over the whole range took 16 to 40 (the step
    estimate of ``--psnr``, :class:`SceneTarget`'s tile targets)."""
    f_lo = f_hi = math.nan  # fn - aim at the bracket's ends, once measured (> 0 at lo, < 0 at hi)
    prev: tuple[float, float] | None = None
    x = min(max(x, lo), hi)
    q = fn(x)
    for _ in range(60):
        f = q - aim
        if abs(f) <= tol:
            break
        if f > 0:
            lo, f_lo = x, f
        else:
            hi, f_hi = x, f
        if hi - lo <= 1e-9 * max(1.0, abs(hi)):
            break
        s = (f - prev[1]) / (x - prev[0]) if prev is not None and prev[0] != x else 0.0
        nx = x - f / (s if s < 0 else slope)
        if math.isfinite(f_lo) and math.isfinite(f_hi):
            margin = 0.01 * (hi - lo)  # keep inside the bracket, else halve it
            if not lo + margin <= nx <= hi - margin:
                nx = (lo + hi) / 2
        nx = min(max(nx, lo), hi)
        if nx == x:  # pinned at an end of the range
            break
        prev = (x, f)
        x, q = nx, fn(nx)
    return x, q


class Gauge:
    """What a candidate coding of one tile scores: its PSNR (:func:`tile_psnr`: the mean over bands, the scene's
    peaks), with the band errors behind it."""

    def __init__(self, peaks: np.ndarray):
        self.peaks = peaks

    @staticmethod
    def errors(orig: np.ndarray, rec: np.ndarray, coded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(sse, n)``: float64[C] squared error and count of the ``coded`` samples of each band."""
        d = orig.astype(np.float64) - rec.astype(np.float64)
        d[~coded] = 0.0
        return np.einsum("chw,chw->c", d, d), coded.reshape(coded.shape[0], -1).sum(axis=1).astype(np.float64)

    def mean_db(self, sse: np.ndarray, n: np.ndarray) -> float:
        """Mean over bands (with samples and a peak) of :func:`psnr_db` of ``sse / n``; EXACT_DB with none."""
        keep = (n > 0) & (self.peaks > 0)
        if not keep.any():
            return EXACT_DB
        return float(np.mean([psnr_db(p, e / k, EXACT_DB) for p, e, k in zip(self.peaks[keep], sse[keep], n[keep])]))

    def db(self, orig: np.ndarray, rec: np.ndarray, coded: np.ndarray) -> float:
        return self.mean_db(*self.errors(orig, rec, coded))


class ShareGauge(Gauge):
    """A tile of a scene scored by what it does to the scene's PSNR: ``t + 10 log10(E* / E)``, where ``E`` is its
    squared errors weighted per band by the scene's sensitivity (the inverse of the band's modelled scene error)
    and ``E*`` the same of what :class:`SceneTarget` counted the tile at (``t`` dB, or its variance where flat). A
    tile cannot pass by one flat band while erring more in the others than its share."""

    def __init__(self, peaks: np.ndarray, t: float, weights: np.ndarray, expected: np.ndarray):
        super().__init__(peaks)
        self.t, self.weights, self.expected = t, weights, expected

    def db(self, orig: np.ndarray, rec: np.ndarray, coded: np.ndarray) -> float:
        if not self.weights.any() or not (self.weights * self.expected).any():
            return super().db(orig, rec, coded)
        sse, _ = self.errors(orig, rec, coded)
        err = float(np.dot(self.weights, sse))
        return EXACT_DB if err <= 0 else min(EXACT_DB, self.t + 10 * math.log10(float(np.dot(self.weights,
                                                                                               self.expected)) / err))


class SceneTarget:
    """``--psnr``'s state across one scene's tiles, so that the *scene* lands just above the target, not each tile.

    Tile ``u`` gets its own target (:meth:`tile_target`): the PSNR ``t`` such that the tiles already coded, it and
    every tile still to come reach the scene's aim (``target + SCENE_AIM_DB``) together, each band of a tile to come
    counted at ``t``'s error or at its variance, whichever is smaller (``variances``, from the scan: a flat tile errs
    less than the target however coarsely it is coded, which leaves the others room). A tile that fell short asks a
    little more of each one after it; never below ``target - MAX_DIP_DB``. Deterministic whatever the threads: tile
    ``u`` sees exactly the tiles ``0 .. u - LAG`` (it waits for them: up to LAG tiles are prepared at once; those
    between count as yet to come), and is searched to within TILE_TOL_DB of it; a tile of the tail (the last LAG)
    sees every tile before it (:meth:`known`), so only the scene's last tile is held to TAIL_TOL_DB (each held to
    its own PSNR, 4-tile scenes pooled up to 0.11 dB under the target). Thread-safe.

    ``counts``, ``variances``: float64[T, C] samples coded per tile (row-major) and band, and their variance."""

    LAG = 8

    def __init__(self, target: float, peaks: np.ndarray, counts: np.ndarray, variances: np.ndarray, lag: int = LAG,
                 curves: np.ndarray | None = None, analyzed: dict[int, AnalyzedTile] | None = None):
        self.target, self.peaks, self.lag = target, np.asarray(peaks, np.float64), lag
        self.tiles, self.analyzed = len(counts), analyzed or {}  # tiles analysed already (choose_for_psnr takes them)
        self.counts, self.variances = np.asarray(counts, np.float64), np.asarray(variances, np.float64)
        c = len(self.peaks)
        self._done: dict[int, tuple[np.ndarray, ...]] = {}
        #: per count of leading tiles known: their summed (squared errors, samples, band offsets, tiles offset,
        #: squared errors of the tiles coded at the scene's step, and what their curves said of them)
        self._prefix: list[tuple[np.ndarray, ...]] = [tuple(np.zeros(c) for _ in range(6))]
        self._cond = threading.Condition()
        self._scene_steps: dict[int, float | None] = {}  # scene_step's answers (each tile's, computed once)
        #: curves (:meth:`scene_step`): per tile the samples-weighted modelled error at each of curve_steps(), and
        #: their sums over the tiles from each one to the last, float32[T + 1, G, C] (1.1 kB per tile of 13 bands)
        self.curves = None if curves is None else \
            np.asarray(curves, np.float32) * self.counts[:, None, :].astype(np.float32)
        if self.curves is not None:
            self._rest = np.zeros((self.tiles + 1, *self.curves.shape[1:]), np.float32)
            np.cumsum(self.curves[::-1], axis=0, out=self._rest[-2::-1])
            self._log_steps = np.log(curve_steps(target))

    def known(self, unit: int) -> int:
        """How many leading tiles tile ``unit`` waits for: ``unit - LAG + 1``, and in the last LAG (the tail, whose
        misses no later tile would see) every tile before it: each makes up for the one before, the last lands."""
        return unit if unit >= self.tiles - self.lag else max(0, unit - self.lag + 1)

    def tile_target(self, unit: int) -> tuple[float, Gauge, tuple[float, float]]:
        """``(t, gauge, (low, high))``: the PSNR tile ``unit`` is searched to (dB), the gauge that scores a coding of
        it: by what it does to the scene (:class:`ShareGauge`) once tiles before it have shown how the bands' PSNRs
        spread, else its own PSNR (:class:`Gauge`: the tile's spread stands for the scene's), and the PSNRs the
        search may stop between: ``t`` +- TILE_TOL_DB, for the scene's last tile those that land the scene within
        TAIL_TOL_DB of its aim (a small last tile moves the scene little); waits for the tiles it knows
        (:meth:`known`)."""
        aim = self.target + SCENE_AIM_DB
        upto = self.known(unit)  # tiles 0 .. upto - 1 are known
        sse, done, dsum, dcount = self._prefix[0][:4]
        if upto:
            with self._cond:
                self._cond.wait_for(lambda: len(self._prefix) - 1 >= upto)
                sse, done, dsum, dcount = self._prefix[upto][:4]
        keep = self.peaks > 0
        n, var = self.counts[upto:, keep], self.variances[upto:, keep]  # the tiles not known yet, this one among them
        p2 = self.peaks[keep] ** 2
        # the tiles' spread between bands so far (a tile at t dB is t + offset_b in band b; 0 until measured)
        offset = np.where(dcount[keep] > 0, dsum[keep] / np.maximum(dcount[keep], 1), 0.0)
        total = done[keep] + n.sum(axis=0)

        def rest(t: float) -> np.ndarray:  # float64[T', C'] each unknown tile's error if it lands at t dB
            return n * np.minimum(p2 * 10 ** (-(t + offset) / 10), var)

        def scene_db(t: float) -> float:  # the scene's PSNR then (flat tiles err less than t however coded)
            return float(np.mean(10 * np.log10(p2 / np.maximum((sse[keep] + rest(t).sum(axis=0)) / total, 1e-300))))

        def solve(at: float) -> float:  # the scene's PSNR rises with the tiles' (solved in -t, from t = aim)
            return -solve_falling(lambda x: scene_db(-x), at, -aim, -EXACT_DB, -(self.target - MAX_DIP_DB), -1.0,
                                  TARGET_SOLVE_DB)[0]

        last, t = unit == self.tiles - 1, aim
        ends = (aim - TAIL_TOL_DB, aim + TAIL_TOL_DB) if last else (aim - TILE_TOL_DB, aim + TILE_TOL_DB)
        if (total > 0).all():
            t = solve(aim)
            ends = (solve(aim - TAIL_TOL_DB), solve(aim + TAIL_TOL_DB)) if last else (t - TILE_TOL_DB, t + TILE_TOL_DB)
        weights, expected = np.zeros(len(self.peaks)), np.zeros(len(self.peaks))
        if not (dcount[keep] > 0).all():
            return t, Gauge(self.peaks), ends
        if (total > 0).all():
            r = rest(t)
            weights[keep] = 1 / np.maximum(sse[keep] + r.sum(axis=0), 1e-300)  # the scene's sensitivity per band
            expected[keep] = r[unit - upto]  # this tile's row
        return t, ShareGauge(self.peaks, t, weights, expected), ends

    def scene_step(self, unit: int) -> float | None:
        """The residual step tile ``unit`` is coded at (None without curves; module docstring): the one step that,
        given to it and every tile still to come, lands the scene on its aim, the tiles it knows (:meth:`known`) at
        their errors, those in flight at their curves at the steps they were given, the others at their curves at
        it (``curves``: [T, G, C], each tile's modelled error per sample at :func:`curve_steps`), the curves
        scaled per band by the latest LAG known tiles' errors against theirs; within STEP_SWING of the step before."""
        if self.curves is None:
            return None
        with self._cond:
            start = unit  # the steps of the tiles in flight and before it first, oldest first (no recursion)
            while start > 0 and start - 1 not in self._scene_steps:
                start -= 1
        for v in range(start, unit + 1):
            if v not in self._scene_steps:
                self._scene_steps[v] = self._solve_step(v)  # each a function of the tiles v knows: alike on any thread
        return self._scene_steps[unit]

    def _solve_step(self, unit: int) -> float | None:
        """:meth:`scene_step` for a tile whose tiles before it have theirs."""
        upto = self.known(unit)
        with self._cond:
            self._cond.wait_for(lambda: len(self._prefix) - 1 >= upto)
            sse, done, _, _, actual, modelled = self._prefix[upto]
            # the curves' error, from the latest tiles known (it drifts across a scene)
            actual, modelled = actual - self._prefix[max(0, upto - self.lag)][4], \
                modelled - self._prefix[max(0, upto - self.lag)][5]
        total = done + self.counts[upto:].sum(axis=0)
        keep = (self.peaks > 0) & (total > 0)
        if not keep.any():
            return None
        ratio = np.where(modelled > 0, np.clip(actual / np.maximum(modelled, 1e-300), 1 / RATIO_MAX, RATIO_MAX), 1.0)
        flight = [(v, self._scene_steps[v]) for v in range(upto, unit)]  # coded at the steps they were given
        known = sse + ratio * sum((self.curve_at(v, s) for v, s in flight if s is not None), np.zeros(len(self.peaks)))
        p2, rest = self.peaks[keep] ** 2, np.log(np.maximum(self._rest[unit][:, keep].astype(np.float64), 1e-300))

        def scene_db(x: float) -> float:
            err = known[keep] + ratio[keep] * self._between(rest, x)
            return float(np.mean(10 * np.log10(p2 * total[keep] / np.maximum(err, 1e-300))))

        x, _ = solve_falling(scene_db, self.target + SCENE_AIM_DB, float(self._log_steps[len(self._log_steps) // 2]),
                             math.log(stepcode.STEP_MIN), math.log(stepcode.STEP_MAX), SLOPE_DB, TARGET_SOLVE_DB)
        before = self._scene_steps.get(unit - 1)
        return math.exp(x) if before is None else min(max(math.exp(x), before / STEP_SWING), before * STEP_SWING)

    def _between(self, logs: np.ndarray, x: float) -> np.ndarray:
        """``exp(logs)`` (``logs``: [G, ...], at the curves' steps) at ln(step) ``x``, linear in ln(step) between
        the grid's steps, its end segments extended beyond them."""
        xs = self._log_steps
        i = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
        return np.exp(logs[i] + (x - xs[i]) / (xs[i + 1] - xs[i]) * (logs[i + 1] - logs[i]))

    def curve_at(self, unit: int, step: float) -> np.ndarray:
        """float64[C]: tile ``unit``'s curve (samples-weighted) at ``step`` (0 where it is 0 throughout)."""
        assert self.curves is not None
        c = self.curves[unit].astype(np.float64)
        return np.where(c.max(axis=0) > 0, self._between(np.log(np.maximum(c, 1e-300)), math.log(step)), 0.0)

    def commit(self, unit: int, sse: np.ndarray | None = None, n: np.ndarray | None = None,
               target: float | None = None, step: float | None = None) -> None:
        """Tile ``unit``'s squared errors and coded samples per band (none: a tile not coded here, e.g. written
        before a restart, or failed: it counts for nothing); a tile that landed within OFFSET_DB of its ``target``
        also teaches the spread between bands (each band's PSNR less the tile's); ``step``: the scene's step it was
        coded at (:meth:`scene_step`), its error against its curve's there scales the curves of the tiles to come."""
        zero = np.zeros(len(self.peaks))
        sse = zero if sse is None else sse
        n = zero if n is None else n
        d, dn = zero, zero
        has = (n > 0) & (self.peaks > 0)
        if target is not None and has.all():
            band = 10 * np.log10(self.peaks ** 2 / np.maximum(sse / n, 1e-300))
            if abs(float(band.mean()) - target) <= OFFSET_DB and band.max() < EXACT_DB:
                d, dn = band - band.mean(), np.ones(len(self.peaks))
        actual, modelled = (sse, self.curve_at(unit, step)) if step is not None and self.curves is not None \
            else (zero, zero)
        with self._cond:
            self._done[unit] = (sse, n, d, dn, actual, modelled)
            while len(self._prefix) - 1 in self._done:
                part = self._done[len(self._prefix) - 1]
                self._prefix.append(tuple(a + b for a, b in zip(self._prefix[-1], part)))
            self._cond.notify_all()


def curve_steps(target: float) -> np.ndarray:
    """float64[G]: the steps (normalised) :meth:`SceneTarget.scene_step`'s curves are modelled at for ``target`` dB:
    a quarter to 8 times a uniform quantiser's ``sqrt(12) 10^(-target / 20)``, in half octaves."""
    s0 = math.sqrt(12.0) * 10 ** (-(target + SCENE_AIM_DB) / 20)
    return np.clip(s0 * 2.0 ** (np.arange(-4, 7) / 2), stepcode.STEP_MIN, stepcode.STEP_MAX)


def choose_for_psnr(codec: TileCodec, px: np.ndarray, valid: np.ndarray, fill: np.ndarray | None,
                    band_range: tuple[np.ndarray, np.ndarray] | None, target: float,
                    scene: bitstream.SceneSide | None = None, state: SceneTarget | None = None,
                    unit: int = 0) -> tuple[AnalyzedTile | BoundedTile, int, float]:
    """``(tile, level, PSNR)`` for :meth:`TileCodec.encode`: the cheapest candidate (module docstring) that
    reaches ``target`` dB on this tile, or with ``state`` (tile ``unit`` of a scene) the tile's share of the scene's
    target (:meth:`SceneTarget.tile_target`); an analysed tile carries the residual step it is to be coded at
    (:attr:`AnalyzedTile.step`). When none reaches it: the finest coding tried. With ``state`` the choice is
    committed to it (also when this raises)."""
    from cvae.edge import psnr_search  # its searches import this module's constants and Gauge

    committed = False
    try:
        coded = np.broadcast_to(valid, px.shape).copy()
        if fill is not None:
            coded &= ~fill
        peaks = (np.asarray(band_range[1], np.float64) - np.asarray(band_range[0], np.float64)) \
            if band_range is not None else np.ones(px.shape[0])  # None: no valid pixel in the scene, nothing to measure
        gauge = Gauge(peaks)
        window = (target, target + WINDOW_DB / 2, target + WINDOW_DB)  # lowest accepted, aim, highest
        if state is not None:  # the tile's share of the scene's target: the tiles after it make up for a miss ...
            aim, gauge, (low, high) = state.tile_target(unit)  # ... but the last less
            window = (low, aim, high)
        a = (state.analyzed.pop(unit, None) if state is not None else None) or \
            codec.analyze(px, valid, band_range=band_range, band_fill=fill, scene=scene)
        if not coded.any():
            return a, 0, EXACT_DB
        residual_levels = np.flatnonzero(codec.ladder.step > 0)
        best: tuple[int, AnalyzedTile | BoundedTile, int, float, np.ndarray]
        step = state.scene_step(unit) if state is not None and unit < state.tiles - state.lag and len(residual_levels) \
            else None  # one step for the scene's tiles; the tail (the last LAG) lands it
        if not len(residual_levels):
            best = psnr_search.by_levels(codec, a, px, coded, gauge, window[0], scene)
        elif step is not None:
            best = psnr_search.at_scene_step(codec, a, px, valid, fill, coded, gauge, step)
        else:
            best = psnr_search.best(codec, a, px, valid, fill, coded, gauge, window, state is not None)
        if state is not None:
            sse, n = Gauge.errors(px, best[4], coded)
            coded_step = best[1].step if step is not None and isinstance(best[1], AnalyzedTile) else None
            state.commit(unit, sse, n, window[1], None if coded_step is None else float(coded_step))
            committed = True
        return best[1], best[2], best[3]
    finally:
        if state is not None and not committed:
            state.commit(unit)
