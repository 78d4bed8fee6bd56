"""Regenerate the golden downlink files of packet format 1 / tile bitstream 1.

``packets_v1.bin``: a metadata packet, then one tile body (tile bitstream v1 around the golden range-coder
stream, with a valid mask) segmented over packets of at most 300 data bytes, then the metadata again.
``packets_v1_sealed.bin``: the same, sealed with AES-256-GCM under SPI 7, key bytes 0..31, salt 8 x 0xA5.

Run ``python tests/edge/codec/golden/make_packet_golden.py`` after an intended format change (and bump
the format version). Inputs involve no floating-point computation that could differ between machines.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# a sibling script: on sys.path when this one runs as a script, and through pytest's pythonpath (pyproject.toml)
from make_rangecoder_golden import golden_case

from cvae.edge.codec import bitstream, packets as pk, rangecoder
from cvae.edge.codec.security import Sealer

HERE = Path(__file__).resolve().parent

PLAIN = HERE / "packets_v1.bin"
SEALED = HERE / "packets_v1_sealed.bin"
KEY, SPI, SALT = bytes(range(32)), 7, b"\xa5" * 8
META = {"v": 1, "name": "golden", "width": 40, "height": 30, "bands": 2, "dtype": "uint16", "nodata": 0,
        "crs": "EPSG:32633", "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0], "tile": 256,
        "model_id": "ab" * 32}


def tile_body() -> bytes:
    g = golden_case()
    payload = rangecoder.encode(g["symbols"], g["indexes"], g["cdfs"], g["cdf_lengths"], g["offsets"], 16)
    header = bitstream.TileHeader(model_id=b"\xab" * 4, level=2, dtype=np.dtype(np.uint16), bands=2, height=30,
                                  width=40, lo=np.array([100, 5], np.float32), hi=np.array([4000, 900], np.float32),
                                  mean=np.array([0.25, 0.5], np.float32),
                                  matrix=np.array([[90, 90], [-90, 90]], np.int8))
    valid = (np.arange(1200).reshape(30, 40) % 13) != 0
    return bitstream.pack_tile(header, np.array([True, True]), payload, valid)


def streams() -> tuple[bytes, bytes]:
    out = []
    for sealer in (None, Sealer(SPI, KEY, salt=SALT)):
        w = pk.PacketWriter(apid=0x1C5, seq_count=16380, max_data_field=300, sealer=sealer)
        meta = pk.encode_metadata(META)
        mh = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=b"\xab" * 4, scene_id=0xC0FFEE)
        th = pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=b"\xab" * 4, scene_id=0xC0FFEE, row=0, col=0, level=2)
        ps = w.packets(mh, meta) + w.packets(th, tile_body()) + w.packets(mh, meta)
        out.append(b"".join(ps))
    return out[0], out[1]


def main() -> int:
    plain, sealed = streams()
    PLAIN.write_bytes(plain)
    SEALED.write_bytes(sealed)
    print(f"wrote {PLAIN} ({len(plain)} B) and {SEALED} ({len(sealed)} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
