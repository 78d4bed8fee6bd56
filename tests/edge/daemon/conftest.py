from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin


def write_scene(path: Path, pixels: np.ndarray, nodata=None, crs="EPSG:32633") -> Path:
    c, h, w = pixels.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=c, dtype=pixels.dtype, nodata=nodata,
                       crs=crs, transform=from_origin(500000, 4000000, 10, 10)) as d:
        d.write(pixels)
    return path


@pytest.fixture(scope="session")
def scene_pixels():
    """SYNTHETIC pixels (4 bands uint16, 1024 x 1024, cvae.demo.synthetic_pixels) to build daemon inputs from,
    wherever real pixels are not the point: these tests run without ../shared/data."""
    from cvae.demo import synthetic_pixels

    return synthetic_pixels(1024, bands=4, seed=3)


@pytest.fixture(scope="session")
def real_pixels(shared_data):
    """Real Sentinel-2 pixels (4 bands uint16) to build daemon inputs from."""
    with rasterio.open(shared_data / "scenes" / "s2_t33nza_10m_b2348.tif") as d:
        return d.read()


@pytest.fixture
def daemon_dirs(tmp_path):
    base = tmp_path / "spool"
    (base / "inbox").mkdir(parents=True)
    return base


def make_config(base: Path, **extra) -> Path:
    import yaml

    cfg = {"base_dir": str(base), "level": 2, "poll_interval_s": 0.1, "retry_max_s": 0.2, **extra}
    p = base.parent / "cvae-edge.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p
