"""Decoded scenes to GeoTIFF (or Cloud-Optimized GeoTIFF), written window by window.

:class:`GeoTiffWriter` takes a scene's tiles as they are decoded (:func:`cvae.ground.decoder.decode_tiles`), so
memory holds one tile, whatever size the metadata declares; the file is *sparse* (GDAL ``SPARSE_OK``): a window
no tile arrived for is never written, costs neither time nor disk, and reads back as the scene's nodata.

Masks are what they would be without losses, plus the lost tiles:

- with a nodata value, GDAL's per-band nodata masks hold, exactly as in a loss-free decode (band-fill samples,
  nodata in one band of a valid pixel, stay masked in that band only); lost tiles read as nodata in every band;
- without one, nothing is masked in a loss-free decode; once a tile is lost, a dataset mask (internal) marks
  every decoded tile valid and the lost ones invalid.
"""
from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from cvae.edge.codec.metadata import SceneMetadata
from cvae.edge.io.files import replacing

__all__ = ["GeoTiffWriter", "write_geotiff", "provenance_tags", "GTIFF_DEFAULTS"]

#: creation options the writer sets itself (the format's own choices); --co may override them
GTIFF_DEFAULTS = {"compress": "deflate", "sparse_ok": "TRUE"}
_OVERVIEW_LEVELS = (2, 4, 8, 16, 32)


def provenance_tags(summary, model_id: str) -> dict:
    """GeoTIFF metadata tags saying what made the file: tool version, model, levels per tile, losses."""
    import cvae

    levels: dict = {}
    for lv in summary.levels.values():
        levels[lv] = levels.get(lv, 0) + 1
    tags = {"CVAE_TOOL": f"cvae-decode {cvae.__version__}", "CVAE_MODEL_ID": model_id,
            "CVAE_LEVELS": ",".join(f"{lv}:{n}" for lv, n in sorted(levels.items())),
            "CVAE_TILES_OK": str(len(summary.tiles_ok)), "CVAE_TILES_LOST": str(summary.lost)}
    if summary.max_error is not None:  # error-bounded tiles: the bound per band, in digital numbers
        tags["CVAE_MAX_ERROR"] = ",".join(str(int(e)) for e in summary.max_error)
        tags["CVAE_BOUNDED_TILES"] = str(summary.bounded_tiles)
    return tags


def _restore_descriptive(dst, meta: SceneMetadata) -> None:
    """Band descriptions, colour interpretation and tags from the metadata packet (SceneMetadata dropped the
    malformed ones); a colour interpretation GDAL does not know is skipped, never fatal."""
    from rasterio.enums import ColorInterp

    for i, d in enumerate(meta.descriptions or (), 1):
        if d:
            dst.set_band_description(i, d)
    if meta.colorinterp:
        try:
            dst.colorinterp = [ColorInterp[c] for c in meta.colorinterp]
        except (KeyError, ValueError):
            pass
    if meta.tags:
        dst.update_tags(**meta.tags)


