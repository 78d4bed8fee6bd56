"""Fault injection: kill -9 at random moments during a multi-scene run, many cycles, then decode all.

Every tile must come out exactly once, every packet must be valid, no sequence count may repeat and no
partial file may be visible in the outbox.
"""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import make_config, write_scene
from cvae.edge.codec import packets as pk


@pytest.mark.slow
@pytest.mark.parametrize("quality", [{}, {"level": None, "psnr": 35.0}], ids=["level", "psnr"])
def test_kill_minus_nine_many_times_loses_and_duplicates_nothing(daemon_dirs, scene_pixels, bundle, codec, quality):
    """With ``psnr`` too: a restarted scene's tiles written before the kill count for nothing in its target
    (SceneTarget), and no tile waits for them for ever."""
    from cvae.ground.decoder import decode_streams

    rng = random.Random(7)
    inbox = daemon_dirs / "inbox"
    expected = {}
    for i, (y, x, h, w) in enumerate([(0, 0, 640, 640), (100, 500, 300, 400), (600, 0, 256, 700), (0, 0, 96, 96)]):
        write_scene(inbox / f"s{i}.tif", scene_pixels[:, y:y + h, x:x + w])
        expected[f"s{i}"] = (-(-h // 64)) * (-(-w // 64))
    cfg = make_config(daemon_dirs, tile_size=64, **quality)
    kills = 0
    for cycle in range(40):
        proc = subprocess.Popen([sys.executable, "-m", "cvae.edge.daemon.cli", "--config", str(cfg), "--once"],
                                stderr=subprocess.DEVNULL)
        # kill once the daemon has written a random number of further files, plus a random few ms: that lands
        # anywhere in reserve / write / rename / commit
        start = len(list((daemon_dirs / "outbox").glob("*.pkt")))
        target = start + rng.randint(1, 25)
        while proc.poll() is None and len(list((daemon_dirs / "outbox").glob("*.pkt"))) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert not list((daemon_dirs / "outbox").glob("[!.]*.part"))
        if not any(p for p in inbox.iterdir() if not p.name.startswith(".")):
            break
    else:
        pytest.fail("scenes still pending after 40 cycles")
    assert kills >= 5
    assert not list((daemon_dirs / "outbox").glob(".*"))  # stale temp files are cleared at start
    packets, seqs = [], []
    for f in sorted((daemon_dirs / "outbox").glob("*.pkt")):
        data = f.read_bytes()
        got = list(pk.parse_stream(data))
        assert sum(len(p.data) + 27 for p in got) == len(data)  # every byte belongs to a valid packet
        packets += got
        seqs += [p.seq_count for p in got]
    assert len(seqs) == len(set(seqs))  # no sequence count reused
    per_tile = {}
    for p in packets:
        if p.header.base_kind == pk.KIND_TILE:
            k = (p.header.scene_id, p.header.row, p.header.col)
            per_tile[k] = per_tile.get(k, 0) + 1
    assert set(per_tile.values()) == {1}
    scenes, report = decode_streams([f.read_bytes() for f in (daemon_dirs / "outbox").glob("*.pkt")], bundle, codec)
    got = {s.meta.name: len(s.tiles_ok) for s in scenes}
    assert got == expected
    assert all(not s.tiles_lost for s in scenes)
