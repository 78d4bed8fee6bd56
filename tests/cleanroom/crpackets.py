"""Clean-room packet layer (docs/packets.md) and scene assembly, without the project's code."""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from crcoders import CleanroomError

DICTIONARY = (
    '"transform":[10.0,0.0,30.0,0.0,-10.0,-30.0,"colorinterp":["red","green","blue","nir","undefined","al'
    'pha","gray"],"descriptions":["B1","B2","B3","B4"],"tags":{"AREA_OR_POINT":"Point"},"source_dtype":"f'
    'loat32","dtype":"uint8","dtype":"int16","dtype":"float32",{"bands":1,"crs":"EPSG:326","dtype":"uint1'
    '6","height":1,"model_id":"","name":"","nodata":null,"nodata":0.0,"tile":256,'
).encode("ascii")
DICTID = 0x5DF46F12

SEC = struct.Struct(">BB4sIHHBHH")  # 19 bytes


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


@dataclass(frozen=True)
class Packet:
    apid: int
    seq_flags: int
    seq_count: int
    kind: int
    model_id: bytes
    scene_id: int
    row: int
    col: int
    level: int
    seg_index: int
    seg_count: int
    data: bytes
    raw_header: bytes = b""


def parse_stream(buf: bytes):
    """Scan for packets; a damaged one costs only itself (moves on by one byte)."""
    out = []
    i = 0
    n = len(buf)
    while i + 6 + 19 + 2 <= n:
        h0 = buf[i]
        # version 000, type 0, secondary header flag 1
        if (h0 >> 5) != 0 or not (h0 >> 3) & 1 or buf[i + 6] != 1 or (buf[i + 7] & 0x7F) not in (1, 2):
            i += 1
            continue
        length = int.from_bytes(buf[i + 4:i + 6], "big") + 7
        if length < 6 + 19 + 2 or i + length > n:
            i += 1
            continue
        pkt = buf[i:i + length]
        if crc16(pkt[:-2]) != int.from_bytes(pkt[-2:], "big"):
            i += 1
            continue
        w0 = int.from_bytes(pkt[0:2], "big")
        w1 = int.from_bytes(pkt[2:4], "big")
        _ver, kind, mid, scene, row, col, level, si, sc = SEC.unpack(pkt[6:25])
        out.append(Packet(w0 & 0x7FF, w1 >> 14, w1 & 0x3FFF, kind, mid, scene, row, col, level, si, sc, pkt[25:-2],
                          pkt[:25]))
        i += length
    return out


def inflate_metadata(body: bytes) -> dict:
    if len(body) < 2:
        raise CleanroomError("metadata too short")
    cmf, flg = body[0], body[1]
    if flg & 0x20:
        dictid = int.from_bytes(body[2:6], "big")
        if dictid != DICTID:
            raise CleanroomError(f"unknown DICTID {dictid:#x}")
        d = zlib.decompressobj(zdict=DICTIONARY)
    else:
        d = zlib.decompressobj()
    raw = d.decompress(body, 1 << 20)
    if d.unconsumed_tail:
        raise CleanroomError("metadata over 1 MiB")
    meta = json.loads(raw.decode("utf-8"))
    if not isinstance(meta, dict):
        raise CleanroomError("metadata is not an object")
    return meta


