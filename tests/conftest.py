import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Rewritten encoders (cvae.edge.runtime.ort_blocked) go to a folder of the run, not the user's cache."""
    old = os.environ.get("CVAE_CACHE_DIR")
    os.environ["CVAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cvae-cache"))
    yield
    if old is None:
        os.environ.pop("CVAE_CACHE_DIR", None)
    else:
        os.environ["CVAE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent on this machine")
    return SHARED


@pytest.fixture(scope="session")
def bundle():
    from cvae.edge.bundle import Bundle

    return Bundle.load()


@pytest.fixture(scope="session")
def codec(bundle):
    return bundle.codec("onnxruntime", mode_search="auto")  # the networks' paths: not this machine's CPU default


@pytest.fixture(scope="session")
def real_scene(shared_data):
    """A real 4-band Sentinel-2 scene (uint16, 120 x 120)."""
    from cvae.edge.io.raster import read_raster

    return read_raster(shared_data / "scenes" / "s2_ben_36_85_b2348.tif")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
