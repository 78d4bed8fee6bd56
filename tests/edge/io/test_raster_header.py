"""Hostile rasters are refused from their header, before any pixel is read; NaN nodata is handled (issue 10)."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cvae.edge.errors import InputError
from cvae.edge.io.raster import read_raster


def test_huge_declared_size_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100_000, height=100_000, count=1, dtype="uint8",
                       tiled=True, sparse_ok=True, compress="deflate"):
        pass  # a small sparse file declaring 10^10 samples
    assert path.stat().st_size < 5_000_000
    with pytest.raises(InputError, match="exceed the limit"):
        read_raster(path)  # would need ~10 GB if it read first


def test_too_many_bands_or_mixed_dtypes_are_refused(tmp_path):
    path = tmp_path / "bands.tif"
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=40, dtype="uint8") as ds:
        ds.write(np.zeros((40, 8, 8), np.uint8))
    with pytest.raises(InputError, match="40 bands exceed"):
        read_raster(path)


def test_nan_nodata_float_scene_encodes_and_decodes(tmp_path, bundle, codec):
    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams

    rng = np.random.default_rng(0)
    px = (rng.random((2, 64, 64)) * 1000).astype(np.float32)
    px[:, :10, :] = np.nan
    path = tmp_path / "nan.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=2, dtype="float32", nodata=float("nan"),
                       crs="EPSG:32633", transform=from_origin(0, 0, 1, 1)) as ds:
        ds.write(px)
    r = read_raster(path)
    assert not r.valid[:10].any() and r.valid[10:].all() and np.isfinite(r.pixels).all()
    enc = encode_scene(path, bundle, codec, EncodeOptions(level=2))
    scenes, _ = decode_streams([b"".join(enc.packets)], bundle, codec)
    assert len(scenes) == 1 and not scenes[0].valid[:10].any()
