"""docs/packets.md gives the metadata's preset zlib dictionary as data: a station inflating with the documented
bytes reads what the encoder writes."""
from __future__ import annotations

import re
import zlib
from pathlib import Path

from cvae.edge.codec import packets as pk

DOC = Path(__file__).resolve().parents[1] / "docs" / "packets.md"


def _documented_dictionary() -> bytes:
    text = DOC.read_text()
    block = re.search(r"preset dictionary.*?```\n(.*?)```", text, re.S).group(1)
    return "".join(block.splitlines()).encode("ascii")


def test_documented_dictionary_is_the_shipped_one_and_its_dictid():
    doc = _documented_dictionary()
    assert doc == pk.METADATA_DICT
    assert f"0x{zlib.adler32(doc):08x}" in DOC.read_text()


def test_a_metadata_body_inflates_with_the_documented_dictionary_alone():
    meta = {"v": 1, "name": "s", "width": 40, "height": 30, "bands": 2, "dtype": "uint16", "nodata": 0,
            "crs": "EPSG:32633", "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0], "tile": 256,
            "model_id": "ab" * 8}
    body = pk.encode_metadata(meta)
    assert int.from_bytes(body[2:6], "big") == zlib.adler32(_documented_dictionary())  # FDICT's DICTID
    assert zlib.decompressobj(zdict=_documented_dictionary()).decompress(body) == \
        pk.json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