class GeoTiffWriter:
    """One scene's output file, written tile by tile (``with GeoTiffWriter(...) as w: w.write(t) ...;
    w.finish(tags)``). Nothing is visible at ``path`` until :meth:`finish` has run and the block has exited
    without an error (temp name, then rename); on error the temp file is removed.

    ``meta``: the scene metadata (checked: :func:`cvae.ground.decoder.scene_problem`); ``fmt``: ``GTiff``
    or ``COG``; ``options``: GDAL creation options (override the defaults); ``overviews``: internal overviews
    for a GTiff (a COG always has them)."""

    def __init__(self, path: str | Path, meta: SceneMetadata, fmt: str = "GTiff", options: dict | None = None,
                 overviews: bool = False):
        self.path, self.meta, self.fmt, self.overviews = Path(path), meta, fmt, overviews
        self.options = dict(options or {})
        self.nodata = meta.nodata
        source = meta.source_dtype
        self.out_dtype = source if source and source != meta.dtype else None  # coded as integers: cast back
        self._masked = False
        self._written: list = []  # windows written so far (for a mask started late)
        self._finished = False

    def __enter__(self) -> "GeoTiffWriter":
        import rasterio
        from rasterio.crs import CRS
        from rasterio.transform import Affine

        meta, tile = self.meta, self.meta.tile
        profile = {"driver": "GTiff", "width": meta.width, "height": meta.height, "count": meta.bands,
                   "dtype": self.out_dtype or meta.dtype, "nodata": self.nodata, **GTIFF_DEFAULTS,
                   # blocks are the codec's tiles: each decoded tile fills whole blocks, lost ones none
                   "tiled": True, "blockxsize": tile, "blockysize": tile}
        if self.fmt == "GTiff":
            profile.update(self.options)
        if meta.crs:
            profile["crs"] = CRS.from_user_input(meta.crs)
        if meta.transform:
            profile["transform"] = Affine(*meta.transform)
        # one stack: the temp name (removed on error, renamed into place at the end), GDAL's environment, the dataset
        stack = ExitStack()
        try:
            self._final = stack.enter_context(replacing(self.path))
            # GDAL's COG driver only copies (tiles, overviews and layout are its own): a GTiff first, then the copy
            self._tmp = self._final if self.fmt != "COG" else self._final.with_name(self._final.name + ".gtiff")
            if self._tmp != self._final:
                stack.callback(self._tmp.unlink, missing_ok=True)
            stack.enter_context(rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True))
            self.dst = stack.enter_context(rasterio.open(self._tmp, "w", **profile))
            _restore_descriptive(self.dst, meta)
        except BaseException:
            if not stack.__exit__(*sys.exc_info()):
                raise
        self._stack = stack
        return self

    def write(self, tile) -> None:
        """A decoded tile (:class:`cvae.ground.decoder.PlacedTile`) into its window."""
        from rasterio.windows import Window

        win = tile.window
        px = tile.pixels if self.out_dtype is None else tile.pixels.astype(self.out_dtype)
        w = Window(win.x0, win.y0, win.width, win.height)
        self.dst.write(px, window=w)
        if self._masked:
            self.dst.write_mask(np.full((win.height, win.width), 255, np.uint8), window=w)
        else:
            self._written.append(w)

    def mark_lost(self) -> None:
        """Say that a tile was lost: without a nodata value, the dataset mask starts (the tiles written so far are
        marked valid; windows never written read as masked)."""
        if self.nodata is not None or self._masked:
            return
        self._masked = True
        for w in self._written:
            self.dst.write_mask(np.full((int(w.height), int(w.width)), 255, np.uint8), window=w)
        self._written = []

    def finish(self, tags: dict | None = None) -> None:
        """Provenance tags and overviews; the file is renamed into place when the ``with`` block exits."""
        if tags:
            self.dst.update_tags(**tags)
        if self.overviews and self.fmt == "GTiff":
            from rasterio.enums import Resampling

            levels = [f for f in _OVERVIEW_LEVELS if min(self.meta.width, self.meta.height) // f >= 64]
            if levels:
                self.dst.build_overviews(levels, Resampling.average)
        self._finished = True

    def __exit__(self, et, e, tb) -> bool:
        if et is None and not self._finished:  # left without finish(): nothing is written, as on an error
            err = RuntimeError("GeoTiffWriter closed before finish()")
            return bool(self._stack.__exit__(RuntimeError, err, None))
        if et is None:
            try:
                self.dst.close()
                if self.fmt == "COG":
                    import rasterio.shutil

                    rasterio.shutil.copy(self._tmp, self._final, driver="COG",
                                         **{"compress": "deflate", "sparse_ok": "TRUE", **self.options})
            except BaseException:
                if not self._stack.__exit__(*sys.exc_info()):
                    raise
                return False
        return bool(self._stack.__exit__(et, e, tb))


def write_geotiff(path: Path, scene, tags: dict | None = None, fmt: str = "GTiff", options: dict | None = None,
                  overviews: bool = False) -> None:
    """A scene decoded whole (:class:`cvae.ground.decoder.DecodedScene`) as ``fmt``, with the same layout and
    masks as the tile-by-tile path of ``cvae-decode``."""
    from cvae.ground.decoder import PlacedTile, _window

    meta = scene.meta
    with GeoTiffWriter(path, meta, fmt, options, overviews) as out:
        if scene.summary.lost:
            out.mark_lost()
        for row, col in scene.tiles_ok:
            win = _window(meta, row, col)
            ys, xs = win.slices
            out.write(PlacedTile(win, scene.pixels[:, ys, xs], scene.valid[ys, xs], 0))
        out.finish(tags)
