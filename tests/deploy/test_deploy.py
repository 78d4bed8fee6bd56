import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cvae.edge.daemon.config import DaemonConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed here")
    return exe


def _unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this Python (verify needs it to exist on this machine)."""
    unit = (DEPLOY / "cvae-edge.service").read_text()
    path = tmp_path / "cvae-edge.service"
    path.write_text(unit.replace("/opt/cvae/venv/bin/cvae-edge", sys.executable))
    return path


def test_systemd_analyze_accepts_the_unit(tmp_path):
    exe = _systemd_analyze()
    unit = (DEPLOY / "cvae-edge.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=on-failure" in unit
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "PrivateTmp=yes", "User="):
        assert hardening in unit
    r = subprocess.run([exe, "verify", str(_unit_here(tmp_path))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_example_config_validates(tmp_path):
    text = (DEPLOY / "cvae-edge.yaml").read_text().replace("/var/lib/cvae-edge", str(tmp_path))
    (tmp_path / "c.yaml").write_text(text)
    cfg = DaemonConfig.from_yaml(tmp_path / "c.yaml")
    assert cfg.inbox == tmp_path / "inbox" and cfg.level == 3


def test_systemd_security_exposure_is_low_and_the_spool_is_group_shared(tmp_path):
    import re

    exe = _systemd_analyze()
    unit = (DEPLOY / "cvae-edge.service").read_text()
    assert "StateDirectoryMode=0770" in unit and "UMask=0007" in unit and "Group=cvae" in unit
    r = subprocess.run([exe, "security", "--offline=true", str(_unit_here(tmp_path))], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    if m is None:
        pytest.skip(f"this systemd-analyze has no offline security report: {r.stderr.strip()[:200]}")
    assert float(m.group(1)) < 2.0  # 7.2 before the hardening lines (issue 11)
