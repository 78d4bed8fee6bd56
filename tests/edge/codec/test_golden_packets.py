"""Golden downlink files: the encoder still writes exactly these bytes, and the decoder still reads them."""
from pathlib import Path

import make_packet_golden as golden  # tests/edge/codec/golden, on pythonpath (pyproject.toml)
import numpy as np

from cvae.edge.codec import bitstream, packets as pk
from cvae.edge.codec.security import Opener

HERE = Path(__file__).resolve().parent / "golden"


def test_writer_reproduces_golden_files():
    plain, sealed = golden.streams()
    assert plain == golden.PLAIN.read_bytes()
    assert sealed == golden.SEALED.read_bytes()


def test_golden_plain_stream_parses_to_the_original_tile_and_metadata():
    ps = list(pk.parse_stream(golden.PLAIN.read_bytes()))
    assert [p.seq_count for p in ps] == [(16380 + i) % 16384 for i in range(len(ps))]
    assert pk.decode_metadata(ps[0].data) == golden.META
    body = b"".join(p.data for p in ps if p.header.kind == pk.KIND_TILE)
    assert body == golden.tile_body()
    header, present, payload, valid = bitstream.unpack_tile(body)
    assert (header.bands, header.height, header.width, header.level) == (2, 30, 40, 2)
    assert valid.sum() == 1200 - len(range(0, 1200, 13))


def test_golden_sealed_stream_opens_with_its_key():
    o = Opener({golden.SPI: golden.KEY})
    ps = list(pk.parse_stream(golden.SEALED.read_bytes()))
    assert all(p.header.secured for p in ps)
    body = b"".join(o.open(p.aad, p.data) for p in ps if p.header.base_kind == pk.KIND_TILE)
    assert body == golden.tile_body()


def test_metadata_written_before_the_preset_dictionary_still_reads():
    """Streams from before METADATA_DICT (plain zlib metadata, same packets otherwise) decode as before."""
    ps = list(pk.parse_stream((HERE / "packets_v1_zlib_meta.bin").read_bytes()))
    assert pk.decode_metadata(ps[0].data) == golden.META
    assert pk.decode_metadata(ps[-1].data) == golden.META
    assert b"".join(p.data for p in ps if p.header.kind == pk.KIND_TILE) == golden.tile_body()


def test_metadata_uses_the_preset_dictionary_and_is_smaller():
    import zlib

    body = pk.encode_metadata(golden.META)
    assert body[1] & 0x20  # FDICT: the reader is told a dictionary is needed, and which (DICTID)
    assert int.from_bytes(body[2:6], "big") == zlib.adler32(pk.METADATA_DICT)
    assert len(body) < len(zlib.compress(__import__("json").dumps(golden.META, separators=(",", ":"),
                                                                   sort_keys=True).encode(), 9))
