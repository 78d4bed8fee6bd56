import json

import numpy as np
import pytest
import rasterio

from cvae.edge.codec import packets as pk
from cvae.edge.encoder import EncodeOptions, encode_scene
from cvae.ground.decoder import decode_streams
from cvae.metrics import psnr_bands


@pytest.fixture(scope="module")
def scene_path(shared_data):
    return shared_data / "scenes" / "naip_va_1m_rgbn.tif"  # 597 x 510, 4 bands uint8, nodata 255


@pytest.fixture(scope="module")
def encoded(scene_path, bundle, codec):
    return encode_scene(scene_path, bundle, codec, EncodeOptions(level=3, tile_size=256))


def _decode(streams, bundle, codec):
    scenes, report = decode_streams(streams, bundle, codec)
    return scenes, report


def test_scene_round_trip_keeps_georeferencing_and_quality(scene_path, encoded, bundle, codec):
    [s], report = _decode([b"".join(encoded.packets)], bundle, codec)
    with rasterio.open(scene_path) as ds:
        orig = ds.read()
        assert s.meta.crs == f"EPSG:{ds.crs.to_epsg()}"
        assert tuple(s.meta.transform) == tuple(ds.transform)[:6]
        assert s.meta.nodata == ds.nodata
    assert s.pixels.shape == orig.shape and s.pixels.dtype == orig.dtype
    assert not s.tiles_lost and len(s.tiles_ok) == encoded.tiles == 6
    valid = ~np.all(orig == 255, axis=0)
    assert psnr_bands(orig, s.pixels, valid) > 20
    np.testing.assert_array_equal(s.valid, valid)


def test_lost_packet_costs_only_its_tile(encoded, bundle, codec):
    tiles = [p for p in encoded.packets if pk.SecondaryHeader.unpack(p[6:25]).kind == pk.KIND_TILE]
    victim = tiles[2]
    [full], _ = _decode([b"".join(encoded.packets)], bundle, codec)
    [s], report = _decode([b"".join(p for p in encoded.packets if p is not victim)], bundle, codec)
    h = pk.SecondaryHeader.unpack(victim[6:25])
    assert [(t["row"], t["col"]) for t in s.tiles_lost] == [(h.row, h.col)]
    assert len(s.tiles_ok) == encoded.tiles - 1
    ys, xs = slice(h.row * 256, (h.row + 1) * 256), slice(h.col * 256, (h.col + 1) * 256)
    keep = np.ones(s.valid.shape, bool)
    keep[ys, xs] = False
    np.testing.assert_array_equal(s.pixels[:, keep], full.pixels[:, keep])  # the other tiles are untouched
    assert not s.valid[ys, xs].any()


def test_order_duplicates_and_split_files_do_not_matter(encoded, bundle, codec):
    rng = np.random.default_rng(0)
    ps = list(encoded.packets) + list(encoded.packets[:3])
    rng.shuffle(ps)
    [ref], _ = _decode([b"".join(encoded.packets)], bundle, codec)
    [s], report = _decode([b"".join(ps[:5]), b"".join(ps[5:])], bundle, codec)
    np.testing.assert_array_equal(s.pixels, ref.pixels)
    assert report["scenes"][0]["duplicate_segments"] >= 1


def test_scene_survives_loss_of_first_metadata_copy(encoded, bundle, codec):
    [s], _ = _decode([b"".join(encoded.packets[1:])], bundle, codec)
    assert len(s.tiles_ok) == encoded.tiles


def test_corruption_and_truncation_never_crash(encoded, bundle, codec):
    stream = b"".join(encoded.packets)
    rng = np.random.default_rng(1)
    for _ in range(10):
        b = bytearray(stream)
        for i in rng.integers(0, len(b), size=20):
            b[i] = int(rng.integers(0, 256))
        scenes, report = _decode([bytes(b)], bundle, codec)
        for s in scenes:
            assert len(s.tiles_ok) + len(s.tiles_lost) == encoded.tiles
    scenes, _ = _decode([stream[: len(stream) // 2]], bundle, codec)
    assert all(len(s.tiles_ok) < encoded.tiles for s in scenes)


def test_cli_round_trip_writes_one_geotiff_and_counts_every_byte(scene_path, tmp_path):
    from cvae.edge.cli import encode_main
    from cvae.ground.cli import main as decode_main

    assert encode_main([str(scene_path), "-o", str(tmp_path / "pk"), "--level", "2"]) == 0
    files = list((tmp_path / "pk").iterdir())
    assert [f.suffix for f in files] == [".pkt"]
    assert decode_main([str(tmp_path / "pk"), "-o", str(tmp_path / "out")]) == 0
    tifs = list((tmp_path / "out").glob("*.tif"))
    assert len(tifs) == 1
    with rasterio.open(tifs[0]) as d, rasterio.open(scene_path) as o:
        assert d.crs == o.crs and d.transform == o.transform and d.nodata == o.nodata
        assert d.count == o.count and d.dtypes == o.dtypes
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["scenes"][0]["tiles_lost"] == []


def test_cli_rejects_bad_arguments_with_a_message(scene_path, tmp_path, capsys):
    from cvae.edge.cli import encode_main

    assert encode_main([str(scene_path), "-o", str(tmp_path), "--level", "99"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert encode_main([str(tmp_path / "missing.tif"), "-o", str(tmp_path)]) == 2
    assert encode_main([str(scene_path), "-o", str(tmp_path), "--tile-size", "100"]) == 2


def test_encrypted_scene_decodes_only_with_the_key(scene_path, bundle, codec, tmp_path):
    from cvae.edge.codec.packets import PacketWriter
    from cvae.edge.codec.security import Opener, Sealer

    key = bytes(range(32))
    enc = encode_scene(scene_path, bundle, codec, EncodeOptions(level=1),
                       writer=PacketWriter(0x1C5, sealer=Sealer(9, key)))
    stream = b"".join(enc.packets)
    [s], report = decode_streams([stream], bundle, codec, Opener({9: key}))
    assert len(s.tiles_ok) == enc.tiles
    scenes, report = decode_streams([stream], bundle, codec)  # no key: nothing decodes, and the report says why
    assert scenes == [] and report["stats"]["secured_without_key"] == len(enc.packets)
    scenes, report = decode_streams([stream], bundle, codec, Opener({9: bytes(32)}))
    assert scenes == [] and report["stats"]["authentication_failures"] == len(enc.packets)
    # replayed copies are refused, the scene still decodes once
    [s], report = decode_streams([stream, stream], bundle, codec, Opener({9: key}))
    assert report["stats"]["replays"] == len(enc.packets) and len(s.tiles_ok) == enc.tiles
