"""One validation of the quality targets for ``cvae-encode``, the daemon and ``cvae-edge check`` (issue 23, items
3 and 4): ``--psnr``/``psnr`` and ``--max-error``/``max_error`` are accepted or refused alike, with the format's
limits, before anything is coded."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from cvae.edge.cli import encode_main
from cvae.edge.daemon.cli import main as edge_main
from cvae.edge.daemon.config import ConfigError, DaemonConfig
from cvae.edge.quality import MAX_ERROR_LIMIT, PSNR_MAX, PSNR_MIN, TargetError, check_max_error, check_psnr


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path_factory.mktemp("scene") / "s.tif"
    px = np.random.default_rng(0).integers(900, 1100, (3, 48, 40)).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=40, height=48, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as ds:
        ds.write(px)
    return path


def _daemon_accepts(tmp_path, **target) -> bool:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"base_dir": str(tmp_path / "spool"), "level": None, **target}))
    try:
        DaemonConfig.from_yaml(p)
    except ConfigError:
        assert edge_main(["check", "--config", str(p)]) == 2  # cvae-edge check refuses it too
        return False
    return True


def _cli_accepts(scene, out, *args) -> bool:
    try:
        return encode_main([str(scene), "-o", str(out), "-q", *args]) == 0
    except SystemExit as e:  # argparse: exit 2 with the message
        assert e.code == 2
        return False


@pytest.mark.parametrize("text", ["1e308", "0", "-5", "1000", "nan", "inf", "-inf", "9.99", "200.5"])
def test_psnr_out_of_range_is_refused_by_cli_and_daemon_before_anything_is_written(scene, tmp_path, text, capsys):
    out = tmp_path / "out"
    assert not _cli_accepts(scene, out, "--psnr", text)  # 1e308 raised OverflowError, 0 and -5 coded at 8 dB
    assert "--psnr" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    assert not _daemon_accepts(tmp_path, psnr=float(text))
    with pytest.raises(TargetError, match="psnr: .* between 10 and 200"):
        check_psnr(float(text))


@pytest.mark.parametrize("value", [PSNR_MIN, 45.0, PSNR_MAX])
def test_psnr_in_range_is_accepted_by_cli_and_daemon(scene, tmp_path, value):
    assert _cli_accepts(scene, tmp_path / "out", "--psnr", str(value))
    assert _daemon_accepts(tmp_path, psnr=value)


def test_max_error_beyond_the_format_is_refused_by_config_check_and_cli(scene, tmp_path, capsys):
    """99999999999 passed the config and cvae-edge check, then every scene was quarantined."""
    for bad in (99999999999, MAX_ERROR_LIMIT + 1, [1, 99999999999], -1, [], 1.5, True):
        assert not _daemon_accepts(tmp_path, max_error=bad), bad
    err = capsys.readouterr().err
    assert "max_error: 99999999999 is out of range" in err and str(MAX_ERROR_LIMIT) in err
    for text in ("99999999999", "1,99999999999", "-1", "1.5"):
        assert not _cli_accepts(scene, tmp_path / "out", "--max-error", text)
    assert "--max-error" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_max_error_at_the_format_limit_is_accepted_and_codes(scene, tmp_path):
    assert _daemon_accepts(tmp_path, max_error=MAX_ERROR_LIMIT)
    assert _daemon_accepts(tmp_path, max_error=[0, 1, MAX_ERROR_LIMIT])
    assert check_max_error([0, 1, MAX_ERROR_LIMIT]) == (0, 1, MAX_ERROR_LIMIT)
    assert _cli_accepts(scene, tmp_path / "out", "--max-error", str(MAX_ERROR_LIMIT))
    assert (tmp_path / "out" / "s.pkt").stat().st_size > 0
