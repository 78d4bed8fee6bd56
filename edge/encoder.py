"""Scene encoder: a raster in, CCSDS space packets out (torch-free; runs the bundle's network on ONNX Runtime).

The scene is cut into tiles (:mod:`cvae.edge.io.tiling`); each tile is coded on its own with the scene's
band range, so a lost packet costs at most its tile. Scene metadata (CRS, geotransform, size, dtype,
nodata, tiling, model id) goes first, every ``metadata_every`` tiles, and last.
"""
from __future__ import annotations

import dataclasses
import math
import secrets
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import bitstream
from cvae.edge.codec import packets as pk
from cvae.edge.codec.tile import AnalyzedTile, BoundedTile, TileCodec
from cvae.edge.errors import InputError
from cvae.edge.io.raster import (DEFAULT_MAX_SAMPLES, WHOLE_SCENE_MAX_SAMPLES, Raster, RasterInfo, RowReader,
                                 as_integers, band_fill_mask, band_ranges, header_samples, open_scene, read_raster)
from cvae.edge.io.tiling import TileWindow, tile_grid
from cvae.edge.rate import (BUDGET_FILL, allocate_scene, choose_level, choose_rate,  # noqa: F401 (part of this API)
                            fill_scene)
from cvae.edge.scene_metadata import scene_metadata


#: the CCSDS APID of the packets, and the tiles between two metadata copies: the defaults of ``cvae-encode`` and
#: the daemon alike (the tile edge's, DEFAULT_TILE, is below)
DEFAULT_APID = 0x1C5
METADATA_EVERY = 16

__all__ = ["DEFAULT_APID", "METADATA_EVERY", "DEFAULT_TILE", "EncodeOptions", "EncodedScene",
           "SceneStream", "encode_scene", "scene_units", "scene_metadata", "choose_level", "choose_rate", "allocate_scene", "tile_bodies", "prepare_tile", "psnr_target", "quality_metadata"]


@dataclass(frozen=True)
class EncodeOptions:
    level: int | None = None          # fixed rate level
    tile_bytes: int | None = None     # or: per tile byte budget (highest level that fits)
    scene_bytes: int | None = None    # or: byte budget for the whole scene's tile payloads
    tile_size: int | None = None      # tile edge in pixels; None: tile_size_for (512 on latent-only levels, else 256)
    apid: int = DEFAULT_APID
    metadata_every: int = METADATA_EVERY
    max_data_field: int = pk.MAX_DATA_FIELD
    scene_id: int | None = None       # default: a random 32-bit id (never derived from the name: no collisions)
    max_samples: int = DEFAULT_MAX_SAMPLES  # bands x height x width: bigger scenes are refused from the header
    max_error: tuple[int, ...] | None = None  # or: every sample within this of the original (one value, or one
    #                                           per band; 0 = lossless): tile format v4, no network
    psnr: float | None = None         # or: each tile at the cheapest rate level or error bound reaching this PSNR (dB)
    threads: int = 1                  # tiles of a row coded in parallel (the packets do not depend on it)


@dataclass
class EncodedScene:
    name: str
    scene_id: int
    packets: list[bytes]
    tiles: int
    levels: list[int] = field(default_factory=list)
    tile_bytes: list[int] = field(default_factory=list)   # bytes of each coded tile (its bitstream)
    bounded: int = 0                  # tiles coded to an error bound (tile format v4; their level is 0)
    streamed: tuple[int, int] = (0, 0)  # (packets, bytes) handed to a ``sink`` instead of kept in ``packets``

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.packets) + self.streamed[1]

    @property
    def npackets(self) -> int:
        return len(self.packets) + self.streamed[0]


#: tile edges: the default, and the one of latent-only levels (lowest rates), where each tile's fixed costs (CCSDS
#: framing, header with means and KLT, range-coder final states, mask restarts, metadata copies) are a large share
#: of the bytes: 512-pixel tiles there need 4.5-22% fewer bytes at level 0 on the six multi-tile validation scenes,
#: PSNR -0.18 to +0.36 dB (benchmarks/results/tile_size.md); on residual levels the per-tile KLT of 256-pixel tiles
#: pays more than that (NAIP: +5.0% BD-rate with 512 everywhere, +0.6% with this rule, from level 1).
DEFAULT_TILE, LOW_RATE_TILE = 256, 512


