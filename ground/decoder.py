"""Ground decoder: packets (in any order, with losses, duplicates and damage) back to scenes.

Packets are first *indexed* (:func:`collect`): grouped by ``(APID, scene id)``, each tile segment kept as a
reference into the stream it came in (a sealed one as its opened bytes), so a pass costs memory for its index,
not for its data. A scene needs one intact metadata packet (they are repeated), checked field by field
(:class:`cvae.edge.codec.metadata.SceneMetadata`, :func:`scene_problem`) before anything is allocated for it. Its tiles are then decoded one at a time, in
scene order (:func:`decode_tiles`): a tile whose segments are missing or whose bitstream is rejected is listed
as lost, and the caller places each decoded tile where it belongs: into a GeoTIFF window by window
(``cvae-decode``, memory bounded by one tile), or into whole arrays (:func:`decode_scene`, for tests and
benchmarks on scenes that fit in memory). A scene that fails costs only itself.

    streams --collect--> {(apid, scene): SceneParts} --decode_tiles--> PlacedTile... --> GeoTIFF windows
"""
from __future__ import annotations

import binascii
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import bitstream, packets as pk
from cvae.edge.codec.metadata import MAX_SCENE_SAMPLES, MetadataError, SceneMetadata
from cvae.edge.codec.security import AuthenticationError, Opener, ReplayError
from cvae.edge.codec.tile import TileCodec
from cvae.edge.errors import CodecError
from cvae.edge.io.tiling import TileWindow

__all__ = ["DecodedScene", "PacketFile", "PlacedTile", "StaleSegmentError", "SceneParts", "SceneSummary", "collect", "decode_scene", "decode_streams",
           "decode_tiles", "metadata_problem", "scene_name", "scene_problem", "scene_report", "MAX_SCENE_SAMPLES",
           "MAX_LISTED_WINDOWS", "MAX_LISTED_LOST"]

#: a scene grid up to this many tile windows is walked window by window; a larger one (only crafted metadata
#: declares so many) only where tiles arrived, the rest counted as lost: time bounded by what arrived
MAX_LISTED_WINDOWS = 65536
#: lost tiles listed one by one in a scene's report (in scene order); more are counted: the report stays bounded
MAX_LISTED_LOST = 4096

class PacketFile:
    """A packet file read twice: whole, once, to be indexed (:func:`collect` drops the bytes after), then a
    packet at a time (``pread``) when its tile is decoded. A packet whose bytes changed on disk in between fails
    its CRC again and its tile is lost, never decoded from other bytes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read_all(self) -> bytes:
        return self.path.read_bytes()

    def __getitem__(self, span: slice) -> bytes:
        fd = os.open(self.path, os.O_RDONLY)  # opened per read: a pass of thousands of files holds no descriptor
        try:
            return os.pread(fd, span.stop - span.start, span.start)
        finally:
            os.close(fd)


Buffer = bytes | bytearray | memoryview | PacketFile


class StaleSegmentError(CodecError, ValueError):
    """A packet's bytes no longer pass its CRC when read back for decoding (the file changed after indexing)."""


@dataclass(frozen=True)
class _Segment:
    count: int                  # segments the tile was cut into
    level: int
    stream: int                 # index of the stream the packet lies in
    start: int                  # the packet's first byte
    end: int                    # one past its CRC
    data: bytes | None = None   # a sealed segment, opened at collection (its replay check is order-dependent)

    def size(self) -> int:
        return self.end - self.start - pk.PRIMARY - pk.SECONDARY - pk.CRC_BYTES if self.data is None else len(self.data)


@dataclass
class SceneParts:
    """What arrived of one scene: its metadata and, per tile ``(row, col)``, its segments by index."""

    streams: Sequence[Buffer]
    meta: SceneMetadata | None = None
    refused: str | None = None  # why its (CRC-valid) metadata was refused, and under which name
    refused_name: str | None = None
    segments: dict = field(default_factory=lambda: defaultdict(dict))  # (row, col) -> {index: _Segment}
    duplicates: int = 0

    def segment_bytes(self, seg: _Segment) -> bytes:
        """A segment's user data, read back from its stream with its packet's CRC checked again."""
        if seg.data is not None:
            return seg.data
        pkt = bytes(self.streams[seg.stream][seg.start:seg.end])
        if len(pkt) != seg.end - seg.start or binascii.crc_hqx(pkt[:-2], 0xFFFF) != int.from_bytes(pkt[-2:], "big"):
            raise StaleSegmentError("a packet changed on disk after it was indexed")
        return pkt[pk.PRIMARY + pk.SECONDARY:-pk.CRC_BYTES]

    def body(self, key: tuple[int, int]) -> bytes:
        """The tile bitstream at ``key``, its segments joined (the caller checked that all are there)."""
        segs = self.segments[key]
        return b"".join(self.segment_bytes(segs[i]) for i in range(len(segs)))

    @property
    def received_bytes(self) -> int:
        return sum(s.size() for segs in self.segments.values() for s in segs.values())


