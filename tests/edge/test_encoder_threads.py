"""Tiles coded in parallel (``--threads``): the packets are byte-identical whatever the thread count."""
from __future__ import annotations

import pytest

from cvae.edge.encoder import EncodeOptions, encode_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from cvae.demo import synthetic_scene

    return synthetic_scene(tmp_path_factory.mktemp("threads") / "s.tif", size=300, seed=11)


@pytest.fixture(scope="module")
def one_thread_codec(bundle):
    return bundle.codec("onnxruntime", threads=1, mode_search="auto")  # the network in the tile threads too


@pytest.mark.parametrize("mode", [{"level": 1}, {"level": 6}, {"max_error": (2,)}, {"psnr": 45.0},
                                  {"tile_bytes": 4000}])
def test_packets_do_not_depend_on_the_thread_count(scene, bundle, codec, one_thread_codec, mode):
    runs = [encode_scene(scene, bundle, c, EncodeOptions(tile_size=128, scene_id=5, threads=n, **mode)).packets
            for c, n in ((codec, 1), (one_thread_codec, 2), (one_thread_codec, 3))]
    assert runs[0] == runs[1] == runs[2]
