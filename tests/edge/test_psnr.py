"""The one PSNR (edge/quality.py), which the encoder's --psnr targets, the demo, training validation and the
benchmarks all use (cvae.metrics re-exports it)."""
import math

import numpy as np
import pytest

from cvae.edge.codec import stepcode
from cvae.edge.quality import EXACT_DB, psnr_bands, psnr_db, tile_psnr


def test_metrics_reexports_the_encoders_psnr():
    import cvae.metrics

    assert cvae.metrics.psnr_bands is psnr_bands and cvae.metrics.psnr_db is psnr_db


def test_mean_over_bands_with_one_mask_per_band_and_the_bands_own_peak():
    rng = np.random.default_rng(3)
    orig = rng.integers(0, 1000, (3, 8, 9)).astype(np.uint16)
    rec = (orig + rng.integers(-3, 4, orig.shape)).astype(np.int32)
    masks = rng.random((3, 8, 9)) > 0.3
    want = []
    for o, r, m in zip(orig, rec, masks):  # ladder_eval's former definition, band by band
        o, r = o[m].astype(np.float64), r[m].astype(np.float64)
        want.append(10 * math.log10((o.max() - o.min()) ** 2 / max(np.mean((o - r) ** 2), 1e-12)))
    assert psnr_bands(orig, rec, masks) == pytest.approx(np.mean(want), rel=1e-12)  # float64 sums, same order
    assert psnr_bands(orig, rec, masks[0]) == psnr_bands(orig, rec, np.broadcast_to(masks[0], orig.shape))


def test_exact_bands_count_as_exact_db_for_targets_and_as_mse_1e_12_for_benchmarks():
    orig = np.array([[[0, 10], [20, 30]]], np.uint16)
    everywhere = np.ones(orig.shape, bool)
    assert tile_psnr(orig, orig, everywhere, np.array([30.0])) == EXACT_DB
    assert psnr_bands(orig, orig, everywhere[0]) == pytest.approx(10 * math.log10(30 ** 2 / 1e-12))
    assert math.isnan(psnr_bands(orig, orig, ~everywhere[0]))  # no valid sample: no PSNR
    assert tile_psnr(orig, orig, ~everywhere, np.array([30.0])) == EXACT_DB
    assert psnr_db(30.0, 1e-30, EXACT_DB) == EXACT_DB  # nothing measures above it


# --------------------------------------------------------------------------- the scene's target (SceneTarget)

from cvae.edge.quality import MAX_DIP_DB, SCENE_AIM_DB, SceneTarget  # noqa: E402


def _db(state, unit):
    return state.tile_target(unit)[0]


def _target(variances, lag=2, target=40.0):
    v = np.asarray(variances, float)[:, None]
    return SceneTarget(target, np.array([1000.0]), np.full(v.shape, 100.0), v, lag=lag)


def _err(db, n=100.0):
    """Squared error of n samples at db for peak 1000."""
    return np.array([n * 1000.0 ** 2 * 10 ** (-db / 10)]), np.array([n])


def test_without_history_or_flat_tiles_each_tile_aims_at_the_scene_aim():
    t = _target([1e9] * 4)
    assert _db(t, 0) == pytest.approx(40.0 + SCENE_AIM_DB)
    assert _db(t, 1) == pytest.approx(40.0 + SCENE_AIM_DB)  # lag 2: tile 1 waits for nothing


def test_flat_tiles_to_come_leave_the_others_room_and_a_miss_is_made_up_by_those_after_it():
    flat = _target([1e9, 1e9, 1e-3, 1e-3])  # the last two err almost nothing however coarsely coded
    assert _db(flat, 0) < 40.0 - 2  # two tiles carry the scene's error: 3 dB lower each, about
    t = _target([1e9] * 6)
    t.commit(0, *_err(38.0))  # tile 0 fell 2 dB short ...
    assert _db(t, 2) > 40.0 + SCENE_AIM_DB  # ... tiles 2 to 5 (and 1, in flight) make up for it
    t2 = _target([1e9] * 2, lag=1)
    t2.commit(0, *_err(20.0))
    assert _db(t2, 1) == EXACT_DB or _db(t2, 1) > 45  # one tile left: it takes the whole deficit
    t3 = SceneTarget(40.0, np.array([1000.0]), np.array([[300.0], [100.0]]), np.full((2, 1), 1e9), lag=1)
    t3.commit(0, *_err(60.0, 300.0))  # far above: tile 1 may fall 6 dB to make up, but not more than MAX_DIP_DB
    assert _db(t3, 1) == pytest.approx(40.0 - MAX_DIP_DB)


