"""cvae-decode output formats: Cloud-Optimized GeoTIFF (validated), creation options, overviews, bad options."""
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cvae.edge.cli import encode_main
from cvae.ground.cli import main as decode_main, parse_creation_options


@pytest.fixture
def packets(tmp_path, shared_data):
    with rasterio.open(shared_data / "scenes" / "naip_va_1m_rgbn.tif") as d:
        px = d.read()[:, :300, :300]
    src = tmp_path / "scene.tif"
    with rasterio.open(src, "w", driver="GTiff", width=300, height=300, count=px.shape[0], dtype=px.dtype,
                       crs="EPSG:32618", transform=from_origin(500000, 4000000, 1, 1)) as d:
        d.write(px)
    assert encode_main([str(src), "-o", str(tmp_path / "pk"), "--level", "1", "-q"]) == 0
    return tmp_path / "pk"


def test_cog_output_passes_cog_validation_and_keeps_georeferencing(packets, tmp_path):
    cogeo = pytest.importorskip("rio_cogeo.cogeo")
    assert decode_main([str(packets), "-o", str(tmp_path / "dec"), "--of", "COG", "-q"]) == 0
    (out,) = (tmp_path / "dec").glob("*.tif")
    valid, errors, _ = cogeo.cog_validate(str(out))
    assert valid, errors
    with rasterio.open(out) as d:
        assert d.crs.to_epsg() == 32618 and d.transform.a == 1 and d.count == 4
        assert d.tags()["CVAE_MODEL_ID"]


def test_creation_options_and_overviews_reach_the_gtiff(packets, tmp_path):
    assert decode_main([str(packets), "-o", str(tmp_path / "dec"), "--co", "COMPRESS=LZW", "--co", "PREDICTOR=2",
                        "--overviews", "-q"]) == 0
    (out,) = (tmp_path / "dec").glob("*.tif")
    with rasterio.open(out) as d:
        assert d.compression.name.lower() == "lzw" and d.overviews(1) == [2, 4]


def test_a_bad_creation_option_is_a_one_line_error(packets, tmp_path, capsys):
    assert decode_main([str(packets), "-o", str(tmp_path / "dec"), "--co", "COMPRESS", "-q"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(ValueError):
        parse_creation_options(["=x"])
