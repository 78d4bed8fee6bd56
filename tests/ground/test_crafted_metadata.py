"""CRC-valid but crafted metadata never aborts a decoding run: the scene is refused in the report, the others
decode (issue 10). Property-based over the metadata fields."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from cvae.edge.codec import packets as pk
from cvae.ground.decoder import decode_streams, metadata_problem

GOOD = {"v": 1, "name": "s", "width": 40, "height": 30, "bands": 2, "dtype": "uint16", "nodata": 0,
        "crs": "EPSG:32633", "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0], "tile": 256,
        "model_id": "ab" * 8}

values = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                   st.text(max_size=30), st.lists(st.integers(), max_size=8), st.dictionaries(st.text(max_size=3),
                                                                                              st.integers(), max_size=2))


def test_good_metadata_passes():
    assert metadata_problem(GOOD) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(set(GOOD) - {"v", "name", "model_id"})), value=values)
def test_any_field_value_is_either_accepted_or_refused_without_raising(key, value):
    meta = {**GOOD, key: value}
    problem = metadata_problem(meta)
    assert problem is None or isinstance(problem, str)


def test_crafted_metadata_scene_is_reported_and_the_run_goes_on(bundle, codec):
    writer = pk.PacketWriter(0x1C5)
    mid = bytes.fromhex(bundle.model_id)[:4]
    streams = []
    for sid, meta in ((1, {**GOOD, "width": 10**9, "height": 10**9, "model_id": bundle.model_id[:16]}),
                      (2, {**GOOD, "crs": "EPSG:999999999", "model_id": bundle.model_id[:16]}),
                      (3, {**GOOD, "dtype": "complex128", "model_id": bundle.model_id[:16]})):
        h = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=sid)
        streams.append(b"".join(writer.packets(h, pk.encode_metadata(meta))))
    tile = np.full((2, 30, 40), 1000, np.uint16)
    good_meta = {**GOOD, "model_id": bundle.model_id[:16]}
    h = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=4)
    body = codec.compress(tile, 2)
    th = pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=mid, scene_id=4, row=0, col=0, level=2)
    streams.append(b"".join(writer.packets(h, pk.encode_metadata(good_meta)) + writer.packets(th, body)))
    scenes, report = decode_streams(streams, bundle, codec)
    assert [s.scene_id for s in scenes] == [4]
    errors = {e["scene_id"]: e.get("error", "") for e in report["scenes"]}
    assert all("refused" in errors[i] for i in (1, 2, 3))


def test_a_tile_declaring_a_shape_not_of_its_place_is_refused_before_decoding(bundle, codec, monkeypatch):
    """A crafted v4 header declaring 32 x 2048 x 2048 (gigabytes to decode) is lost with a reason, unallocated."""
    import struct

    from cvae.edge.codec.tile import TileCodec

    writer = pk.PacketWriter(0x1C5)
    mid = bytes.fromhex(bundle.model_id)[:4]
    meta = {**GOOD, "model_id": bundle.model_id[:16]}
    body = struct.pack(">B4sBBBHHB", 4, mid, 0, 1, 32, 2048, 2048, 0) + b"\0" * 64
    stream = b"".join(writer.packets(pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=7),
                                     pk.encode_metadata(meta)))
    stream += b"".join(writer.packets(pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=mid, scene_id=7, row=0, col=0),
                                      body))

    def never(self, data):
        raise AssertionError("decompress ran on a tile that cannot fit")

    monkeypatch.setattr(TileCodec, "decompress", never)
    (scene,), report = decode_streams([stream], bundle, codec)
    assert "declares (32, 2048, 2048)" in scene.tiles_lost[0]["reason"]