def test_a_tile_waits_for_the_tiles_lag_before_it_whatever_finishes_first():
    import threading

    t = _target([1e9] * 6, lag=2)
    got = []
    worker = threading.Thread(target=lambda: got.append(_db(t, 2)))
    worker.start()
    t.commit(1, *_err(30.0))  # tile 1 first: tile 2 still waits for tile 0 (and then must not see tile 1)
    worker.join(0.2)
    assert worker.is_alive() and not got
    t.commit(0, *_err(40.0 + SCENE_AIM_DB))
    worker.join(5)
    assert got == [pytest.approx(40.0 + SCENE_AIM_DB, abs=1e-6)]


def test_the_last_lag_tiles_each_wait_for_every_tile_before_them():
    """The tail (the last LAG tiles): no tile after them would see a miss of theirs, so each sees the one just
    before it, and the scene lands on the last tile's tolerance, not on each tile's (small scenes landed under the
    target when every tile was held to its own PSNR)."""
    import threading

    t = _target([1e9] * 6, lag=2)
    assert [t.known(u) for u in range(6)] == [0, 0, 1, 2, 4, 5]
    for u in range(4):
        t.commit(u, *_err(40.0 + SCENE_AIM_DB))
    got = []
    worker = threading.Thread(target=lambda: got.append(_db(t, 5)))
    worker.start()
    worker.join(0.2)
    assert worker.is_alive() and not got  # tile 5 waits for tile 4
    t.commit(4, *_err(38.0))  # ... which fell 2 dB short: tile 5 takes the whole deficit
    worker.join(5)
    assert got and got[0] > 42.0


def test_the_last_tile_may_stop_wherever_the_scene_lands_within_the_tail_tolerance():
    """The scene's last tile is searched to the PSNRs that land the *scene* within TAIL_TOL_DB of its aim: a tile that
    is the whole scene gets aim +- TAIL_TOL_DB, a small last tile a window as wide as its share allows (each try
    outside the window is one more plan)."""
    from cvae.edge.quality import TAIL_TOL_DB, TILE_TOL_DB

    aim = 40.0 + SCENE_AIM_DB
    alone = _target([1e9], lag=1)
    t, _, (low, high) = alone.tile_target(0)
    assert (low, t, high) == pytest.approx((aim - TAIL_TOL_DB, aim, aim + TAIL_TOL_DB), abs=1e-3)
    counts = np.array([[10000.0], [10000.0], [2000.0]])  # the last tile: 9% of the samples
    small = SceneTarget(40.0, np.array([1000.0]), counts, np.full((3, 1), 1e9), lag=1)
    for u in range(2):
        small.commit(u, *_err(aim, 10000.0))
    t, _, (low, high) = small.tile_target(2)
    assert t == pytest.approx(aim, abs=1e-3) and high - t > 0.4 and t - low > 0.4
    for end, landed in ((low, aim - TAIL_TOL_DB), (high, aim + TAIL_TOL_DB)):  # the scene, were the tile to land there
        sse = 2 * _err(aim, 10000.0)[0] + _err(end, 2000.0)[0]
        assert 10 * np.log10(1000.0 ** 2 * 22000 / sse[0]) == pytest.approx(landed, abs=1e-3)
    assert _target([1e9] * 3, lag=1).tile_target(0)[2] == pytest.approx((aim - TILE_TOL_DB, aim + TILE_TOL_DB))


