"""A factorised bundle -> an adaptive bundle (tile format v3): the Laplacian bank, index tables fitted on
training tiles, and residual levels for high quality (``cvae-export --target adaptive``).

The networks, factorised tables and gains are copied byte for byte, so the adaptive bundle also decodes the
factorised parent's v1 streams (``compatible_model_ids``). Everything written is integer data or float32
constants read as-is by both sides; fitting uses only training scenes (never the validation split).
"""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from cvae.edge.bundle import MANIFEST, Bundle, content_hash
from cvae.edge.codec.adaptive import NUM_INDEXES, AdaptiveModel
from cvae.edge.codec.tile import Ladder

__all__ = ["ADAPTIVE_FILES", "DEFAULT_FIT_SCENES", "DEFAULT_SCALES", "DEFAULT_LADDER", "fit_index_counts", "export_adaptive"]

#: the files an adaptive bundle adds to its factorised parent's
ADAPTIVE_FILES = ("adaptive.npz", "ladder.npz")
#: training rasters (relative to shared/data/train; none from the validation split) the index tables are fitted
#: on: one of each kind the codec meets (8-bit RGB/RGBN aerial, 16-bit single-band Landsat with nodata borders,
#: 16-bit panchromatic, int16 Landsat-7 stack, 12- and 13-band Sentinel-2)
DEFAULT_FIT_SCENES = (
    "rasterframes-testdata/m_3607717_sw_18_1_20160620_subset.tif",
    "opengeos-data/naip/m_4709963_se_14_1_20180716.tif",
    "rasterio-testdata/RGB.byte.tif",
    "rio-pansharpen-landsat8/LC81070352015122LGN00/LC81070352015122LGN00_B2.tif",
    "solaris-spacenet/preproc_tutorial/pan1.tif",
    "open-geo-tutorial-landsat7/LE70220491999322EDC01_stack.gtif",
    "rico-hdl-samples/Hydro/patch_1.tif",
    "rico-hdl-samples/EuroSAT_MS/AnnualCrop/AnnualCrop_1.tif",
)
#: bank scales: 62 Laplacians, geometric from 0.08 to 160 (about 9 per octave)
DEFAULT_SCALES = np.geomspace(0.08, 160.0, NUM_INDEXES - 2)
#: the public levels as (latent level, residual step in normalised units, 0 = none): latent levels 0 and 1, then
#: residual levels from about 33 to 53 dB whose tiles choose their base among the latent levels from the one
#: named here up (and no base at all) by D + lambda R. With wavelet residuals (tile format v3) a residual on
#: latent level 1 or 2 beat the pure latent levels 2 and 3 on every validation scene tried (-0.5% to -2.6%
#: BD-rate, benchmarks/results/ladder_variants.md); from step 0.1 down no tile chose a base under 3.
DEFAULT_LADDER = ((0, 0.0), (1, 0.0), (1, 0.2), (2, 0.14), (3, 0.1), (3, 0.07), (3, 0.05), (3, 0.035), (3, 0.025),
                  (3, 0.0175), (3, 0.0125), (3, 0.009))


def _tiles(paths: Iterable[str], tile: int, max_tiles: int):
    """(pixels, valid, band_range) of up to ``max_tiles`` tiles per raster."""
    from cvae.edge.io.raster import band_ranges, read_raster
    from cvae.edge.io.tiling import tile_grid

    for path in paths:
        r = read_raster(path)
        px = r.pixels
        if px.dtype.kind == "f":
            px = np.nan_to_num(px).astype(np.float32)
        br = band_ranges(px, r.valid, r.nodata)
        if br is None:
            continue
        for win in list(tile_grid(px.shape[1], px.shape[2], tile))[:max_tiles]:
            ys, xs = win.slices
            if r.valid[ys, xs].mean() > 0.5:
                yield px[:, ys, xs], r.valid[ys, xs], br


