"""The daemon's rooms: reload is all or nothing, the daemon and cvae-encode share one row loop and packet
stream (same tile bodies), the inbox scan, and only edge/io imports rasterio."""
from __future__ import annotations

import ast
import os
import pathlib
import shutil

import pytest
import yaml

from conftest import make_config, write_scene
from cvae.edge.codec import packets as pk
from cvae.edge.daemon.config import DaemonConfig
from cvae.edge.daemon.service import Service
from cvae.edge.encoder import EncodeOptions, encode_scene

EDGE = pathlib.Path(__file__).resolve().parents[3] / "edge"


def _rewrite(config: pathlib.Path, **changes) -> None:
    raw = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**raw, **changes}))


@pytest.mark.parametrize("bad", ["level_beyond_bundle", "missing_key_file", "damaged_lease", "not_yaml"])
def test_a_failed_reload_leaves_config_bundle_codec_and_journal_as_they_were(daemon_dirs, scene_pixels, bad,
                                                                            tmp_path):
    config = make_config(daemon_dirs)
    svc = Service(DaemonConfig.from_yaml(config))
    before = (svc.cfg, svc.bundle, svc.codec, svc.sealer, svc.journal, svc.leases)
    if bad == "level_beyond_bundle":  # fails after the bundle is loaded
        _rewrite(config, level=63, tile_size=128)
    elif bad == "missing_key_file":   # fails after bundle and codec are built
        _rewrite(config, key_file=str(tmp_path / "absent.key"), tile_size=128)
    elif bad == "damaged_lease":      # fails after the new journal is opened
        other = tmp_path / "other_state"
        other.mkdir()
        (other / "leases.json").write_text("{not json")
        _rewrite(config, state=str(other), level=0)
    else:
        config.write_text("level: [unclosed")
    svc.do_reload(config)
    after = (svc.cfg, svc.bundle, svc.codec, svc.sealer, svc.journal, svc.leases)
    assert all(a is b for a, b in zip(after, before))  # the very same objects, not equal copies
    write_scene(daemon_dirs / "inbox" / "a.tif", scene_pixels[:, :64, :64])
    assert svc.run(once=True) == 0  # the old journal still works, the old level still applies
    levels = {p.header.level for g in (daemon_dirs / "outbox").glob("*.pkt") for p in pk.parse_stream(g.read_bytes())
              if p.header.base_kind == pk.KIND_TILE}
    assert levels == {2} and (daemon_dirs / "done" / "a.tif").exists()


def test_a_good_reload_adopts_config_and_engine_together(daemon_dirs):
    config = make_config(daemon_dirs)
    svc = Service(DaemonConfig.from_yaml(config))
    old_codec, old_journal = svc.codec, svc.journal
    _rewrite(config, level=0, tile_size=128)
    svc.do_reload(config)
    assert svc.cfg.level == 0 and svc.cfg.tile_size == 128
    assert svc.codec is not old_codec and svc.journal is not old_journal
    svc.journal.counter("tiles")  # the new journal is open
    svc.journal.close()


def _tile_packets(streams) -> dict:
    """(row, col, segment) -> the packet's data field (secondary header and body; the primary header's sequence
    count is the daemon's own)."""
    return {(p.header.row, p.header.col, p.header.segment): p.data
            for data in streams for p in pk.parse_stream(data) if p.header.base_kind == pk.KIND_TILE}


def _daemon_and_encoder(daemon_dirs, scene, bundle, codec, **mode):
    shutil.copy(scene, daemon_dirs / "inbox" / scene.name)
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs, tile_size=128, **mode))).run(once=True)
    files = sorted((daemon_dirs / "outbox").glob("*.pkt"))
    daemon = [f.read_bytes() for f in files]
    scene_id = next(pk.parse_stream(daemon[0])).header.scene_id
    enc = encode_scene(scene, bundle, codec, EncodeOptions(tile_size=128, scene_id=scene_id,
                                                           level=mode.get("level"), tile_bytes=mode.get("tile_bytes"),
                                                           max_error=mode.get("max_error"), psnr=mode.get("psnr")))
    return daemon, enc


def _check_same_stream(daemon, enc):
    assert _tile_packets(daemon) == _tile_packets([b"".join(enc.packets)])
    kinds = [p.header.base_kind for data in daemon for p in pk.parse_stream(data)]
    assert kinds == [p.header.base_kind for p in pk.parse_stream(b"".join(enc.packets))]  # metadata copies too
    assert len(daemon) == enc.tiles + 2  # one file per unit: metadata, each tile, metadata