def test_a_tile_that_fails_still_lets_the_scene_go_on(codec):
    from cvae.edge.quality import choose_for_psnr

    t = SceneTarget(40.0, np.array([1000.0]), np.full((3, 1), 64.0), np.full((3, 1), 1e9), lag=1)
    px = np.zeros((1, 8, 8), np.uint16)
    with pytest.raises(Exception):
        choose_for_psnr(codec, px, np.ones((9, 9), bool), None, (np.zeros(1), np.full(1, 1000.0)), 40.0, None, t, 0)
    assert _db(t, 1) == pytest.approx(40.0 + SCENE_AIM_DB)  # tile 0 counted for nothing; no deadlock


def test_a_tile_cannot_pass_its_share_on_one_flat_band():
    """ShareGauge scores a tile by its weighted errors against what the scene counted it at: a band 20 dB above the
    share does not make up for another 3 dB under it (the mean of band PSNRs would say 48.5 dB)."""
    from cvae.edge.quality import Gauge, ShareGauge

    peaks = np.array([1000.0, 1000.0])
    n = 100
    m = 1000.0 ** 2 * 10 ** (-40 / 10)
    share = ShareGauge(peaks, 40.0, np.array([1.0, 1.0]), np.array([n * m, n * m]))
    orig = np.zeros((2, 10, 10))
    rec = np.stack([np.full((10, 10), np.sqrt(m * 10 ** 0.3)), np.full((10, 10), np.sqrt(m * 10 ** -2))])
    coded = np.ones(orig.shape, bool)
    assert Gauge(peaks).db(orig, rec, coded) == pytest.approx(48.5, abs=0.01)
    assert share.db(orig, rec, coded) == pytest.approx(40 + 10 * math.log10(2 / (10 ** 0.3 + 10 ** -2)), abs=1e-9)
    assert share.db(orig, rec, coded) < 40.0


def _noisy_tile(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(256), np.arange(256)) * 4
    return (ramp[None] + rng.integers(0, 400, (2, 256, 256))).astype(np.uint16)


def test_a_lossless_bound_counts_the_tiles_own_pixels_and_decodes_to_them(codec):
    """The error-bounded candidate at bound 0 is not decoded: what it reports is what the ground decodes."""
    from cvae.edge import psnr_search
    from cvae.edge.quality import Gauge

    px = _noisy_tile()
    valid = np.ones(px.shape[1:], bool)
    coded = np.ones(px.shape, bool)
    gauge = Gauge(np.full(2, 2000.0))
    got = psnr_search._by_bound(codec, px, valid, None, coded, gauge, (80.0, 80.05, 80.1))  # only bound 0 reaches it
    assert got is not None and not got[1].max_error.any()
    decoded = codec.decompress(codec.encode(got[1], 0)).pixels
    np.testing.assert_array_equal(got[4], px)
    np.testing.assert_array_equal(decoded, px)
    assert got[3] == gauge.db(px, decoded, coded) == EXACT_DB


