"""Commands that cannot do what was asked say why in one line on stderr and exit non-zero (issue 11)."""
from __future__ import annotations

import numpy as np
import pytest

from cvae.edge.cli import encode_main
from cvae.ground.cli import main as decode_main


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path_factory.mktemp("scene") / "s.tif"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:80]
    px = np.stack([1000 + 300 * np.sin(xx / 7 + k) + 200 * np.cos(yy / 5) + rng.normal(0, 20, (96, 80))
                   for k in range(3)]).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=80, height=96, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as ds:
        ds.write(px)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    good, bad = d / "good.key", d / "bad.key"
    good.write_text("7:" + bytes(range(32)).hex())
    bad.write_text("7:" + bytes(range(1, 33)).hex())
    good.chmod(0o600), bad.chmod(0o600)
    return good, bad


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("cvae-")]
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_decode_of_sealed_packets_without_a_key_names_the_fix(scene, keys, tmp_path, capsys):
    assert encode_main([str(scene), "-o", str(tmp_path / "p"), "--level", "1", "--key", str(keys[0])]) == 0
    capsys.readouterr()
    assert decode_main([str(tmp_path / "p"), "-o", str(tmp_path / "o")]) == 1
    assert "no key was given; pass --key" in _one_line(capsys.readouterr().err)
    assert decode_main([str(tmp_path / "p"), "-o", str(tmp_path / "o"), "--key", str(keys[1])]) == 1
    assert "failed authentication" in _one_line(capsys.readouterr().err)
    assert decode_main([str(tmp_path / "p"), "-o", str(tmp_path / "o"), "--key", str(keys[0])]) == 0


def test_decode_of_a_geotiff_or_an_empty_folder_says_what_is_wrong(scene, tmp_path, capsys):
    assert decode_main([str(scene), "-o", str(tmp_path / "o")]) == 1
    assert "no CCSDS packet found" in _one_line(capsys.readouterr().err)
    (tmp_path / "empty").mkdir()
    assert decode_main([str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 1
    assert "no packet files found" in _one_line(capsys.readouterr().err)


def test_unmet_scene_budget_warns_by_default_and_fails_when_strict(scene, tmp_path, capsys):
    assert encode_main([str(scene), "-o", str(tmp_path / "w"), "--scene-bytes", "100"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "--scene-bytes 100 cannot be met" in err
    assert encode_main([str(scene), "-o", str(tmp_path / "s"), "--tile-bytes", "10", "--strict-budget"]) == 3
    assert "--tile-bytes 10 cannot be met" in _one_line(capsys.readouterr().err)
    assert not list((tmp_path / "s").glob("*.pkt"))


def test_python_m_cvae_dispatches_and_reports_versions():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cvae", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("cvae ") and "model " in out.stdout
    out = subprocess.run([sys.executable, "-m", "cvae", "encode", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "model " in out.stdout
    out = subprocess.run([sys.executable, "-m", "cvae", "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr


def test_decoded_geotiff_and_report_carry_provenance(scene, tmp_path, capsys):
    import json

    import rasterio

    assert encode_main([str(scene), "-o", str(tmp_path / "p"), "--level", "5"]) == 0
    assert decode_main([str(tmp_path / "p"), "-o", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    entry = report["scenes"][0]
    assert entry["output"].endswith("s.tif") and entry["levels"] == {"5": 1} and entry["tile_bits_per_sample"] > 0
    assert report["tool_version"] and report["model_id"].startswith(entry["model_id"])
    with rasterio.open(entry["output"]) as ds:
        tags = ds.tags()
    assert tags["CVAE_MODEL_ID"] == entry["model_id"] and tags["CVAE_LEVELS"] == "5:1"
    assert tags["CVAE_TOOL"].startswith("cvae-decode ") and tags["CVAE_TILES_LOST"] == "0"


def test_encode_takes_a_folder_and_reports_progress(scene, tmp_path, capsys):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(scene, folder / "one.tif")
    shutil.copy(scene, folder / "two.tif")
    assert encode_main([str(folder), "-o", str(tmp_path / "p"), "--level", "1"]) == 0
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["one.pkt", "two.pkt"]
    capsys.readouterr()
    assert encode_main([str(folder / "one.tif"), "-o", str(tmp_path / "q"), "--level", "99"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_same_named_and_very_long_named_scenes_decode_side_by_side(scene, tmp_path, capsys):
    import shutil

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    long_name = "x" * 230
    shutil.copy(scene, tmp_path / "a" / "dup.tif")
    shutil.copy(scene, tmp_path / "b" / "dup.tiff")
    shutil.copy(scene, tmp_path / "a" / f"{long_name}.tif")
    assert encode_main([str(tmp_path / "a" / "dup.tif"), str(tmp_path / "a" / f"{long_name}.tif"),
                        "-o", str(tmp_path / "p1"), "--level", "1", "-q"]) == 0
    assert encode_main([str(tmp_path / "b" / "dup.tiff"), "-o", str(tmp_path / "p2"), "--level", "2", "-q"]) == 0
    assert decode_main([str(tmp_path / "p1"), str(tmp_path / "p2"), "-o", str(tmp_path / "o"), "-q"]) == 0
    outs = sorted(f.name for f in (tmp_path / "o").glob("*.tif"))
    assert len(outs) == 3 and all(len(n) <= 120 for n in outs)


@pytest.mark.parametrize("command", ["cvae-encode", "cvae-decode", "cvae-edge", "cvae-export", "cvae-train",
                                     "cvae-bench", "cvae-demo"])
def test_every_command_prints_its_versions_with_no_other_argument(command):
    import shutil
    import subprocess

    exe = shutil.which(command)
    if exe is None:
        pytest.skip(f"{command} is not installed as a script")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "0.1.0" in out.stdout and "model" in out.stdout
