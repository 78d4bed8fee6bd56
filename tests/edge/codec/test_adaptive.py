"""The adaptive entropy model (tile bitstream v2): exact integer round trips, no desynchronisation under float
perturbation, hostile streams, v1 compatibility, and the golden tile."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, coefs
from cvae.edge.codec.latents import tile_header
from cvae.edge.codec.tile import TileCodec
from cvae.edge.errors import CorruptTileError

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

import make_tile_v2_golden as golden  # noqa: E402  (GOLDEN_DIR, on pytest's pythonpath: pyproject.toml)


def _scene_like_tile(seed: int = 3, c: int = 4, h: int = 96, w: int = 80) -> np.ndarray:
    """uint16 bands sharing structure (smooth field + edges + noise), as a multispectral tile has."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 2000 + 800 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 600 * ((xx + 2 * yy) % 37 < 12)
    return np.stack([base * (0.6 + 0.2 * k) + rng.normal(0, 30, (h, w)) for k in range(c)]).clip(0, 65535).astype(np.uint16)


class _PerturbedSynthesis:
    """The bundle's own transforms with the synthesis output changed by FP16-size relative noise (as a Jetson's
    TensorRT FP16 engine differs from ONNX Runtime FP32)."""

    def __init__(self, inner, seed: int = 0):
        self.inner, self.rng = inner, np.random.default_rng(seed)

    def analysis(self, x):
        return self.inner.analysis(x)

    def synthesis(self, y_hat):
        x = self.inner.synthesis(y_hat)
        return (x * (1 + self.rng.uniform(-1e-3, 1e-3, x.shape))).astype(np.float32)


def _codec_with(bundle, transforms) -> TileCodec:
    return bundle.codec(transforms=transforms, mode_search="auto")


def test_shipped_bundle_is_adaptive_with_residual_levels(bundle):
    assert bundle.entropy_model == "adaptive"
    assert bundle.ladder.residual_levels >= 4
    assert bundle.levels == len(bundle.ladder.latent) == bundle.manifest["levels"]["count"]


@pytest.mark.parametrize("level", [0, 2, 3, 4, 7, 11])
def test_stream_integers_round_trip_exactly(codec, level):
    a = codec.analyze(_scene_like_tile(), None)
    data = codec.encode(a, level)
    plan = codec.plan(a, level)
    idx, values = codec.parse_integers(data)
    np.testing.assert_array_equal(idx, plan.side)  # v5: the latents' indexes only
    sizes = _group_sizes(codec, a, plan)
    coded = values[:sizes.sum()][np.repeat(idx != am.ZERO, sizes)]
    np.testing.assert_array_equal(coded, plan.main)
    if plan.residual:  # then the residual's coefficients, in v5's coding order
        c, h, w = a.shape
        order, _ = coefs.coding_order(h, w)
        np.testing.assert_array_equal(values[sizes.sum():],
                                      np.concatenate([comp[i].reshape(-1) for comp in plan.coefs for i in order]))
    else:
        assert len(values) == sizes.sum()
    header = bitstream.unpack_tile(data)[0]
    assert header.version == bitstream.VERSION_MIXING
    assert (header.latent, header.residual) == (plan.latent, plan.residual)
    named = level if plan.level is None else plan.level  # a latent-only level's coarse residual names its level
    assert header.level == named and (plan.latent, bool(plan.residual)) in codec.modes(named)
    assert plan.residual in (bitstream.RESIDUAL_NONE, bitstream.RESIDUAL_WAVELET)


