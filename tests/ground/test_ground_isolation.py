"""The ground under crafted metadata and losses (issue 23, items 1, 2 and 9): a bad scene costs only itself, with
one stderr line naming it; memory is bounded by what arrived, not by what metadata declares, nor by the pass;
an intact tile's masks do not depend on whether another tile was lost."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cvae.edge.codec import packets as pk
from cvae.edge.encoder import EncodeOptions, encode_scene
from cvae.ground.cli import main as decode_main

TILE = 64


def _write_scene(path: Path, nodata, dtype="uint16", bands=3, h=96, w=160, seed=0) -> np.ndarray:
    """A smooth scene of 2 x 3 tiles (TILE): nodata pixels (every band) in the first tile, and band-fill samples
    (nodata in band 1 only, the pixel valid) in tile (0, 1) and tile (1, 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    top = 200 if dtype == "uint8" else 3000
    px = np.stack([(top / 2 + top / 3 * np.sin(xx / (9 + b) + yy / 13) + rng.normal(0, 2, (h, w))) for b in range(bands)])
    px = np.clip(px, 1, top).astype(dtype)
    if nodata is not None:
        px[:, :10, :10] = nodata
        px[1, 40:44, 70:80] = nodata
        px[1, 70:72, 90:100] = nodata
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=bands, dtype=dtype, nodata=nodata,
                       crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10)) as dst:
        dst.write(px)
    return px


def _packets(path: Path, bundle, codec, scene_id: int, level: int = 8) -> list[bytes]:
    return encode_scene(path, bundle, codec, EncodeOptions(level=level, tile_size=TILE, scene_id=scene_id)).packets


def _without_tile(packets: list[bytes], row: int, col: int) -> list[bytes]:
    keep = []
    for p in packets:
        (parsed,) = pk.parse_stream(p)
        if parsed.header.base_kind == pk.KIND_TILE and (parsed.header.row, parsed.header.col) == (row, col):
            continue
        keep.append(p)
    return keep


def _decode(tmp_path: Path, name: str, streams: list[bytes], capsys=None) -> tuple[int, Path]:
    src = tmp_path / f"{name}.pkt"
    src.write_bytes(b"".join(streams))
    out = tmp_path / f"{name}_out"
    return decode_main([str(src), "-o", str(out), "-q"]), out


def _masks(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return np.stack([ds.read_masks(b) for b in range(1, ds.count + 1)]), ds.read()


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_intact_tiles_keep_their_per_band_masks_when_another_tile_is_lost(tmp_path, bundle, codec, dtype):
    _write_scene(tmp_path / "s.tif", nodata=0, dtype=dtype)
    packets = _packets(tmp_path / "s.tif", bundle, codec, 11)
    rc_full, full = _decode(tmp_path, "full", packets)
    rc_lost, lost = _decode(tmp_path, "lost", _without_tile(packets, 1, 2))
    assert rc_full == rc_lost == 0
    m_full, px_full = _masks(full / "s.tif")
    m_lost, px_lost = _masks(lost / "s.tif")
    outside = np.ones(m_full.shape[1:], bool)
    outside[TILE:, 2 * TILE:] = False  # the lost tile (1, 2)
    # band-fill samples (nodata in band 1 only) stay masked in band 1 and valid in the others, as without loss
    assert (m_full[1, 40:44, 70:80] == 0).all() and (m_full[0, 40:44, 70:80] == 255).all()
    np.testing.assert_array_equal(m_lost[:, outside], m_full[:, outside])
    np.testing.assert_array_equal(px_lost[:, outside], px_full[:, outside])
    assert (m_lost[:, ~outside] == 0).all()  # the lost tile: masked in every band
    assert (px_lost[:, ~outside] == 0).all()  # and filled with the nodata value


def test_without_nodata_a_lost_tile_is_masked_and_the_rest_stays_valid(tmp_path, bundle, codec):
    _write_scene(tmp_path / "s.tif", nodata=None, dtype="uint8")
    packets = _packets(tmp_path / "s.tif", bundle, codec, 12)
    assert _decode(tmp_path, "full", packets)[0] == 0
    assert _decode(tmp_path, "lost", _without_tile(packets, 0, 1))[0] == 0
    m_full, _ = _masks(tmp_path / "full_out" / "s.tif")
    m_lost, _ = _masks(tmp_path / "lost_out" / "s.tif")
    assert (m_full == 255).all()
    lost = np.zeros(m_full.shape[1:], bool)
    lost[:TILE, TILE:2 * TILE] = True
    assert (m_lost[:, lost] == 0).all() and (m_lost[:, ~lost] == 255).all()


def _metadata_stream(writer, mid: bytes, scene_id: int, body: bytes) -> bytes:
    return b"".join(writer.packets(pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=scene_id), body))


