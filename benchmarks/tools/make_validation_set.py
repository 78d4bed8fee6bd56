"""Build the validation scene folder the rate-distortion scorer runs on, from ``../shared/data``.

Every scene comes from a source that ``configs/default.yaml`` keeps out of training (split by scene), except
the two aerial RGB scenes of ``--seen`` (0.15 m and 0.6 m): the shipped model saw them in training, so they
are written to a separate folder and reported apart, never mixed into the held-out figure.

Kinds covered (issue 9): multiband Sentinel-2 (4 and 12 bands) and Landsat (3, 6 and 7 bands), single-band
16-bit Landsat with nodata borders, 8-bit RGBN aerial (NAIP), and (seen) 8-bit RGB aerials.

``--resampled`` (issue 25) also writes resampled multi-resolution stacks (:data:`RESAMPLED`, new names beside the
8 scenes, which stay as they are): the 12 Major-TOM bands (10, 20 and 60 m) reprojected with nearest resampling
onto a shifted, slightly rotated 10 m grid, as a product resampled to one grid after a reprojection is. The 20 m
and 60 m bands come out pixel-replicated, but the repeated pixels do not sit on an aligned 2x2 or 6x6 grid.

    python benchmarks/tools/make_validation_set.py [--data ../shared/data] [--out .dev/val] [--seen .dev/val_seen]
    python benchmarks/tools/make_validation_set.py --resampled --resampled-out .dev/val_resampled

Scenes are written as GeoTIFFs (symbolic links where the source file is already one scene); nothing here is
committed, the folder is rebuilt from the shared data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

#: ready-made scenes of ../shared/data/scenes, all from sources excluded from training
HELD_OUT_SCENES = (
    "s2_ben_87_48_b2348.tif", "l8_elkton_b1234567.tif", "naip_va_1m_rgbn.tif", "l5_amazon_b123457.tif",
    "l8_lc81210442015044_b234.tif", "s2_t33nza_10m_b2348.tif",
)
#: single-band 16-bit Landsat-8 with zero-filled nodata borders (excluded from training)
SINGLE_BAND = {"l8_lc81210442015044_b2.tif": "train/rio-pansharpen-landsat8/LC81210442015044LGN00/LC81210442015044LGN00_B2.tif"}
#: Major-TOM Sentinel-2 L2A tile T33NZA (excluded from training): 12 bands on the 20 m grid
MAJOR_TOM = "train/rico-hdl-samples/Major-TOM-Core/S2L2A/0U/0U_199R/S2A_MSIL2A_20220706T085611_N0400_R007_T33NZA_20220706T153419"
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
#: aerial RGB the shipped model was trained on: reported apart
SEEN = {"aerial_0p15m_rgb.tif": "train/rio-tiler-fixtures/my-bucket/hro_sources/colorado/201404_13SED190110_201404_0x1500m_CL_1.tif",
        "aerial_0p6m_rgb.tif": "train/rasterio-testdata/cogeo.tif"}


def _link(src: Path, dst: Path) -> None:
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    dst.symlink_to(src.resolve())


def stack_major_tom(data: Path, dst: Path) -> None:
    """The 12 bands of the Major-TOM tile resampled (area average / nearest for upsampling) to its 20 m grid."""
    import rasterio
    from rasterio.enums import Resampling

    folder = data / MAJOR_TOM
    with rasterio.open(folder / "B05.tif") as ref:
        profile = dict(ref.profile)
        h, w = ref.height, ref.width
    bands = []
    for b in S2_BANDS:
        with rasterio.open(folder / f"{b}.tif") as ds:
            rs = Resampling.average if ds.width > w else Resampling.nearest
            bands.append(ds.read(1, out_shape=(h, w), resampling=rs))
    profile.update(count=len(bands), driver="GTiff", compress="deflate", tiled=False)
    profile.pop("blockxsize", None), profile.pop("blockysize", None)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(np.stack(bands))
        for i, b in enumerate(S2_BANDS, 1):
            out.set_band_description(i, b)


class Regrid(NamedTuple):
    """A 10 m target grid: ``size`` x ``size`` pixels rotated ``degrees`` about the tile's centre and shifted by
    ``shift`` (x, y) of a 10 m pixel; ``offset`` is added to the DNs (-1000: the L2A BOA offset of processing
    baseline 04.00, giving int16 reflectance x 10000)."""

    degrees: float
    shift: tuple[float, float]
    size: int
    dtype: str
    offset: int


#: resampled stacks (issue 25): name -> target grid; 960 x 960 fits inside the rotated 1068 x 1068 tile. The
#: "aligned" one is the control: the source's own 10 m grid (a 54-pixel crop), so the 20 m and 60 m pixels sit on
#: aligned 2x2 and 6x6 blocks.
RESAMPLED = {
    "s2_t33nza_rs10m_12band_rot2.tif": Regrid(2.0, (0.37, 0.61), 960, "uint16", 0),
    "s2_t33nza_rs10m_12band_i16.tif": Regrid(-0.7, (0.73, 0.29), 960, "int16", -1000),
    "s2_t33nza_rs10m_12band_aligned.tif": Regrid(0.0, (0.0, 0.0), 960, "uint16", 0),
}


def regrid_transform(src_transform, src_size: int, grid: Regrid):
    """The target grid's affine: 10 m pixels, rotated about the source tile's centre, shifted by a fraction."""
    from rasterio.transform import Affine

    res = 10.0
    cx, cy = src_transform @ (src_size / 2, src_size / 2)
    half = grid.size / 2
    return (Affine.translation(cx, cy) @ Affine.rotation(grid.degrees) @ Affine.scale(res, -res)
            @ Affine.translation(-half + grid.shift[0], -half + grid.shift[1]))


def stack_resampled(data: Path, dst: Path, grid: Regrid) -> None:
    """Every Major-TOM band reprojected with nearest resampling onto ``grid`` (see :class:`Regrid`)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    folder = data / MAJOR_TOM
    with rasterio.open(folder / "B02.tif") as ref:
        crs, ref_transform, size = ref.crs, ref.transform, ref.width
    transform = regrid_transform(ref_transform, size, grid)
    bands = []
    for b in S2_BANDS:
        with rasterio.open(folder / f"{b}.tif") as ds:
            src = ds.read(1)
            out = np.zeros((grid.size, grid.size), np.uint16)
            reproject(src, out, src_transform=ds.transform, src_crs=ds.crs, dst_transform=transform, dst_crs=crs,
                      resampling=Resampling.nearest, src_nodata=None, dst_nodata=None)
            bands.append(out)
    pixels = np.stack(bands).astype(np.int32) + grid.offset
    if not (np.iinfo(grid.dtype).min <= pixels.min() and pixels.max() <= np.iinfo(grid.dtype).max):
        raise ValueError(f"{dst.name}: DNs {pixels.min()}..{pixels.max()} do not fit {grid.dtype}")
    profile = {"driver": "GTiff", "width": grid.size, "height": grid.size, "count": len(bands),
               "dtype": grid.dtype, "crs": crs, "transform": transform, "compress": "deflate"}
    with rasterio.open(dst, "w", **profile) as out:
        out.write(pixels.astype(grid.dtype))
        for i, b in enumerate(S2_BANDS, 1):
            out.set_band_description(i, b)


