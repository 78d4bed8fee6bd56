"""The encoder's scene metadata (edge/scene_metadata.py) is a SceneMetadata that reads back as itself, and a scene
the ground would refuse is refused by the encoder, before its first packet, with the fix."""
from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from cvae.edge.codec.metadata import SceneMetadata
from cvae.edge.errors import InputError
from cvae.edge.io.raster import Raster
from cvae.edge.scene_metadata import scene_metadata


def _raster(dtype="uint16", nodata=0.0, **kw) -> Raster:
    px = np.ones((3, 20, 30), dtype)
    profile = {"crs": CRS.from_epsg(32633), "transform": from_origin(500000, 4000000, 10, 10)}
    return Raster(px, np.ones((20, 30), bool), nodata, profile, **kw)


def test_metadata_reads_back_as_itself(bundle):
    r = _raster(descriptions=("B2", "B3", None), colorinterp=("red", "green", "blue"), tags={"SENSOR": "MSI"})
    meta = scene_metadata(r, "s", bundle, 256, extra={"max_error": [0, 1, 2], "scene_id": 7})
    back = SceneMetadata.from_bytes(meta.to_bytes())
    assert back == meta and back.to_bytes() == meta.to_bytes()
    assert back.max_error == (0, 1, 2) and back.extra == {"scene_id": 7} and back.crs == "EPSG:32633"
    assert back.descriptions == ("B2", "B3", "") and back.tags == {"SENSOR": "MSI"}


@pytest.mark.parametrize("dtype,nodata", [("uint16", -9999.0), ("uint8", 300.0), ("uint8", 0.5), ("int16", 1e10)])
def test_a_nodata_the_dtype_cannot_hold_is_refused_with_the_fix(bundle, dtype, nodata):
    with pytest.raises(InputError, match="nodata.*gdal_edit"):
        scene_metadata(_raster(dtype, nodata), "s", bundle, 256)


def test_float_nodata_within_range_and_nan_are_accepted(bundle):
    assert scene_metadata(_raster("float32", float("nan")), "s", bundle, 256).nodata != 0
    assert scene_metadata(_raster("float32", -3.4e38), "s", bundle, 256).nodata == -3.4e38
