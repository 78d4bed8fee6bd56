"""The daemon in-process and as a subprocess: bad inputs, ENOSPC, quota, sd_notify, SIGTERM, SIGHUP.

Inputs are cut from a SYNTHETIC georeferenced scene (conftest.scene_pixels): none of these tests needs real
pixels, so they all run without ../shared/data (test_rooms.py compares with cvae-encode on real scenes too)."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_config, write_scene
from cvae.edge.codec import packets as pk
from cvae.edge.daemon.config import DaemonConfig
from cvae.edge.daemon.notify import Notifier
from cvae.edge.daemon.service import Service


def _tiles_in(outbox: Path) -> dict:
    seen = {}
    for f in sorted(outbox.glob("*.pkt")):
        for p in pk.parse_stream(f.read_bytes()):
            if p.header.base_kind == pk.KIND_TILE:
                key = (p.header.scene_id, p.header.row, p.header.col, p.header.segment)
                seen[key] = seen.get(key, 0) + 1
    return seen


def test_once_encodes_everything_and_moves_inputs(daemon_dirs, scene_pixels, bundle):
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :300, :300])
    write_scene(daemon_dirs / "inbox" / "b.tif", scene_pixels[:, 300:420, :200])
    (daemon_dirs / "inbox" / ".c.tif.part").write_bytes(b"half written")  # ignored: not complete yet
    cfg = DaemonConfig.from_yaml(make_config(daemon_dirs))
    Service(cfg).run(once=True)
    assert sorted(p.name for p in (daemon_dirs / "done").iterdir()) == ["a.tif", "b.tif"]
    assert [p.name for p in (daemon_dirs / "inbox").iterdir()] == [".c.tif.part"]
    tiles = _tiles_in(daemon_dirs / "outbox")
    assert len(tiles) == 4 + 1 and set(tiles.values()) == {1}
    assert not list((daemon_dirs / "outbox").glob(".*"))  # no partial file visible


@pytest.mark.parametrize("kind", ["unreadable", "truncated", "empty", "nan", "oversized", "all_nodata", "complex"])
def test_bad_input_is_quarantined_with_a_reason_and_the_daemon_goes_on(daemon_dirs, scene_pixels, kind):
    inbox = daemon_dirs / "inbox"
    good = write_scene(inbox / "good.tif", scene_pixels[:, :64, :64])
    bad = inbox / f"bad_{kind}.tif"
    if kind == "unreadable":
        bad.write_bytes(os.urandom(4000))
    elif kind == "truncated":
        full = write_scene(daemon_dirs / "full.tif", scene_pixels[:, :200, :200]).read_bytes()
        bad.write_bytes(full[: len(full) // 3])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "nan":
        write_scene(bad, np.full((2, 32, 32), np.nan, np.float32))
    elif kind == "oversized":
        write_scene(bad, scene_pixels[:, :400, :400])
    elif kind == "all_nodata":
        write_scene(bad, np.zeros((2, 32, 32), np.uint16), nodata=0)
    elif kind == "complex":
        write_scene(bad, np.ones((1, 16, 16), np.complex64))
    os.utime(bad, ns=(0, 0))  # first in line
    cfg = DaemonConfig.from_yaml(make_config(daemon_dirs, max_scene_pixels=4 * 300 * 300))
    Service(cfg).run(once=True)
    assert (daemon_dirs / "quarantine" / bad.name).exists()
    reason = (daemon_dirs / "quarantine" / f"{bad.name}.reason.txt").read_text()
    assert reason.strip()
    assert (daemon_dirs / "done" / good.name).exists()


def test_enospc_is_retried_and_nothing_is_lost(daemon_dirs, scene_pixels):
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :300, :300])
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs)))
    real_write, failures = svc.write_file, {"n": 0}

    def flaky(path, data):
        if failures["n"] < 3:
            failures["n"] += 1
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(data[: len(data) // 2])  # a partial temp file, as a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    svc.write_file = flaky
    svc.run(once=True)
    assert failures["n"] == 3
    assert len(_tiles_in(daemon_dirs / "outbox")) == 4
    from cvae.edge.daemon.journal import Journal

    assert Journal(daemon_dirs / "state" / "journal.sqlite").counter("write_errors") == 3
    assert not list((daemon_dirs / "outbox").glob(".*"))


def test_outbox_quota_pauses_without_losing_anything(daemon_dirs, scene_pixels):
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :512, :512])
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs, outbox_quota_bytes=1)))
    t = threading.Thread(target=svc.run, kwargs={"once": True})
    t.start()
    collected = {}
    deadline = time.time() + 120
    while t.is_alive() and time.time() < deadline:  # the downlink drains the outbox, one file at a time
        for f in sorted((daemon_dirs / "outbox").glob("*.pkt")):
            collected[f.name] = f.read_bytes()
            f.unlink()
        time.sleep(0.05)
    svc.stop = True
    t.join()
    for f in sorted((daemon_dirs / "outbox").glob("*.pkt")):
        collected[f.name] = f.read_bytes()
    tiles = {}
    for data in collected.values():
        for p in pk.parse_stream(data):
            if p.header.base_kind == pk.KIND_TILE:
                tiles[(p.header.row, p.header.col)] = tiles.get((p.header.row, p.header.col), 0) + 1
    assert len(tiles) == 4 and set(tiles.values()) == {1}
    from cvae.edge.daemon.journal import Journal

    assert Journal(daemon_dirs / "state" / "journal.sqlite").counter("quota_pauses") >= 1
    assert (daemon_dirs / "done" / "a.tif").exists()


def test_sd_notify_over_a_real_unix_datagram_socket(daemon_dirs, scene_pixels, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(5)
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs)), notifier=Notifier(sock_path))
    svc.run(once=True)
    msgs = []
    try:
        while True:
            msgs.append(srv.recv(4096).decode())
    except socket.timeout:
        pass
    finally:
        srv.close()
    joined = "\n".join(msgs)
    assert msgs[0].startswith("READY=1")
    assert "WATCHDOG=1" in joined and "STATUS=" in joined
    assert msgs[-1] == "STOPPING=1"


def _spawn(config: Path, sock: str | None = None) -> subprocess.Popen:
    env = {**os.environ, **({"NOTIFY_SOCKET": sock} if sock else {})}
    return subprocess.Popen([sys.executable, "-m", "cvae.edge.daemon.cli", "--config", str(config)],
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(pred, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_sigterm_finishes_the_current_tile_and_exits_cleanly(daemon_dirs, scene_pixels):
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :768, :768])
    proc = _spawn(make_config(daemon_dirs, tile_size=128))
    assert _wait_for(lambda: len(list((daemon_dirs / "outbox").glob("*.pkt"))) >= 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert '"event": "stopping"' in err
    assert not list((daemon_dirs / "outbox").glob(".*"))
    assert (daemon_dirs / "inbox" / "a.tif").exists()  # unfinished scene stays for the next start
    proc = _spawn(make_config(daemon_dirs, tile_size=128))
    assert _wait_for(lambda: (daemon_dirs / "done" / "a.tif").exists(), timeout=120)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    tiles = _tiles_in(daemon_dirs / "outbox")
    assert len(tiles) == 36 and set(tiles.values()) == {1}


def test_sighup_reloads_the_config(daemon_dirs, scene_pixels):
    cfg = make_config(daemon_dirs)
    proc = _spawn(cfg)
    try:
        assert _wait_for(lambda: (daemon_dirs / "state" / "journal.sqlite").exists())
        time.sleep(0.5)
        cfg.write_text(cfg.read_text().replace("level: 2", "level: 0") + "mode_search: ladder\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
        assert _wait_for(lambda: (daemon_dirs / "done" / "a.tif").exists())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert '"event": "reloaded"' in err
    [reloaded] = [json.loads(line[line.index("{"):]) for line in err.splitlines() if '"event": "reloaded"' in line]
    assert reloaded["mode_search"] == "ladder"  # the search in force after the reload, named
    [f] = [f for f in (daemon_dirs / "outbox").glob("*.pkt") if any(
        p.header.base_kind == pk.KIND_TILE for p in pk.parse_stream(f.read_bytes()))]
    assert {p.header.level for p in pk.parse_stream(f.read_bytes()) if p.header.base_kind == pk.KIND_TILE} == {0}


def test_status_reports_counters(daemon_dirs, scene_pixels, capsys):
    from cvae.edge.daemon.cli import main

    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs)
    assert main(["--config", str(cfg), "--once"]) == 0
    capsys.readouterr()
    assert main(["status", "--config", str(cfg)]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["counters"]["tiles"] == 1 and out["counters"]["scenes_done"] == 1 and out["queue_depth"] == 0


def test_inbox_watcher_wakes_on_rename(tmp_path):
    from cvae.edge.daemon.watch import InboxWatcher

    w = InboxWatcher(tmp_path)
    if w.mode != "inotify":
        pytest.skip("no inotify here: the daemon polls")
    assert not w.wait(0.05)
    (tmp_path / ".x.part").write_bytes(b"x")
    w.wait(0.05)  # the temp file's close event
    os.replace(tmp_path / ".x.part", tmp_path / "x.tif")
    assert w.wait(2.0)
    w.close()


def test_any_failure_while_encoding_a_scene_quarantines_it_and_the_queue_goes_on(daemon_dirs, scene_pixels):
    """Failure injection: the network raises on one scene (as a crafted input could make it); that scene is
    quarantined with the reason and the next one is encoded, no exit."""
    inbox = daemon_dirs / "inbox"
    write_scene(inbox / "a_bad.tif", scene_pixels[:, :64, :64])
    write_scene(inbox / "b_good.tif", scene_pixels[:, 64:128, :64])
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs)))
    real = svc.codec.analyze
    calls = {"n": 0}

    def analyze(tile, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected failure in the network")
        return real(tile, *args, **kwargs)

    svc.codec.analyze = analyze
    assert svc.run(once=True) == 0
    assert (daemon_dirs / "quarantine" / "a_bad.tif").exists()
    assert "injected failure" in (daemon_dirs / "quarantine" / "a_bad.tif.reason.txt").read_text()
    assert (daemon_dirs / "done" / "b_good.tif").exists()


def test_journal_failure_is_retried_without_exiting(daemon_dirs, scene_pixels):
    import sqlite3

    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs, poll_interval_s=0.05, retry_max_s=0.1)))
    real = svc.journal.start_scene
    calls = {"n": 0}

    def start_scene(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args, **kwargs)

    svc.journal.start_scene = start_scene
    assert svc.run(once=True) == 0
    assert calls["n"] >= 3 and (daemon_dirs / "done" / "a.tif").exists()


def test_long_and_repeated_names_are_quarantined_side_by_side(daemon_dirs):
    inbox = daemon_dirs / "inbox"
    long_name = "x" * 240 + ".tif"
    (inbox / long_name).write_bytes(os.urandom(300))
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    (inbox / long_name).write_bytes(os.urandom(300))
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    reasons = list((daemon_dirs / "quarantine").glob("*.reason.txt"))
    assert len(reasons) == 2 and not list(inbox.iterdir())


def test_status_and_check_create_nothing_and_bad_values_name_the_key(tmp_path):
    from cvae.edge.daemon.cli import main

    base = tmp_path / "fresh"
    cfg = make_config(base)
    assert main(["status", "--config", str(cfg)]) == 0
    assert main(["check", "--config", str(cfg)]) == 0
    assert not base.exists()
    bad = make_config(tmp_path / "b", level="three")
    assert main(["check", "--config", str(bad)]) == 2


def test_status_reads_an_existing_journal_without_writing(daemon_dirs, scene_pixels, capsys):
    import json

    from cvae.edge.daemon.cli import main

    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs)
    Service(DaemonConfig.from_yaml(cfg)).run(once=True)
    journal = daemon_dirs / "state" / "journal.sqlite"
    before = journal.stat().st_mtime_ns
    capsys.readouterr()
    assert main(["status", "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["counters"]
    assert journal.stat().st_mtime_ns == before


def _outbox_snapshot(outbox: Path) -> dict:
    return {f.name: f.read_bytes() for f in outbox.glob("*.pkt")}


def _seqs(outbox: Path) -> list[int]:
    return [p.seq_count for f in sorted(outbox.glob("*.pkt")) for p in pk.parse_stream(f.read_bytes())]


@pytest.mark.parametrize("lost", ["journal", "state_folder"])
def test_a_lost_journal_never_overwrites_the_outbox_nor_repeats_ids_or_counts(daemon_dirs, scene_pixels, lost):
    """Issue 10: a wiped journal (or the whole state folder) with packet files still waiting for downlink: the
    next scene gets a new scene id, no file is overwritten, no sequence count repeats, both scenes decode."""
    import shutil

    from cvae.edge.bundle import Bundle
    from cvae.ground.decoder import decode_streams

    inbox, outbox = daemon_dirs / "inbox", daemon_dirs / "outbox"
    write_scene(inbox / "scene.tif", scene_pixels[:, :64, :128])
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    before = _outbox_snapshot(outbox)
    if lost == "journal":
        for f in (daemon_dirs / "state").glob("journal.sqlite*"):
            f.unlink()
    else:
        shutil.rmtree(daemon_dirs / "state")
    write_scene(inbox / "scene.tif", scene_pixels[:, 64:128, :128])  # another scene, the same name
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    after = _outbox_snapshot(outbox)
    assert all(after[name] == data for name, data in before.items())  # nothing overwritten
    assert len(after) > len(before)
    seqs = _seqs(outbox)
    assert len(seqs) == len(set(seqs))
    bundle = Bundle.load()
    scenes, _ = decode_streams(list(after.values()), bundle, bundle.codec())
    assert len(scenes) == 2 and all(not s.tiles_lost for s in scenes)


def test_a_restored_older_journal_continues_after_the_lease(daemon_dirs, scene_pixels):
    """The journal copied back from before the last scene (a restored backup) must not hand out that scene's
    id or counts again, even after its packet files were downlinked and removed from the outbox."""
    import shutil

    inbox, outbox, state = daemon_dirs / "inbox", daemon_dirs / "outbox", daemon_dirs / "state"
    write_scene(inbox / "a.tif", scene_pixels[:, :64, :128])
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    backup = daemon_dirs.parent / "journal_backup"
    backup.mkdir()
    for f in state.glob("journal.sqlite*"):
        shutil.copy2(f, backup / f.name)
    write_scene(inbox / "b.tif", scene_pixels[:, 64:128, :128])
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    sent = _seqs(outbox)
    scene_ids = {p.header.scene_id for f in outbox.glob("*.pkt") for p in pk.parse_stream(f.read_bytes())}
    for f in outbox.glob("*.pkt"):
        f.unlink()  # downlinked
    for f in state.glob("journal.sqlite*"):
        f.unlink()
    for f in backup.iterdir():
        shutil.copy2(f, state / f.name)
    write_scene(inbox / "c.tif", scene_pixels[:, 128:192, :128])
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True)
    new = [p for f in outbox.glob("*.pkt") for p in pk.parse_stream(f.read_bytes())]
    assert min(p.seq_count for p in new) > max(sent)
    assert not {p.header.scene_id for p in new} & scene_ids


def test_a_damaged_lease_file_is_refused_with_the_fix(daemon_dirs):
    from cvae.edge.daemon.config import ConfigError

    (daemon_dirs / "state").mkdir()
    (daemon_dirs / "state" / "leases.json").write_text("{not json")
    with pytest.raises(ConfigError, match="restore it from a backup"):
        Service(DaemonConfig.from_yaml(make_config(daemon_dirs)))


def _key(path: Path, mode: int) -> Path:
    path.write_text("7:" + "ab" * 32 + "\n")
    path.chmod(mode)
    return path


def test_a_key_file_others_can_read_is_refused_unless_allowed(daemon_dirs, scene_pixels):
    from cvae.edge.daemon.config import ConfigError

    key = _key(daemon_dirs.parent / "seal.key", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Service(DaemonConfig.from_yaml(make_config(daemon_dirs, key_file=str(key))))
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs, key_file=str(key), allow_shared_key=True)))
    assert svc.run(once=True) == 0 and (daemon_dirs / "done" / "a.tif").exists()
    key.chmod(0o600)
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs, key_file=str(key))))  # owner-only: accepted


def test_check_refuses_a_shared_key_file_as_the_daemon_does(daemon_dirs, capsys):
    from cvae.edge.daemon.cli import main

    key = _key(daemon_dirs.parent / "seal.key", 0o644)
    assert main(["check", "--config", str(make_config(daemon_dirs, key_file=str(key)))]) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert main(["check", "--config", str(make_config(daemon_dirs, key_file=str(key), allow_shared_key=True))]) == 0


def test_encode_and_decode_warn_about_a_shared_key_file(tmp_path, scene_pixels):
    from cvae.edge.cli import encode_main
    from cvae.ground.cli import main as decode_main

    scene = write_scene(tmp_path / "a.tif", scene_pixels[:, :64, :64])
    key = _key(tmp_path / "seal.key", 0o640)
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert encode_main([str(scene), "-o", str(tmp_path / "out"), "--level", "1", "--key", str(key), "-q"]) == 0
        assert decode_main([str(tmp_path / "out"), "-o", str(tmp_path / "dec"), "--key", str(key), "-q"]) == 0
    assert err.getvalue().count("chmod 600") == 2


def _sparse_tiff(path: Path, side: int) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1, dtype="uint8", nodata=0,
                       tiled=True, blockxsize=256, blockysize=256, sparse_ok=True, compress="deflate",
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)):
        pass  # nothing written: every block sparse, the file is tiny, the declared size huge
    return path


_PEAK_CHILD = """
import sys
from pathlib import Path
from cvae.edge.daemon.config import DaemonConfig
from cvae.edge.daemon.service import Service
rc = Service(DaemonConfig.from_yaml(Path(sys.argv[1]))).run(once=True)
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print("RC", rc, "PEAK_MB", peak // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc (Linux)")
def test_crafted_huge_header_and_sparse_scene_are_quarantined_in_bounded_memory(daemon_dirs, scene_pixels):
    """Issue 10 bar: a 100000 x 100000 header (refused from the header) and a sparse 40000 x 40000 scene
    (scanned a tile row at a time, no valid pixel) go to quarantine; the good scene behind them is encoded;
    the daemon's peak RSS stays under 1.5 GB (a bound on memory, not a timing)."""
    inbox = daemon_dirs / "inbox"
    _sparse_tiff(inbox / "a_crafted.tif", 100_000)
    _sparse_tiff(inbox / "b_sparse.tif", 40_000)
    write_scene(inbox / "c_good.tif", scene_pixels[:, :64, :64])
    cfg = make_config(daemon_dirs)
    out = subprocess.run([sys.executable, "-c", _PEAK_CHILD, str(cfg)], capture_output=True, text=True, timeout=600)
    rc, peak = out.stdout.split()[1], int(out.stdout.split()[3])
    assert rc == "0", out.stderr[-2000:]
    assert "exceed the limit" in (daemon_dirs / "quarantine" / "a_crafted.tif.reason.txt").read_text()
    assert "no valid pixel" in (daemon_dirs / "quarantine" / "b_sparse.tif.reason.txt").read_text()
    assert (daemon_dirs / "done" / "c_good.tif").exists()
    assert peak < 1536, f"peak RSS {peak} MB"


def test_cvae_encode_refuses_a_crafted_header_before_reading(tmp_path):
    from cvae.edge.cli import encode_main

    scene = _sparse_tiff(tmp_path / "crafted.tif", 100_000)
    assert encode_main([str(scene), "-o", str(tmp_path / "out"), "--level", "1", "-q"]) != 0
    assert not list((tmp_path / "out").glob("*.pkt")) if (tmp_path / "out").exists() else True


def test_symlinks_fifos_and_folders_in_the_inbox_are_quarantined_with_a_reason(daemon_dirs, scene_pixels, tmp_path):
    inbox = daemon_dirs / "inbox"
    outside = write_scene(tmp_path / "outside.tif", scene_pixels[:, :64, :64])
    (inbox / "link.tif").symlink_to(outside)                 # never followed: it may point anywhere
    (inbox / "dangling.tif").symlink_to(tmp_path / "gone.tif")
    os.mkfifo(inbox / "pipe.tif")
    (inbox / "folder.tif").mkdir()
    write_scene(inbox / "good.tif", scene_pixels[:, 64:128, :64])
    assert Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True) == 0
    q = daemon_dirs / "quarantine"
    assert "symlink" in (q / "link.tif.reason.txt").read_text()
    assert "dangling" in (q / "dangling.tif.reason.txt").read_text()
    assert "special file" in (q / "pipe.tif.reason.txt").read_text()
    assert "folder" in (q / "folder.tif.reason.txt").read_text()
    assert (daemon_dirs / "done" / "good.tif").exists() and outside.exists()
    assert not list(inbox.iterdir())


