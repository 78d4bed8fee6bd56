"""Ground decoder: packets (in any order, with losses, duplicates and damage) back to scenes.

Packets are grouped by scene id; a scene needs one intact metadata packet (they are repeated). Tiles are
reassembled from their segments and decoded one by one; a tile whose segments are missing or whose
bitstream is rejected becomes nodata and is listed in the report.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import bitstream, packets as pk
from cvae.edge.codec.security import AuthenticationError, Opener, ReplayError
from cvae.edge.codec.tile import TileCodec
from cvae.edge.errors import CodecError
from cvae.edge.io.tiling import tile_grid

__all__ = ["DecodedScene", "collect", "decode_scene", "decode_streams"]


@dataclass
class DecodedScene:
    scene_id: int
    meta: dict
    pixels: np.ndarray          # native dtype [C, H, W]
    valid: np.ndarray           # bool[H, W]: data pixels (False for nodata and for lost tiles)
    tiles_ok: list[tuple[int, int]] = field(default_factory=list)
    tiles_lost: list[dict] = field(default_factory=list)
    levels: dict = field(default_factory=dict)
    apid: int = 0               # the APID its packets came on (scenes are told apart by APID and scene id)
    max_error: np.ndarray | None = None  # int64[C]: the largest bound of the error-bounded tiles (tile format v4)
    bounded_tiles: int = 0      # tiles coded to an error bound


@dataclass
class _SceneParts:
    meta: dict | None = None
    segments: dict = field(default_factory=lambda: defaultdict(dict))  # (row, col) -> {index: (count, level, bytes)}
    duplicates: int = 0


def collect(streams: list[bytes], stats: dict, opener: Opener | None = None) -> dict[tuple[int, int], _SceneParts]:
    """Packets grouped by scene: the key is ``(APID, scene id)``, so scenes of two encoders (each its own
    APID) never merge even when their ids meet."""
    scenes: dict[tuple[int, int], _SceneParts] = defaultdict(_SceneParts)
    meta_segments: dict[tuple[int, int], dict] = defaultdict(dict)
    for key in ("packets", "secured_without_key", "authentication_failures", "replays", "clear_refused"):
        stats.setdefault(key, 0)
    for data in streams:
        for p in pk.parse_stream(data, stats):
            h = p.header
            stats["packets"] += 1
            if h.secured:
                if opener is None:
                    stats["secured_without_key"] += 1
                    continue
                try:
                    p = replace(p, data=opener.open(p.aad, p.data))
                except ReplayError:
                    stats["replays"] += 1
                    continue
                except AuthenticationError:
                    stats["authentication_failures"] += 1
                    continue
            elif opener is not None:  # with a key, only authenticated packets are trusted
                stats["clear_refused"] += 1
                continue
            key = (p.apid, h.scene_id)
            parts = scenes[key]
            if h.base_kind == pk.KIND_METADATA:
                if parts.meta is None:
                    meta_segments[key][h.segment] = (h.segments, p.data)
                    segs = meta_segments[key]
                    if len(segs) == h.segments:
                        try:
                            parts.meta = pk.decode_metadata(b"".join(segs[i][1] for i in range(h.segments)))
                        except (pk.PacketFormatError, KeyError):
                            meta_segments[key].clear()
            else:
                tile = parts.segments[(h.row, h.col)]
                if h.segment in tile:
                    parts.duplicates += 1
                    continue
                tile[h.segment] = (h.segments, h.level, p.data)
    return scenes


def decode_scene(scene_id: int, parts: _SceneParts, codec: TileCodec, progress=None) -> DecodedScene:
    """``progress(done, total)``, when given, is called after every tile."""
    meta = parts.meta
    c, h, w = int(meta["bands"]), int(meta["height"]), int(meta["width"])
    dtype = np.dtype(meta["dtype"])
    nodata = meta.get("nodata")
    fill = nodata if nodata is not None else 0
    pixels = np.full((c, h, w), fill, dtype=dtype)
    valid = np.zeros((h, w), bool)
    out = DecodedScene(scene_id=scene_id, meta=meta, pixels=pixels, valid=valid)
    side = bitstream.SceneSide.from_metadata(meta, c)  # checked by metadata_problem: v6 tiles refer to it
    windows = list(tile_grid(h, w, int(meta["tile"])))
    for i, win in enumerate(windows):
        if progress is not None:
            progress(i, len(windows))
        segs = parts.segments.get((win.row, win.col))
        key = {"row": win.row, "col": win.col}
        if not segs:
            out.tiles_lost.append({**key, "reason": "no packet received"})
            continue
        counts = {s[0] for s in segs.values()}
        count = max(counts)
        if len(counts) != 1 or set(segs) != set(range(count)):
            out.tiles_lost.append({**key, "reason": f"segments missing ({len(segs)} of {count} received)"})
            continue
        body = b"".join(segs[i][2] for i in range(count))
        declared = bitstream.peek_shape(body)
        if declared is not None and declared != (c, win.height, win.width):  # refused before any allocation
            out.tiles_lost.append({**key, "reason": f"declares {declared}, its place in the scene is "
                                                    f"{(c, win.height, win.width)}"})
            continue
        try:
            t = codec.decompress(body, side)
        except CodecError as e:
            out.tiles_lost.append({**key, "reason": f"rejected: {e}"})
            continue
        if t.pixels.shape != (c, win.height, win.width) or t.pixels.dtype != dtype:
            out.tiles_lost.append({**key, "reason": f"shape {t.pixels.shape}/{t.pixels.dtype} does not fit the scene"})
            continue
        ys, xs = win.slices
        tile_px = t.pixels
        if nodata is not None:
            tile_px = tile_px.copy()
            tile_px[:, ~t.valid] = np.asarray(nodata).astype(dtype)
            if t.header.band_fill is not None:  # samples that are nodata in their band only (format v3)
                tile_px[t.header.band_fill] = np.asarray(nodata).astype(dtype)
        pixels[:, ys, xs] = tile_px
        valid[ys, xs] = t.valid
        out.tiles_ok.append((win.row, win.col))
        out.levels[f"{win.row},{win.col}"] = t.level
        if t.max_error is not None:  # what the tile's own header guarantees, per band
            out.bounded_tiles += 1
            out.max_error = t.max_error if out.max_error is None else np.maximum(out.max_error, t.max_error)
    if progress is not None:
        progress(len(windows), len(windows))
    return out


#: the largest scene the ground decodes whole (bands x height x width); larger metadata is refused as crafted
MAX_SCENE_SAMPLES = 4_000_000_000


def metadata_problem(meta: dict) -> str | None:
    """Why a (CRC-valid) metadata packet cannot describe a scene we decode, or None: every field the decoder
    uses is checked for type and range before anything is allocated (crafted metadata must not crash a run)."""

    try:
        c, h, w, tile = (meta.get(k) for k in ("bands", "height", "width", "tile"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (c, h, w, tile)):
            return "bands, height, width and tile must be positive integers"
        if c > bitstream.MAX_BANDS or tile > bitstream.MAX_EDGE or tile % 16:
            return f"bands {c} or tile {tile} out of range"
        if c * h * w > MAX_SCENE_SAMPLES:
            return f"{c} x {h} x {w} samples exceed {MAX_SCENE_SAMPLES:,}"
        if str(meta.get("dtype")) not in {str(d) for d in bitstream.DTYPES}:
            return f"dtype {str(meta.get('dtype'))[:40]!r} is not one the format carries"
        nodata = meta.get("nodata")
        if nodata is not None and not isinstance(nodata, (int, float)):
            return "nodata is not a number"
        tr = meta.get("transform")
        if tr is not None and not (isinstance(tr, list) and len(tr) == 6 and
                                   all(isinstance(v, (int, float)) for v in tr)):
            return "transform is not six numbers"
        crs = meta.get("crs")
        if crs is not None:
            if not isinstance(crs, str) or len(crs) > 20000:
                return "crs is not a short string"
            from rasterio.crs import CRS
            from rasterio.errors import CRSError

            try:
                CRS.from_user_input(crs)
            except CRSError as e:
                return f"crs does not parse ({str(e)[:100]})"
        if meta.get("source_dtype") is not None and str(meta["source_dtype"]) not in {str(d) for d in bitstream.DTYPES}:
            return "source_dtype is not one the format carries"
        bitstream.SceneSide.from_metadata(meta, c)
    except (TypeError, ValueError, OverflowError) as e:
        return f"malformed ({e})"
    return None


def decode_streams(streams: list[bytes], bundle: Bundle, codec: TileCodec,
                   opener: Opener | None = None, progress=None) -> tuple[list[DecodedScene], dict]:
    """Decode every scene found in ``streams``; returns the scenes and a report dict. With an ``opener``
    (keys), only authenticated packets are used; without one, sealed packets are counted and skipped."""
    stats: dict = {}
    scenes = collect(streams, stats, opener)
    decoded, report = [], {"stats": stats, "scenes": []}
    for (apid, sid), parts in sorted(scenes.items()):
        if parts.meta is None:
            report["scenes"].append({"scene_id": sid, "apid": apid, "error": "no intact metadata packet: scene cannot be placed",
                                     "tiles_received": len(parts.segments)})
            continue
        meta_id = str(parts.meta.get("model_id"))
        if len(meta_id) < 16 or not bundle.accepts(meta_id):
            report["scenes"].append({"scene_id": sid, "apid": apid, "name": parts.meta.get("name"),
                                     "error": f"coded with model {str(parts.meta.get('model_id'))[:16]}, the bundle is "
                                              f"{bundle.model_id[:16]}: decode with --bundle pointing at that model"})
            continue
        problem = metadata_problem(parts.meta)
        if problem:
            report["scenes"].append({"scene_id": sid, "apid": apid, "name": str(parts.meta.get("name"))[:200],
                                     "error": f"scene metadata refused: {problem}"})
            continue
        d = decode_scene(sid, parts, codec, progress(parts.meta.get("name") or sid) if progress else None)
        d.apid = apid
        decoded.append(d)
        levels: dict = {}
        for lv in d.levels.values():
            levels[str(lv)] = levels.get(str(lv), 0) + 1
        tile_bytes = sum(len(seg[2]) for segs in parts.segments.values() for seg in segs.values())
        report["scenes"].append({"scene_id": sid, "apid": apid, "name": d.meta.get("name"), "tiles_ok": len(d.tiles_ok),
                                 "tiles_lost": d.tiles_lost, "duplicate_segments": parts.duplicates,
                                 "model_id": bundle.model_id[:16], "levels": levels,
                                 "tile_bits_per_sample": 8 * tile_bytes / max(1, d.pixels.size),
                                 **({"max_error": d.max_error.tolist(), "bounded_tiles": d.bounded_tiles}
                                    if d.max_error is not None else {}),
                                 **({"metadata_dropped": d.meta["dropped"]} if d.meta.get("dropped") else {})})
    return decoded, report