def _group_sizes(codec, a, plan):
    """Symbols per group of the side stream (v5: latent groups only; the residual has its own stream)."""
    c, h, w = a.shape
    p = int(plan.present.sum())
    return np.full(p * codec.gain.shape[1], -(-h // 16) * -(-w // 16), np.int64)


def test_residual_levels_choose_their_mode_by_rate_distortion(codec):
    """At a residual level the encoder codes the cheapest of its modes at the level's slope: never a mode
    with a larger D + lambda R than another allowed one."""
    from cvae.edge.codec.plan import rd_lambda

    a = codec.analyze(_scene_like_tile(), None)
    level = int(np.flatnonzero(codec.ladder.step > 0)[1])
    plan = codec.plan(a, level)
    planner = codec.hybrid.planner
    lam = rd_lambda(codec.ladder.step[level])
    costs = {}
    for lat, res in codec.modes(level):
        parts = [planner.latent_part(a, lat)] + ([planner.residual_part(a, level, lat)] if res else [])
        err = parts[1].err if res else planner.latent_error(a, lat)
        costs[(lat, res, True)] = err + lam * sum(p.bits for p in parts)
    alone = planner.residual_part(a, level, None)  # the residual-only mode: no latent component present
    costs[(codec.latent_level(level), True, False)] = alone.err + lam * alone.bits
    assert costs[(plan.latent, bool(plan.residual), bool(plan.present.any()))] == min(costs.values())


def test_float_perturbation_of_the_synthesis_changes_no_parsed_integer(bundle, codec):
    """The ground's decoder with a perturbed network parses the same integers; pixels move by the float
    difference only (no desynchronisation, by construction)."""
    perturbed = _codec_with(bundle, _PerturbedSynthesis(codec.transforms))
    tile = _scene_like_tile()
    for level in (1, 5, 9):
        data = codec.compress(tile, level)
        a, b = codec.parse_integers(data), perturbed.parse_integers(data)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        ref, got = codec.decompress(data).pixels, perturbed.decompress(data).pixels
        # 1e-3 relative on components of unit range: a few DN of the 2,000-6,000 DN range, never a desync
        assert np.abs(ref.astype(np.int64) - got).max() <= 20


def test_encoder_with_fp16_rounded_latents_still_decodes_on_an_fp32_ground(bundle, codec):
    class Fp16Analysis(_PerturbedSynthesis):
        def analysis(self, x):
            return self.inner.analysis(x).astype(np.float16).astype(np.float32)

        def synthesis(self, y_hat):
            return self.inner.synthesis(y_hat).astype(np.float16).astype(np.float32)

    onboard = _codec_with(bundle, Fp16Analysis(codec.transforms))
    tile = _scene_like_tile()
    for level in (2, 8):
        ground = codec.decompress(onboard.compress(tile, level)).pixels.astype(np.float64)
        fp32 = codec.decompress(codec.compress(tile, level)).pixels.astype(np.float64)
        err = lambda r: np.sqrt(np.mean((r - tile) ** 2))
        assert err(ground) <= 1.05 * err(fp32) + 2.0  # FP16 on board costs at most a few percent of the error


def test_estimate_matches_the_coded_size(codec):
    a = codec.analyze(_scene_like_tile(), None)
    for level in range(codec.levels):
        n, est = len(codec.encode(a, level)), codec.estimate_bytes(a, level)
        assert abs(n - est) <= 0.01 * n + 16  # ideal code length vs rANS (flush words, varints)


def test_adaptive_never_costs_more_than_the_factorised_tables_plus_side_information(bundle, codec):
    parent = TileCodec(tables=bundle.tables, gain=bundle.gain, inv_gain=bundle.inv_gain, transforms=codec.transforms,
                       model_id=bytes.fromhex(bundle.compatible_model_ids[0]), skip_variance=bundle.skip_variance)
    tile = _scene_like_tile()
    for level in range(4):  # latent-only levels: the same symbols, FACTORIZED is always a choice
        a, b = parent.analyze(tile, None), codec.analyze(tile, None)
        groups = int(codec.coded_components(b, level).sum()) * codec.gain.shape[1]
        assert len(codec.encode(b, level)) <= len(parent.encode(a, level)) + groups * 6 / 8 + 40


def test_adaptive_bundle_decodes_its_parents_v1_streams(bundle, codec):
    parent = TileCodec(tables=bundle.tables, gain=bundle.gain, inv_gain=bundle.inv_gain, transforms=codec.transforms,
                       model_id=bytes.fromhex(bundle.compatible_model_ids[0]), skip_variance=bundle.skip_variance)
    data = parent.compress(_scene_like_tile(), 3)
    assert data[0] == bitstream.VERSION
    np.testing.assert_array_equal(codec.decompress(data).pixels, parent.decompress(data).pixels)


def test_factorised_codec_refuses_adaptive_v3_tiles_with_a_clear_error(bundle, codec):
    parent = TileCodec(tables=bundle.tables, gain=bundle.gain, inv_gain=bundle.inv_gain, transforms=codec.transforms,
                       model_id=bytes.fromhex(bundle.model_id), skip_variance=bundle.skip_variance)
    with pytest.raises(CorruptTileError, match="adaptive"):
        parent.decompress(codec.compress(_scene_like_tile(), 2))


def test_nodata_pixels_cost_no_residual_and_decode_masked(codec):
    tile = _scene_like_tile()
    valid = np.ones(tile.shape[1:], bool)
    valid[:, :40] = False
    d = codec.decompress(codec.compress(tile, 9, valid=valid))
    np.testing.assert_array_equal(d.valid, valid)
    assert (d.pixels[:, ~valid] == 0).all()
    err = np.abs(d.pixels[:, valid].astype(np.int64) - tile[:, valid]).mean()
    assert err < 60


def test_golden_v2_tile_is_reproduced_and_parses_to_its_integers(bundle, codec):
    data = GOLDEN_DIR.joinpath("tile_v2.bin").read_bytes()
    assert golden.tile_bytes(bundle) == data
    g = golden.golden_integers(bundle)
    idx, values = codec.parse_integers(data)
    np.testing.assert_array_equal(idx, np.concatenate([g["lat_idx"], g["res_idx"]]))
    np.testing.assert_array_equal(values, np.concatenate(g["latents"] + g["residual"]))
    d = codec.decompress(data)
    assert d.pixels.shape == (2, 30, 40) and d.pixels.dtype == np.uint16


def test_truncated_or_extended_v3_tiles_raise_corrupt_tile(codec):
    data = codec.compress(_scene_like_tile(c=2, h=48, w=48), 6)
    for n in (1, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptTileError):
            codec.decompress(data[:n])
    with pytest.raises(CorruptTileError):
        codec.decompress(data + b"\0")


def test_flipped_bytes_never_crash_the_v3_decoder(codec, rng):
    """A flipped bit is detected (CorruptTileError), or decodes to a tile of the shape and dtype its header declares
    with every valid sample inside its band range (to_dtype clips to it) and the invalid ones 0, as any unsealed
    damaged stream; anything else fails."""
    from cvae.edge.codec import bitstream

    data = bytearray(codec.compress(_scene_like_tile(c=2, h=48, w=48), 6))
    detected = 0
    for _ in range(60):
        bad = bytearray(data)
        i = int(rng.integers(16, len(bad)))
        bad[i] ^= 1 << int(rng.integers(0, 8))
        try:
            out = codec.decompress(bytes(bad))
        except CorruptTileError:
            detected += 1
            continue
        h = bitstream.unpack_tile(bytes(bad))[0]
        assert out.pixels.shape == (h.bands, h.height, h.width) and out.pixels.dtype == h.dtype
        assert out.valid.shape == (h.height, h.width) and not out.pixels[:, ~out.valid].any()
        info = np.iinfo(h.dtype)
        for b in range(h.bands):
            lo, hi = sorted((float(h.lo[b]), float(h.hi[b])))
            v = out.pixels[b][out.valid].astype(np.float64)
            assert v.size == 0 or (max(np.floor(lo), info.min) <= v.min() and v.max() <= min(np.ceil(hi), info.max))
    assert detected > 0  # the rANS streams' end-state check catches most flips of the payload


def test_index_out_of_range_is_corrupt(bundle):
    """A side stream holding an escaped index (64+) is refused (v3 tiles: also FACTORIZED in a residual group;
    v5 has none: its residual is its own stream)."""
    from cvae.edge.codec import rangecoder

    codec = bundle.codec("onnxruntime", mode_search="ladder")  # no gate: level 1 codes latents on any tile
    a = codec.analyze(_scene_like_tile(c=1, h=32, w=32), None)
    level = 1  # latents only: the side stream is all there is
    plan = codec.plan(a, level)
    it = codec.adaptive.index_tables
    for bad_value, pos in ((am.NUM_INDEXES + 3, 0), (am.NUM_INDEXES + 3, len(plan.side) - 1)):
        side = plan.side.copy()
        side[pos] = bad_value
        side_bytes = rangecoder.encode(side, plan.side_rows, it.cdf, it.cdf_length, it.offset, it.precision)
        t = codec.hybrid.tables_for(plan.latent)
        main = rangecoder.encode(plan.main, plan.main_rows, t.cdf, t.cdf_length, t.offset, t.precision)
        header = tile_header(a, codec.model_id, level, codec.version, plan.latent, plan.residual)
        data = bitstream.pack_tile(header, plan.present, (side_bytes, main, plan.coefs_stream), None)
        with pytest.raises(CorruptTileError):
            codec.decompress(data)


def test_adaptive_model_survives_a_save_and_load(tmp_path, bundle):
    path = tmp_path / "adaptive.npz"
    bundle.adaptive.save(path)
    back = am.AdaptiveModel.from_file(path)
    np.testing.assert_array_equal(back.bank.cdf, bundle.adaptive.bank.cdf)
    np.testing.assert_array_equal(back.index_tables.cdf, bundle.adaptive.index_tables.cdf)
