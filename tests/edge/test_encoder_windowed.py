"""Reading a scene one tile row at a time gives the packets of the whole-scene path, byte for byte (issue 10:
memory that does not grow with the scene)."""
from __future__ import annotations

import numpy as np
import pytest

from cvae.edge.encoder import EncodeOptions, _encode_by_rows, encode_scene

SCENES = ("scenes/l8_lc81210442015044_b234.tif",                 # uint16, zero-filled nodata border
          "train/rasterio-testdata/RGB.byte.tif",                # uint8, nodata 0
          "train/solaris-spacenet/preproc_tutorial/ms1.tif",     # float64 holding integers
          "train/solaris-spacenet/sample_geotiff_custom_proj.tif")  # int16, nodata -9999


def _whole_scene(path, bundle, codec, opts):
    """The whole-scene path: a scene budget so large that every tile gets the top level, i.e. --level top."""
    import cvae.edge.encoder as enc

    real = enc._encode_by_rows
    try:
        enc._encode_by_rows = None  # unused on this path
        return encode_scene(path, bundle, codec, EncodeOptions(scene_bytes=1 << 40, scene_id=7))
    finally:
        enc._encode_by_rows = real


@pytest.mark.parametrize("rel", SCENES)
def test_row_by_row_encoding_matches_the_whole_scene_path(shared_data, rel, bundle, codec):
    path = shared_data / rel
    top = codec.levels - 1
    whole = _whole_scene(path, bundle, codec, None)
    assert set(whole.levels) == {top}
    rows = _encode_by_rows(path, bundle, codec, EncodeOptions(level=top, scene_id=7), None, None)
    assert rows.levels == whole.levels
    assert b"".join(rows.packets) == b"".join(whole.packets)


def test_scan_matches_read_raster_statistics(shared_data):
    from cvae.edge.io.raster import band_ranges, read_raster, scan_raster

    for rel in SCENES:
        path = shared_data / rel
        r = read_raster(path)
        info = scan_raster(path, rows=64)
        ref = band_ranges(r.pixels, r.valid, r.nodata)
        np.testing.assert_array_equal(info.band_range[0], ref[0])
        np.testing.assert_array_equal(info.band_range[1], ref[1])


@pytest.mark.parametrize("nodata", [None, 0], ids=["no_nodata", "nodata_border_and_band_fill"])
def test_row_by_row_encoding_matches_the_whole_scene_path_on_a_synthetic_scene(tmp_path, bundle, codec, nodata):
    """The same check without ../shared/data: a SYNTHETIC scene, with a nodata border and a pixel that is
    fill in one band only (the band fill mask) in the second case."""
    import rasterio
    from rasterio.transform import from_origin

    from cvae.demo import synthetic_pixels

    px = synthetic_pixels(300, bands=3, seed=2)
    if nodata is not None:
        px[:, :40, :] = nodata
        px[1, 100:120, 50:90] = nodata
    path = tmp_path / "synthetic.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=300, count=3, dtype="uint16", nodata=nodata,
                       crs="EPSG:32633", transform=from_origin(500000, 4500000, 10, 10)) as d:
        d.write(px)
    top = codec.levels - 1
    whole = _whole_scene(path, bundle, codec, None)
    rows = _encode_by_rows(path, bundle, codec, EncodeOptions(level=top, scene_id=7), None, None)
    assert rows.levels == whole.levels == [top] * 4
    assert b"".join(rows.packets) == b"".join(whole.packets)
