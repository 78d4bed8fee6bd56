"""'auto' on residual levels weighs the network per component: each weighed component keeps its latents only where
they pay in D + lambda R on the coded bits, the header's ``present`` says which, and the others never run the
network. On a real Sentinel-2 crop (skipped where ../shared/data is absent)."""
from __future__ import annotations

import numpy as np
import pytest

from cvae.edge.codec import coefs
from cvae.edge.codec.plan import NETWORK_COMPONENTS, rd_lambda

LEVEL = 3  # a residual level that runs the network (levels 2-3 of the shipped ladder under 'auto')


@pytest.fixture(scope="module")
def crop(shared_data) -> np.ndarray:
    """uint16[4, 128, 128]: the north-west corner of the 10 m Sentinel-2 T33NZA scene (bands 2, 3, 4, 8), where the
    latents pay on some components and not on others."""
    from cvae.edge.io.raster import read_raster

    return read_raster(shared_data / "scenes" / "s2_t33nza_10m_b2348.tif").pixels[:, :128, :128]


def test_components_keep_latents_exactly_where_they_pay_on_the_coded_bits(codec, crop):
    a = codec.analyze(crop, None)
    planner = codec.hybrid.planner
    assert not codec.hybrid.planner.network_free(LEVEL) and planner.network_pays(a)
    plan = codec.plan(a, LEVEL)
    step = codec.hybrid.model.preset_step(LEVEL)
    lat, lam = codec.latent_level(LEVEL), rd_lambda(step)
    weighed = planner.network_components(a, lat)
    latent = planner.latent_part(a, lat, weighed)
    with_latents = planner.residual_part(a, LEVEL, lat, step, weighed)
    alone = planner.residual_part(a, LEVEL, None, step)
    c, h, w = a.shape
    for i in range(c):
        coded = [8 * len(coefs.encode([part.arrays[i]], h, w, planner.mixed)) for part in (with_latents, alone)]
        pays = with_latents.comp_err[i] + lam * (latent.comp_bits[i] + coded[0]) < alone.comp_err[i] + lam * coded[1]
        assert plan.present[i] == (weighed[i] and pays), i
    assert 0 < plan.present.sum() < c  # this crop mixes: some components with latents, some without


@pytest.fixture(scope="module")
def split_crop(shared_data) -> np.ndarray:
    """uint16[4, 128, 128]: the crop east of ``crop``, where at level 2 one weighed component keeps its latents and
    the other does not (the planner merges the two residuals into one stream)."""
    from cvae.edge.io.raster import read_raster

    return read_raster(shared_data / "scenes" / "s2_t33nza_10m_b2348.tif").pixels[:, :128, 128:256]


def test_a_tile_whose_weighed_components_split_decodes_to_what_the_planner_predicted(codec, split_crop, monkeypatch):
    """The merged residual is coded by the tile format's own coefficient coder (a v10 tile once carried a v5 stream
    here, which decoded to noise at levels 2-3). Two weighed components (the shipped 'auto' weighs one of 4 bands)."""
    from cvae.edge.codec import plan as plan_mod

    monkeypatch.setattr(plan_mod, "NETWORK_COMPONENTS", 2)
    merged = []
    merge = plan_mod._merge
    monkeypatch.setattr(plan_mod, "_merge", lambda *args: merged.append(args) or merge(*args))
    a = codec.analyze(split_crop, None)
    p = codec.plan(a, 2)
    assert merged and 0 < p.present.sum() < 2
    decoded = codec.decompress(codec.encode(a, 2)).pixels.astype(np.float64)
    predicted = codec.hybrid.pixels(a, 2, p).astype(np.float64)
    assert np.abs(decoded - predicted).max() <= 1
    psnr = 10 * np.log10(float(split_crop.max() - split_crop.min()) ** 2 / np.mean((decoded - split_crop) ** 2))
    assert psnr > 28  # a level-2 reconstruction, not noise


def test_a_mixed_tile_decodes_to_what_the_planner_predicted(codec, crop):
    a = codec.analyze(crop, None)
    plan = codec.plan(a, LEVEL)
    assert 0 < plan.present.sum() < a.shape[0]
    data = codec.encode(a, LEVEL)
    decoded = codec.decompress(data).pixels.astype(np.float64)
    predicted = codec.hybrid.pixels(a, LEVEL, plan).astype(np.float64)
    # the same float steps on both sides (ONNX Runtime FP32 here): at most one unit of rounding apart
    assert np.abs(decoded - predicted).max() <= 1
    psnr = 10 * np.log10(float(crop.max() - crop.min()) ** 2 / np.mean((decoded - crop) ** 2))
    assert psnr > 30  # a level-3 reconstruction, not noise


def test_components_after_the_first_ones_never_run_the_network(bundle, crop):
    codec = bundle.codec("onnxruntime", mode_search="auto")  # a fresh cache: nothing analysed yet
    a = codec.analyze(crop, None)
    step = codec.hybrid.model.preset_step(LEVEL)
    codec.plan(a, LEVEL)
    weighed = np.arange(a.shape[0]) < max(NETWORK_COMPONENTS, a.shape[0] // 4)
    assert not weighed.all()  # the test means something: a 4-band tile weighs 1 of its components
    np.testing.assert_array_equal(a.cache.y_done, weighed & codec.hybrid.model.latents.coded(a, codec.latent_level(LEVEL)))