def test_a_multipage_tiff_is_refused_instead_of_losing_pages(daemon_dirs, scene_pixels):
    Image = pytest.importorskip("PIL.Image")  # pillow comes with matplotlib (bench extra)

    inbox = daemon_dirs / "inbox"
    pages = [Image.fromarray(scene_pixels[0, :64, :64].astype(np.uint16)) for _ in range(2)]
    pages[0].save(inbox / "pages.tif", save_all=True, append_images=pages[1:])
    write_scene(inbox / "good.tif", scene_pixels[:, :64, :64])
    assert Service(DaemonConfig.from_yaml(make_config(daemon_dirs))).run(once=True) == 0
    assert "multi-page TIFF (2 pages)" in (daemon_dirs / "quarantine" / "pages.tif.reason.txt").read_text()
    assert (daemon_dirs / "done" / "good.tif").exists()


def test_done_on_another_filesystem_is_refused_by_the_config_check(daemon_dirs, tmp_path):
    from cvae.edge.daemon.config import ConfigError

    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to put done/ on")
    done = Path(tempfile_dir := __import__("tempfile").mkdtemp(dir=other))
    try:
        with pytest.raises(ConfigError, match="another filesystem"):
            Service(DaemonConfig.from_yaml(make_config(daemon_dirs, done=str(done))))
    finally:
        __import__("shutil").rmtree(tempfile_dir, ignore_errors=True)