def test_bounds_whose_strip_estimate_cannot_win_are_not_coded(codec):
    """With a cheaper candidate far below, the error-bounded search stops at its strip estimate (a quarter of the
    tile coded); with room it codes the bound, and the estimate is within 25% of the tile's bytes."""
    from cvae.edge import psnr_search
    from cvae.edge.quality import Gauge

    px = _noisy_tile()
    valid = np.ones(px.shape[1:], bool)
    coded = np.ones(px.shape, bool)
    window = (80.0, 80.05, 80.1)
    gauge = Gauge(np.full(2, 2000.0))
    full = psnr_search._by_bound(codec, px, valid, None, coded, gauge, window)
    assert full is not None
    estimate = psnr_search._strip_bytes(codec, px, np.zeros(2, np.int64), valid, None)
    assert 0.9 * full[0] <= estimate <= 1.25 * full[0]
    assert psnr_search._by_bound(codec, px, valid, None, coded, gauge, window, cap=full[0] // 2) is None
    kept = psnr_search._by_bound(codec, px, valid, None, coded, gauge, window, cap=full[0])
    assert kept is not None and kept[0] == full[0]
    for edge in (px[:, :48], px[:, :, :48]):  # a short, wide edge tile: strips of columns (and the other way)
        whole = len(codec.encode(codec.bound(np.ascontiguousarray(edge), np.zeros(2, np.int64),
                                             np.ones(edge.shape[1:], bool)), 0))
        short = psnr_search._strip_bytes(codec, edge, np.zeros(2, np.int64), np.ones(edge.shape[1:], bool), None)
        assert 0.9 * whole <= short <= 1.3 * whole


def test_the_first_step_estimate_scores_the_mean_of_the_bands_psnrs(codec, shared_data):
    """``--psnr``'s first step estimate models the gauge's PSNR (the mean of the bands' PSNRs, each band's error the
    components' carried through the inverse KLT), not the PSNR of the bands' mean error: on a 7-band Landsat-8 tile,
    whose bands err unevenly, the old model's first try landed 1.1 dB above its aim; this one within 0.5 dB."""
    import rasterio

    from cvae.edge import psnr_search
    from cvae.edge.quality import Gauge

    bands = []
    for b in (1, 2, 3, 4, 5, 6, 7):
        with rasterio.open(shared_data / "train" / "rasterframes-testdata" / f"L8-B{b}-Elkton-VA.tiff") as d:
            bands.append(d.read(1)[:128, :128])
    px = np.stack(bands)
    valid = np.ones(px.shape[1:], bool)
    lo, hi = px.reshape(7, -1).min(axis=1).astype(np.float64), px.reshape(7, -1).max(axis=1).astype(np.float64)
    gauge = Gauge(hi - lo)
    a = codec.analyze(px, valid, band_range=(lo, hi))
    planner = codec.hybrid.planner_for("residual")
    for aim in (35.0, 40.0, 45.0):
        step, slope = psnr_search._estimate_step(a, aim, gauge.peaks)
        step = stepcode.on_grid(step)
        level = codec.level_for_step(step)
        got = gauge.db(px, codec.hybrid.pixels(a, level, planner.plan(a, level, step)), np.ones(px.shape, bool))
        assert abs(got - aim) < 0.5, (aim, got)
        assert -12.0 <= slope <= -2.0


def test_the_solver_meets_the_aim_in_a_few_evaluations_and_stops_at_the_ranges_ends():
    """quality.solve_falling (the root finder of --psnr's first step estimate and of SceneTarget's tile targets): on
    a PSNR curve with the estimate's jumps (coefficients zeroed one by one), within the tolerance of the aim in at
    most 8 evaluations from a guess 2 dB off either way (a bisection over the steps' range took 18); an aim the
    range does not reach pins it at the range's end."""
    from cvae.edge.quality import solve_falling

    lo, hi = math.log(stepcode.STEP_MIN), math.log(stepcode.STEP_MAX)

    def curve(x: float) -> float:  # about -6 dB per unit of ln(step), with a 0.003 dB staircase on it
        return 20.0 - 6.0 * x - 0.003 * math.floor(x * 1000) + 0.4 * math.sin(3 * x)

    for aim in (30.0, 38.5, 47.0):
        for off in (-2.0, 2.0):
            calls = []

            def db(x: float) -> float:
                calls.append(x)
                return curve(x)

            x, q = solve_falling(db, aim, (aim - 20.0 + off) / -6.0, lo, hi, -8.7, 0.01)
            assert abs(q - aim) <= 0.01 and q == curve(x) and lo <= x <= hi
            assert len(calls) <= 8, (aim, off, len(calls))
    assert solve_falling(lambda x: 300.0, 40.0, 0.0, lo, hi, -8.7, 0.01) == (hi, 300.0)  # all too fine: coarsest
    assert solve_falling(lambda x: 1.0, 40.0, 0.0, lo, hi, -8.7, 0.01) == (lo, 1.0)  # none fine enough: finest


def test_the_first_step_estimate_on_8_bit_bands_counts_the_rounding_that_errors_under_half_a_dn_vanish_in(codec):
    """On a 3-band 8-bit tile of about 65 DN range, 45-50 dB asks under 0.2 DN^2: the estimate used to add the
    decoder's rounding to integers as 1/12 DN^2 more error, so 50 dB looked out of reach (the finest step, 150 dB
    over its aim) and 45 dB landed 7.6 dB over; rounding an error mostly under half a DN brings the sample back
    exactly (psnr_search.rounded_mse): every aim's first try lands within 0.6 dB."""
    from cvae.edge import psnr_search
    from cvae.edge.quality import Gauge

    rng = np.random.default_rng(5)
    f = rng.integers(-2, 3, (256, 256)).cumsum(0).cumsum(1).astype(np.float64)
    f = (f - f.min()) / (f.max() - f.min())
    px = np.stack([40 + 60 * f + rng.normal(0, 1.0, f.shape) * (1 + k) for k in range(3)]).round().clip(0, 255)
    px = px.astype(np.uint8)
    lo, hi = px.reshape(3, -1).min(axis=1).astype(np.float64), px.reshape(3, -1).max(axis=1).astype(np.float64)
    gauge = Gauge(hi - lo)
    a = codec.analyze(px, np.ones(px.shape[1:], bool), band_range=(lo, hi))
    planner = codec.hybrid.planner_for("residual")
    for aim in (40.0, 45.0, 50.0):
        step = stepcode.on_grid(psnr_search._estimate_step(a, aim, gauge.peaks)[0])
        level = codec.level_for_step(step)
        got = gauge.db(px, codec.hybrid.pixels(a, level, planner.plan(a, level, step)), np.ones(px.shape, bool))
        assert abs(got - aim) < 0.6, (aim, got)


def test_rounded_mse_is_the_mean_square_of_a_gaussian_error_rounded_to_integers():
    from cvae.edge.psnr_search import rounded_mse

    var = np.array([0.0, 0.02, 0.1, 0.3, 1.0, 4.0, 8.99, 9.01, 50.0])
    rng = np.random.default_rng(1)
    simulated = [np.mean(np.rint(rng.normal(0.0, math.sqrt(v), 400_000)) ** 2) for v in var]
    np.testing.assert_allclose(rounded_mse(var), simulated, rtol=0.02, atol=2e-4)
    assert rounded_mse(np.array([0.0]))[0] == 0.0  # nothing to round
    np.testing.assert_allclose(rounded_mse(var[-3:]), var[-3:] + 1 / 12, rtol=1e-3)  # sigma >= 3: var + 1/12


@pytest.mark.parametrize("target", [36.0, 42.0])
def test_a_scene_of_busy_and_smooth_tiles_lands_at_one_step_for_fewer_bytes(tmp_path, bundle, target, monkeypatch):
    """36 tiles, the top half a busy texture, the bottom a smooth ramp: the tiles before the tail share one step
    (SceneTarget.scene_step, from every tile's error curve read before coding), and the scene lands within 0.2 dB
    above the target on fewer bytes than with a PSNR share per tile (the curves withheld): 19% / 14% fewer here."""
    import rasterio
    from rasterio.transform import from_origin

    import cvae.edge.encoder as encoder
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    codec = bundle.codec("onnxruntime", mode_search="residual")
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:384, 0:384]
    smooth = 2000 + 3 * x + 2 * y + rng.normal(0, 2, (384, 384))
    busy = 2000 + rng.normal(0, 1, (384, 384)).cumsum(1) * 40 + rng.normal(0, 150, (384, 384))
    px = np.where(y < 192, busy, smooth).clip(0, 65535).astype(np.uint16)[None]
    path = tmp_path / "mixed.tif"
    with rasterio.open(path, "w", driver="GTiff", width=384, height=384, count=1, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as d:
        d.write(px)

    def encode():
        enc = encode_scene(path, bundle, codec, EncodeOptions(psnr=target, tile_size=64))
        [scene], _ = decode_streams([b"".join(enc.packets)], bundle, codec)
        a, b = px.astype(np.float64), scene.pixels.astype(np.float64)
        return enc, 10 * math.log10(np.ptp(a) ** 2 / np.mean((a - b) ** 2))

    one_step, db = encode()
    monkeypatch.setattr(encoder, "scene_curves", lambda *args, **kw: None)
    shares, db_shares = encode()
    assert one_step.tiles == 36
    assert target <= db <= target + 0.2 and target <= db_shares <= target + 0.2
    assert one_step.nbytes < 0.95 * shares.nbytes



def test_the_tiles_the_curve_pass_analysed_are_coded_from_that_analysis_to_the_same_bytes(tmp_path, bundle, monkeypatch):
    """--psnr's curve pass analyses every tile of a scene of more than 2 LAG tiles; the tiles it keeps (the first,
    up to ANALYSIS_KEEP_BYTES) are not analysed again for their coding, and the packets are the same bytes as when
    each tile is analysed twice (3 bands, 36 tiles: the scene's band ranges travel in its metadata)."""
    import rasterio
    from rasterio.transform import from_origin

    import cvae.edge.encoder as encoder
    from cvae.edge.codec.tile import TileCodec
    from cvae.edge.encoder import EncodeOptions, encode_scene

    codec = bundle.codec("onnxruntime", mode_search="residual")
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, (384, 384)).cumsum(1) * 30 + rng.normal(0, 40, (384, 384)) + 3000
    px = np.stack([base * k + rng.normal(0, 20, base.shape) for k in (1.0, 0.8, 1.3)]).clip(0, 65535)
    path = tmp_path / "three.tif"
    with rasterio.open(path, "w", driver="GTiff", width=384, height=384, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as d:
        d.write(px.astype(np.uint16))
    calls = []
    analyze = TileCodec.analyze
    monkeypatch.setattr(TileCodec, "analyze", lambda self, *a, **kw: calls.append(1) or analyze(self, *a, **kw))

    def encode(budget):
        monkeypatch.setattr(encoder, "ANALYSIS_KEEP_BYTES", budget)
        calls.clear()
        enc = encode_scene(path, bundle, codec, EncodeOptions(psnr=40.0, tile_size=64, scene_id=7))
        return b"".join(enc.packets), len(calls)

    kept, n_kept = encode(64 << 20)
    twice, n_twice = encode(0)
    some, n_some = encode(5 * 2 * 3 * 64 * 64 * 4)  # five tiles' components and subbands
    assert kept == twice == some
    assert (n_kept, n_twice, n_some) == (36, 72, 67)


def _curved(tiles: int, target: float = 40.0):
    """A SceneTarget whose every tile errs as a uniform quantiser would: step^2 / 12 (peak 1000, one band)."""
    from cvae.edge.quality import curve_steps

    steps = curve_steps(target)
    curves = np.broadcast_to((steps ** 2 / 12 * 1000.0 ** 2)[None, :, None], (tiles, len(steps), 1))
    return SceneTarget(target, np.array([1000.0]), np.full((tiles, 1), 100.0), np.full((tiles, 1), 1e9), curves=curves)


def test_the_scene_step_lands_the_curves_on_the_aim_and_survives_a_long_restart():
    """With nothing known, the one step is where the curves put the scene on its aim (a uniform quantiser:
    sqrt(12) 10^(-aim / 20) of the peak); after a restart that left 1400 tiles unknown (committed as nothing), a tile
    far on still gets its step (the steps before it computed in order, not by recursion) and keeps to it."""
    t = _curved(40)
    assert t.scene_step(0) == pytest.approx(math.sqrt(12) * 10 ** (-(40.0 + SCENE_AIM_DB) / 20), rel=1e-3)
    long = _curved(1500)
    for u in range(1400):
        long.commit(u)
    step = long.scene_step(1400)
    assert step == pytest.approx(long.scene_step(1400)) and 0 < step < 1
