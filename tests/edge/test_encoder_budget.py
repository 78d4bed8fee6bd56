"""Encoder rate control (cvae.edge.encoder): per-tile and per-scene byte budgets, scene allocation."""
import numpy as np
import pytest

from cvae.edge.codec import packets as pk
from cvae.edge.encoder import EncodeOptions, encode_scene


@pytest.fixture(scope="module")
def scene_path(shared_data):
    return shared_data / "scenes" / "naip_va_1m_rgbn.tif"  # 597 x 510, 4 bands uint8, nodata 255


def test_tile_budget_picks_the_highest_level_that_fits(scene_path, bundle, codec):
    from cvae.edge.encoder import choose_level

    enc = encode_scene(scene_path, bundle, codec, EncodeOptions(tile_bytes=3000))
    tiles = [(pk.SecondaryHeader.unpack(p[6:25]), len(p) - 27) for p in enc.packets]
    for h, n in tiles:
        if h.base_kind == pk.KIND_TILE and h.level > 0:
            assert n <= 3000 * 1.03 + 16  # estimate vs actual: the coder's size tolerance


def test_scene_budget_is_respected_and_spent(scene_path, bundle, codec):
    low = encode_scene(scene_path, bundle, codec, EncodeOptions(level=0)).nbytes
    high = encode_scene(scene_path, bundle, codec, EncodeOptions(level=bundle.levels - 1)).nbytes
    budget = (low + high) // 2
    enc = encode_scene(scene_path, bundle, codec, EncodeOptions(scene_bytes=budget))
    assert enc.nbytes <= budget * 1.03
    assert enc.nbytes >= low


def test_allocate_scene_upgrades_cheapest_steps_first():
    from cvae.edge.encoder import allocate_scene

    est = np.array([[10, 20, 40], [10, 11, 12], [10, 30, 90.0]])
    np.testing.assert_array_equal(allocate_scene(est, 30), [0, 0, 0])
    np.testing.assert_array_equal(allocate_scene(est, 32), [0, 2, 0])
    np.testing.assert_array_equal(allocate_scene(est, 62), [1, 2, 1])  # uniform level 1 (61), then the +1 step
    np.testing.assert_array_equal(allocate_scene(est, 1000), [2, 2, 2])
