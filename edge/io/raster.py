"""Reading rasters (GeoTIFF, JP2, anything GDAL opens) into arrays with their valid-pixel mask.

The only module on the edge that imports rasterio.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from cvae.edge.errors import InputError

__all__ = ["Raster", "RasterInfo", "RowReader", "read_raster", "scan_raster", "read_window", "open_rows", "open_scene",
           "header_samples", "fill_value_mask", "band_ranges", "check_header", "integer_dtype", "as_integers",
           "DEFAULT_MAX_SAMPLES"]


@dataclass(frozen=True)
class Raster:
    """pixels: native dtype [C, H, W]; valid: bool[H, W] (False where any band is nodata/fill)."""

    pixels: np.ndarray
    valid: np.ndarray
    nodata: float | None
    profile: dict
    descriptions: tuple = ()      # per band (str or None)
    colorinterp: tuple = ()       # per band GDAL colour interpretation names
    tags: dict | None = None      # dataset-level metadata tags (default domain)


def fill_value_mask(pixels: np.ndarray, nodata: float | None, zero_fill: bool | None = None) -> np.ndarray:
    """bool[H, W]: pixels that hold data in at least one band. A pixel is nodata when every band holds the
    declared nodata value (a value equal to nodata in some bands only, e.g. a saturated band, is coded as
    data). Without a declared value, zeros in every band of unsigned 16-bit data covering over 1% of the
    scene are taken as fill (Landsat and Sentinel-2 L1 use 0 so); ``zero_fill`` gives that decision when it was
    made for the whole scene elsewhere (a window of it, :func:`read_window`)."""
    if nodata is not None and not np.isnan(nodata):
        return ~np.all(pixels == np.asarray(nodata).astype(pixels.dtype), axis=0)
    if nodata is not None:  # NaN nodata
        return ~np.all(np.isnan(pixels), axis=0)
    if pixels.dtype == np.uint16 and zero_fill is not False:
        zero = np.all(pixels == 0, axis=0)
        if zero_fill or zero.mean() > 0.01:
            return ~zero
    return np.ones(pixels.shape[1:], bool)


def band_fill_mask(pixels: np.ndarray, valid: np.ndarray, nodata: float | None,
                   zero_fill: bool = False) -> np.ndarray | None:
    """bool[C, H, W]: samples of valid pixels that hold the fill value in their band only (a pixel that is fill in
    some bands: the declared nodata value, or 0 in a ``zero_fill`` scene, :func:`fill_value_mask`), so the ground
    can restore that exact value (the nodata value, or 0); None when there is none."""
    if nodata is None and zero_fill and pixels.dtype == np.uint16:
        fill = (pixels == 0) & valid[None]
    elif nodata is None or np.isnan(nodata):
        return None
    else:
        fill = (pixels == np.asarray(nodata).astype(pixels.dtype)) & valid[None]
    return fill if fill.any() else None


def band_ranges(pixels: np.ndarray, valid: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per band ``(lo, hi)`` over valid pixels, leaving out that band's own fill values (the nodata value,
    or 0 in zero-filled unsigned 16-bit scenes) where a pixel is fill in some bands only. This is the
    peak that per-band PSNR uses; a fill value below ``lo`` decodes clipped to ``lo``. None when no pixel
    is valid."""
    if not valid.any():
        return None
    fill: np.ndarray | np.generic | None = None
    if nodata is not None and not np.isnan(nodata):
        fill = np.asarray(nodata).astype(pixels.dtype)
    elif nodata is None and pixels.dtype == np.uint16 and (~valid).mean() > 0.01:
        fill = np.uint16(0)
    lo = np.empty(pixels.shape[0], np.float64)
    hi = np.empty(pixels.shape[0], np.float64)
    for b in range(pixels.shape[0]):
        v = pixels[b][valid]
        if fill is not None and (v != fill).any():
            v = v[v != fill]
        lo[b], hi[b] = v.min(), v.max()
    return lo, hi


