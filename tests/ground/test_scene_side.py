"""Tile format v6: the scene's band ranges sent once in its metadata instead of in every tile (issue 17, side
information at low rates). The pixels are those of tiles carrying their own ranges; the bytes are 8 per band and
tile fewer, less the metadata copies'; crafted or missing ranges lose the scene or the tile with a reason."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import bitstream
from cvae.edge.codec import packets as pk
from cvae.edge.encoder import EncodeOptions, encode_scene, metadata_copies, scene_side
from cvae.ground.decoder import collect, decode_streams, metadata_problem

BANDS = 4


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from cvae.demo import synthetic_scene

    return synthetic_scene(tmp_path_factory.mktemp("side") / "s.tif", size=192, bands=BANDS, seed=3)


def _encode(scene, bundle, codec, level, every=16, **kw):
    return encode_scene(scene, bundle, codec, EncodeOptions(level=level, tile_size=64, scene_id=9,
                                                            metadata_every=every, **kw))


def _metas_and_tiles(packets):
    parts = next(iter(collect([b"".join(packets)], {}).values()))
    side = parts.meta.side()
    bodies = [parts.body(key) for key in sorted(parts.segments)]
    return parts.meta, side, [bitstream.unpack_tile(b, side)[0] for b in bodies]


@pytest.mark.parametrize("level", [1, 9])
def test_tiles_leave_their_band_ranges_to_the_metadata_and_decode_to_the_same_pixels(scene, bundle, codec, level):
    shared = _encode(scene, bundle, codec, level)  # 9 tiles, 2 metadata copies: the ranges go to the metadata
    own = _encode(scene, bundle, codec, level, every=1)  # 9 tiles, 10 copies: every tile carries its own
    meta, side, headers = _metas_and_tiles(shared.packets)
    assert meta.band_range is not None and all(h.version in (10, 11) and h.scene_range for h in headers)
    meta_own, side_own, headers_own = _metas_and_tiles(own.packets)
    assert side_own is None and meta_own.band_range is None and not any(h.scene_range for h in headers_own)
    assert shared.tiles == 9 and metadata_copies(9, 16) == 2 and metadata_copies(9, 1) == 10
    tile_bytes_saved = sum(own.tile_bytes) - sum(shared.tile_bytes)
    assert tile_bytes_saved == 8 * BANDS * 9
    assert shared.nbytes < own.nbytes
    for h, o in zip(headers, headers_own):
        np.testing.assert_array_equal(h.lo, o.lo)
        np.testing.assert_array_equal(h.hi, o.hi)
    [a], _ = decode_streams([b"".join(shared.packets)], bundle, codec)
    [b], _ = decode_streams([b"".join(own.packets)], bundle, codec)
    assert not a.tiles_lost and not b.tiles_lost
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_scenes_with_fewer_tiles_than_metadata_copies_and_bounded_scenes_keep_ranges_in_the_tiles(scene, bundle,
                                                                                                     codec):
    assert scene_side((np.zeros(BANDS), np.ones(BANDS)), tiles=2) is None  # 2 copies would each repeat them
    assert scene_side((np.zeros(BANDS), np.ones(BANDS)), tiles=3) is not None
    assert scene_side(None, tiles=50) is None  # no valid pixel: no range
    one = encode_scene(scene, bundle, codec, EncodeOptions(level=1, tile_size=256, scene_id=9))
    meta, _, headers = _metas_and_tiles(one.packets)
    assert meta.band_range is None and not headers[0].scene_range
    bounded = _encode(scene, bundle, codec, None, max_error=(2,))
    meta, _, headers = _metas_and_tiles(bounded.packets)
    assert meta.band_range is None and all(h.version == bitstream.VERSION_FEEDBACK for h in headers)


def test_a_tile_whose_metadata_lacks_the_ranges_is_lost_with_the_reason(scene, bundle, codec):
    """Crafted metadata without ``band_range`` (or a ground that drops unknown keys): the tiles referring to it are
    reported lost, naming the scene's band ranges; nothing is decoded with made-up ranges."""
    shared = _encode(scene, bundle, codec, 9)
    parts = next(iter(collect([b"".join(shared.packets)], {}).values()))
    meta = {k: v for k, v in parts.meta.to_dict().items() if k != "band_range"}
    writer = pk.PacketWriter(0x1C5)
    mid = bytes.fromhex(bundle.model_id)[:4]
    stream = writer.packets(pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=9),
                            pk.encode_metadata(meta))
    for row, col in sorted(parts.segments):
        body = parts.body((row, col))
        stream += writer.packets(pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=mid, scene_id=9, row=row, col=col,
                                                    level=9), body)
    [s], _ = decode_streams([b"".join(stream)], bundle, codec)
    assert not s.tiles_ok and len(s.tiles_lost) == 9
    assert all("scene's band ranges" in t["reason"] for t in s.tiles_lost)


GOOD = {"v": 1, "name": "s", "width": 40, "height": 30, "bands": 2, "dtype": "uint16", "nodata": 0, "crs": None,
        "transform": None, "tile": 256, "model_id": "ab" * 8}


@pytest.mark.parametrize("value, why", [
    ("00" * 15, "hex digits"), (12, "hex digits"), ("zz" * 16, "not hex"),
    (np.array([[0, 1], [0, np.nan]], ">f4").tobytes().hex(), "not finite"),
    (np.array([[5, 1], [0, 1]], ">f4").tobytes().hex(), "not ordered"),
])
def test_crafted_band_range_metadata_is_refused_with_its_key(value, why):
    problem = metadata_problem({**GOOD, "band_range": value})
    assert problem is not None and "band_range" in problem and why in problem


def test_good_band_range_metadata_passes_and_round_trips():
    side = bitstream.SceneSide(np.array([0, -3.5], np.float32), np.array([1, 7e9], np.float32))
    meta = {**GOOD, **side.to_metadata()}
    assert metadata_problem(meta) is None
    back = bitstream.SceneSide.from_metadata(meta, 2)
    assert back.lo.tobytes() == side.lo.tobytes() and back.hi.tobytes() == side.hi.tobytes()


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(max_size=40), st.binary(max_size=20).map(bytes.hex), st.integers(), st.none(),
                       st.lists(st.floats(), max_size=4)))
def test_any_band_range_value_is_accepted_or_refused_without_raising(value):
    problem = metadata_problem({**GOOD, "band_range": value})
    assert problem is None or (isinstance(problem, str) and "band_range" in problem)


def test_pack_refuses_scene_ranges_before_v6():
    h = bitstream.TileHeader(model_id=b"abcd", level=0, dtype=np.dtype("uint16"), bands=1, height=16, width=16,
                             lo=np.zeros(1, np.float32), hi=np.ones(1, np.float32), mean=np.zeros(1, np.float32),
                             matrix=np.full((1, 1), 127, np.int8), version=bitstream.VERSION_SCENE, scene_range=True)
    data = bitstream.pack_tile(h, np.zeros(1, bool), (b"", b"", b""), None)
    assert bitstream.unpack_tile(data, bitstream.SceneSide(h.lo, h.hi))[0].scene_range
    with pytest.raises(ValueError, match="version 6"):
        bitstream.pack_tile(dataclasses.replace(h, version=bitstream.VERSION_CONTEXT), np.zeros(1, bool),
                            (b"", b"", b""), None)