def collect(streams: Sequence[Buffer], stats: dict, opener: Opener | None = None) -> dict[tuple[int, int], SceneParts]:
    """Packets indexed by scene: the key is ``(APID, scene id)``, so scenes of two encoders (each its own
    APID) never merge even when their ids meet. ``streams`` stay referenced: tiles are read from them later."""
    scenes: dict[tuple[int, int], SceneParts] = defaultdict(lambda: SceneParts(streams))
    meta_segments: dict[tuple[int, int], dict] = defaultdict(dict)
    for counter in ("packets", "secured_without_key", "authentication_failures", "replays", "clear_refused"):
        stats.setdefault(counter, 0)
    for index, stream in enumerate(streams):
        data = stream.read_all() if isinstance(stream, PacketFile) else bytes(stream)  # dropped once indexed
        for p in pk.parse_stream(data, stats):
            h = p.header
            stats["packets"] += 1
            opened = None
            if h.secured:
                if opener is None:
                    stats["secured_without_key"] += 1
                    continue
                try:
                    opened = opener.open(p.aad, p.data)
                except ReplayError:
                    stats["replays"] += 1
                    continue
                except AuthenticationError:
                    stats["authentication_failures"] += 1
                    continue
                p = replace(p, data=opened)
            elif opener is not None:  # with a key, only authenticated packets are trusted
                stats["clear_refused"] += 1
                continue
            key = (p.apid, h.scene_id)
            parts = scenes[key]
            if h.base_kind == pk.KIND_METADATA:
                if parts.meta is None and parts.refused is None:
                    meta_segments[key][h.segment] = (h.segments, p.data)
                    segs = meta_segments[key]
                    if len(segs) == h.segments:
                        try:
                            raw = pk.decode_metadata(b"".join(segs[i][1] for i in range(h.segments)))
                        except (pk.PacketFormatError, KeyError):
                            meta_segments[key].clear()
                            continue
                        try:
                            parts.meta = SceneMetadata.from_dict(raw)
                        except MetadataError as e:  # the copies are identical: one refused, all refused
                            parts.refused, parts.refused_name = str(e), str(raw.get("name"))[:200]
            else:
                tile = parts.segments[(h.row, h.col)]
                if h.segment in tile:
                    parts.duplicates += 1
                    continue
                end = p.offset + pk.PRIMARY + pk.SECONDARY + len(p.data) + pk.CRC_BYTES
                tile[h.segment] = _Segment(h.segments, h.level, index, p.offset, end, opened)
    return dict(scenes)


@dataclass(frozen=True)
class PlacedTile:
    """A decoded tile and its place: ``pixels`` native dtype [C, h, w] with nodata restored (the scene's nodata
    value in invalid pixels and in band-fill samples), ``valid`` bool[h, w]."""

    window: TileWindow
    pixels: np.ndarray
    valid: np.ndarray
    level: int
    max_error: np.ndarray | None = None


@dataclass
class SceneSummary:
    """What decoding a scene found, tile by tile (filled in while :func:`decode_tiles` runs)."""

    tiles_ok: list[tuple[int, int]] = field(default_factory=list)
    tiles_lost: list[dict] = field(default_factory=list)  # {row, col, reason}: the first MAX_LISTED_LOST lost
    tiles_unlisted: int = 0     # lost windows beyond those, counted only
    stray_tiles: int = 0        # tiles whose (row, col) lies outside the declared grid
    levels: dict = field(default_factory=dict)
    max_error: np.ndarray | None = None  # int64[C]: the largest bound of the error-bounded tiles (tile formats v4, v8)
    bounded_tiles: int = 0      # tiles coded to an error bound

    @property
    def lost(self) -> int:
        return len(self.tiles_lost) + self.tiles_unlisted

    def lose(self, row: int, col: int, reason: str) -> None:
        if len(self.tiles_lost) < MAX_LISTED_LOST:
            self.tiles_lost.append({"row": row, "col": col, "reason": reason})
        else:
            self.tiles_unlisted += 1


def _window(meta: SceneMetadata, row: int, col: int) -> TileWindow:
    h, w, t = meta.height, meta.width, meta.tile
    return TileWindow(row, col, row * t, col * t, min(t, h - row * t), min(t, w - col * t))


