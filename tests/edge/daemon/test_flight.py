"""Flight correctness of the daemon (issue 23, items 5 and 8): a refused scene leaves nothing behind, reloads
release what they replace and are taken between scenes, and the quota's cost does not grow with the outbox.

Inputs are SYNTHETIC (conftest.scene_pixels) or made here; no test needs ../shared/data. Memory and speed over
hours are measured by benchmarks/harness/soak.py, not here: the RSS bound below only catches a leak of whole engines."""
from __future__ import annotations

import json
import os
import weakref
from pathlib import Path

import numpy as np
import pytest

from conftest import make_config, write_scene
from cvae.edge.daemon import spool
from cvae.edge.daemon.cli import main as edge_main
from cvae.edge.daemon.config import DaemonConfig
from cvae.edge.daemon.journal import Journal
from cvae.edge.daemon.service import Service


def _status(cfg: Path, capsys) -> dict:
    capsys.readouterr()
    assert edge_main(["status", "--config", str(cfg)]) == 0
    return json.loads(capsys.readouterr().out)


def _true_floats(scene_pixels) -> np.ndarray:
    return scene_pixels[:, :128, :128].astype(np.float32) / 7.0  # not whole numbers: no bound in digital numbers


def test_true_float_scene_under_max_error_is_refused_before_any_packet(daemon_dirs, scene_pixels, capsys):
    """It left its opening metadata packet in the outbox (the ground saw a scene with every tile lost) and its
    journal entry active for ever."""
    write_scene(daemon_dirs / "inbox" / "a_float.tif", _true_floats(scene_pixels))
    write_scene(daemon_dirs / "inbox" / "b_int.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs, level=None, max_error=2)
    assert Service(DaemonConfig.from_yaml(cfg)).run(once=True) == 0
    reason = (daemon_dirs / "quarantine" / "a_float.tif.reason.txt").read_text()
    assert "not whole numbers" in reason
    assert (daemon_dirs / "done" / "b_int.tif").exists()
    status = _status(cfg, capsys)
    assert status["active"] == []
    assert status["counters"]["scenes_quarantined"] == 1 and status["counters"]["scenes_done"] == 1
    j = Journal(daemon_dirs / "state" / "journal.sqlite", read_only=True)
    [(scene,)] = j.db.execute("SELECT id FROM scenes WHERE name = 'a_float'").fetchall()
    assert j.scene_files(scene) == []  # refused from the header: not one unit reserved
    j.close()
    names = {p.name for p in (daemon_dirs / "outbox").glob("*.pkt")}
    assert names and not any(n.startswith(f"{scene:08d}_") for n in names)


def test_true_float_scene_under_psnr_is_coded_at_rate_levels(daemon_dirs, scene_pixels, capsys):
    """A PSNR target has a rate level for any tile; only the error-bound candidate needs whole numbers."""
    write_scene(daemon_dirs / "inbox" / "a_float.tif", _true_floats(scene_pixels))
    cfg = make_config(daemon_dirs, level=None, psnr=30)
    assert Service(DaemonConfig.from_yaml(cfg)).run(once=True) == 0
    assert (daemon_dirs / "done" / "a_float.tif").exists()
    assert _status(cfg, capsys)["active"] == []


def test_a_scene_failing_after_its_first_units_leaves_nothing_in_the_outbox(daemon_dirs, scene_pixels, capsys):
    """Failure injection in the third tile: the packet files already written for the scene go, the journal entry
    is closed as quarantined, and the next scene is coded."""
    write_scene(daemon_dirs / "inbox" / "a_bad.tif", scene_pixels[:, :512, :512])  # 4 tiles
    write_scene(daemon_dirs / "inbox" / "b_good.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs)
    svc = Service(DaemonConfig.from_yaml(cfg))
    real, calls = svc.codec.analyze, []

    def analyze(tile, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure in the third tile")
        return real(tile, *args, **kwargs)

    svc.codec.analyze = analyze
    assert svc.run(once=True) == 0
    assert "injected failure" in (daemon_dirs / "quarantine" / "a_bad.tif.reason.txt").read_text()
    assert (daemon_dirs / "done" / "b_good.tif").exists()
    status = _status(cfg, capsys)
    assert status["active"] == [] and status["counters"]["scenes_quarantined"] == 1
    j = Journal(daemon_dirs / "state" / "journal.sqlite", read_only=True)
    [(bad,)] = j.db.execute("SELECT id FROM scenes WHERE name = 'a_bad'").fetchall()
    written = j.scene_files(bad)
    j.close()
    assert len(written) >= 2  # the metadata and the first tiles had been written ...
    assert not any((daemon_dirs / "outbox" / n).exists() for n in written)  # ... and are gone


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def test_reloads_release_the_engines_they_replace(daemon_dirs, scene_pixels):
    """Each reload kept the old ONNX Runtime sessions in a reference cycle (HybridKind <-> Planner): six reloads
    took a daemon from 294 to 1,244 MB. Here every replaced network is freed at once, and RSS stays bounded."""
    cfg = make_config(daemon_dirs, level=3, threads=2)
    svc = Service(DaemonConfig.from_yaml(cfg))
    replaced, rss = [], []
    for i in range(12):
        svc.process(write_scene(daemon_dirs / "inbox" / f"s{i}.tif", scene_pixels[:, :256, :256]))  # sessions made
        replaced.append(weakref.ref(svc.codec.transforms))
        svc.do_reload(cfg)
        rss.append(_rss_mb())
    assert sum(r() is not None for r in replaced) == 0
    # the first reloads warm allocator arenas; a leak of one engine per reload was ~60-160 MB each
    assert rss[-1] - rss[2] < 100, rss


def test_a_reload_is_taken_between_scenes_not_after_the_queue(daemon_dirs, scene_pixels):
    """SIGHUP waited until every queued file was coded (35 s in the soak)."""
    for name in ("a", "b", "c"):
        write_scene(daemon_dirs / "inbox" / f"{name}.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs)
    svc = Service(DaemonConfig.from_yaml(cfg))
    events = []
    process, reload = svc.process, svc.do_reload

    def traced_process(path):
        events.append(path.stem)
        if path.stem == "a":
            svc.reload = True  # SIGHUP arrives while the first scene is coded
        return process(path)

    def traced_reload(path):
        events.append("reload")
        return reload(path)

    svc.process, svc.do_reload = traced_process, traced_reload
    assert svc.run(once=True, config_path=cfg) == 0
    assert events == ["a", "reload", "b", "c"]


def test_outbox_quota_costs_one_scan_not_one_per_unit(daemon_dirs, scene_pixels, monkeypatch):
    """The quota check scanned every outbox file before each unit: 21.2 s for 28 scenes with an empty outbox,
    41.9 s with 16k files. Counted here as scans of the outbox, not timed."""
    outbox = daemon_dirs / "outbox"
    outbox.mkdir()
    for i in range(2000):  # packets waiting for the next ground pass
        (outbox / f"{i:08d}_00001.pkt").write_bytes(b"x" * 10)
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :512, :512])  # 6 units
    scans = []
    real = os.scandir

    def scandir(path="."):
        if Path(path) == outbox:
            scans.append(1)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs, outbox_quota_bytes=1 << 30)))
    at_start = len(scans)
    assert svc.run(once=True) == 0
    assert (daemon_dirs / "done" / "a.tif").exists()
    assert len(scans) - at_start == 0  # under the quota: no scan while coding, however many files wait
    assert svc.outbox.bytes == spool.outbox_bytes(outbox)  # the kept count is the outbox's size