#: default limit on bands x height x width of a scene (cvae-encode; the daemon has max_scene_pixels): coded a
#: tile row at a time, memory does not grow with it (benchmarks/results/memory*.md); 2e9 takes a 13-band
#: 10980 x 10980 Sentinel-2 tile (1.57e9) and a whole Landsat scene
DEFAULT_MAX_SAMPLES = 2_000_000_000
#: ... and of a scene read whole (``--scene-bytes`` weighs every tile at once): about 2.2 x its raw size
WHOLE_SCENE_MAX_SAMPLES = 400_000_000
#: most bands the tile bitstream carries (cvae.edge.codec.bitstream.MAX_BANDS; repeated to keep io free of codec)
_MAX_BANDS = 32
_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def integer_dtype(dtype, integral: bool, lowest: float, largest_abs: float) -> np.dtype:
    """The dtype a scene's samples are coded in: a float ``dtype`` whose samples are all whole numbers
    (``integral``) below 65536 in magnitude (``largest_abs``) becomes uint16 when none is negative (``lowest`` >=
    0), else int32 (int16 would wrap 40000, or -40000); any other dtype is kept. The one float-to-integer rule of
    the encoder, the scan and the benchmarks."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and integral and largest_abs < 65536:
        return np.dtype(np.uint16 if lowest >= 0 else np.int32)
    return dtype


def as_integers(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` in :func:`integer_dtype` (every sample finite and whole, checked here), or as they are."""
    if pixels.dtype.kind != "f":
        return pixels
    integral = bool(np.array_equal(pixels, np.round(pixels)))  # False with a NaN; an infinity: out of range below
    lo, hi = float(pixels.min(initial=0)), float(pixels.max(initial=0))
    dtype = integer_dtype(pixels.dtype, integral, lo, max(-lo, hi))
    return pixels.astype(dtype) if dtype != pixels.dtype else pixels


def check_header(ds, max_samples: int) -> None:
    """Refuse a dataset from its header alone, before any pixel is read: declared size, bands and dtype."""
    c, h, w = ds.count, ds.height, ds.width
    if c * h * w > max_samples:
        raise InputError(f"{c} bands x {h} x {w} pixels = {c * h * w:,} samples exceed the limit of "
                         f"{max_samples:,}; cut the scene or raise the limit (--max-scene-samples / max_scene_pixels)")
    if c > _MAX_BANDS:
        raise InputError(f"{c} bands exceed the format's {_MAX_BANDS}; split the bands into several scenes")
    bad = sorted({d for d in ds.dtypes if d not in _DTYPES})
    if bad:
        raise InputError(f"dtype {', '.join(bad)} is not supported; convert to one of {', '.join(_DTYPES)}")
    if len(set(ds.dtypes)) > 1:
        raise InputError(f"bands of different dtypes ({', '.join(sorted(set(ds.dtypes)))}); convert to one dtype")
    pages = [sd for sd in (ds.subdatasets or []) if sd.upper().startswith("GTIFF_DIR:")]
    if pages:  # GDAL shows a multi-page TIFF's first page as the dataset: the others would be dropped silently
        raise InputError(f"multi-page TIFF ({len(pages)} pages); only one image per file is coded: split the pages "
                         "into separate GeoTIFFs (gdal_translate GTIFF_DIR:N:file.tif page_N.tif)")


def read_raster(path: str | Path, max_samples: int = WHOLE_SCENE_MAX_SAMPLES) -> Raster:
    """Read every band of ``path``, after :func:`check_header`. Float rasters holding integers are kept as
    float; callers cast. Non-finite values at nodata pixels are set to 0 (they are masked, never coded)."""
    try:
        import rasterio
    except ImportError as e:  # pragma: no cover - rasterio is a hard dependency
        raise InputError("reading rasters needs rasterio: pip install rasterio") from e
    try:
        with rasterio.open(path) as ds:
            check_header(ds, max_samples)
            pixels = ds.read()
            nodata = ds.nodata
            profile = dict(ds.profile)
            descriptions = tuple(ds.descriptions)
            colorinterp = tuple(ci.name for ci in ds.colorinterp)
            tags = dict(ds.tags())
    except rasterio.errors.RasterioError as e:
        raise InputError(f"{path}: cannot read raster ({e}); check the file is a complete GeoTIFF/JP2") from e
    except MemoryError as e:
        raise InputError(f"{path}: not enough memory to read the scene; cut it into smaller scenes") from e
    valid = fill_value_mask(pixels, nodata)
    if pixels.dtype.kind == "f" and not valid.all():
        pixels[:, ~valid] = np.where(np.isfinite(pixels[:, ~valid]), pixels[:, ~valid], 0)
    return Raster(pixels=pixels, valid=valid, nodata=nodata, profile=profile, descriptions=descriptions,
                  colorinterp=colorinterp, tags=tags)


