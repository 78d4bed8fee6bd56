"""Downlink packets, format version 1: CCSDS Space Packets (CCSDS 133.0-B-2) carrying tiles and scene metadata.

The byte layout is written down in docs/packets.md. In short, every packet is::

    primary header   6 B   CCSDS: version 0, type TM, secondary header flag 1, APID, sequence flags,
                           14-bit sequence count, data length (= data field bytes - 1)
    secondary header 19 B  u8 format version, u8 kind (1 metadata, 2 tile), 4 B model id prefix, u32 scene id,
                           u16 tile row, u16 tile col, u8 level, u16 segment index, u16 segment count
    user data        n B   a segment of the tile bitstream, or of the zlib-compressed metadata JSON
    CRC              2 B   CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over all preceding bytes

The primary header comes from ``spacepackets`` (a maintained CCSDS library); the CRC is the stdlib's
``binascii.crc_hqx``, which is exactly CRC-16/CCITT-FALSE.
"""
from __future__ import annotations

import binascii
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Iterator

from spacepackets.ccsds.spacepacket import PacketType, SequenceFlags, SpacePacketHeader

from cvae.edge.codec.security import OVERHEAD
from cvae.edge.errors import CodecError

__all__ = ["FORMAT_VERSION", "KIND_METADATA", "KIND_TILE", "SECURED", "SecondaryHeader", "Packet", "PacketWriter",
           "parse_stream", "MAX_DATA_FIELD", "PRIMARY", "SECONDARY", "CRC_BYTES", "encode_metadata",
           "decode_metadata", "PacketFormatError", "METADATA_DICT"]

FORMAT_VERSION = 1
KIND_METADATA, KIND_TILE = 1, 2
SECURED = 0x80  # kind bit 7: the data field is AES-256-GCM sealed (cvae.edge.codec.security)
PRIMARY = 6
_SEC = struct.Struct(">BB4sIHHBHH")
SECONDARY = _SEC.size
CRC_BYTES = 2
MAX_DATA_FIELD = 65536  # CCSDS: the 16-bit length field counts data field bytes - 1
MAX_SEGMENT = MAX_DATA_FIELD - SECONDARY - CRC_BYTES
SEQ_MODULO = 1 << 14
_KINDS = (KIND_METADATA, KIND_TILE, KIND_METADATA | SECURED, KIND_TILE | SECURED)


class PacketFormatError(CodecError, ValueError):
    """A metadata packet body that does not parse."""


@dataclass(frozen=True)
class SecondaryHeader:
    kind: int
    model_id: bytes      # 4 bytes
    scene_id: int
    row: int = 0
    col: int = 0
    level: int = 0
    segment: int = 0
    segments: int = 1
    version: int = FORMAT_VERSION

    @property
    def secured(self) -> bool:
        return bool(self.kind & SECURED)

    @property
    def base_kind(self) -> int:
        return self.kind & ~SECURED

    def pack(self) -> bytes:
        return _SEC.pack(self.version, self.kind, self.model_id, self.scene_id, self.row, self.col, self.level,
                         self.segment, self.segments)

    @classmethod
    def unpack(cls, b: bytes) -> "SecondaryHeader":
        v, kind, mid, sid, row, col, level, seg, segs = _SEC.unpack(b)
        return cls(kind=kind, model_id=mid, scene_id=sid, row=row, col=col, level=level, segment=seg,
                   segments=segs, version=v)


@dataclass(frozen=True)
class Packet:
    apid: int
    seq_count: int
    seq_flags: int
    header: SecondaryHeader
    data: bytes          # user data (still sealed when header.secured)
    aad: bytes = b""     # primary + secondary header: the associated data of a sealed packet
    offset: int = 0      # where it started in the stream it was parsed from


