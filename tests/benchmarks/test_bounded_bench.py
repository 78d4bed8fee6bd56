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
from rasterio.transform import Affine, from_origin

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


def test_lossless_run_sets_jpeg_xl_beside_the_bounded_peers(scene, tmp_path):
    """--bounds 0: JPEG XL lossless at effort 7 and 9 measured (exact), and the ratio against the best of all peers."""
    assert bounded_bench.main([str(scene), "--bounds", "0", "--repeats", "1", "--rate-levels", "0", "--out",
                               str(tmp_path), "--name", "bj"]) == 0
    rec = json.loads((tmp_path / "bj.json").read_text())
    ((b,),) = [s["bounds"] for s in rec["scenes"]]
    assert b["max_error"] == 0 and b["ours"]["max_abs_error"] == 0
    for name in ("jpegxl_lossless", "jpegxl_lossless_e9"):
        assert b[name]["max_abs_error"] == 0 and b[name]["nbytes"] > 0
        assert b["ours_over"][name] == pytest.approx(b["ours"]["bits_per_sample"] / b[name]["bits_per_sample"])
    best = min(b[n]["bits_per_sample"] for n in bounded_bench.BEST_OF_WITH_JXL if "bits_per_sample" in b[n])
    assert b["ours_over_best_peer_with_jxl"] == pytest.approx(b["ours"]["bits_per_sample"] / best)
    assert b["ours_over_best_peer_with_jxl"] >= b["ours_over_best_peer"]  # more peers: the best one is no worse
    assert "0" in rec["median_ours_over_best_of_ccsds123_jpegls_jpegxl"]
    assert "ratio+JXL" in (tmp_path / "bj.md").read_text() and "JPEG XL" in (tmp_path / "bj_summary.txt").read_text()


@pytest.mark.parametrize("degrees,shift,aligned", [(2.0, (0.37, 0.61), False), (0.0, (0.0, 0.0), True)])
def test_resampled_stack_puts_replicated_pixels_off_the_aligned_grid(tmp_path, degrees, shift, aligned):
    """make_validation_set --resampled on a fake Major-TOM folder (noise at 10, 20 and 60 m): the 20 m band comes
    out pixel-replicated (half the horizontal neighbours equal) but on aligned 2x2 blocks only on the control grid."""
    mvs = sibling("make_validation_set")
    folder = tmp_path / mvs.MAJOR_TOM
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for b in mvs.S2_BANDS:
        res = 60 if b in ("B01", "B09") else 10 if b in ("B02", "B03", "B04", "B08") else 20
        n = 1200 // res
        with rasterio.open(folder / f"{b}.tif", "w", driver="GTiff", width=n, height=n, count=1, dtype="uint16",
                           crs="EPSG:32633", transform=Affine(res, 0, 800000, 0, -res, 10000)) as d:
            d.write(rng.integers(1000, 5000, (1, n, n), dtype=np.uint16))
    dst = tmp_path / "rs.tif"
    mvs.stack_resampled(tmp_path, dst, mvs.Regrid(degrees, shift, 100, "int16", -1000))
    with rasterio.open(dst) as d:
        px = d.read()
    assert px.shape == (12, 100, 100) and px.dtype == np.int16 and px.min() >= 0  # inside the tile: no fill
    b05 = px[mvs.S2_BANDS.index("B05")]
    assert 0.4 < (b05[:, 1:] == b05[:, :-1]).mean() < 0.6
    blocks_equal = (b05[0::2, 0::2] == b05[1::2, 1::2]).mean()
    assert blocks_equal == 1.0 if aligned else blocks_equal < 0.6