def test_a_journal_on_a_full_tmpfs_is_retried_until_space_returns(daemon_dirs, scene_pixels):
    """The state folder on a real, full tmpfs: SQLite fails with 'database or disk is full'; the daemon backs
    off without exiting, and finishes the scene once space is freed."""
    state = daemon_dirs / "state"
    state.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
        svc = Service(DaemonConfig.from_yaml(make_config(daemon_dirs, poll_interval_s=0.05, retry_max_s=0.2)))
        filler = state / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill what is left, as a busy disk would
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        threading.Timer(0.8, filler.unlink).start()  # once-mode gives up after 8 tries (~1.9 s)
        assert svc.run(once=True) == 0
        assert (daemon_dirs / "done" / "a.tif").exists() and list((daemon_dirs / "outbox").glob("*.pkt"))
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)


def test_two_sealed_scenes_with_one_name_decode_to_two_geotiffs(tmp_path, scene_pixels):
    from cvae.edge.cli import encode_main
    from cvae.ground.cli import main as decode_main

    key = _key(tmp_path / "seal.key", 0o600)
    for i, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        scene = write_scene(tmp_path / folder / "scene.tif", scene_pixels[:, 64 * i:64 * (i + 1), :64])
        assert encode_main([str(scene), "-o", str(tmp_path / "down" / folder), "--level", "1", "--key", str(key),
                            "-q"]) == 0
    assert decode_main([str(tmp_path / "down"), "-o", str(tmp_path / "dec"), "--key", str(key), "-q"]) == 0
    tifs = sorted((tmp_path / "dec").glob("*.tif"))
    assert len(tifs) == 2
    import json

    report = json.loads((tmp_path / "dec" / "report.json").read_text())
    assert all(not s["tiles_lost"] and s["duplicate_segments"] == 0 for s in report["scenes"])


def test_log_lines_carry_a_priority_and_warnings_join_the_json_stream(capsys, monkeypatch):
    import json
    import warnings

    from cvae.edge.daemon.service import capture_warnings, log

    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    old = warnings.showwarning
    try:
        capture_warnings()
        log("quarantined", file="a.tif")
        warnings.warn("a GDAL-ish warning", RuntimeWarning)
        monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
        log("state_error", error="disk full")
    finally:
        warnings.showwarning = old
    lines = capsys.readouterr().err.strip().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["event"] == "quarantined" and first["priority"] == 4
    assert second["event"] == "warning" and "GDAL-ish" in second["message"]
    assert lines[2].startswith("<3>{") and json.loads(lines[2][3:])["priority"] == 3  # journald's prefix