@dataclass(frozen=True)
class RasterInfo:
    """A raster's header and what one bounded pass over it found: everything :func:`read_raster` derives from
    the whole array, so a scene can then be coded window by window with the same result.

    shape: (C, H, W); dtype: the coded dtype (floats holding integers are cast, as encode_scene does);
    source_dtype: the file's; zero_fill: zeros in every band are fill (uint16 without nodata, > 1% of pixels);
    band_range: per band (lo, hi) as :func:`band_ranges`, None when no pixel is valid; integral: every sample is a
    whole number (always for integer dtypes; for floats, whether an error bound in digital numbers can apply);
    tile_stats: the samples of each tile of the scan (below).
    """

    path: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    source_dtype: np.dtype
    nodata: float | None
    profile: dict
    descriptions: tuple
    colorinterp: tuple
    tags: dict
    zero_fill: bool
    band_range: tuple[np.ndarray, np.ndarray] | None
    integral: bool = True
    #: per tile of the scan's square grid (``rows`` x ``rows`` tiles, row-major, as tiling.tile_grid) and band: the
    #: count, mean and variance of the valid samples that are not the band's fill, float64[T, C, 3]; what lets
    #: ``--psnr`` foresee the tiles no coding can bring down to the target (SceneTarget)
    tile_stats: np.ndarray | None = None

    def header(self) -> Raster:
        """A :class:`Raster` with this scene's shape, coded dtype and descriptive metadata but no pixels (a
        broadcast zero, no memory): what the scene's metadata packet is built from."""
        return Raster(np.broadcast_to(np.zeros(1, self.dtype), self.shape), np.ones((1, 1), bool), self.nodata,
                      self.profile, self.descriptions, self.colorinterp, self.tags)


def _row_blocks(h: int, rows: int):
    for y in range(0, h, rows):
        yield y, min(rows, h - y)


