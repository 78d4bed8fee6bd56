"""A decoded scene keeps the input's dtype, band descriptions, colour interpretation and tags (issue 11),
on real files of every dtype in ../shared/data."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio

from cvae.edge.cli import encode_main
from cvae.ground.cli import main as decode_main

REAL = ("rasterio-testdata/RGB.byte.tif",                      # uint8, 3 bands, nodata border
        "solaris-spacenet/sample_geotiff_custom_proj.tif",     # int16
        "solaris-spacenet/preproc_tutorial/ms1.tif",           # float64 holding integers
        "rio-pansharpen-landsat8/LC81070352015122LGN00/LC81070352015122LGN00_B2.tif")  # uint16


@pytest.mark.parametrize("rel", REAL)
def test_decoded_scene_keeps_dtype_descriptions_colorinterp_and_tags(shared_data, rel, tmp_path, capsys):
    src = shared_data / "train" / rel
    with rasterio.open(src) as ds:
        profile = dict(ds.profile)
        window = rasterio.windows.Window(0, 0, min(ds.width, 300), min(ds.height, 300))
        px = ds.read(window=window)
        profile.update(width=px.shape[2], height=px.shape[1], transform=ds.window_transform(window))
        colorinterp = ds.colorinterp
    path = tmp_path / "scene.tif"
    descriptions = [f"band {i} (test)" for i in range(1, px.shape[0] + 1)]
    with rasterio.open(path, "w", **profile) as ds:  # the real pixels, with descriptions and tags added
        ds.write(px)
        for i, d in enumerate(descriptions, 1):
            ds.set_band_description(i, d)
        ds.colorinterp = colorinterp
        ds.update_tags(SENSOR="test-sensor", ACQUIRED="2020-01-01")
    assert encode_main([str(path), "-o", str(tmp_path / "p"), "--level", "6"]) == 0
    assert decode_main([str(tmp_path / "p"), "-o", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    with rasterio.open(tmp_path / "o" / "scene.tif") as out, rasterio.open(path) as ref:
        assert out.dtypes == ref.dtypes
        assert list(out.descriptions) == descriptions
        assert out.colorinterp == ref.colorinterp
        tags = out.tags()
        assert tags["SENSOR"] == "test-sensor" and tags["ACQUIRED"] == "2020-01-01"
        assert tags["CVAE_MODEL_ID"]
        assert out.crs == ref.crs and out.transform.almost_equals(ref.transform)
        assert out.nodata == ref.nodata or (np.isnan(out.nodata) and np.isnan(ref.nodata))
        if ref.nodata is not None and not np.isnan(ref.nodata):  # per-band nodata: exactly where the input has it
            np.testing.assert_array_equal(out.read() == out.nodata, ref.read() == ref.nodata)


def test_samples_nodata_in_some_bands_only_come_back_as_nodata(shared_data, tmp_path, capsys):
    """RGB.byte has 710 pixels that are 0 (its nodata) in some bands only: they are data pixels, coded lossily,
    and the v3 per-band fill masks restore the exact nodata value in those bands."""
    src = shared_data / "train" / "rasterio-testdata" / "RGB.byte.tif"
    with rasterio.open(src) as ds:
        ref = ds.read()
        nodata = ds.nodata
    partial = (ref == nodata).any(0) & ~(ref == nodata).all(0)
    assert partial.sum() > 100
    assert encode_main([str(src), "-o", str(tmp_path / "p"), "--level", "2", "-q"]) == 0
    assert decode_main([str(tmp_path / "p"), "-o", str(tmp_path / "o"), "-q"]) == 0
    capsys.readouterr()
    with rasterio.open(tmp_path / "o" / "RGB.byte.tif") as out:
        np.testing.assert_array_equal(out.read() == nodata, ref == nodata)
