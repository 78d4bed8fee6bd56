"""benchmarks/harness/bounded_bench.py: ours and the peers at each bound in one run, every decode checked."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from bench_common import sibling  # benchmarks/common is on pytest's pythonpath
from rasterio.transform import from_origin

bounded_bench = sibling("bounded_bench")


@pytest.fixture(scope="module")
def ccsds123_peer():
    """The CCSDS 123 peer's binary, built on demand with its build.sh (one C99 file; a C compiler is all it needs),
    so that a bare clone runs this file without .ci/run. Skips when there is no compiler; a compiler that fails
    on the file is a real defect and fails."""
    binary = bounded_bench.lp.CCSDS123_BINARY
    if binary.is_file():
        return binary
    cc = os.environ.get("CC", "cc")
    if not cc.split() or shutil.which(cc.split()[0]) is None:
        pytest.skip(f"the CCSDS 123 peer ({binary}) is not built and there is no C compiler ({cc!r}) to build it: "
                    "install one (apt-get install build-essential) or run benchmarks/peers/ccsds123/build.sh")
    script = binary.parents[1] / "build.sh"
    r = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not binary.is_file():
        pytest.fail(f"{script} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return binary


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from cvae.demo import synthetic_pixels

    px = synthetic_pixels(size=96, bands=3, seed=4)
    px[:, :10, :20] = 0
    path = tmp_path_factory.mktemp("bb") / "tiny.tif"
    with rasterio.open(path, "w", driver="GTiff", width=96, height=96, count=3, dtype="uint16", nodata=0,
                       crs="EPSG:32633", transform=from_origin(0, 0, 10, 10)) as d:
        d.write(px)
    return path


def test_every_bound_is_measured_for_ours_and_the_peers(scene, tmp_path):
    assert bounded_bench.main([str(scene), "--repeats", "1", "--rate-levels", "1", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "bounded.json").read_text())
    (s,) = rec["scenes"]
    assert [b["max_error"] for b in s["bounds"]] == [0, 1, 2, 4, 8, 16, 32]  # 12-bit data: the wide bounds too
    for b in s["bounds"]:
        assert b["ours"]["max_abs_error"] <= b["max_error"]
        assert "bits_per_sample" in b["jpegls"]
        assert ("bits_per_sample" in b.get("jpeg2000_lossless", {})) == (b["max_error"] == 0)
    sizes = [b["ours"]["bits_per_sample"] for b in s["bounds"]]
    assert sizes == sorted(sizes, reverse=True)
    assert s["rate_points"][0]["level"] == 11 and "E0" not in (tmp_path / "bounded.md").read_text().split("overlap")[1]


def test_a_broken_bound_aborts_the_run(monkeypatch, ccsds123_peer):
    """A peer whose decode misses the bound stops the run (the CCSDS 123 peer: the one that always runs here)."""
    real = bounded_bench.lp.check_bound

    def lying(name, pixels, decoded, e):
        return real(name, pixels, decoded + np.asarray(e + 1, decoded.dtype), e)

    monkeypatch.setattr(bounded_bench.lp, "check_bound", lying)
    with pytest.raises(bounded_bench.lp.PeerBoundError):
        bounded_bench.peers(np.full((1, 8, 8), 100, np.uint16), np.ones((8, 8), bool), 1, 1)
