"""The analysis network runs per component, only for the components a level codes (issue 17: no network where it
does not pay): a component too faint to be coded at a level (``LatentModel.coded``) is never analysed for it, and
the tile's bytes are those of analysing every component at once."""
from __future__ import annotations

import numpy as np
import pytest


class _Counting:
    """The bundle's transforms, recording how many components each analysis call gets."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def analysis(self, x):
        self.batches.append(x.shape[0])
        return self.inner.analysis(x)

    def synthesis(self, y_hat):
        return self.inner.synthesis(y_hat)


def _tile(seed: int = 4) -> np.ndarray:
    """uint16[4, 64, 64]: one textured band and three near copies of it (after the KLT, one strong component and
    three faint ones)."""
    rng = np.random.default_rng(seed)
    f = rng.integers(-3, 4, (64, 64)).cumsum(0).cumsum(1)
    f = (f - f.min()) * 4
    return np.stack([1000 + f * (k + 2) // 2 + rng.integers(0, 2, (64, 64)) for k in range(4)]).astype(np.uint16)


@pytest.fixture(scope="module")
def counting(bundle):
    """The ladder's own modes ('ladder': latents on levels 0-1, which 'auto' codes as a coarse residual)."""
    t = _Counting(bundle.codec("onnxruntime").transforms)
    return t, bundle.codec(transforms=t, mode_search="ladder")


@pytest.mark.parametrize("level", [0, 1, 3])
def test_only_the_coded_components_are_analysed_and_the_bytes_do_not_change(bundle, counting, level):
    t, lazy = counting
    codec = bundle.codec("onnxruntime", mode_search="ladder")
    t.batches.clear()
    a = lazy.analyze(_tile())
    coded = lazy.coded_components(a, level)
    assert 0 < coded.sum() < 4  # the tile is built so: some components faint
    data = lazy.encode(a, level)
    assert sum(t.batches) == coded.sum() if level < 2 else sum(t.batches) <= 4
    assert data == codec.encode(codec.analyze(_tile()), level)
    full = codec.analyze(_tile())
    np.testing.assert_array_equal(full.y[coded], a.latents(coded)[coded])


def test_a_component_is_analysed_once_whatever_asks_for_it(counting):
    t, lazy = counting
    t.batches.clear()
    a = lazy.analyze(_tile())
    assert not a.analysed
    lazy.encode(a, 0)
    first = sum(t.batches)
    lazy.encode(a, 0)
    assert sum(t.batches) == first and a.analysed
    assert a.y.shape[0] == 4 and sum(t.batches) == 4  # every component now, the coded ones not again


def test_residual_mode_search_runs_no_network_on_any_level(bundle):
    """``--mode-search residual`` (the daemon's ``mode_search: residual``): every level codes the wavelet residual
    alone (the latent-only ones at a coarse step), with neither the analysis nor the synthesis network. The tile
    decodes to what the encoder measured."""
    from cvae.edge.codec import bitstream

    t = _Counting(bundle.codec("onnxruntime").transforms)
    synth = []
    t.synthesis = lambda y_hat: synth.append(y_hat.shape[0]) or t.inner.synthesis(y_hat)  # type: ignore[method-assign]
    fast = bundle.codec(transforms=t, mode_search="residual")
    auto = bundle.codec(transforms=t, mode_search="auto")
    px = _tile()
    for level in (2, 3):
        t.batches.clear(), synth.clear()
        data = fast.encode(fast.analyze(px), level)
        assert t.batches == [] and synth == []  # no network ran
        assert fast.decompress(data).pixels.shape == px.shape
        t.batches.clear()
        auto.encode(auto.analyze(px), level)
        assert sum(t.batches) > 0  # 'auto' weighs the network on this 4-band smooth tile
    for level in (0, 1):
        t.batches.clear(), synth.clear()
        data = fast.encode(fast.analyze(px), level)
        assert t.batches == [] and synth == [] and bitstream.unpack_tile(data)[0].residual


def test_auto_runs_no_network_on_the_latent_only_levels(bundle):
    """Under 'auto' (the default) a latent-only level codes every tile as the residual alone at a coarse step, naming
    the residual level of that step (plan.LATENT_LEVELS_GATE: the residual coder beats the latents there), also a
    4-band smooth tile the tile gate passes; 'ladder' still codes its latents. Both decode to what the encoder
    measured."""
    from cvae.edge.codec import bitstream

    t = _Counting(bundle.codec("onnxruntime").transforms)
    auto, ladder = bundle.codec(transforms=t, mode_search="auto"), bundle.codec(transforms=t, mode_search="ladder")
    px = _tile()
    assert auto.hybrid.planner.network_pays(auto.analyze(px))
    for level in map(int, np.flatnonzero(auto.ladder.step == 0)):
        t.batches.clear()
        a = auto.analyze(px)
        data = auto.encode(a, level)
        header = bitstream.unpack_tile(data)[0]
        assert t.batches == [] and header.residual and header.level == auto.level_for_step(
            auto.hybrid.model.coarse_step(level))
        assert auto.plan(a, level).mode == "residual only"
        np.testing.assert_array_equal(auto.decompress(data).pixels,
                                      auto.hybrid.pixels(a, level, auto.plan(a, level)))
        ladder.encode(ladder.analyze(px), level)
        assert sum(t.batches) > 0  # the ladder's own mode: latents
