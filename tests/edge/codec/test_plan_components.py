"""'auto' on residual levels weighs the network per component: each weighed component keeps its latents only where
they pay in D + lambda R on the coded bits, the header's ``present`` says which, and the others never run the
network. On a real Sentinel-2 crop (skipped where ../shared/data is absent)."""
from __future__ import annotations

import numpy as np
import pytest

from cvae.edge.codec import coefs
from cvae.edge.codec.plan import NETWORK_COMPONENTS, rd_lambda

LEVEL = 3  # a residual level that runs the network (levels 2-6 of the shipped ladder)


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
    codec = bundle.codec("onnxruntime")  # a fresh cache: nothing analysed yet
    a = codec.analyze(crop, None)
    step = codec.hybrid.model.preset_step(LEVEL)
    codec.plan(a, LEVEL)
    weighed = np.arange(a.shape[0]) < max(NETWORK_COMPONENTS, a.shape[0] // 4)
    assert not weighed.all()  # the test means something: a 4-band tile weighs 2 of its components
    np.testing.assert_array_equal(a.cache.y_done, weighed & codec.hybrid.model.latents.coded(a, codec.latent_level(LEVEL)))

