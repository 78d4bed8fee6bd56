"""Scene encoder: a raster in, CCSDS space packets out (torch-free; runs the bundle's network on ONNX Runtime).

The scene is cut into tiles (:mod:`cvae.edge.io.tiling`); each tile is coded on its own with the scene's
band range, so a lost packet costs at most its tile. Scene metadata (CRS, geotransform, size, dtype,
nodata, tiling, model id) goes first, every ``metadata_every`` tiles, and last.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import packets as pk
from cvae.edge.codec.tile import TileCodec
from cvae.edge.errors import InputError
from cvae.edge.io.raster import Raster, read_raster
from cvae.edge.io.tiling import tile_grid

__all__ = ["EncodeOptions", "EncodedScene", "encode_scene", "scene_metadata", "choose_level"]


@dataclass(frozen=True)
class EncodeOptions:
    level: int | None = None          # fixed rate level
    tile_bytes: int | None = None     # or: per tile byte budget (highest level that fits)
    tile_size: int = 256
    apid: int = 0x1C5
    metadata_every: int = 16
    max_data_field: int = pk.MAX_DATA_FIELD
    scene_id: int | None = None       # default: CRC-32 of the file name


@dataclass
class EncodedScene:
    name: str
    scene_id: int
    packets: list[bytes]
    tiles: int
    levels: list[int] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.packets)


def scene_metadata(raster: Raster, name: str, bundle: Bundle, tile_size: int) -> dict:
    prof = raster.profile
    crs = prof.get("crs")
    crs_out = None
    if crs is not None:
        epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
        crs_out = f"EPSG:{epsg}" if epsg else crs.to_wkt()
    transform = prof.get("transform")
    c, h, w = raster.pixels.shape
    return {"v": 1, "name": name, "width": w, "height": h, "bands": c, "dtype": str(raster.pixels.dtype),
            "nodata": raster.nodata, "crs": crs_out,
            "transform": list(transform)[:6] if transform is not None else None,
            "tile": tile_size, "model_id": bundle.model_id}


def choose_level(codec: TileCodec, analyzed, budget: int) -> int:
    """The highest level whose estimated size fits ``budget`` bytes (level 0 if none does)."""
    best = 0
    for level in range(codec.levels):
        if codec.estimate_bytes(analyzed, level) <= budget:
            best = level
    return best


def encode_scene(path: str | Path, bundle: Bundle, codec: TileCodec, opts: EncodeOptions,
                 writer: pk.PacketWriter | None = None) -> EncodedScene:
    if (opts.level is None) == (opts.tile_bytes is None):
        raise InputError("give exactly one of --level N or --tile-bytes B")
    if opts.level is not None and not 0 <= opts.level < codec.levels:
        raise InputError(f"--level {opts.level} is out of range; this bundle has levels 0..{codec.levels - 1}")
    raster = read_raster(path)
    pixels = raster.pixels
    if pixels.dtype.kind == "f":
        if not np.isfinite(pixels[:, raster.valid]).all():
            raise InputError(f"{path}: NaN or infinite pixels outside nodata; declare a nodata value for them")
        if np.array_equal(pixels, np.round(pixels)) and np.abs(pixels).max(initial=0) < 65536:
            pixels = pixels.astype(np.uint16 if pixels.min(initial=0) >= 0 else np.int32)
    name = Path(path).stem
    scene_id = opts.scene_id if opts.scene_id is not None else zlib.crc32(name.encode())
    mid = bytes.fromhex(bundle.model_id)[:4]
    writer = writer or pk.PacketWriter(opts.apid, max_data_field=opts.max_data_field)
    meta = pk.encode_metadata(scene_metadata(Raster(pixels, raster.valid, raster.nodata, raster.profile),
                                             name, bundle, opts.tile_size))
    meta_header = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=scene_id)
    v = pixels[:, raster.valid]
    band_range = (v.min(axis=1), v.max(axis=1)) if v.size else None
    out = writer.packets(meta_header, meta)
    levels = []
    windows = list(tile_grid(pixels.shape[1], pixels.shape[2], opts.tile_size))
    for i, win in enumerate(windows):
        ys, xs = win.slices
        # an all-nodata tile is still sent (a few bytes: header and mask) so the ground can tell it from a loss
        a = codec.analyze(pixels[:, ys, xs], raster.valid[ys, xs], band_range=band_range)
        level = opts.level if opts.level is not None else choose_level(codec, a, opts.tile_bytes)
        levels.append(level)
        out += writer.packets(pk.SecondaryHeader(kind=pk.KIND_TILE, model_id=mid, scene_id=scene_id,
                                                 row=win.row, col=win.col, level=level), codec.encode(a, level))
        if opts.metadata_every and (i + 1) % opts.metadata_every == 0 and i + 1 < len(windows):
            out += writer.packets(meta_header, meta)
    out += writer.packets(meta_header, meta)
    return EncodedScene(name=name, scene_id=scene_id, packets=out, tiles=len(windows), levels=levels)
