"""The default tile edge (issue 17, side information at low rates): 512 pixels on the levels that code latents only,
where per-tile costs weigh most, 256 elsewhere; an explicit ``tile_size`` always wins. The ground reads the edge
from the scene metadata, so any edge decodes."""
from __future__ import annotations

import numpy as np
import pytest

from cvae.edge.encoder import DEFAULT_TILE, LOW_RATE_TILE, EncodeOptions, encode_scene, tile_size_for
from cvae.ground.decoder import decode_streams


def test_the_rule(codec):
    latent_only = [lv for lv in range(codec.levels) if not codec.has_residual(lv)]
    assert latent_only == [0, 1]  # the shipped ladder
    for lv in range(codec.levels):
        assert tile_size_for(codec, EncodeOptions(level=lv)) == (LOW_RATE_TILE if lv in latent_only else DEFAULT_TILE)
    assert tile_size_for(codec, EncodeOptions(level=0, tile_size=128)) == 128
    assert tile_size_for(codec, EncodeOptions(max_error=(0,))) == DEFAULT_TILE
    assert tile_size_for(codec, EncodeOptions(tile_bytes=5000)) == DEFAULT_TILE
    assert tile_size_for(codec, EncodeOptions(psnr=40.0)) == DEFAULT_TILE


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from cvae.demo import synthetic_scene

    return synthetic_scene(tmp_path_factory.mktemp("tiles") / "s.tif", size=600, bands=3, seed=5)


@pytest.mark.parametrize("level, tiles", [(0, 4), (2, 9)])
def test_scenes_are_cut_by_the_rule_and_decode(scene, bundle, codec, level, tiles):
    enc = encode_scene(scene, bundle, codec, EncodeOptions(level=level, scene_id=3))
    assert enc.tiles == tiles  # 600 x 600: 2 x 2 tiles of 512 at level 0, 3 x 3 of 256 at level 2
    [s], report = decode_streams([b"".join(enc.packets)], bundle, codec)
    assert s.meta.tile == (512 if level == 0 else 256) and not s.tiles_lost and len(s.tiles_ok) == tiles
    assert s.pixels.shape == (3, 600, 600) and np.array_equal(s.valid, np.ones((600, 600), bool))
