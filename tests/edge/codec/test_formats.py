"""Tile formats as data (bitstream.FORMATS): every version-dependent choice is read from its TileFormat, each kind
reads the formats of its name and writes the one marked written, and a parsed tile names its streams by role."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from cvae.edge.codec import bitstream, hybrid
from cvae.edge.codec.tile import KINDS
from cvae.edge.errors import CorruptTileError

GOLDEN = Path(__file__).parent / "golden"
CODEC = Path(bitstream.__file__).parent
#: the names that encode version numbers; only the format descriptions (bitstream.py) may test them
VERSION_NAMES = {"VERSION", "VERSION_ADAPTIVE", "VERSION_WAVELET", "VERSION_PREDICTIVE", "VERSION_CONTEXT",
                 "VERSION_SCENE", "VERSION_STEP", "VERSION_REPLICATION", "VERSION_FEEDBACK", "VERSION_MIXING", "VERSION_LEVELS", "VERSIONS", "ADAPTIVE_VERSIONS", "CONTEXT_VERSIONS", "CODED_MASK_VERSIONS"}


def test_each_kind_reads_its_formats_and_writes_exactly_one():
    """One format per kind, and the hybrid kind's v11 for the residual-only tiles with level rotations."""
    assert sorted(v for k in KINDS for v in k.versions) == sorted(bitstream.FORMATS)
    for k in KINDS:
        written = [f.version for f in bitstream.formats_of(k.name) if f.written and not f.level_rotations]
        assert written == [k.version], k.name
    rotated = [f.version for f in bitstream.FORMATS.values() if f.written and f.level_rotations]
    assert rotated == [hybrid.HybridKind.levels_version] == [11]


def test_shipped_formats_are_v10_v11_lossy_and_v9_bounded():
    shipped = {f.version for f in bitstream.FORMATS.values() if f.written and f.kind != "factorized"}
    assert shipped == {10, 11, 9}


def test_v11_is_v10_with_level_rotations():
    import dataclasses

    v10, v11 = bitstream.FORMATS[bitstream.VERSION_MIXING], bitstream.FORMATS[bitstream.VERSION_LEVELS]
    assert dataclasses.replace(v11, version=10, level_rotations=False) == v10


def test_v10_is_v7_with_the_mixing_coefficient_coder():
    """The one difference a v10 tile has from a v7 one is who codes its coefficients (``mixed_coefs``)."""
    import dataclasses

    v7, v10 = bitstream.FORMATS[bitstream.VERSION_STEP], bitstream.FORMATS[bitstream.VERSION_MIXING]
    assert v10.mixed_coefs and not v7.mixed_coefs and not v7.written
    assert dataclasses.replace(v10, version=7, written=False, mixed_coefs=False) == v7
    assert [f.version for f in bitstream.FORMATS.values() if f.mixed_coefs] == [10, 11]


def test_no_module_of_the_codec_but_bitstream_tests_version_numbers():
    """Version conditionals live in the format descriptions: other modules ask a TileFormat."""
    for path in CODEC.glob("*.py"):
        if path.name in ("bitstream.py", "packets.py", "metadata.py"):  # packets: the packet format's own version
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)} | \
                        {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                assert not names & VERSION_NAMES, f"{path.name}:{node.lineno} compares a version"


@pytest.mark.parametrize("name", ["tile_v2.bin", "tile_v3_hybrid.bin", "tile_v4.bin", "tile_v5_hybrid.bin",
                                  "tile_v10_residual.bin"])
def test_unpacked_tile_names_its_streams_by_role(name):
    u = bitstream.unpack_tile((GOLDEN / name).read_bytes())
    fmt = u.header.format
    assert fmt is bitstream.FORMATS[u.header.version]
    s = u.streams
    if fmt.mode_bytes:
        assert isinstance(u.payload, tuple) and len(u.payload) == fmt.streams
        assert (s.side, s.main) == u.payload[:2] and s.payload == b""
        assert s.coefs == (u.payload[2] if fmt.coefs_stream else b"")
    else:
        assert s.payload == u.payload and s.side == s.main == s.coefs == b""


def test_an_unknown_version_names_the_versions_read():
    data = bytearray((GOLDEN / "tile_v4.bin").read_bytes())
    data[0] = 99
    with pytest.raises(CorruptTileError, match="reads 1, 2, 3, 4, 5, 6, 7, 8, 9, 10"):
        bitstream.unpack_tile(bytes(data))


def test_pack_refuses_what_the_format_does_not_hold():
    h = bitstream.TileHeader(model_id=b"\0" * 4, level=0, dtype=np.dtype(np.uint8), bands=1, height=4, width=4,
                             lo=np.zeros(1, np.float32), hi=np.ones(1, np.float32), mean=np.zeros(1, np.float32),
                             matrix=np.full((1, 1), 127, np.int8), version=bitstream.VERSION_CONTEXT, residual=1)
    with pytest.raises(ValueError, match="residual kind 1"):
        bitstream.pack_tile(h, np.zeros(1, bool), (b"", b"", b""), None)