def build_resampled(data: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name, grid in RESAMPLED.items():
        dst = out / name
        if not dst.exists():
            stack_resampled(data, dst, grid)
        made.append(dst)
    return made


def build(data: Path, out: Path, seen: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    seen.mkdir(parents=True, exist_ok=True)
    made = []
    for name in HELD_OUT_SCENES:
        _link(data / "scenes" / name, out / name)
        made.append(out / name)
    for name, rel in SINGLE_BAND.items():
        _link(data / rel, out / name)
        made.append(out / name)
    dst = out / "s2_t33nza_20m_12band.tif"
    if not dst.exists():
        stack_major_tom(data, dst)
    made.append(dst)
    for name, rel in SEEN.items():
        _link(data / rel, seen / name)
        made.append(seen / name)
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / ".dev" / "val")
    p.add_argument("--seen", type=Path, default=ROOT / ".dev" / "val_seen")
    p.add_argument("--resampled", action="store_true", help="also write the resampled multi-resolution stacks")
    p.add_argument("--resampled-out", type=Path, default=ROOT / ".dev" / "val_resampled",
                   help="their folder (apart from the 8 scenes whose figures README.md quotes)")
    a = p.parse_args(argv)
    if not (a.data / "scenes").is_dir():
        print(f"make_validation_set: {a.data}/scenes not found; pass --data pointing at shared/data", file=sys.stderr)
        return 2
    made = build(a.data, a.out, a.seen) + (build_resampled(a.data, a.resampled_out) if a.resampled else [])
    for f in made:
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