def tile_size_for(codec: TileCodec, opts: "EncodeOptions") -> int:
    """The tile edge a scene is cut into: ``opts.tile_size`` when given, else :data:`LOW_RATE_TILE` for a
    ``--level`` that codes latents only (adaptive bundles: levels 0 and 1 of the shipped one), else
    :data:`DEFAULT_TILE`. (A TensorRT engine has one tile size: tiles larger than its own run the analysis on ONNX
    Runtime, deploy/JETSON.md.)"""
    if opts.tile_size is not None:
        return opts.tile_size
    latent_only = opts.level is not None and opts.max_error is None and codec.adaptive is not None and \
        not codec.has_residual(opts.level)
    return LOW_RATE_TILE if latent_only else DEFAULT_TILE


def tile_bodies(codec: TileCodec, analyzed, window, level: int, index: int, tiles: int,
                meta_header: pk.SecondaryHeader, meta: bytes, metadata_every: int = METADATA_EVERY,
                coded: bytes | None = None) -> list[tuple[pk.SecondaryHeader, bytes]]:
    """The packet bodies of tile ``index`` (of ``tiles``): the tile itself (``coded``, or ``codec.encode``), then
    a metadata copy after every ``metadata_every`` tiles (the last tile is followed by the closing copy anyway).
    Shared by :func:`encode_scene` and the daemon so both write the same stream."""
    header = pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=meta_header.model_id, scene_id=meta_header.scene_id,
                                row=window.row, col=window.col, level=level)
    bodies = [(header, coded if coded is not None else codec.encode(analyzed, level))]
    if metadata_every and (index + 1) % metadata_every == 0 and index + 1 < tiles:
        bodies.append((meta_header, meta))
    return bodies


Body = tuple[pk.SecondaryHeader, bytes]


@dataclass(frozen=True)
class SceneStream:
    """The packet bodies of one scene, unit by unit: unit -1 is the opening metadata, units 0 .. tiles-1 the
    tiles (each followed by a metadata copy every ``metadata_every`` tiles), unit ``tiles`` the closing
    metadata. :func:`encode_scene` writes every unit into one stream; the daemon writes one packet file per
    unit: the same bodies in the same order."""

    meta_header: pk.SecondaryHeader
    meta: bytes
    tiles: int
    metadata_every: int = METADATA_EVERY
    side: bitstream.SceneSide | None = None  # band ranges the metadata sends once for every tile (format v6)

    @classmethod
    def for_scene(cls, header: Raster, name: str, bundle: Bundle, tile_size: int, scene_id: int, tiles: int,
                  source_dtype=None, metadata_every: int = METADATA_EVERY, extra: dict | None = None,
                  band_range: tuple[np.ndarray, np.ndarray] | None = None, version: int = bitstream.VERSION,
                  max_error=None) -> "SceneStream":
        """``header``: the scene (pixels read for shape and dtype only); ``extra``: keys appended to the
        metadata (the daemon's ``scene_id``); ``band_range``: the scene's, which the metadata carries when the
        tiles are of format ``version`` 6 and that is cheaper than every tile carrying it (:func:`scene_side`;
        not for ``max_error`` scenes)."""
        side = None if max_error is not None or not bitstream.FORMATS[version].scene_range else \
            scene_side(band_range, tiles, metadata_every)
        meta = scene_metadata(header, name, bundle, tile_size, source_dtype, side, extra).to_bytes()
        meta_header = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=bytes.fromhex(bundle.model_id)[:4],
                                         scene_id=scene_id)
        return cls(meta_header, meta, tiles, metadata_every, side)

    @property
    def units(self) -> range:
        return range(-1, self.tiles + 1)

    def is_tile(self, unit: int) -> bool:
        return 0 <= unit < self.tiles

    def bodies(self, unit: int, codec: TileCodec | None = None, analyzed=None, window: TileWindow | None = None,
               level: int | None = None, coded: bytes | None = None) -> list[Body]:
        """The bodies of ``unit``: a tile needs its ``codec``, ``analyzed`` tile, ``window`` and ``level`` (and
        its bytes, ``coded``, when they were made already)."""
        if not self.is_tile(unit):
            return [(self.meta_header, self.meta)]
        assert codec is not None and level is not None, "a tile unit needs its codec and level"
        return tile_bodies(codec, analyzed, window, level, unit, self.tiles, self.meta_header, self.meta,
                           self.metadata_every, coded)