def unseal(p: Packet, raw_header: bytes, keys: dict) -> Packet:
    """docs/security.md: data = SPI(2) IV(12) ciphertext tag(16); AAD = primary + secondary + security header."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    spi = int.from_bytes(p.data[:2], "big")
    if spi not in keys:
        raise CleanroomError(f"no key for SPI {spi}")
    iv = p.data[2:14]
    plain = AESGCM(keys[spi]).decrypt(iv, p.data[14:], raw_header + p.data[:14])
    return Packet(p.apid, p.seq_flags, p.seq_count, p.kind & 0x7F, p.model_id, p.scene_id, p.row, p.col, p.level,
                  p.seg_index, p.seg_count, plain)


def reassemble(packets, keys: dict | None = None):
    """Returns ({scene: metadata}, {(scene, row, col): (level, model_id, body)}).

    Sealed packets (kind bit 7) are opened with `keys` ({spi: 32-byte key}) and skipped without them; with keys,
    plaintext packets are refused (as cvae-decode does).
    """
    segs: dict = {}
    seen_iv = set()
    for p in packets:
        if p.kind & 0x80:
            if not keys:
                continue
            iv = p.data[:14]
            if iv in seen_iv:
                continue  # replay / duplicate
            seen_iv.add(iv)
            p = unseal(p, p.raw_header, keys)
        elif keys:
            continue
        key = (p.kind, p.scene_id, p.row, p.col)
        d = segs.setdefault(key, {"count": p.seg_count, "parts": {}, "level": p.level, "mid": p.model_id})
        d["parts"].setdefault(p.seg_index, p.data)  # duplicates ignored
    metas, tiles = {}, {}
    for (kind, scene, row, col), d in segs.items():
        if len(d["parts"]) != d["count"]:
            continue  # missing segments: lost
        body = b"".join(d["parts"][k] for k in range(d["count"]))
        if kind == 1:
            metas.setdefault(scene, inflate_metadata(body))
        else:
            tiles[(scene, row, col)] = (d["level"], d["mid"], body)
    return metas, tiles


def decode_scene(path: str, bundle_path: str | None = None, keys: dict | None = None):
    """Decode a packet file: returns (metadata, samples[C, H, W] of the scene dtype, valid[C, H, W], tiles info).

    `valid[b, y, x]` is False where the ground writes nodata (invalid pixel, band fill, lost tile).
    """
    from crtile import Bundle, decode_tile_pixels, decode_v4, parse_tile

    with open(path, "rb") as f:
        metas, tiles = reassemble(parse_stream(f.read()), keys)
    if len(metas) != 1:
        raise CleanroomError(f"expected one scene, got {len(metas)}")
    scene, meta = next(iter(metas.items()))
    C, H, W, T = meta["bands"], meta["height"], meta["width"], meta["tile"]
    dtype = np.dtype(meta["dtype"])
    sbr = bytes.fromhex(meta["band_range"]) if meta.get("band_range") else None
    if sbr is not None and len(sbr) != 8 * C:
        raise CleanroomError("malformed band_range")
    out = np.zeros((C, H, W), dtype=dtype)
    ok = np.zeros((C, H, W), dtype=bool)
    bundle = None
    info = []
    for (sc, row, col), (level, mid, body) in sorted(tiles.items()):
        if sc != scene:
            continue
        t = parse_tile(body, sbr)
        y0, x0 = row * T, col * T
        if t.H != min(T, H - y0) or t.W != min(T, W - x0) or t.C != C:
            raise CleanroomError("tile shape does not match the grid")
        if t.version in (4, 8, 9):
            px, _, _ = decode_v4(t)
            px = px.astype(dtype)
        else:
            if bundle is None:
                bundle = Bundle(bundle_path)
            px = decode_tile_pixels(t, bundle)
        good = np.ones((C, t.H, t.W), dtype=bool)
        if t.valid is not None:
            good &= t.valid[None]
        if t.band_fill is not None:
            good &= ~t.band_fill
            if meta.get("nodata") is None:  # docs/bitstream.md: band-fill samples are 0 in a scene without nodata
                px = px.copy()
                px[t.band_fill] = 0
        out[:, y0:y0 + t.H, x0:x0 + t.W] = px
        ok[:, y0:y0 + t.H, x0:x0 + t.W] = good
        info.append((row, col, t.version, t.level, tuple(t.present), t.flags))
    if meta.get("nodata") is not None:
        out[~ok] = np.array(meta["nodata"]).astype(dtype)
    if meta.get("source_dtype"):
        out = out.astype(meta["source_dtype"])
    return meta, out, ok, info
