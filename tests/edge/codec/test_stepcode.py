"""The residual's step in a v7 tile (edge/codec/stepcode.py): every code names one float32 step, exactly
``(4096 + m) * 2^-(12 + e)``, and the encoder's rounding finds the nearest; a step between the ladder's presets
travels in the tile and the decoder uses it."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvae.edge.codec import bitstream, stepcode


def _exact(code: int) -> Fraction:
    return Fraction(4096 + (code & 4095), 2 ** (12 + (code >> 12)))


def test_every_code_is_its_exact_step_in_float32_and_rounds_back_to_itself():
    for code in range(1 << 16):
        s = stepcode.step_of(code)
        assert s.dtype == np.float32 and Fraction(float(s)) == _exact(code)
        assert stepcode.code_of(float(s)) == code
    assert float(stepcode.step_of(0xF000)) == stepcode.STEP_MIN and float(stepcode.step_of(0x0FFF)) == stepcode.STEP_MAX


def test_the_decoder_step_is_platform_free_by_construction():
    """No pow: the docs' formula in integers and a power of two gives the same float32 bits."""
    for code in (0, 1, 0x0FFF, 0x1234, 0x5A5A, 0xF000, 0xFFFF):
        e, m = code >> 12, code & 4095
        via_ldexp = np.float32(np.ldexp(np.float64(4096 + m), -(12 + e)))
        assert stepcode.step_of(code).view(np.uint32) == via_ldexp.view(np.uint32)


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=stepcode.STEP_MIN, max_value=stepcode.STEP_MAX, allow_nan=False))
def test_code_of_is_the_nearest_code(step):
    code = stepcode.code_of(step)
    got = float(stepcode.step_of(code))
    assert abs(got / step - 1) <= 2 ** -13 + 1e-15  # half the relative resolution
    for other in (code - 1, code + 1):
        if 0 <= other <= 0xFFFF and (other >> 12) == (code >> 12):
            assert abs(got - step) <= abs(float(stepcode.step_of(other)) - step)


@pytest.mark.parametrize("bad", [0.0, -0.1, stepcode.STEP_MIN / 2, 2.5, float("nan"), float("inf")])
def test_steps_a_tile_cannot_carry_are_refused(bad):
    with pytest.raises(ValueError, match="residual step"):
        stepcode.code_of(bad)
    with pytest.raises(ValueError, match="16-bit"):
        stepcode.step_of(1 << 16)


def test_a_level_for_a_step_is_the_residual_level_of_nearest_preset(codec):
    step = codec.ladder.step
    for level in np.flatnonzero(step > 0):
        assert codec.level_for_step(float(step[level])) == level
    assert codec.level_for_step(10.0 * float(step.max())) == int(np.argmax(step))
    assert codec.level_for_step(stepcode.STEP_MIN) == int(np.flatnonzero(step > 0)[-1])


@pytest.fixture(scope="module")
def full(bundle):
    return bundle.codec("onnxruntime", mode_search="full")


@pytest.mark.parametrize("step", [0.2, 0.0293, 0.025, 0.006])
def test_pixels_of_a_plan_are_what_the_decoder_makes_of_its_tile(codec, full, step):
    """HybridKind.pixels (what --psnr measures) is the decoder's result, bit for bit on this machine, for the
    default search (the residual alone at fine steps) and the full one, on the golden hybrid input (latents)."""
    import make_tile_v3_golden as g  # tests/edge/codec/golden, on pythonpath

    level = codec.level_for_step(step)
    modes = set()
    for c in (codec, full):
        a = c.analyze(g.walk_tile(0), band_range=g.hybrid_band_range())
        plan = c.plan(a, level, stepcode.on_grid(step))
        modes.add(plan.mode)
        data = c.encode(a, level, step)
        header = bitstream.unpack_tile(data)[0]
        assert header.version == bitstream.VERSION_MIXING
        assert header.step == (stepcode.code_of(step) if header.residual else None)
        np.testing.assert_array_equal(c.hybrid.pixels(a, level, plan), c.decompress(data).pixels)
    if step == 0.025:  # the v7 and v10 golden hybrid tiles' level (8): the full search codes latents there
        assert "latents+residual" in modes


@pytest.mark.parametrize("search", ["auto", "ladder"])
def test_latent_only_levels_pixels_of_a_plan_are_what_the_decoder_makes(bundle, search):
    """--psnr measures its latent-only candidates with HybridKind.pixels and prices them with HybridKind.pack (no
    decode): the decoder's pixels and the tile's bytes, for the default search (a coarse residual naming a residual
    level, no network) and 'ladder' (the latents), on a tile of 4 smooth bands (which the tile gate passes)."""
    import make_tile_v3_golden as g  # tests/edge/codec/golden, on pythonpath

    c = bundle.codec("onnxruntime", mode_search=search)
    a = c.analyze(g.walk_tile(0), band_range=g.hybrid_band_range())
    assert c.hybrid.planner.network_pays(a)
    modes = set()
    for level in map(int, np.flatnonzero(c.ladder.step == 0)):
        plan = c.hybrid.plan(a, level)
        modes.add(plan.mode)
        data = c.encode(a, level)
        assert c.hybrid.pack(a, level, plan) == data
        np.testing.assert_array_equal(c.hybrid.pixels(a, level, plan), c.decompress(data).pixels)
    assert modes == ({"residual only"} if search == "auto" else {"latents"})