def metadata_copies(tiles: int, metadata_every: int = METADATA_EVERY) -> int:
    """Metadata packets of a scene of ``tiles`` tiles: the opening one, one after every ``metadata_every`` tiles
    but the last, the closing one (:class:`SceneStream`)."""
    return 2 + ((tiles - 1) // metadata_every if metadata_every and tiles else 0)


def scene_side(band_range: tuple[np.ndarray, np.ndarray] | None, tiles: int,
               metadata_every: int = METADATA_EVERY) -> bitstream.SceneSide | None:
    """The scene's band ranges to send in its metadata instead of in every tile (tile format v6), when the
    tiles outnumber the metadata copies (each copy repeats them, as hex in the zlib JSON: about the 8 bytes
    per band a tile spends); None otherwise."""
    if band_range is None or tiles <= metadata_copies(tiles, metadata_every):
        return None
    return bitstream.SceneSide(np.asarray(band_range[0], np.float32), np.asarray(band_range[1], np.float32))


def prepare_tile(codec: TileCodec, px: np.ndarray, valid: np.ndarray, info: RasterInfo, level: int | None = None,
                 tile_bytes: int | None = None, max_error=None, psnr: float | None = None,
                 scene: bitstream.SceneSide | None = None, target=None, unit: int = 0):
    """``(tile, level)`` for :meth:`TileCodec.encode` from a tile's pixels (weighted for its level:
    :meth:`TileCodec.weighted`), the quality asked as exactly one of a
    ``level``, a ``tile_bytes`` budget, a ``max_error`` bound (no network; level 0) or a ``psnr`` target (with
    ``target``, the scene's :class:`~cvae.edge.quality.SceneTarget` from :func:`psnr_target`, tile ``unit`` is
    held to the scene's PSNR so far, not its own); the scene's band range (``scene``: as its metadata sends it,
    :attr:`SceneStream.side`) and per-band fill mask go with it. Shared by ``cvae-encode`` and the daemon."""
    fill = band_fill_mask(px, valid, info.nodata, info.zero_fill)
    if psnr is not None:
        from cvae.edge.quality import choose_for_psnr

        tile, level, _ = choose_for_psnr(codec, px, valid, fill, info.band_range, psnr, scene, target, unit)
        return tile, level
    if max_error is not None:
        return codec.bound(px, max_error, valid, fill), 0
    a = codec.analyze(px, valid, band_range=info.band_range, band_fill=fill, scene=scene)
    if level is None:
        if tile_bytes is None:
            raise InputError("give a level, a tile byte budget, an error bound or a PSNR target")
        return choose_rate(codec, a, tile_bytes)
    return codec.weighted(a, level), level


def psnr_target(info: RasterInfo, psnr: float | None, windows: list[TileWindow], codec: TileCodec | None = None,
                path: str | Path | None = None, side: bitstream.SceneSide | None = None):
    """The scene's :class:`~cvae.edge.quality.SceneTarget` for ``psnr`` (None without a target): what
    :func:`prepare_tile` holds the scene's tiles (``windows``) to, in scene order, from the scan's per-tile statistics
    (made on the same tile grid: ``scan_raster(rows=tile_size)``) and, given the ``codec`` and the scene's ``path``,
    each tile's error curve on scenes of more than 2 LAG tiles (:func:`scene_curves`: most of them coded at one step;
    the tiles it analyses, with the scene's ``side`` as :attr:`SceneStream.side`, are kept for their coding)."""
    if psnr is None:
        return None
    from cvae.edge.quality import SceneTarget

    c = info.shape[0]
    lo, hi = info.band_range if info.band_range is not None else (np.zeros(c), np.ones(c))
    peaks = np.asarray(hi, np.float64) - np.asarray(lo, np.float64)
    stats = info.tile_stats
    if stats is None or stats.shape[:2] != (len(windows), c):
        raise ValueError(f"psnr_target: the scan's tile statistics do not cover the {len(windows)} tiles of this grid "
                         "(scan the raster with rows = the tile size)")
    keep: dict[int, AnalyzedTile] = {}
    curves = scene_curves(path, info, codec, windows, psnr, peaks, side, keep) \
        if codec is not None and path is not None and len(windows) > 2 * SceneTarget.LAG else None  # else most: tail
    return SceneTarget(psnr, peaks, stats[..., 0], stats[..., 2], curves=curves, analyzed=keep)


#: what :func:`scene_curves` keeps of the tiles it analyses for their coding (the first ones, up to this many bytes of
#: components and subbands): analysing a tile costs about a tenth of its ``--psnr`` encode, and memory stays bounded
ANALYSIS_KEEP_BYTES = 64 << 20


def scene_curves(path: str | Path, info: RasterInfo, codec: TileCodec, windows: list[TileWindow], psnr: float,
                 peaks: np.ndarray, side: bitstream.SceneSide | None = None,
                 keep: dict[int, AnalyzedTile] | None = None) -> np.ndarray | None:
    """float32[T, G, C]: each tile's modelled error per valid pixel and band at each of
    :func:`~cvae.edge.quality.curve_steps` (:func:`~cvae.edge.psnr_search.error_curve`), from a pass over the scene
    before it is coded (memory: one row of tiles and the curves); None for a ladder without residual levels.
    ``keep``: filled with the analysed tiles (as :func:`prepare_tile` analyses them, ``side`` being the scene's
    :attr:`SceneStream.side`) by tile, the first up to :data:`ANALYSIS_KEEP_BYTES`."""
    from cvae.edge.io.raster import open_rows
    from cvae.edge.psnr_search import error_curve
    from cvae.edge.quality import curve_steps

    if not (codec.ladder.step > 0).any():
        return None
    steps = curve_steps(psnr)
    out = np.zeros((len(windows), len(steps), info.shape[0]), np.float32)
    kept = 0
    with open_rows(path, info) as rows:
        for u, win in enumerate(windows):
            px, valid = rows.tile(win)
            if valid.any():
                fill = band_fill_mask(px, valid, info.nodata, info.zero_fill)
                a = codec.analyze(px, valid, band_range=info.band_range, band_fill=fill, scene=side)
                out[u] = error_curve(a, peaks, steps)
                size = 2 * a.z.nbytes if a.z is not None else 0  # the components and their subbands (error_curve's)
                if keep is not None and kept + size <= ANALYSIS_KEEP_BYTES:
                    keep[u], kept = a, kept + size
    return out


def scene_units(rows: RowReader, windows: tuple[TileWindow, ...] | list[TileWindow], units: Iterable[int],
                submit: Callable[..., Any], depth: int) -> Iterator[tuple[int, Any]]:
    """The scene row loop of ``cvae-encode`` and the daemon: each of ``units`` (ascending :class:`SceneStream`
    units; -1 and ``len(windows)`` are metadata) goes in order to ``submit(unit, window, px, valid)`` (pixels read
    from ``rows`` a tile row at a time; ``None`` for metadata), which starts its work on the caller's threads and
    returns a handle. Up to ``depth`` wait in flight, in scene order across row ends; ``(unit, handle)`` come back
    in unit order (the packets do not depend on the thread count); ``units`` is read at most ``depth`` ahead."""
    flight: deque = deque()
    for unit in units:
        if 0 <= unit < len(windows):
            win = windows[unit]
            flight.append((unit, submit(unit, win, *rows.tile(win))))
        else:
            flight.append((unit, submit(unit, None, None, None)))
        if len(flight) >= depth:
            yield flight.popleft()
    while flight:
        yield flight.popleft()


def quality_metadata(max_error, psnr: float | None, bands: int, integral: bool = True) -> dict:
    """What the scene metadata states of the quality asked: the bound per band, or the PSNR target (``{}`` for
    levels and budgets). Raises :class:`InputError`, before any packet, for what no tile of the scene could meet:
    a wrong number of bounds, a target out of range, or a bound on a scene whose samples are not whole numbers
    (``integral`` false: :attr:`RasterInfo.integral`)."""
    from cvae.edge.quality import check_psnr

    out = {}
    if max_error is not None:
        from cvae.edge.codec.predictive import check_max_error

        if not integral:
            raise InputError("float samples that are not whole numbers: an error bound in digital numbers needs "
                             "integer samples; code this scene with a level, a byte budget or a PSNR target")
        out["max_error"] = check_max_error(max_error, bands).tolist()
    if psnr is not None:
        out["psnr_target"] = check_psnr(psnr)
    return out


def encode_scene(path: str | Path, bundle: Bundle, codec: TileCodec, opts: EncodeOptions,
                 writer: pk.PacketWriter | None = None, progress=None, sink=None) -> EncodedScene:
    """``progress(done, total)``, when given, is called after every tile. ``sink(packet)``, when given, takes
    each packet as it is made instead of the result keeping them (memory then stays flat however large the
    coded scene: lossless output is about half the raw scene).

    ``--level`` and ``--tile-bytes`` read the scene one tile row at a time after one bounded scan
    (:func:`cvae.edge.io.raster.scan_raster`): peak memory is one row of tiles. ``--scene-bytes`` reads the
    scene whole: its allocation weighs every tile's analysis at once. Both give the same bytes for the same
    levels (tests/edge/test_encoder_windowed.py)."""
    if sum(x is not None for x in (opts.level, opts.tile_bytes, opts.scene_bytes, opts.max_error, opts.psnr)) != 1:
        raise InputError("give exactly one of --level N, --tile-bytes B, --scene-bytes B, --max-error E or --psnr DB")
    if opts.level is not None and not 0 <= opts.level < codec.levels:
        raise InputError(f"--level {opts.level} is out of range; this bundle has levels 0..{codec.levels - 1}")
    opts = dataclasses.replace(opts, tile_size=tile_size_for(codec, opts))
    scene_bytes = opts.scene_bytes
    if scene_bytes is None:
        return _encode_by_rows(path, bundle, codec, opts, writer, progress, sink)
    samples = header_samples(path)  # the whole scene is read: its own, lower limit (memory ~2.2x raw)
    if samples > WHOLE_SCENE_MAX_SAMPLES and samples <= opts.max_samples:
        raise InputError(f"{path}: --scene-bytes reads the whole scene and {samples:,} samples exceed its limit of "
                         f"{WHOLE_SCENE_MAX_SAMPLES:,} (about {2.2 * samples * 2 / 1e9:.0f} GB); use --level or "
                         "--tile-bytes, which read a tile row at a time, or cut the scene")
    raster = read_raster(path, max_samples=opts.max_samples)
    pixels = raster.pixels
    if pixels.dtype.kind == "f":
        if not np.isfinite(pixels[:, raster.valid]).all():
            raise InputError(f"{path}: NaN or infinite pixels outside nodata; declare a nodata value for them")
        pixels = as_integers(pixels)  # NaN outside the valid pixels: kept as floats
    band_range = band_ranges(pixels, raster.valid, raster.nodata)
    zero_fill = raster.nodata is None and pixels.dtype == np.uint16 and not raster.valid.all()  # fill_value_mask's rule
    header = Raster(pixels, raster.valid, raster.nodata, raster.profile, raster.descriptions, raster.colorinterp,
                    raster.tags)

    def tiles(windows, stream: SceneStream):
        # an all-nodata tile is still sent (a few bytes: header and mask) so the ground can tell it from a loss
        analyzed = [codec.analyze(pixels[:, w.slices[0], w.slices[1]], raster.valid[w.slices], band_range=band_range,
                                  band_fill=band_fill_mask(pixels[:, w.slices[0], w.slices[1]], raster.valid[w.slices],
                                                           raster.nodata, zero_fill), scene=stream.side)
                    for w in windows]  # one network pass per tile, kept: the levels are chosen from estimates
        w = writer if writer is not None else pk.PacketWriter(opts.apid, max_data_field=opts.max_data_field)
        est = np.array([[w.wire_bytes(int(math.ceil(codec.estimate_bytes(codec.weighted(a, lv), lv))))
                         for lv in range(codec.levels)] for a in analyzed])
        copies = metadata_copies(len(windows), stream.metadata_every)
        yield from fill_scene(codec, analyzed, est, scene_bytes - copies * w.wire_bytes(len(stream.meta)), w)

    return _packetize(path, bundle, codec, opts, writer, progress, header, raster.pixels.dtype, tiles, sink,
                      band_range)


def _encode_by_rows(path: str | Path, bundle: Bundle, codec: TileCodec, opts: EncodeOptions,
                    writer: pk.PacketWriter | None, progress, sink=None) -> EncodedScene:
    """encode_scene for ``--level`` / ``--tile-bytes``: ``tile_size`` rows at a time (as the daemon), the scene
    opened once for the scan and the rows."""
    # the tiles' statistics serve --psnr only
    with open_scene(path, max_samples=opts.max_samples, rows=tile_size_for(codec, opts),
                    stats=opts.psnr is not None) as (info, rows):
        return _encode_rows(path, bundle, codec, opts, writer, progress, sink, info, rows)


def _encode_rows(path: str | Path, bundle: Bundle, codec: TileCodec, opts: EncodeOptions,
                 writer: pk.PacketWriter | None, progress, sink, info: RasterInfo, rows: RowReader) -> EncodedScene:
    def code(px: np.ndarray, valid: np.ndarray, side: bitstream.SceneSide | None, unit: int, target):
        """One tile, start to bytes: what may run in parallel with the other tiles of its row."""
        a, level = prepare_tile(codec, px, valid, info, opts.level, opts.tile_bytes, opts.max_error, opts.psnr,
                                scene=side, target=target, unit=unit)
        return a, level, codec.encode(a, level)

    def tiles(windows, stream: SceneStream):
        # 2 x threads tiles in flight (scene_units), each read, prepared and coded on the pool. Memory: those tiles
        # and at most two rows of pixels, whatever the scene's size.
        target = psnr_target(info, opts.psnr, list(windows), codec, path, stream.side)
        threads = max(1, opts.threads)
        with ThreadPoolExecutor(threads) as pool:
            def submit(unit, win, px, valid):
                return pool.submit(code, px, valid, stream.side, unit, target)

            for _, coded in scene_units(rows, windows, range(len(windows)), submit, 2 * threads):
                yield coded.result()

    return _packetize(path, bundle, codec, opts, writer, progress, info.header(), info.source_dtype, tiles, sink,
                      info.band_range, info.integral)


def _packetize(path, bundle: Bundle, codec: TileCodec, opts: EncodeOptions, writer: pk.PacketWriter | None,
               progress, header: Raster, source_dtype, tiles, sink=None, band_range=None,
               integral: bool = True) -> EncodedScene:
    """The scene's packets: the units of its :class:`SceneStream`, the tiles being what ``tiles(windows,
    stream)`` yields as ``(analyzed, level)`` in window order; ``band_range``: the scene's."""
    name = Path(path).stem
    # Random, not the CRC of the file name: two scenes both named scene.tif must never merge on the ground.
    scene_id = opts.scene_id if opts.scene_id is not None else secrets.randbits(32)
    writer = writer or pk.PacketWriter(opts.apid, max_data_field=opts.max_data_field)
    c, h, w = header.pixels.shape
    tile = tile_size_for(codec, opts)  # opts.tile_size, set by encode_scene
    windows = list(tile_grid(h, w, tile))
    try:  # a wrong number of bounds, or a bound on true floats, fails before any tile
        quality = quality_metadata(opts.max_error, opts.psnr, c, integral)
    except InputError as e:
        raise InputError(f"{path}: {'--max-error' if opts.max_error is not None else '--psnr'}: {e}") from None
    stream = SceneStream.for_scene(header, name, bundle, tile, scene_id, len(windows),
                                   source_dtype=source_dtype, metadata_every=opts.metadata_every, extra=quality,
                                   band_range=band_range, version=codec.version, max_error=opts.max_error)
    out: list[bytes] = []
    streamed = [0, 0]

    def emit(packets: list[bytes]) -> None:
        if sink is None:
            out.extend(packets)
            return
        for p in packets:
            sink(p)
            streamed[0] += 1
            streamed[1] += len(p)

    for hd, body in stream.bodies(-1):
        emit(writer.packets(hd, body))
    levels, tile_sizes, bounded = [], [], 0
    for i, (win, (a, level, *coded)) in enumerate(zip(windows, tiles(windows, stream))):
        bounded += isinstance(a, BoundedTile)
        if progress is not None:
            progress(i, len(windows))
        levels.append(level)
        bodies = stream.bodies(i, codec, a, win, level, coded[0] if coded else None)
        tile_sizes.append(len(bodies[0][1]))
        for hd, body in bodies:
            emit(writer.packets(hd, body))
    for hd, body in stream.bodies(len(windows)):
        emit(writer.packets(hd, body))
    if progress is not None:
        progress(len(windows), len(windows))
    return EncodedScene(name=name, scene_id=scene_id, packets=out, tiles=len(windows), levels=levels,
                        streamed=(streamed[0], streamed[1]),
                        tile_bytes=tile_sizes, bounded=bounded)
