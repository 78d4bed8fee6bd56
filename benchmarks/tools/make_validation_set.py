"""Build the validation scene folder the rate-distortion scorer runs on, from ``../shared/data``.

Every scene comes from a source that ``configs/default.yaml`` keeps out of training (split by scene), except
the two aerial RGB scenes of ``--seen`` (0.15 m and 0.6 m): the shipped model saw them in training, so they
are written to a separate folder and reported apart, never mixed into the held-out figure.

Kinds covered (issue 9): multiband Sentinel-2 (4 and 12 bands) and Landsat (3, 6 and 7 bands), single-band
16-bit Landsat with nodata borders, 8-bit RGBN aerial (NAIP), and (seen) 8-bit RGB aerials.

    python benchmarks/tools/make_validation_set.py [--data ../shared/data] [--out .dev/val] [--seen .dev/val_seen]

Scenes are written as GeoTIFFs (symbolic links where the source file is already one scene); nothing here is
committed, the folder is rebuilt from the shared data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    a = p.parse_args(argv)
    if not (a.data / "scenes").is_dir():
        print(f"make_validation_set: {a.data}/scenes not found; pass --data pointing at shared/data", file=sys.stderr)
        return 2
    for f in build(a.data, a.out, a.seen):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