def test_outbox_meter_rescans_only_at_the_quota_and_at_most_once_per_interval(tmp_path):
    (tmp_path / "a.pkt").write_bytes(b"x" * 100)
    clock = [0.0]
    meter = spool.OutboxMeter(tmp_path, rescan_s=2.0, clock=lambda: clock[0])
    assert meter.bytes == 100 and meter.scans == 1
    meter.add(50)
    assert not meter.over(200) and meter.scans == 1
    assert meter.over(150) and meter.scans == 1  # the last scan is fresh: the count decides
    (tmp_path / "a.pkt").unlink()  # the downlink takes a file
    clock[0] = 1.0
    assert meter.over(150) and meter.scans == 1  # within the interval: no scan, the count (an upper bound) holds
    clock[0] = 2.5
    assert not meter.over(150) and meter.scans == 2 and meter.bytes == 0  # rescanned once the interval passed


def test_a_packet_file_removed_during_the_outbox_scan_is_not_an_error(tmp_path, monkeypatch):
    """The downlink removing a file during the scan raised FileNotFoundError, which the daemon reported as the
    input having vanished."""
    for i in range(5):
        (tmp_path / f"{i}.pkt").write_bytes(b"x" * 10)
    real = os.scandir

    class Racing:
        """scandir whose second entry is taken by the downlink right after it is listed."""

        def __init__(self, path):
            self.it = real(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def __iter__(self):
            for k, e in enumerate(self.it):
                if k == 1:
                    os.unlink(e.path)
                yield e

    monkeypatch.setattr(os, "scandir", Racing)
    assert spool.outbox_bytes(tmp_path) == 40


@pytest.mark.parametrize("target", [{"psnr": 1e308}, {"psnr": 5}, {"max_error": 99999999999}])
def test_targets_the_format_cannot_carry_fail_the_daemon_at_start(daemon_dirs, target):
    cfg = make_config(daemon_dirs, level=None, **target)
    assert edge_main(["--config", str(cfg), "--once"]) == 2
    assert not (daemon_dirs / "outbox").exists()


@pytest.mark.parametrize("asked, expected", [(None, "residual"), ("auto", "auto")])
def test_ready_line_says_which_mode_search_the_daemon_codes_with(daemon_dirs, scene_pixels, capsys, monkeypatch,
                                                                 asked, expected):
    """Left out, mode_search is the backend's default (plan.default_mode_search: no network on this machine's CPU
    ONNX Runtime); the ready log line names the one in force, so an operator sees it in the journal."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs, **({} if asked is None else {"mode_search": asked}))
    assert Service(DaemonConfig.from_yaml(cfg)).run(once=True) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [ready] = [e for e in events if e["event"] == "ready"]
    assert ready["mode_search"] == expected
    assert (daemon_dirs / "done" / "a.tif").exists()
