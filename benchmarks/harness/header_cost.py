"""Where a scene's bytes go, per level: entropy-coded payload against everything around it.

Every byte of ``encode_scene``'s packets (what the scorer counts) is split into: the tiles' coded streams (scale
indexes, latent symbols, residual coefficients), the tiles' headers (fixed fields, band ranges, means, KLT matrix,
component map, stream lengths), the masks (valid and per-band fill), the scene metadata packets, and the CCSDS
framing (primary and secondary headers, CRC). Side information is what issue 17 asks to cut at low rates: this is
its measurement.

    python benchmarks/harness/header_cost.py .dev/val/*.tif
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import scenes_main, utc_now  # noqa: E402


def split(data: bytes) -> dict:
    """Bytes of one scene's packet stream by kind (see the module docstring); rate-level tiles only."""
    import dataclasses

    from cvae.edge.codec import bitstream
    from cvae.edge.codec import packets as pk
    from cvae.ground.decoder import collect

    out = dict.fromkeys(("streams", "tile_headers", "masks", "metadata", "framing"), 0)
    for p in pk.parse_stream(data):
        out["framing"] += pk.PRIMARY + pk.SECONDARY + pk.CRC_BYTES
        if p.header.base_kind != pk.KIND_TILE:
            out["metadata"] += len(p.data)  # user data (the zlib metadata JSON)
    for parts in collect([data], {}).values():
        side = parts.meta.side()
        for key in sorted(parts.segments):
            body = parts.body(key)
            header, present, payload, valid = bitstream.unpack_tile(body, side)
            if header.format.samples:
                raise ValueError("error-bounded (v4, v8) tiles are not split here: this measures the rate levels")
            # the same tile packed without its masks: everything up to the end of its streams (deterministic)
            bare = len(bitstream.pack_tile(dataclasses.replace(header, band_fill=None), present, payload, None))
            coded = sum(len(s) for s in payload)
            out["streams"] += coded
            out["tile_headers"] += bare - coded
            out["masks"] += len(body) - bare
    return out


def run(scenes: list[Path], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, encode_scene

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    records = []
    for path in scenes:
        rows = []
        for level in range(codec.levels):
            enc = encode_scene(path, bundle, codec, EncodeOptions(level=level, scene_id=1))
            data = b"".join(enc.packets)
            parts = split(data)
            assert sum(parts.values()) == len(data), (parts, len(data))
            rows.append({"level": level, "bytes": len(data), **parts,
                         "overhead_share": 1 - parts["streams"] / len(data)})
        records.append({"scene": path.stem, "levels": rows})
        log(f"{path.stem}: " + " ".join(f"L{r['level']} {100 * r['overhead_share']:.0f}%" for r in rows))
    per_level = [statistics.median(s["levels"][lv]["overhead_share"] for s in records)
                 for lv in range(codec.levels)]
    return {"date": utc_now(), "bundle": bundle.model_id[:12], "scenes": records,
            "median_overhead_share_per_level": per_level}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Where the bytes go, per level (bundle {rec['bundle']}, {rec['date'][:10]})", "", f"`{command}`", "",
             "Share of every packet byte that is not entropy-coded payload (tile headers with band ranges, means and "
             "KLT; masks; metadata packets; CCSDS framing), median over scenes per level: " +
             ", ".join(f"L{i} {100 * v:.1f}%" for i, v in enumerate(rec["median_overhead_share_per_level"])) + ".",
             "", "| scene | level | bytes | streams | tile headers | masks | metadata | framing | not payload |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in rec["scenes"]:
        for r in s["levels"]:
            lines.append(f"| {s['scene']} | {r['level']} | {r['bytes']} | {r['streams']} | {r['tile_headers']} | "
                         f"{r['masks']} | {r['metadata']} | {r['framing']} | {100 * r['overhead_share']:.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "header_cost", run, markdown, ())

if __name__ == "__main__":
    sys.exit(main())