def _crafted_run(tmp_path: Path, bundle, codec) -> tuple[Path, list[str]]:
    """A pass holding a good scene and, each under its own scene id, every crafted metadata of the issue; the
    crafted scenes reuse the good scene's tiles (CRC-valid packets)."""
    _write_scene(tmp_path / "good.tif", nodata=0, dtype="uint8")
    good = _packets(tmp_path / "good.tif", bundle, codec, 1)
    meta = next(pk.decode_metadata(p.data) for raw in good for p in pk.parse_stream(raw)
                if p.header.base_kind == pk.KIND_METADATA)
    tiles = [p for raw in good for p in pk.parse_stream(raw) if p.header.base_kind == pk.KIND_TILE]
    writer = pk.PacketWriter(0x1C5)
    mid = bytes.fromhex(bundle.model_id)[:4]
    crafted = {
        2: pk.encode_metadata({**meta, "nodata": -5}),
        3: pk.encode_metadata({**meta, "nodata": 70000}),
        4: pk.encode_metadata({**meta, "nodata": 1e300}),
        5: pk.encode_metadata({**meta, "nodata": -1e300, "dtype": "float32"}),
        6: zlib.compress(b"[" * 1000),
        7: zlib.compress(b'{"a":' * 5000),
        8: pk.encode_metadata({**{k: v for k, v in meta.items() if k != "band_range"}, "bands": 1,
                               "dtype": "float64", "width": 60000, "height": 60000, "nodata": None, "tile": 256}),
        9: pk.encode_metadata({**meta, "height": 100000}),
    }
    stream = b"".join(good)
    for sid, body in crafted.items():
        stream += _metadata_stream(writer, mid, sid, body)
        for t in tiles:  # the good scene's tiles, under the crafted scene's id
            stream += b"".join(writer.packets(pk.SecondaryHeader(**{**t.header.__dict__, "scene_id": sid,
                                                                    "kind": pk.KIND_TILE}), t.data))
    path = tmp_path / "pass.pkt"
    path.write_bytes(stream)
    return path, [str(s) for s in crafted]


def test_crafted_metadata_costs_only_its_own_scene(tmp_path, bundle, codec, capfd):
    path, _ = _crafted_run(tmp_path, bundle, codec)
    out = tmp_path / "out"
    rc = decode_main([str(path), "-o", str(out), "-q"])
    err = capfd.readouterr().err
    assert rc == 0
    report = {s["scene_id"]: s for s in json.loads((out / "report.json").read_text())["scenes"]}
    assert "output" in report[1] and report[1]["tiles_ok"] == 6
    for sid in (2, 3, 4, 5):  # nodata outside the dtype's range: refused, named on stderr
        assert "nodata" in report[sid]["error"] and f"id {sid})" in err
    assert "no intact metadata" in report[6]["error"] and "no intact metadata" in report[7]["error"]
    # declared sizes far beyond what arrived: decoded from the tiles that came, memory bounded by them
    assert report[8]["tiles_ok"] == 0 and "output" in report[8]
    # the first row of tiles fits its place; the second (32 rows high in the good scene) does not
    lost = len(report[9]["tiles_lost"]) + report[9].get("tiles_lost_unlisted", 0)
    assert report[9]["tiles_ok"] == 3 and lost == -(-100000 // TILE) * 3 - 3
    assert len(report[9]["tiles_lost"]) == 4096  # the report lists the first lost tiles and counts the rest
    with rasterio.open(report[9]["output"]) as ds, rasterio.open(report[1]["output"]) as good_ds:
        assert ds.height == 100000
        np.testing.assert_array_equal(ds.read(window=((0, TILE), (0, 160))), good_ds.read(window=((0, TILE), (0, 160))))
    assert Path(report[8]["output"]).stat().st_size < 10_000_000  # sparse: the lost windows are not written
    # the work of the run (the bundle loaded before): the declared scenes would be 28.8 GB and 96 MB whole
    from cvae.ground.cli import decode_to_files, open_streams

    (tmp_path / "again").mkdir()
    tracemalloc.start()
    try:
        decode_to_files(open_streams([path]), bundle, codec, tmp_path / "again")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16e6, f"{peak / 1e6:.0f} MB traced"


def test_memory_of_a_pass_is_bounded_by_its_largest_scene_not_its_length(tmp_path, bundle, codec):
    _write_scene(tmp_path / "s.tif", nodata=0, h=384, w=384, bands=4)
    files = []
    for sid in range(1, 9):  # eight scenes of 4 x 384 x 384 uint16 (1.2 MB each decoded)
        f = tmp_path / f"{sid}.pkt"
        f.write_bytes(b"".join(_packets(tmp_path / "s.tif", bundle, codec, sid, level=10)))
        files.append(f)
    peaks = []
    for n in (1, 8):
        tracemalloc.start()
        try:
            assert decode_main([*map(str, files[:n]), "-o", str(tmp_path / f"out{n}"), "-q"]) == 0
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert len(list((tmp_path / f"out{n}").glob("*.tif"))) == n
    assert peaks[1] < peaks[0] + 4e6, peaks  # eight scenes cost what one does (+ their index and report)


def test_a_declared_scene_too_large_for_memory_decodes_under_an_address_space_cap(tmp_path, bundle, codec):
    """The float64 1 x 60000 x 60000 scene (26.8 GiB whole) in a process capped at 4 GiB of address space."""
    path, _ = _crafted_run(tmp_path, bundle, codec)
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from cvae.ground.cli import main
        sys.exit(main([{str(path)!r}, "-o", {str(tmp_path / "capped")!r}, "-q"]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                         env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    assert run.returncode == 0, run.stderr[-2000:]
    report = {s["scene_id"]: s for s in json.loads((tmp_path / "capped" / "report.json").read_text())["scenes"]}
    assert "output" in report[1] and "output" in report[8]
