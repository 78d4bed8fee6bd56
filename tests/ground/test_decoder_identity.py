"""Scene identity on the ground: scenes of two encoders never merge, even with the same scene id and name."""
import numpy as np


def test_two_encoders_with_the_same_scene_id_and_name_give_two_scenes(tmp_path, bundle):
    import rasterio
    from rasterio.transform import from_origin

    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    rng = np.random.default_rng(3)
    streams = []
    for apid, folder in ((0x1C5, "sat_a"), (0x1C6, "sat_b")):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "scene.tif"
        px = rng.integers(0, 4000, (2, 48, 40)).astype(np.uint16)
        with rasterio.open(path, "w", driver="GTiff", width=40, height=48, count=2, dtype="uint16",
                           crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as d:
            d.write(px)
        codec = bundle.codec()
        streams.append(b"".join(encode_scene(path, bundle, codec, EncodeOptions(level=1, scene_id=7, apid=apid)).packets))
    scenes, report = decode_streams(streams, bundle, bundle.codec())
    assert len(scenes) == 2 and {s.apid for s in scenes} == {0x1C5, 0x1C6}
    assert all(s.scene_id == 7 and not s.tiles_lost for s in scenes)
    assert all(e["duplicate_segments"] == 0 for e in report["scenes"])
    assert not np.array_equal(scenes[0].pixels, scenes[1].pixels)