def _windows(parts: SceneParts, summary: SceneSummary) -> tuple[int, Iterator[TileWindow]]:
    """How many windows, and the windows in scene order: every window of a grid up to MAX_LISTED_WINDOWS, else
    only those where a tile arrived (the others are counted as lost, not walked: a crafted grid cannot cost time
    or memory)."""
    meta = parts.meta
    assert meta is not None
    rows, cols = meta.grid
    inside = sorted(k for k in parts.segments if k[0] < rows and k[1] < cols)
    summary.stray_tiles = len(parts.segments) - len(inside)
    if rows * cols <= MAX_LISTED_WINDOWS:
        return rows * cols, (_window(meta, r, c) for r in range(rows) for c in range(cols))
    summary.tiles_unlisted += rows * cols - len(inside)
    return len(inside), (_window(meta, r, c) for r, c in inside)


def decode_tiles(parts: SceneParts, codec: TileCodec, summary: SceneSummary,
                 progress: Callable[[int, int], None] | None = None) -> Iterator[PlacedTile]:
    """Each tile of a scene that passed :func:`scene_problem`, decoded, in scene order; lost ones go to
    ``summary``. Memory: one tile. ``progress(done, total)``, when given, is called after every window."""
    meta = parts.meta
    assert meta is not None
    c, dtype, nodata = meta.bands, np.dtype(meta.dtype), meta.nodata
    fill = np.asarray(nodata if nodata is not None else 0).astype(dtype)  # in range: SceneMetadata checked
    side = meta.side()  # checked by SceneMetadata: v6 tiles refer to it
    total, windows = _windows(parts, summary)
    for i, win in enumerate(windows):
        if progress is not None:
            progress(i, total)
        placed = _decode_one(parts, codec, win, c, dtype, nodata, fill, side, summary)
        if placed is not None:
            yield placed
    if progress is not None:
        progress(total, total)


def _decode_one(parts, codec, win, c, dtype, nodata, fill, side, summary) -> PlacedTile | None:
    segs = parts.segments.get((win.row, win.col))

    def lose(reason: str) -> None:
        summary.lose(win.row, win.col, reason)

    if not segs:
        lose("no packet received")
        return None
    counts = {s.count for s in segs.values()}
    count = max(counts)
    if len(counts) != 1 or set(segs) != set(range(count)):
        lose(f"segments missing ({len(segs)} of {count} received)")
        return None
    try:
        body = parts.body((win.row, win.col))
    except (StaleSegmentError, OSError) as e:
        lose(f"unreadable: {e}")
        return None
    declared = bitstream.peek_shape(body)
    if declared is not None and declared != (c, win.height, win.width):  # refused before any allocation
        lose(f"declares {declared}, its place in the scene is "
                                                    f"{(c, win.height, win.width)}")
        return None
    try:
        t = codec.decompress(body, side)
    except CodecError as e:
        lose(f"rejected: {e}")
        return None
    if t.pixels.shape != (c, win.height, win.width) or t.pixels.dtype != dtype:
        lose(f"shape {t.pixels.shape}/{t.pixels.dtype} does not fit the scene")
        return None
    px = t.pixels
    if nodata is not None or t.header.band_fill is not None:
        px = px.copy()
        if nodata is not None:
            px[:, ~t.valid] = fill
        if t.header.band_fill is not None:  # samples that are fill in their band only (format v3+): the scene's
            px[t.header.band_fill] = fill if nodata is not None else 0  # nodata, or 0 (zero-filled scenes)
    summary.tiles_ok.append((win.row, win.col))
    summary.levels[f"{win.row},{win.col}"] = t.level
    if t.max_error is not None:  # what the tile's own header guarantees, per band
        summary.bounded_tiles += 1
        summary.max_error = t.max_error if summary.max_error is None else np.maximum(summary.max_error, t.max_error)
    return PlacedTile(win, px, t.valid, t.level, t.max_error)


@dataclass
class DecodedScene:
    """A scene decoded whole into memory (:func:`decode_scene`)."""

    scene_id: int
    meta: SceneMetadata
    pixels: np.ndarray          # native dtype [C, H, W]
    valid: np.ndarray           # bool[H, W]: data pixels (False for nodata and for lost tiles)
    summary: SceneSummary = field(default_factory=SceneSummary)
    apid: int = 0               # the APID its packets came on (scenes are told apart by APID and scene id)

    @property
    def tiles_ok(self) -> list[tuple[int, int]]:
        return self.summary.tiles_ok

    @property
    def tiles_lost(self) -> list[dict]:
        return self.summary.tiles_lost

    @property
    def levels(self) -> dict:
        return self.summary.levels

    @property
    def max_error(self) -> np.ndarray | None:
        return self.summary.max_error

    @property
    def bounded_tiles(self) -> int:
        return self.summary.bounded_tiles


