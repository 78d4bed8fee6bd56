"""Periodic validation during training: rate-distortion on held-out scenes against JPEG 2000.

Each validation scene is cropped to at most ``crop`` x ``crop`` pixels (centre) and coded at every level
through the same spectral transform the edge uses. Rate is counted from real coded bytes
(``cvae.edge.codec.tile``) when the tile codec is given tables, else estimated from the likelihoods. PSNR
is per band in native units over valid pixels, peak = max - min of the valid original (the definition of
``shared/tools/rd_vs_jpeg2000.py``), averaged over bands. BD-rate against OpenJPEG (imagecodecs) per scene.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from cvae.edge.codec.spectral import SpectralTransform
from cvae.edge.io.raster import read_raster
from cvae.metrics import bd_rate, psnr_bands

__all__ = ["Validator"]


class Validator:
    def __init__(self, scene_paths: list[str], crop: int = 256):
        self.items = []
        for p in scene_paths:
            r = read_raster(p)
            c, h, w = r.pixels.shape
            ch, cw = min(crop, h) // 16 * 16, min(crop, w) // 16 * 16
            i, j = (h - ch) // 2, (w - cw) // 2
            pix = r.pixels[:, i:i + ch, j:j + cw]
            valid = r.valid[i:i + ch, j:j + cw]
            self.items.append((Path(p).stem, pix, valid, _jpeg2000_curve(pix, valid)))

    @torch.no_grad()
    def run(self, net, step: int) -> dict:
        t0 = time.time()
        try:
            from cvae.models.freeze import tile_codec_from_model
            codec = tile_codec_from_model(net)
        except ImportError:
            codec = None
        scenes = {}
        for name, pix, valid, j2k in self.items:
            curve = []
            for level in range(net.cfg.levels):
                if codec is not None:
                    data = codec.compress(pix, level, valid=valid)
                    rec = codec.decompress(data).pixels
                    bits = 8 * len(data)
                else:
                    rec, bits = _estimate(net, pix, valid, level)
                bpp = bits / pix.size
                curve.append((bpp, psnr_bands(pix, rec, valid)))
            scenes[name] = {"ours": curve, "bd_rate_vs_j2k": bd_rate(j2k, curve)}
        bds = [s["bd_rate_vs_j2k"] for s in scenes.values() if not math.isnan(s["bd_rate_vs_j2k"])]
        med = float(np.median(bds)) if bds else float("nan")
        return {"step": step, "kind": "validation", "real_bits": codec is not None, "scenes": scenes,
                "median_bd_rate": med, "seconds": time.time() - t0,
                "summary": f"median BD-rate vs J2K {med:.1f}% over {len(bds)} scenes"}


def _estimate(net, pix: np.ndarray, valid: np.ndarray, level: int) -> tuple[np.ndarray, float]:
    st = SpectralTransform.fit(pix, valid)
    z = st.forward(pix)
    z[:, ~valid] = 0
    x = torch.from_numpy(z[:, None])
    r = net.eval()(x, level)
    bits = float(-torch.log2(r.likelihoods).sum())
    rec = st.inverse(r.x_hat[:, 0].numpy())
    return rec, bits


def _jpeg2000_curve(pix: np.ndarray, valid: np.ndarray) -> list[tuple[float, float]]:
    import imagecodecs

    curve = []
    for q in range(20, 101, 2):
        bits, rec = 0, np.empty_like(pix)
        for b in range(pix.shape[0]):
            e = imagecodecs.jpeg2k_encode(np.ascontiguousarray(pix[b]), level=q)
            bits += 8 * len(e)
            rec[b] = imagecodecs.jpeg2k_decode(e)
        curve.append((bits / pix.size, psnr_bands(pix, rec, valid)))
    return curve
