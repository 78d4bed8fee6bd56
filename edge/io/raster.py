"""Reading rasters (GeoTIFF, JP2, anything GDAL opens) into arrays with their valid-pixel mask.

The only module on the edge that imports rasterio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvae.edge.errors import InputError

__all__ = ["Raster", "read_raster", "fill_value_mask", "band_ranges"]


@dataclass(frozen=True)
class Raster:
    """pixels: native dtype [C, H, W]; valid: bool[H, W] (False where any band is nodata/fill)."""

    pixels: np.ndarray
    valid: np.ndarray
    nodata: float | None
    profile: dict


def fill_value_mask(pixels: np.ndarray, nodata: float | None) -> np.ndarray:
    """bool[H, W]: pixels that hold data in at least one band. A pixel is nodata when every band holds the
    declared nodata value (a value equal to nodata in some bands only, e.g. a saturated band, is coded as
    data). Without a declared value, zeros in every band of unsigned 16-bit data covering over 1% of the
    scene are taken as fill (Landsat and Sentinel-2 L1 use 0 so)."""
    if nodata is not None and not np.isnan(nodata):
        return ~np.all(pixels == np.asarray(nodata).astype(pixels.dtype), axis=0)
    if nodata is not None:  # NaN nodata
        return ~np.all(np.isnan(pixels), axis=0)
    if pixels.dtype == np.uint16:
        zero = np.all(pixels == 0, axis=0)
        if zero.mean() > 0.01:
            return ~zero
    return np.ones(pixels.shape[1:], bool)


def band_ranges(pixels: np.ndarray, valid: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per band ``(lo, hi)`` over valid pixels, leaving out that band's own fill values (the nodata value,
    or 0 in zero-filled unsigned 16-bit scenes) where a pixel is fill in some bands only. This is the
    peak that per-band PSNR uses; a fill value below ``lo`` decodes clipped to ``lo``. None when no pixel
    is valid."""
    if not valid.any():
        return None
    fill = None
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


def read_raster(path: str | Path) -> Raster:
    """Read every band of ``path``. Float rasters holding integers are kept as float; callers cast."""
    try:
        import rasterio
    except ImportError as e:  # pragma: no cover - rasterio is a hard dependency
        raise InputError("reading rasters needs rasterio: pip install rasterio") from e
    try:
        with rasterio.open(path) as ds:
            pixels = ds.read()
            nodata = ds.nodata
            profile = dict(ds.profile)
    except rasterio.errors.RasterioError as e:
        raise InputError(f"{path}: cannot read raster ({e}); check the file is a complete GeoTIFF/JP2") from e
    return Raster(pixels=pixels, valid=fill_value_mask(pixels, nodata), nodata=nodata, profile=profile)