def decode_scene(scene_id: int, parts: SceneParts, codec: TileCodec, progress=None) -> DecodedScene:
    """The whole scene in memory ([C, H, W] of its dtype): for scenes known to fit (tests, benchmarks);
    ``cvae-decode`` writes tile by tile instead (:mod:`cvae.ground.geotiff`)."""
    meta = parts.meta
    assert meta is not None
    c, h, w = meta.bands, meta.height, meta.width
    dtype = np.dtype(meta.dtype)
    nodata = meta.nodata
    pixels = np.full((c, h, w), np.asarray(nodata if nodata is not None else 0).astype(dtype), dtype=dtype)
    valid = np.zeros((h, w), bool)
    summary = SceneSummary()
    for t in decode_tiles(parts, codec, summary, progress):
        ys, xs = t.window.slices
        pixels[:, ys, xs] = t.pixels
        valid[ys, xs] = t.valid
    return DecodedScene(scene_id=scene_id, meta=meta, pixels=pixels, valid=valid, summary=summary)


def _crs_problem(crs: str | None) -> str | None:
    """Why GDAL cannot read ``crs`` (the one check of the metadata that needs rasterio), or None."""
    if crs is None:
        return None
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        CRS.from_user_input(crs)
    except CRSError as e:
        return f"crs does not parse ({str(e)[:100]})"
    return None


def metadata_problem(meta: dict) -> str | None:
    """Why a (CRC-valid) metadata dict cannot describe a scene we decode, or None (:class:`SceneMetadata`'s
    checks, and the CRS's)."""
    try:
        return _crs_problem(SceneMetadata.from_dict(meta).crs)
    except MetadataError as e:
        return str(e)


def scene_problem(parts: SceneParts, bundle: Bundle) -> str | None:
    """Why a scene cannot be decoded at all (no metadata, another model, metadata refused), or None."""
    if parts.refused is not None:
        return f"scene metadata refused: {parts.refused}"
    if parts.meta is None:
        return "no intact metadata packet: scene cannot be placed"
    meta_id = parts.meta.model_id
    if len(meta_id) < 16 or not bundle.accepts(meta_id):
        return (f"coded with model {meta_id[:16]}, the bundle is {bundle.model_id[:16]}: decode with --bundle "
                "pointing at that model")
    problem = _crs_problem(parts.meta.crs)
    return f"scene metadata refused: {problem}" if problem else None


def scene_name(parts: SceneParts) -> str | None:
    """The scene's name as its metadata gives it (also a refused one's, for the report)."""
    return parts.meta.name if parts.meta is not None else parts.refused_name


def scene_report(parts: SceneParts, summary: SceneSummary, bundle: Bundle) -> dict:
    """The report entry of a decoded scene (without its key fields)."""
    levels: dict = {}
    for lv in summary.levels.values():
        levels[str(lv)] = levels.get(str(lv), 0) + 1
    meta = parts.meta
    assert meta is not None
    return {"name": meta.name, "tiles_ok": len(summary.tiles_ok), "tiles_lost": summary.tiles_lost,
            **({"tiles_lost_unlisted": summary.tiles_unlisted} if summary.tiles_unlisted else {}),
            **({"stray_tiles": summary.stray_tiles} if summary.stray_tiles else {}),
            "duplicate_segments": parts.duplicates, "model_id": bundle.model_id[:16], "levels": levels,
            "tile_bits_per_sample": 8 * parts.received_bytes / meta.samples,
            **({"max_error": summary.max_error.tolist(), "bounded_tiles": summary.bounded_tiles}
               if summary.max_error is not None else {}),
            **({"metadata_dropped": list(meta.dropped)} if meta.dropped else {})}


def decode_streams(streams: Sequence[Buffer], bundle: Bundle, codec: TileCodec,
                   opener: Opener | None = None, progress=None) -> tuple[list[DecodedScene], dict]:
    """Decode every scene found in ``streams`` into memory; returns the scenes and a report dict. With an
    ``opener`` (keys), only authenticated packets are used; without one, sealed packets are counted and skipped.
    A scene that cannot be decoded is reported with its reason and costs no other scene."""
    stats: dict = {}
    scenes = collect(streams, stats, opener)
    decoded: list[DecodedScene] = []
    entries: list[dict] = []
    report = {"stats": stats, "scenes": entries}
    for (apid, sid), parts in sorted(scenes.items()):
        problem = scene_problem(parts, bundle)
        entry = {"scene_id": sid, "apid": apid}
        if problem:
            name = scene_name(parts)
            entries.append({**entry, **({"name": str(name)[:200]} if name is not None else {}),
                                     "error": problem, "tiles_received": len(parts.segments)})
            continue
        try:
            d = decode_scene(sid, parts, codec, progress(scene_name(parts) or sid) if progress else None)
        except (CodecError, ValueError, OverflowError, MemoryError) as e:  # never another scene's loss
            entries.append({**entry, "name": str(scene_name(parts))[:200],
                                     "error": f"decoding failed: {type(e).__name__}: {str(e)[:200]}"})
            continue
        d.apid = apid
        decoded.append(d)
        entries.append({**entry, **scene_report(parts, d.summary, bundle)})
    return decoded, report