def fit_index_counts(bundle: Bundle, ladder: Ladder, scenes: Sequence[str], tile: int = 256,
                     max_tiles: int = 4, passes: int = 2, progress: Callable[[str], None] = lambda s: None
                     ) -> tuple[AdaptiveModel, dict]:
    """Fit the index tables: code training tiles at every level with the current tables, count the chosen
    indexes per context, rebuild; ``passes`` times (the choice depends on the index costs)."""
    m = bundle.gain.shape[1]
    contexts = len(bundle.tables) * m + ladder.residual_levels
    model = AdaptiveModel.uniform(DEFAULT_SCALES, contexts)
    tiles = list(_tiles(scenes, tile, max_tiles))
    if not tiles:
        raise ValueError("no training tile with enough valid pixels to fit the index tables")
    stats = {}
    for p in range(passes):
        codec = _codec(bundle, model, ladder)
        counts = np.zeros((contexts, NUM_INDEXES))
        bits = np.zeros(codec.levels)
        for i, (px, valid, br) in enumerate(tiles):
            a = codec.analyze(px, valid, band_range=br)
            for level in range(codec.levels):
                plan = codec.plan(a, level)
                np.add.at(counts, (plan.side_rows, plan.side), 1)
                bits[level] += plan.bits
            progress(f"pass {p + 1}/{passes}: tile {i + 1}/{len(tiles)}")
        stats[f"pass{p + 1}_bits_per_level"] = bits.tolist()
        model = AdaptiveModel.build(DEFAULT_SCALES, counts)
    stats["tiles"] = len(tiles)
    return model, stats


def _codec(bundle: Bundle, model: AdaptiveModel, ladder: Ladder):
    from cvae.edge.codec.tile import TileCodec
    from cvae.edge.runtime import load_transforms

    return TileCodec(tables=bundle.tables, gain=bundle.gain, inv_gain=bundle.inv_gain,
                     transforms=load_transforms(bundle.path, "onnxruntime"), model_id=bytes.fromhex(bundle.model_id),
                     skip_variance=bundle.skip_variance, adaptive=model, ladder=ladder)


def _relative(paths: Sequence[str]) -> list[str]:
    """Paths relative to their common folder (the manifest must not depend on where the data lay)."""
    import os

    root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""
    return [os.path.relpath(os.path.abspath(p), root) for p in paths]


def export_adaptive(parent_dir: str | Path | None, out_dir: str | Path, fit_scenes: Sequence[str],
                    ladder: Sequence[tuple[int, float]] = DEFAULT_LADDER, max_tiles: int = 4,
                    progress: Callable[[str], None] = lambda s: None) -> Bundle:
    """Write the adaptive bundle derived from the factorised bundle ``parent_dir`` to ``out_dir`` (replaced
    whole, atomically; ``out_dir`` may be ``parent_dir`` itself)."""
    parent = Bundle.load(parent_dir)
    if parent.entropy_model == "factorized":
        parent_id = parent.model_id
    else:  # an adaptive bundle holds its parent's files unchanged: refit from those
        parent_id = parent.manifest["derived"]["from"]
    ladder = Ladder(latent=np.array([lv for lv, _ in ladder], np.int32), step=np.array([s for _, s in ladder], np.float32))
    model, stats = fit_index_counts(parent, ladder, fit_scenes, max_tiles=max_tiles, progress=progress)
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out_dir.parent if out_dir.parent.exists() else None))
    for f in sorted(parent.path.iterdir()):
        if f.is_file() and f.name not in (MANIFEST, *ADAPTIVE_FILES) and not f.name.startswith("."):
            shutil.copy2(f, tmp / f.name)
    model.save(tmp / "adaptive.npz")
    np.savez(tmp / "ladder.npz", latent=ladder.latent, step=ladder.step)
    manifest = {k: v for k, v in parent.manifest.items() if k not in ("adaptive", "derived")}
    latent = len(parent.tables)
    manifest.update({
        "model_id": content_hash(tmp),
        "entropy_model": "adaptive",
        "compatible_model_ids": [parent_id],
        "levels": {**parent.manifest["levels"], "count": len(ladder.latent), "latent_levels": latent,
                   "ladder": [[int(lv), float(s)] for lv, s in zip(ladder.latent, ladder.step)],
                   "order": "level 0 = lowest rate; ladder[i] = [latent level, residual step (0: none)]"},
        "adaptive": {"indexes": NUM_INDEXES, "scales": [float(DEFAULT_SCALES[0]), float(DEFAULT_SCALES[-1])],
                     "fit_scenes": _relative(fit_scenes), **stats},
        "derived": {"from": parent_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "host": platform.platform()},
    })
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    tmp.chmod(0o755)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return Bundle.load(out_dir)