class PacketWriter:
    """Turns tiles and metadata into packets; owns the APID and the wrapping 14-bit sequence count."""

    def __init__(self, apid: int, seq_count: int = 0, max_data_field: int = MAX_DATA_FIELD, sealer=None):
        if not 0 <= apid < 2047:
            raise ValueError(f"apid: {apid} is outside 0..2046 (2047 is the idle APID)")
        if not SECONDARY + CRC_BYTES < max_data_field <= MAX_DATA_FIELD:
            raise ValueError(f"max_data_field: {max_data_field} must lie in {SECONDARY + CRC_BYTES + 1}..{MAX_DATA_FIELD}")
        self.apid = apid
        self.seq_count = seq_count % SEQ_MODULO
        self.sealer = sealer
        self.max_segment = max_data_field - SECONDARY - CRC_BYTES - (OVERHEAD if sealer is not None else 0)
        if self.max_segment < 1:
            raise ValueError(f"max_data_field: {max_data_field} leaves no room for data")

    def wire_bytes(self, n: int) -> int:
        """The bytes a body of ``n`` bytes takes as this writer's packets (headers, CRCs, seals included)."""
        per = PRIMARY + SECONDARY + CRC_BYTES + (OVERHEAD if self.sealer is not None else 0)
        return n + max(1, -(-n // self.max_segment)) * per

    def packets(self, header: SecondaryHeader, body: bytes) -> list[bytes]:
        """Segment ``body`` into as many packets as it needs (first/continuation/last)."""
        chunks = [body[i:i + self.max_segment] for i in range(0, len(body), self.max_segment)] or [b""]
        if len(chunks) > 0xFFFF:
            raise ValueError(f"a body of {len(body)} bytes needs more than 65535 segments")
        out = []
        for i, chunk in enumerate(chunks):
            if len(chunks) == 1:
                flags = SequenceFlags.UNSEGMENTED
            else:
                flags = (SequenceFlags.FIRST_SEGMENT if i == 0 else
                         SequenceFlags.LAST_SEGMENT if i == len(chunks) - 1 else SequenceFlags.CONTINUATION_SEGMENT)
            kind = header.kind | (SECURED if self.sealer is not None else 0)
            sec = SecondaryHeader(**{**header.__dict__, "kind": kind, "segment": i, "segments": len(chunks)}).pack()
            extra = OVERHEAD if self.sealer is not None else 0
            data_len = len(sec) + extra + len(chunk) + CRC_BYTES - 1
            primary = bytes(SpacePacketHeader(packet_type=PacketType.TM, apid=self.apid, seq_count=self.seq_count,
                                              data_len=data_len, sec_header_flag=True, seq_flags=flags).pack())
            if self.sealer is not None:
                chunk = self.sealer.seal(primary + sec, chunk)
            pkt = primary + sec + chunk
            out.append(pkt + binascii.crc_hqx(pkt, 0xFFFF).to_bytes(2, "big"))
            self.seq_count = (self.seq_count + 1) % SEQ_MODULO
        return out


def parse_stream(data: bytes, stats: dict | None = None) -> Iterator[Packet]:
    """Every valid packet in ``data``, skipping damaged bytes (resynchronising on the next valid header).

    ``stats`` (if given) counts ``bytes_skipped`` and ``crc_failures``. Runs in O(len(data)) header checks;
    a CRC is computed only for headers that look valid.
    """
    st = stats if stats is not None else {}
    st.setdefault("bytes_skipped", 0)
    st.setdefault("crc_failures", 0)
    n, i = len(data), 0
    minimum = PRIMARY + SECONDARY + CRC_BYTES
    while i + minimum <= n:
        b0 = data[i]
        # version 000, type TM (0), secondary header flag 1; our secondary header version and kind
        if (b0 & 0xF8) != 0x08 or data[i + PRIMARY] != FORMAT_VERSION or data[i + PRIMARY + 1] not in _KINDS:
            i += 1
            st["bytes_skipped"] += 1
            continue
        total = PRIMARY + int.from_bytes(data[i + 4:i + 6], "big") + 1
        if total < minimum or i + total > n:
            i += 1
            st["bytes_skipped"] += 1
            continue
        pkt = data[i:i + total]
        if binascii.crc_hqx(pkt[:-2], 0xFFFF) != int.from_bytes(pkt[-2:], "big"):
            st["crc_failures"] += 1
            i += 1
            st["bytes_skipped"] += 1
            continue
        sec = SecondaryHeader.unpack(pkt[PRIMARY:PRIMARY + SECONDARY])
        if sec.segments == 0 or sec.segment >= sec.segments:
            i += 1
            st["bytes_skipped"] += 1
            continue
        word1 = int.from_bytes(pkt[0:2], "big")
        word2 = int.from_bytes(pkt[2:4], "big")
        yield Packet(apid=word1 & 0x7FF, seq_count=word2 & 0x3FFF, seq_flags=word2 >> 14, header=sec,
                     data=pkt[PRIMARY + SECONDARY:-2], aad=pkt[:PRIMARY + SECONDARY], offset=i)
        i += total


#: zlib preset dictionary of the metadata JSON (RFC 1950 FDICT; docs/packets.md): the keys and values most scenes
#: share, so a metadata copy costs about 100 bytes instead of 170. Part of the format: never change it; a new
#: dictionary needs a new DICTID, and readers keep every old one.
METADATA_DICT = (b'"transform":[10.0,0.0,30.0,0.0,-10.0,-30.0,'
                 b'"colorinterp":["red","green","blue","nir","undefined","alpha","gray"],'
                 b'"descriptions":["B1","B2","B3","B4"],"tags":{"AREA_OR_POINT":"Point"},"source_dtype":"float32",'
                 b'"dtype":"uint8","dtype":"int16","dtype":"float32",{"bands":1,"crs":"EPSG:326","dtype":"uint16",'
                 b'"height":1,"model_id":"","name":"","nodata":null,"nodata":0.0,"tile":256,')


def encode_metadata(meta: dict) -> bytes:
    c = zlib.compressobj(9, zdict=METADATA_DICT)
    return c.compress(json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()) + c.flush()


#: deepest nesting of metadata JSON (a scene's is 2: ``tags`` and the lists); deeper is crafted, refused before
#: parsing (Python's parser recurses: a few bytes of ``[[[[...`` would otherwise raise RecursionError)
MAX_METADATA_DEPTH = 8
#: largest inflated metadata body (a scene's is a few hundred bytes; band descriptions and tags add little)
MAX_METADATA_BYTES = 1 << 20


def _nesting_problem(raw: bytes) -> str | None:
    """Why ``raw`` nests deeper than MAX_METADATA_DEPTH, from one linear scan outside strings, or None."""
    depth, in_string, escaped = 0, False, False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_METADATA_DEPTH:
                return f"nests deeper than {MAX_METADATA_DEPTH} levels"
        elif b in (0x5D, 0x7D):
            depth -= 1
    return None


def decode_metadata(body: bytes) -> dict:
    """The metadata dict of a (reassembled) metadata body; :class:`PacketFormatError` for anything that is not a
    JSON object of bounded size and depth."""
    try:
        # the dictionary is used only when the stream says so (FDICT): bodies written without it still read
        d = zlib.decompressobj(zdict=METADATA_DICT)
        raw = d.decompress(body, MAX_METADATA_BYTES)
        if d.unconsumed_tail:
            raise PacketFormatError(f"scene metadata inflates beyond {MAX_METADATA_BYTES} bytes")
        problem = _nesting_problem(raw)
        if problem:
            raise PacketFormatError(f"scene metadata {problem}")
        meta = json.loads(raw)
    except (zlib.error, ValueError, UnicodeDecodeError, RecursionError) as e:
        if isinstance(e, PacketFormatError):
            raise
        raise PacketFormatError(f"scene metadata does not parse: {e}") from e
    if not isinstance(meta, dict):
        raise PacketFormatError("scene metadata is not a JSON object")
    return meta
