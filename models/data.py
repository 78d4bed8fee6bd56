"""Training data: every raster under a folder, grouped into scenes, sampled as spectral components.

A *scene* is a multiband file, or the single-band files of one folder that share grid and dtype (one band
per file is how Sentinel-2 and Landsat are distributed). Each training sample is a random crop of a scene,
normalised and rotated exactly as the edge encoder does (:class:`cvae.edge.codec.spectral.SpectralTransform`),
of which one component becomes ``float32[1, P, P]``.
"""
from __future__ import annotations

import fnmatch
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cvae.edge.codec.spectral import SpectralTransform
from cvae.edge.io.raster import fill_value_mask

__all__ = ["Scene", "find_scenes", "load_scene", "ComponentPatches", "RASTER_SUFFIXES"]

RASTER_SUFFIXES = (".tif", ".tiff", ".gtif", ".jp2")


@dataclass
class Scene:
    name: str
    paths: list[str]
    pixels: np.ndarray | None = None  # float32[C, H, W] native units
    valid: np.ndarray | None = None   # bool[H, W]
    lo: np.ndarray | None = None      # float32[C] scene range over valid pixels
    hi: np.ndarray | None = None


def find_scenes(root: str | Path, exclude: list[str] = (), min_size: int = 32) -> list[Scene]:
    """Group the rasters under ``root`` into scenes; ``exclude`` holds glob patterns on paths relative to root."""
    import rasterio

    root = Path(root)
    singles: dict[tuple, list[str]] = defaultdict(list)
    scenes: list[Scene] = []
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if not f.lower().endswith(RASTER_SUFFIXES):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            if any(fnmatch.fnmatch(rel, pat) for pat in exclude):
                continue
            try:
                with rasterio.open(os.path.join(dirpath, f)) as ds:
                    if min(ds.width, ds.height) < min_size:
                        continue
                    if ds.count > 1:
                        scenes.append(Scene(rel, [os.path.join(dirpath, f)]))
                    else:
                        key = (dirpath, ds.width, ds.height, ds.dtypes[0], tuple(ds.transform)[:6])
                        singles[key].append(os.path.join(dirpath, f))
            except rasterio.errors.RasterioError:
                continue
    for key, paths in singles.items():
        scenes.append(Scene(os.path.relpath(paths[0], root) + (f" (+{len(paths) - 1} bands)" if len(paths) > 1 else ""), paths))
    return scenes


def load_scene(scene: Scene) -> Scene:
    import rasterio

    bands, nodata = [], None
    for p in scene.paths:
        with rasterio.open(p) as ds:
            bands.append(ds.read())
            nodata = ds.nodata if nodata is None else nodata
    pixels = np.concatenate(bands, axis=0)
    valid = fill_value_mask(pixels, nodata)
    scene.pixels = pixels.astype(np.float32)
    scene.valid = valid
    v = scene.pixels[:, valid] if valid.any() else scene.pixels.reshape(pixels.shape[0], -1)
    scene.lo, scene.hi = v.min(axis=1), v.max(axis=1)
    return scene


class ComponentPatches(torch.utils.data.IterableDataset):
    """Endless stream of ``float32[1, P, P]`` spectral components of random valid crops."""

    def __init__(self, scenes: list[Scene], patch: int, seed: int, first_component_prob: float = 0.5,
                 scene_range_prob: float = 0.5, start_step: int = 0):
        self.scenes = scenes
        self.patch = patch
        self.seed = seed
        self.first_component_prob = first_component_prob
        self.scene_range_prob = scene_range_prob
        self.start_step = start_step
        sizes = np.array([s.pixels.shape[1] * s.pixels.shape[2] for s in scenes], np.float64)
        self.weights = np.sqrt(sizes) / np.sqrt(sizes).sum()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        p = self.patch
        for _ in range(100):
            s = self.scenes[rng.choice(len(self.scenes), p=self.weights)]
            c, h, w = s.pixels.shape
            if h < p or w < p:
                pad = ((0, 0), (0, max(0, p - h)), (0, max(0, p - w)))
                pix, val = np.pad(s.pixels, pad, mode="reflect"), np.pad(s.valid, pad[1:], mode="reflect")
            else:
                pix, val = s.pixels, s.valid
            i = rng.integers(0, pix.shape[1] - p + 1)
            j = rng.integers(0, pix.shape[2] - p + 1)
            crop, cval = pix[:, i:i + p, j:j + p], val[i:i + p, j:j + p]
            if cval.mean() < 0.9:
                continue
            rng_range = (s.lo, s.hi) if rng.random() < self.scene_range_prob else None
            st = SpectralTransform.fit(crop, cval, band_range=rng_range)
            z = st.forward(crop)
            z[:, ~cval] = 0.0  # invalid pixels are filled with the band mean by the encoder
            k = 0 if (c == 1 or rng.random() < self.first_component_prob) else int(rng.integers(1, c))
            comp = z[k]
            if rng.random() < 0.5:
                comp = comp[:, ::-1]
            comp = np.rot90(comp, int(rng.integers(0, 4)))
            return np.ascontiguousarray(comp[None], dtype=np.float32)
        raise RuntimeError("no valid crop found in 100 tries: training scenes are mostly nodata")

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, wid, self.start_step])
        while True:
            yield torch.from_numpy(self.sample(rng))


def write_split(path: str | Path, train: list[Scene], val: list[str], exclude: list[str]) -> None:
    Path(path).write_text(json.dumps({"train_scenes": [s.name for s in train], "validation_scenes": val,
                                      "excluded_from_training": exclude}, indent=1))