def scan_raster(path: str | Path, max_samples: int = DEFAULT_MAX_SAMPLES, rows: int = 256,
                stats: bool = True) -> RasterInfo:
    """One pass over ``rows`` lines at a time (memory: one block of rows, not the scene): the valid-pixel rule,
    band ranges, the float-to-integer cast and the NaN check of :func:`read_raster` + encode_scene; ``stats``:
    also :attr:`RasterInfo.tile_stats` (what ``--psnr`` needs; else None, a quarter of the scan's time saved)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _scan(path, max_samples, rows, rasterio, Window, stats)


#: GDAL's block cache while scanning and reading windows (its default, 5% of RAM, would hold the whole scene)
GDAL_CACHE_MB = 32


def _open(path, rasterio):
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioError as e:
        raise InputError(f"{path}: cannot read raster ({e}); check the file is a complete GeoTIFF/JP2") from e


def _scan(path, max_samples, rows, rasterio, Window, stats: bool = True) -> RasterInfo:
    with _open(path, rasterio) as ds:
        return _scan_dataset(ds, path, max_samples, rows, rasterio, Window, stats)


def _scan_dataset(ds, path, max_samples, rows, rasterio, Window, stats: bool = True,
                  last: list | None = None) -> RasterInfo:
    """The scan of an open dataset; ``last``, when given, receives ``(y, n, pixels as read)`` of the last block of
    rows read (open_scene's reader starts from it when the scene is one row of tiles)."""
    check_header(ds, max_samples)
    c, h, w = ds.count, ds.height, ds.width
    src = np.dtype(ds.dtypes[0])
    nodata = ds.nodata
    declared = nodata is not None and not np.isnan(nodata)
    maybe_zero = nodata is None and src == np.uint16
    zeros = 0
    lo = {k: np.full(c, np.inf) for k in ("plain", "zero")}
    hi = {k: np.full(c, -np.inf) for k in ("plain", "zero")}
    integral, vmin, vmax, any_valid = True, np.inf, -np.inf, {"plain": False, "zero": False}
    starts = np.arange(0, w, rows)
    moments: dict[str, list[np.ndarray]] = {k: [] for k in ("plain", "zero")}  # per row of tiles: float64[3, tiles in the row, C]
    for y, n in _row_blocks(h, rows):
        try:
            px = ds.read(window=Window(0, y, w, n))
        except rasterio.errors.RasterioError as e:
            raise InputError(f"{path}: cannot read rows {y}..{y + n} ({e}); the file is damaged") from e
        if last is not None:
            last[:] = [(y, n, px)]  # as read (px below is a new array where it changes)
        valid = fill_value_mask(px, nodata, zero_fill=False)  # the zero rule is weighed below, per variant
        if px.dtype.kind == "f":
            if not np.isfinite(px[:, valid]).all():
                raise InputError(f"{path}: NaN or infinite pixels outside nodata; declare a nodata value for them")
            px = np.where(np.isfinite(px), px, 0)  # as read_raster: non-finite only at nodata pixels
            integral = integral and bool(np.array_equal(px, np.round(px)))
            vmin, vmax = min(vmin, float(px.min(initial=np.inf))), max(vmax, float(np.abs(px).max(initial=0)))
        variants = {"plain": valid}
        if maybe_zero:
            zero = np.all(px == 0, axis=0)
            zeros += int(zero.sum())
            variants["zero"] = ~zero
        for key, v in variants.items():
            fill = np.asarray(nodata).astype(px.dtype) if declared else (0 if key == "zero" else None)
            if stats:
                moments[key].append(_tile_moments(px, v, fill, starts))
            if not v.any():
                continue
            any_valid[key] = True
            for b in range(c):
                band_lo, band_hi = _valid_range(px[b], v, fill)
                lo[key][b] = min(lo[key][b], band_lo)
                hi[key][b] = max(hi[key][b], band_hi)
    zero_fill = maybe_zero and zeros > 0.01 * h * w
    key = "zero" if zero_fill else "plain"
    band_range = (lo[key], hi[key]) if any_valid[key] else None
    dtype = integer_dtype(src, integral, vmin, vmax)
    tile_stats = None
    if stats:
        m = np.concatenate(moments[key] if moments[key] else moments["plain"], axis=1)  # [3, T, C]
        count = m[0]
        mean = m[1] / np.maximum(count, 1)
        var = np.maximum(m[2] / np.maximum(count, 1) - mean ** 2, 0.0)
        tile_stats = np.stack([count, mean, var], axis=-1)
    return RasterInfo(path=str(path), shape=(c, h, w), dtype=dtype, source_dtype=src, nodata=nodata,
                      profile=dict(ds.profile), descriptions=tuple(ds.descriptions),
                      colorinterp=tuple(ci.name for ci in ds.colorinterp), tags=dict(ds.tags()),
                      zero_fill=zero_fill, band_range=band_range, integral=src.kind != "f" or integral,
                      tile_stats=tile_stats)


def _valid_range(band: np.ndarray, valid: np.ndarray, fill) -> tuple[float, float]:
    """(lo, hi) of ``band[H, W]`` over the ``valid`` pixels (at least one) leaving out ``fill`` (None: none), unless
    every valid sample is fill; masked reductions, without copying the samples out."""
    keep = valid if fill is None else valid & (band != fill)
    if fill is not None and not keep.any():
        keep = valid  # every valid sample is the fill value: the range is that value
    if keep.all():
        return float(band.min()), float(band.max())
    top, bottom = (np.inf, -np.inf) if band.dtype.kind == "f" else (np.iinfo(band.dtype).max, np.iinfo(band.dtype).min)
    return float(band.min(where=keep, initial=top)), float(band.max(where=keep, initial=bottom))


def _tile_moments(px: np.ndarray, valid: np.ndarray, fill, starts: np.ndarray) -> np.ndarray:
    """float64[3, len(starts), C]: per tile of one row block (columns from ``starts``) and band, the count, sum and
    sum of squares of the ``valid`` samples other than ``fill`` (None: every valid sample)."""
    keep = np.broadcast_to(valid, px.shape)
    if fill is not None:
        keep = keep & (px != fill)
    x = np.where(keep, px, 0).astype(np.float64)
    cols = [keep.sum(axis=1, dtype=np.float64), x.sum(axis=1), np.einsum("chw,chw->cw", x, x)]  # each [C, W]
    return np.stack([np.add.reduceat(v, starts, axis=1).T for v in cols])


def read_window(ds, info: RasterInfo, y: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``y .. y+n`` of an open dataset as (pixels [C, n, W] in ``info.dtype``, valid bool[n, W]), with the
    valid rule :func:`scan_raster` settled for the whole scene."""
    from rasterio.windows import Window

    return _window(info, ds.read(window=Window(0, y, info.shape[2], n)))


def _window(info: RasterInfo, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """read_window's result from the rows as read."""
    valid = fill_value_mask(px, info.nodata, zero_fill=info.zero_fill)
    if px.dtype.kind == "f":
        px = np.where(np.isfinite(px), px, 0)
    return px.astype(info.dtype, copy=False), valid


class RowReader:
    """An open scene read one row of tiles at a time (memory: one row of tiles, whatever the scene's size).

    ``tile(win)`` -> (pixels [C, h, w] in ``info.dtype``, valid bool[h, w]) of a
    :class:`cvae.edge.io.tiling.TileWindow`; the row under ``win`` is read when a window of another row is
    asked for, so windows should come in row-major order. ``primed``: ``(y, n, pixels as read)`` of rows already
    read (the scan's last block), used instead of reading them again."""

    def __init__(self, ds, info: RasterInfo, primed: tuple[int, int, np.ndarray] | None = None):
        self.ds, self.info = ds, info
        self._row = -1
        self._block: tuple[np.ndarray, np.ndarray] | None = None
        self._primed = primed

    def tile(self, win) -> tuple[np.ndarray, np.ndarray]:
        if win.row != self._row:
            if self._primed is not None and self._primed[:2] == (win.y0, win.height):
                self._row, self._block = win.row, _window(self.info, self._primed[2])
            else:
                self._row, self._block = win.row, read_window(self.ds, self.info, win.y0, win.height)
            self._primed = None
        assert self._block is not None
        px, valid = self._block
        xs = slice(win.x0, win.x0 + win.width)
        return px[:, :, xs], valid[:, xs]


@contextmanager
def open_scene(path: str | Path, max_samples: int = DEFAULT_MAX_SAMPLES, rows: int = 256,
               stats: bool = True) -> Iterator[tuple[RasterInfo, RowReader]]:
    """:func:`scan_raster` and :func:`open_rows` on one open dataset, ``(info, reader)``: the scene is opened once,
    a scene of one row of tiles is read once (the reader starts from the scan's last block), and the rows read again
    while coding come from GDAL's block cache where they fit in it (GDAL_CACHE_MB; memory stays bounded by that
    cache and one row of tiles)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), _open(path, rasterio) as ds:
        last: list = []
        info = _scan_dataset(ds, path, max_samples, rows, rasterio, Window, stats, last)
        yield info, RowReader(ds, info, last[0] if last else None)


@contextmanager
def open_rows(path: str | Path, info: RasterInfo) -> Iterator[RowReader]:
    """``path`` (scanned into ``info`` by :func:`scan_raster`) open for :class:`RowReader`, GDAL's cache bounded."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(path) as ds:
        yield RowReader(ds, info)


def header_samples(path: str | Path) -> int:
    """bands x height x width from the header alone; 0 when GDAL cannot open it (:func:`read_raster` then
    reports what is wrong with the file)."""
    import rasterio

    try:
        with rasterio.open(path) as ds:
            return ds.count * ds.height * ds.width
    except rasterio.errors.RasterioError:
        return 0
