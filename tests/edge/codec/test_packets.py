import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import packets as pk


def _hdr(**kw):
    return pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=b"abcd", scene_id=7, row=1, col=2, level=3, **kw)


def test_single_packet_round_trips_exactly():
    w = pk.PacketWriter(apid=0x123)
    [p] = w.packets(_hdr(), b"hello tile")
    [got] = list(pk.parse_stream(p))
    assert got.data == b"hello tile"
    assert (got.apid, got.seq_count, got.seq_flags) == (0x123, 0, 3)
    assert (got.header.scene_id, got.header.row, got.header.col, got.header.level) == (7, 1, 2, 3)
    assert len(p) == pk.PRIMARY + pk.SECONDARY + len(b"hello tile") + pk.CRC_BYTES


def test_large_body_is_segmented_first_continuation_last():
    w = pk.PacketWriter(apid=5, max_data_field=pk.SECONDARY + pk.CRC_BYTES + 100)
    body = bytes(range(256)) * 2
    ps = w.packets(_hdr(), body)
    got = list(pk.parse_stream(b"".join(ps)))
    assert [g.seq_flags for g in got] == [1, 0, 0, 0, 0, 2]
    assert [g.header.segment for g in got] == list(range(6))
    assert all(g.header.segments == 6 for g in got)
    assert b"".join(g.data for g in got) == body


def test_default_data_field_limit_is_ccsds_maximum():
    w = pk.PacketWriter(apid=5)
    body = b"x" * 200_000
    ps = w.packets(_hdr(), body)
    assert max(len(p) for p in ps) == pk.PRIMARY + pk.MAX_DATA_FIELD
    assert b"".join(g.data for g in pk.parse_stream(b"".join(ps))) == body


def test_sequence_count_wraps_at_14_bits():
    w = pk.PacketWriter(apid=5, seq_count=16382)
    counts = [p.seq_count for p in pk.parse_stream(b"".join(w.packets(_hdr(), b"a")[0] for _ in range(4)))]
    assert counts == [16382, 16383, 0, 1]


def test_rejects_bad_apid():
    with pytest.raises(ValueError, match="apid"):
        pk.PacketWriter(apid=2047)


def test_independent_ccsds_reader_parses_headers(tmp_path):
    """ccsdspy (a separate implementation of CCSDS 133.0-B) agrees on APIDs, counts and lengths."""
    from ccsdspy.utils import read_primary_headers, split_packet_bytes

    w = pk.PacketWriter(apid=0x1C5, max_data_field=300)
    ps = []
    for i in range(5):
        ps += w.packets(_hdr(), bytes([i]) * (100 * i + 1))
    stream = b"".join(ps)
    hdrs = read_primary_headers(io.BytesIO(stream))
    assert list(hdrs["CCSDS_APID"]) == [0x1C5] * len(ps)
    assert list(hdrs["CCSDS_SEQUENCE_COUNT"]) == list(range(len(ps)))
    assert list(hdrs["CCSDS_PACKET_LENGTH"]) == [len(p) - 7 for p in ps]
    assert list(hdrs["CCSDS_SECONDARY_FLAG"]) == [1] * len(ps)
    assert [len(b) for b in split_packet_bytes(io.BytesIO(stream))] == [len(p) for p in ps]


def test_damaged_packet_is_skipped_and_neighbours_survive():
    w = pk.PacketWriter(apid=9)
    ps = [w.packets(_hdr(), bytes([i]) * 50)[0] for i in range(3)]
    bad = bytearray(ps[1])
    bad[30] ^= 0x10
    stats = {}
    got = list(pk.parse_stream(ps[0] + bytes(bad) + ps[2], stats))
    assert [g.data[0] for g in got] == [0, 2]
    assert stats["crc_failures"] >= 1


def test_garbage_between_packets_is_skipped():
    w = pk.PacketWriter(apid=9)
    a, b = w.packets(_hdr(), b"A" * 10)[0], w.packets(_hdr(), b"B" * 10)[0]
    got = list(pk.parse_stream(b"\x08\x00junk" + a + bytes(range(256)) + b + b"\x08"))
    assert [g.data for g in got] == [b"A" * 10, b"B" * 10]


def test_metadata_round_trips_and_rejects_garbage():
    meta = {"v": 1, "name": "s", "width": 3, "crs": "EPSG:32633", "transform": [1.0, 0, 5, 0, -1.0, 9]}
    assert pk.decode_metadata(pk.encode_metadata(meta)) == meta
    with pytest.raises(pk.PacketFormatError):
        pk.decode_metadata(b"not zlib")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parser_never_crashes_on_random_bytes(blob):
    for p in pk.parse_stream(blob):
        assert p.header.segment < p.header.segments


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_parser_recovers_every_intact_packet_after_random_damage(data):
    w = pk.PacketWriter(apid=3)
    ps = [w.packets(_hdr(), bytes([i]) * data.draw(st.integers(0, 80)))[0] for i in range(6)]
    damaged = data.draw(st.sets(st.integers(0, 5), max_size=3))
    stream = b""
    for i, p in enumerate(ps):
        if i in damaged:
            b = bytearray(p)
            j = data.draw(st.integers(0, len(b) - 1))
            b[j] ^= 1 << data.draw(st.integers(0, 7))
            p = bytes(b)
        stream += p
    got = {g.seq_count for g in pk.parse_stream(stream)}
    assert set(range(6)) - damaged <= got
