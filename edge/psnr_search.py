"""The searches behind ``--psnr`` (:mod:`cvae.edge.quality`): a tile's candidates, each measured on the pixels the
decoder will make. :func:`best` is the one entry; the module docstring of :mod:`cvae.edge.quality` says what
each candidate is and when it is tried."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from cvae.edge.codec import bitstream, levels, stepcode, weighting
from cvae.edge.codec.plan import Planner
from cvae.edge.codec.tile import AnalyzedTile, BoundedTile, TileCodec
from cvae.edge.errors import InputError
from cvae.edge.quality import MAX_ERROR_LIMIT, SLOPE_DB, WINDOW_DB, Gauge, solve_falling

__all__ = ["best", "at_scene_step", "error_curve", "by_levels", "bound_for_mse"]

#: the most residual steps tried per tile (the best that reaches the target is kept when none lands in the window)
SEARCH_STEPS = 8
#: error bounds are tried when the step found is finer than this many digital numbers in the median band (until
#: 2026-12-07 in some band, 1.5: Landsat-5 at 45 dB tried and lost bounds on its tiles, one band at 1.1 DN, the median
#: at 1.6; the median at 1.3 codes the same bytes on Landsat-5, NAIP, Elkton and the Sentinel-2 patch at 45-55 dB,
#: where bounds win at 53 dB and up with medians of 0.9-1.15 DN; 2.0 until 2026-12-06)
BOUND_DN = 1.3


def best(codec: TileCodec, a: AnalyzedTile, px: np.ndarray, valid: np.ndarray, fill: np.ndarray | None,
          coded: np.ndarray, gauge: Gauge, window: tuple[float, float, float],
          lenient: bool) -> tuple[int, AnalyzedTile | BoundedTile, int, float, np.ndarray]:
    """The cheapest of the candidates (module docstring) that reach ``window[0]`` dB, as ``(bytes, tile, level, dB,
    decoded pixels)``; ``window``: the lowest PSNR accepted, the aim, the highest the step search stops at.
    ``lenient`` (a scene's tile, whose miss the tiles after it make up for): the step is searched with the residual
    alone (no network), then the tile is planned at it once, networks and all, and kept as it comes out."""
    return _rivals(codec, a, px, valid, fill, coded, gauge, window, lenient,
                   _by_step(codec, a, px, coded, gauge, window, lenient))


def at_scene_step(codec: TileCodec, a: AnalyzedTile, px: np.ndarray, valid: np.ndarray, fill: np.ndarray | None,
                  coded: np.ndarray, gauge: Gauge,
                  step: float) -> tuple[int, AnalyzedTile | BoundedTile, int, float, np.ndarray]:
    """A tile of a scene coded at the scene's one step (:meth:`~cvae.edge.quality.SceneTarget.scene_step`): weighted
    for it, planned once, networks and all; the latent-only levels and error bounds (module docstring) replace it
    where they reach its PSNR for fewer bytes."""
    step = stepcode.on_grid(min(max(step, stepcode.STEP_MIN), stepcode.STEP_MAX))
    w = codec.weighted(a, None, step)
    level = codec.level_for_step(step)
    p = codec.hybrid.planner.plan(w, level, step)
    rec = codec.hybrid.pixels(w, level, p)
    q = gauge.db(px, rec, coded)
    found = (int(round(codec.hybrid.plan_bytes(w, p))), dataclasses.replace(w, step=step, search=None), level, q, rec)
    return _rivals(codec, a, px, valid, fill, coded, gauge, (q, q, q + WINDOW_DB), True, found)


def error_curve(a: AnalyzedTile, peaks: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """float64[len(steps), C]: the tile's modelled mean squared error per valid pixel in each band (its squared
    units: ``peaks ** 2`` times :func:`_band_model`'s) of its residual alone quantised with each of ``steps``, from
    every :data:`CURVE_EVERY`-th coefficient of the model's sample; zeros for a tile analysed without a residual."""
    if a.z is None:
        return np.zeros((len(steps), len(peaks)))
    model = _band_model(a, peaks, CURVE_EVERY)
    return np.stack([model(float(s)) for s in steps]) * np.square(peaks)


#: the scene's error curves (:func:`error_curve`, read before the scene is coded) thin the step estimate's sample by
#: this much: a curve point costs a sixteenth of an estimate's
CURVE_EVERY = 4


def _rivals(codec: TileCodec, a: AnalyzedTile, px: np.ndarray, valid: np.ndarray, fill: np.ndarray | None,
            coded: np.ndarray, gauge: Gauge, window: tuple[float, float, float], lenient: bool,
            found: tuple[int, AnalyzedTile, int, float, np.ndarray]
            ) -> tuple[int, AnalyzedTile | BoundedTile, int, float, np.ndarray]:
    """:func:`best` given the step ``found``: the latent-only levels and the error bounds that compete with it."""
    target = window[0]
    residual_levels = np.flatnonzero(codec.ladder.step > 0)
    # lenient: the step found stands even where it missed (the tiles after it make up for it) unless another
    # candidate reaches the share for fewer bytes; alone, a tile must reach its target
    best: tuple[int, AnalyzedTile | BoundedTile, int, float, np.ndarray] | None = \
        found if found[3] >= target or lenient else None
    coarse = float(codec.ladder.step[residual_levels].max())
    if found[1].step is not None and coarse < found[1].step < stepcode.on_grid(stepcode.STEP_MAX):
        hybrid = codec.hybrid
        for level in map(int, np.flatnonzero(codec.ladder.step == 0)[::-1]):  # latent-only levels, highest first
            w = codec.weighted(a, level)  # the tile as codec.encode codes it at that level
            p = hybrid.plan(w, level)  # measured on the pixels the decoder will make, without decoding the tile
            rec = hybrid.pixels(w, level, p)
            q = gauge.db(px, rec, coded)
            if q < target:
                break
            nbytes = len(hybrid.pack(w, level, p))
            if best is None or nbytes < best[0]:
                best = (nbytes, w, level, q, rec)
    step_dn = (found[1].step or 0.0) * gauge.peaks[gauge.peaks > 0]
    if (found[3] < target and not lenient) or (len(step_dn) and np.median(step_dn) < BOUND_DN):
        bounded = _by_bound(codec, px, valid, fill, coded, gauge, window, best[0] if best is not None else None)
        if bounded is not None and (best is None or bounded[0] <= best[0]):
            best = bounded
    return found if best is None else best


def _by_step(codec: TileCodec, a: AnalyzedTile, px: np.ndarray, coded: np.ndarray, gauge: Gauge,
             window: tuple[float, float, float], lenient: bool = False) -> tuple[int, AnalyzedTile, int, float, np.ndarray]:
    """``(bytes, tile with its step, level, dB, decoded pixels)``: the secant search for the residual
    step (module docstring) into ``[window[0], window[2]]`` aiming at ``window[1]``, from the wavelet-domain
    estimate; the cheapest try that reaches ``window[0]``, or the finest when none does. ``lenient``: searched
    first with the residual alone (no network); where the codec's own modes at the step found differ (steps that
    run the networks), the search goes on from there with them (the networks run once per latent level: each
    further try costs the residual's quantisation only)."""
    hybrid = codec.hybrid
    # the components weighted once, at a rough estimate (a quarter of the sample): the search keeps that tile ...
    rough = _estimate_step(a, window[1], gauge.peaks, every=CURVE_EVERY)[0]
    a = codec.weighted(a, None, rough)
    # ... and starts from the estimate on it (slope: dB per ln(step), until two tries measure it)
    first, slope = _estimate_step(a, window[1], gauge.peaks, rough)
    search = "residual" if lenient else None
    tried, slope = _secant(codec, hybrid.planner_for(search), a, px, coded, gauge, window, math.log(first), slope,
                           SEARCH_STEPS)
    found = {k: (*t, search) for k, t in tried.items()}
    key = _pick(found, window)
    level, step = found[key][2], found[key][3]
    if lenient and hybrid.planner_for(search).tile_modes(a, level, step) != hybrid.planner.tile_modes(a, level, step):
        more, _ = _secant(codec, hybrid.planner, a, px, coded, gauge, window, key, slope, SEARCH_STEPS // 2)
        every = list(found.values()) + [(*t, None) for t in more.values()]  # both searches' tries compete
        found = dict(enumerate(every))
        key = _pick(found, window)
    q, nbytes, level, step, rec, search = found[key]
    return int(round(nbytes)), dataclasses.replace(a, step=step, search=search), level, q, rec


def _pick(tried: dict, window: tuple[float, float, float]):
    """The key of the cheapest try inside ``window``, else of the cheapest that reaches its low end, else of the
    finest step tried."""
    inside = [(t[1], k) for k, t in tried.items() if window[0] <= t[0] <= window[2]]
    ok = inside or [(t[1], k) for k, t in tried.items() if t[0] >= window[0]]
    return min(ok)[1] if ok else min(tried, key=lambda k: tried[k][3])


def _secant(codec: TileCodec, planner: Planner, a: AnalyzedTile, px: np.ndarray, coded: np.ndarray, gauge: Gauge,
            window: tuple[float, float, float], x: float, slope: float, tries: int) -> tuple[dict, float]:
    """Up to ``tries`` plans of ``planner`` from ln(step) ``x``, a secant on ``(ln step, dB)`` with brackets, until one
    lands in ``[window[0], window[2]]``: ``({ln step: (dB, bytes, level, step, pixels)}, the last slope)``."""
    hybrid = codec.hybrid
    target, aim, top = window
    tried: dict[float, tuple[float, float, int, float, np.ndarray]] = {}
    ends = math.log(stepcode.STEP_MIN), math.log(stepcode.STEP_MAX)

    def measure(x: float) -> float:
        step = stepcode.on_grid(math.exp(min(max(x, ends[0]), ends[1])))
        key = math.log(step)
        if key not in tried:
            level = codec.level_for_step(step)
            p = planner.plan(a, level, step)
            rec = hybrid.pixels(a, level, p)
            tried[key] = (gauge.db(px, rec, coded), hybrid.plan_bytes(a, p), level, step, rec)
        return key

    x = measure(x)
    for _ in range(tries - 1):
        q = tried[x][0]
        if target <= q <= top:
            break
        above = [k for k, t in tried.items() if t[0] > top]  # too fine: the step may grow
        below = [k for k, t in tried.items() if t[0] < target]  # too coarse: it must shrink
        if above and below:  # a bracket: the secant between its ends, kept well inside it
            lo, hi = max(above), min(below)
            qa, qb = tried[lo][0], tried[hi][0]
            nx = lo + (hi - lo) * (qa - aim) / (qa - qb) if qa != qb else (lo + hi) / 2
            if not min(lo, hi) + 0.1 * abs(hi - lo) <= nx <= max(lo, hi) - 0.1 * abs(hi - lo):
                nx = (lo + hi) / 2
        else:  # extrapolate with the slope of the last two tries (kept sane), else the estimate's
            keys = list(tried)
            if len(keys) >= 2 and keys[-1] != keys[-2] and tried[keys[-1]][0] != tried[keys[-2]][0]:
                slope = min(-1.0, max(-30.0, (tried[keys[-1]][0] - tried[keys[-2]][0]) / (keys[-1] - keys[-2])))
            nx = x + (aim - q) / slope
        n = len(tried)
        x = measure(nx)
        if len(tried) == n:  # nothing new to try (an end of the steps a tile carries, or the grid)
            break
    return tried, slope


def _estimate_step(a: AnalyzedTile, aim: float, peaks: np.ndarray, guess: float | None = None,
                   every: int = 1) -> tuple[float, float]:
    """``(step, slope)``: the step at which the tile's residual alone would score ``aim`` dB, and there the PSNR's
    change per unit of ln(step), estimated in the wavelet domain, no coding: a root (:func:`solve_falling`) of the
    PSNR the gauge would measure, the mean over bands of each band's, from the covariance of the components' errors
    of quantising a sample of their coefficients (:func:`weighting.error_covariance`, the planner's rounding and
    zeroing modelled) carried to the bands through the inverse of the tile's rotation (:func:`weighting.band_errors`),
    rounded to integers (:func:`rounded_mse`). Per band, not the mean error over bands: where the bands err unevenly
    (the weak components zeroed at coarse steps, 6-7 band Landsat scenes), the mean of their PSNRs is well above the
    PSNR of their mean error; with the covariance, not the components' errors alone: their details' errors are
    correlated (each band's modelled error within 0.3 dB of the coded tile's on Sentinel-2 T33NZA 20 m and NAIP at
    levels 2-8, the components' errors alone up to 2 dB off). ``guess``: the step the root is sought from (the
    rough estimate the tile was weighted at), else a uniform quantiser's; ``every``: :func:`_band_model`'s."""
    model = _band_model(a, peaks, every)
    used = peaks > 0
    if not used.any():
        used = np.ones_like(used)

    def db(step: float) -> float:
        return float(np.mean(-10 * np.log10(np.maximum(model(step)[used], 1e-30))))

    start = guess if guess is not None else math.sqrt(12.0) * 10 ** (-aim / 20)  # else a uniform quantiser's
    x, q = solve_falling(lambda x: db(math.exp(x)), aim, math.log(start),
                         math.log(stepcode.STEP_MIN), math.log(stepcode.STEP_MAX), -20 / math.log(10), SOLVE_DB)
    step = math.exp(x)
    slope = (db(step * 1.1) - q) / math.log(1.1)
    return step, min(-2.0, max(-12.0, slope)) if math.isfinite(slope) and slope < 0 else SLOPE_DB


def _band_model(a: AnalyzedTile, peaks: np.ndarray, every: int = 1):
    """``step -> float64[C]``: each band's modelled mean squared error (normalised: peak 1) of the tile's residual
    alone quantised with ``step`` (:func:`_estimate_step`), from every ``every``-th coefficient of the sample. A tile
    with level rotations (tile format v11) is modelled as it is coded: each detail level with its own rotation in its
    own components, the rest under the tile's matrix, the bands' errors summed by each part's share of the
    coefficients (before the decoder's rounding to integers, which applies to the sum)."""
    integer = np.dtype(a.dtype).kind in "iu"  # the decoder rounds to integers: the error too, in digital numbers
    scale = np.where(peaks > 0, peaks, 1.0) if integer else None
    share = max(float(a.valid.mean()), 1e-3) if a.valid is not None else 1.0  # nodata zeros err nothing
    parts = [(x[:, ::every], m, w) for x, m, w in _model_parts(a)]
    dn2 = np.square(scale.astype(np.float64)) if scale is not None else None

    def model(step: float) -> np.ndarray:
        band = np.zeros(len(peaks))
        for x, m, w in parts:
            band += w * weighting.band_errors(weighting.error_covariance(x, step, share), m, None)
        return band if dn2 is None else weighting.rounded_mse(band * dn2) / dn2
    return model


def _model_parts(a: AnalyzedTile) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``[(samples float32[C, n], int8 rotation[C, C], share of the coefficients)]``: the tile's coefficients as its
    residual alone codes them (:func:`weighting.error_samples` of each part)."""
    bands = Planner.z_subbands(a)
    if a.level_matrices is None:
        return [(weighting.error_samples(bands), a.spectral.matrix, 1.0)]
    mapped = levels.to_levels(bands, a.level_matrices, a.spectral.matrix)
    total = sum(b.size for b in bands[0])
    own = {3 * j + o for j, m in enumerate(a.level_matrices) if m is not None for o in range(3)}
    rest = [i for i in range(len(bands[0])) if i not in own]
    parts = [(weighting.error_samples([[comp[i] for i in rest] for comp in bands]), a.spectral.matrix,
              sum(bands[0][i].size for i in rest) / total)]
    for j, m in enumerate(a.level_matrices):
        if m is not None:
            idx = [3 * j + o for o in range(3)]
            parts.append((weighting.error_samples([[comp[i] for i in idx] for comp in mapped]), m,
                          sum(bands[0][i].size for i in idx) / total))
    return parts


rounded_mse = weighting.rounded_mse


#: the first step estimate stops within this many dB of its aim (:func:`~cvae.edge.quality.solve_falling`; about 0.15%
#: of a step at the estimate's slopes, well inside its own error)
SOLVE_DB = 0.01


def bound_for_mse(mse: np.ndarray) -> np.ndarray:
    """int64[C]: the largest E with E(E + 1) / 3 <= mse (the mean square error of uniform rounding to 2E + 1)."""
    e = np.floor((np.sqrt(1 + 12 * np.maximum(mse, 0)) - 1) / 2).astype(np.int64)
    return np.maximum(e, 0)


def _by_bound(codec: TileCodec, px: np.ndarray, valid: np.ndarray, fill: np.ndarray | None, coded: np.ndarray,
              gauge: Gauge, window: tuple[float, float, float],
              cap: int | None = None) -> tuple[int, BoundedTile, int, float, np.ndarray] | None:
    """``(bytes, bounded tile, 0, dB, decoded pixels)``: the loosest error bounds that reach ``target``, from each
    band at the target's MSE: halved until the tile reaches it, or doubled while it still does (a predictable tile
    errs less than a uniform quantiser); None when none does or the samples are true floats. ``cap``: the bytes of
    the cheapest other candidate; bounds whose :func:`_strip_bytes` estimate exceeds it by
    :data:`STRIP_MARGIN` are not coded (none tighter can be cheaper). Lossless bounds are not decoded: their
    pixels are the tile's own."""
    target, _, top = window
    e = bound_for_mse(gauge.peaks ** 2 / 10 ** (target / 10))
    best = None
    for _ in range(8):
        try:
            if cap is not None and _strip_bytes(codec, px, e, valid, fill) > STRIP_MARGIN * cap:
                return best  # looser bounds are only tried while this one reaches the target: none would be coded
            t = codec.bound(px, e, valid, fill)
            data = codec.encode(t, 0)
        except InputError:  # true float samples have no bound in digital numbers
            return None
        rec = px if not e.any() else codec.decompress(data).pixels  # lossless: exact on every coded sample
        q = gauge.db(px, rec, coded)
        if q >= target:
            if best is None or len(data) < best[0]:
                best = (len(data), t, 0, q, rec)
            if q <= top or best[1] is not t or (e >= MAX_ERROR_LIMIT).all():
                return best
            e = np.minimum(2 * e + 1, MAX_ERROR_LIMIT)
        elif best is not None or not e.any():
            return best
        else:
            e = e // 2
    return best


#: an error bound is coded only when its strip estimate is under this times the cheapest other candidate's bytes
#: (the estimate's cold start overstates). 1.15 until 2026-12-06; 1.05 codes the same bytes on Landsat-5, NAIP,
#: Elkton and the Sentinel-2 patch at 45, 50 and 55 dB and spares Landsat-5 the bounds that lost anyway (CPU time
#: 0.175 -> 0.160 s at 45 dB, 0.33 -> 0.23 s at 50, 0.46 -> 0.41 s at 55); 1.0 costs NAIP 0.25% at 55 dB
#: (benchmarks/results/782c7ed21f22/round32_dropped.md)
STRIP_MARGIN = 1.05
#: the rows (or columns, of a tile wider than tall) of the strip :func:`_strip_bytes` codes: this many, or a quarter
#: of a smaller tile's, at least STRIP_MIN_ROWS (the whole tile is coded when it has fewer than 4 STRIP_MIN_ROWS).
#: Until 2026-12-07 tiles of up to 128 rows were coded whole: on Landsat-5 at 45 dB an edge tile of 54 x 256 pixels
#: coded and decoded near-lossless bounds that lost by 39% to the step
STRIP_ROWS, STRIP_MIN_ROWS = 64, 16


def _strip_bytes(codec: TileCodec, px: np.ndarray, e: np.ndarray, valid: np.ndarray, fill: np.ndarray | None) -> float:
    """The bytes of the tile coded to bounds ``e``, estimated from its middle rows (:data:`STRIP_ROWS`; columns where
    the tile is wider than tall) coded alone (scaled by their count; the coder starts them cold, so it overstates a
    little): a quarter of the tile's encode, no decode; 0 for a tile too small to sample."""
    across = px.shape[2] > px.shape[1]  # columns: the strip's every row holds a short run of the tile's row
    if across:
        px, valid = px.transpose(0, 2, 1), valid.T
        fill = None if fill is None else fill.transpose(0, 2, 1)
    h = px.shape[1]
    n = min(STRIP_ROWS, h // 4)
    if n < STRIP_MIN_ROWS:
        return 0.0  # small tiles: code them whole
    r0 = (h - n) // 2
    rows = slice(r0, r0 + n)
    strip = codec.bound(np.ascontiguousarray(px[:, rows]), e, np.ascontiguousarray(valid[rows]),
                        None if fill is None else np.ascontiguousarray(fill[:, rows]))
    return len(codec.encode(strip, 0)) * h / n


def by_levels(codec: TileCodec, a: AnalyzedTile, px: np.ndarray, coded: np.ndarray, gauge: Gauge,
               target: float, scene: bitstream.SceneSide | None) -> tuple[int, AnalyzedTile, int, float, np.ndarray]:
    """A ladder without residual levels: the lowest level that reaches ``target`` (bisection: quality rises with
    the level), else the top one."""
    def rate(level: int) -> tuple[int, AnalyzedTile, int, float, np.ndarray]:
        data = codec.encode(a, level)
        rec = codec.decompress(data, scene).pixels
        return len(data), a, level, gauge.db(px, rec, coded), rec

    lo, hi = 0, codec.levels - 1
    best = rate(hi)
    while lo < hi and best[3] >= target:
        mid = (lo + hi) // 2
        r = rate(mid)
        if r[3] >= target:
            hi, best = mid, r
        else:
            lo = mid + 1
    return best