@pytest.mark.parametrize("mode", [{"level": 1}, {"level": None, "tile_bytes": 3000}, {"level": None, "max_error": 2},
                                  {"level": None, "max_error": [0, 1, 2, 3]}, {"level": None, "psnr": 42.0},
                                  {"level": 3, "threads": 3}, {"level": 9, "threads": 0},
                                  {"level": None, "max_error": 1, "threads": 2}])
def test_the_daemon_writes_the_tile_packets_cvae_encode_writes(daemon_dirs, tmp_path, bundle, codec, mode):
    from cvae.demo import synthetic_scene

    scene = synthetic_scene(tmp_path / "synthetic.tif", size=300, seed=5)
    daemon, enc = _daemon_and_encoder(daemon_dirs, scene, bundle, codec, **mode)
    _check_same_stream(daemon, enc)


@pytest.mark.parametrize("rel", ["scenes/naip_va_1m_rgbn.tif",                      # uint8, nodata 255
                                 "train/solaris-spacenet/sample_geotiff_custom_proj.tif"])  # int16, nodata -9999
def test_the_daemon_writes_the_tile_packets_cvae_encode_writes_on_real_scenes(daemon_dirs, shared_data, bundle,
                                                                              codec, rel):
    """Real nodata layouts and dtypes: the valid rule and the band fill masks are the point here."""
    daemon, enc = _daemon_and_encoder(daemon_dirs, shared_data / rel, bundle, codec, level=3)
    _check_same_stream(daemon, enc)


def test_the_inbox_scan_lists_regular_files_oldest_first_and_refuses_the_rest(tmp_path):
    from cvae.edge.daemon.inbox import scan_inbox

    for i, name in enumerate(["c.tif", "a.tif", "b.tif"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, ns=(i * 10**9, i * 10**9))
    (tmp_path / ".hidden.tif").write_bytes(b"x")
    (tmp_path / "upload.tif.part").write_bytes(b"x")
    (tmp_path / "link.tif").symlink_to(tmp_path / "a.tif")
    (tmp_path / "dir.tif").mkdir()
    os.mkfifo(tmp_path / "fifo.tif")
    scan = scan_inbox(tmp_path)
    assert [p.name for p in scan.files] == ["c.tif", "a.tif", "b.tif"]
    reasons = {p.name: r for p, r in scan.refused}
    assert sorted(reasons) == ["dir.tif", "fifo.tif", "link.tif"]
    assert "symlink" in reasons["link.tif"] and "folder" in reasons["dir.tif"] and "FIFO" in reasons["fifo.tif"]


def test_only_edge_io_imports_rasterio():
    offenders = []
    for path in EDGE.rglob("*.py"):
        if path.parent.name == "io":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "rasterio" or n.startswith("rasterio.") for n in names):
                offenders.append(str(path.relative_to(EDGE)))
    assert not offenders, offenders


def test_an_error_bounded_daemon_scene_decodes_within_its_bound(daemon_dirs, tmp_path, bundle, codec):
    from cvae.demo import synthetic_pixels, synthetic_scene
    from cvae.ground.decoder import decode_streams

    scene = synthetic_scene(tmp_path / "bounded.tif", size=200, seed=3)
    shutil.copy(scene, daemon_dirs / "inbox" / scene.name)
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs, tile_size=128, level=None, max_error=[0, 1, 2, 4]))
            ).run(once=True)
    streams = [f.read_bytes() for f in sorted((daemon_dirs / "outbox").glob("*.pkt"))]
    (decoded,), report = decode_streams(streams, bundle, codec)
    err = abs(decoded.pixels.astype(int) - synthetic_pixels(size=200, seed=3))
    assert (err.reshape(4, -1).max(axis=1) <= [0, 1, 2, 4]).all()
    assert decoded.meta.max_error == (0, 1, 2, 4) and report["scenes"][0]["max_error"] == [0, 1, 2, 4]


def test_a_scene_with_the_wrong_number_of_bounds_goes_to_quarantine(daemon_dirs, tmp_path):
    from cvae.demo import synthetic_scene

    scene = synthetic_scene(tmp_path / "three.tif", size=64, bands=3, seed=1)
    shutil.copy(scene, daemon_dirs / "inbox" / scene.name)
    Service(DaemonConfig.from_yaml(make_config(daemon_dirs, level=None, max_error=[0, 1, 2, 4]))).run(once=True)
    assert (daemon_dirs / "quarantine" / "three.tif").exists()
    assert "one per band" in (daemon_dirs / "quarantine" / "three.tif.reason.txt").read_text()
