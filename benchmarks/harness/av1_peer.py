"""AV1 intra peer: libavif's ``avifenc``/``avifdec`` (aom) given the same KLT and nodata fill as the scorer's j2k_klt.

The preprocessing mirrors ``../shared/tools/rd_vs_av1.py`` (and ``j2k_klt_curve`` of ``rd_vs_jpeg2000.py``) step by
step, so the figures ``bench.py rd`` quotes beside JPEG 2000 are the held-out check's::

    orig: int[C, H, W] --(b - lo_b) / (hi_b - lo_b), over valid pixels--> n      (band range -> [0, 1])
    n - mean_b (valid mean), nodata pixels set to 0 (= the band mean)          (nodata fill)
    z = A n, A: eigenvectors of cov(n) over pixels valid in every band           (the scene's KLT)
    zi = round((z_c - zmin_c) * s), one scale s = 65535 / max_c(zmax_c - zmin_c) (uint16[C, H, W])
    each component: avifenc -s 6 --min q --max q --yuv 400 -d 12 (monochrome, 12 bits) -> avifdec -d 16
    inverse: z' = dec / s + zmin_c, A^-1, + mean, * range, + lo, rounded and clipped to the dtype

Side information is counted as the scorer counts it: C*C + 4C float32 words (matrix, lo, range, mean, zmin) and,
per band whose mask is not all-valid and differs from band 0's, the zlib-9 of its packed mask. Rate = (AV1 bytes *
8 + side bits) / (C * H * W). The quantizer grid is the scorer's, 62 (coarsest) down to 3.

Needs ``avifenc`` and ``avifdec`` on PATH (Debian: ``apt-get install libavif-bin``, libavif 0.11.1 with aom, the
held-out check's). imagecodecs' ``avif_encode`` is not used: it codes 1-channel input losslessly whatever the
quality, which is why ``bench_rd``'s per-band AVIF replicates each band to RGB.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


__all__ = ["AV1_QUANTIZERS", "AV1_SPEED", "INSTALL_HINT", "KltPlan", "av1_klt_curve", "av1_klt_points",
           "avif_mono", "missing_tools", "psnr_scorer"]

AV1_QUANTIZERS = (62, 56, 50, 44, 38, 32, 26, 20, 14, 8, 3)  # rd_vs_av1.QS: coarsest first
AV1_SPEED = 6  # avifenc -s, as the scorer
INSTALL_HINT = "apt-get install libavif-bin (Debian bookworm: libavif 0.11.1 with aom)"
FULL_SCALE = 65535.0  # KLT components share one scale to 16 bits; avifenc maps them to 12


def missing_tools() -> str | None:
    """Why the peer cannot run here (``avifenc``/``avifdec`` not on PATH), or None when it can."""
    absent = [t for t in ("avifenc", "avifdec") if shutil.which(t) is None]
    return f"{' and '.join(absent)} not on PATH: {INSTALL_HINT}" if absent else None


@dataclass(frozen=True)
class KltPlan:
    """The scorer's KLT of one scene and everything needed to invert it.

    lo, scale, mean: float64[C] (valid range start, valid range width or 1, valid mean after normalising);
    matrix: float64[C, C] (rows = eigenvectors, largest eigenvalue first; identity on 1 band); zmin: float64[C];
    step: the common scale to 16 bits; components: uint16[C, H, W]; side_bits: matrix, vectors and masks."""

    lo: np.ndarray
    scale: np.ndarray
    mean: np.ndarray
    matrix: np.ndarray
    zmin: np.ndarray
    step: float
    components: np.ndarray
    side_bits: int

    @staticmethod
    def normalised(orig: np.ndarray, masks: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """``(lo, scale, mean, n)``: j2k_klt's bands normalised by their valid range, less their valid mean, nodata
        at 0 (the band mean); ``n: float64[C, H, W]``."""
        c = orig.shape[0]
        x = orig.astype(np.float64)
        lo = np.array([x[b][masks[b]].min() if masks[b].any() else 0.0 for b in range(c)])
        hi = np.array([x[b][masks[b]].max() if masks[b].any() else 1.0 for b in range(c)])
        scale = np.where(hi > lo, hi - lo, 1.0)
        n = (x - lo[:, None, None]) / scale[:, None, None]
        mean = np.array([n[b][masks[b]].mean() if masks[b].any() else 0.0 for b in range(c)])
        n -= mean[:, None, None]
        for b in range(c):
            n[b][~masks[b]] = 0.0  # nodata = the band mean
        return lo, scale, mean, n

    @classmethod
    def from_scene(cls, orig: np.ndarray, masks: Sequence[np.ndarray], matrix: np.ndarray | None = None) -> KltPlan:
        """``orig: int[C, H, W]``, ``masks``: C bool[H, W] (True = valid) -> the plan (j2k_klt's steps exactly);
        ``matrix``: float64[C, C] rotating the normalised bands instead of the scene's KLT (for comparison)."""
        c, h, w = orig.shape
        lo, scale, mean, n = cls.normalised(orig, masks)
        every = np.logical_and.reduce(masks)
        if matrix is None:
            matrix = np.eye(c)
            if c > 1 and every.sum() > c:
                ev, vec = np.linalg.eigh(np.cov(n[:, every]))
                matrix = vec[:, np.argsort(ev)[::-1]].T
        z = (matrix @ n.reshape(c, -1)).reshape(c, h, w)
        zmin, zmax = z.reshape(c, -1).min(1), z.reshape(c, -1).max(1)
        step = FULL_SCALE / max(float((zmax - zmin).max()), 1e-9)
        comps = np.clip(np.round((z - zmin[:, None, None]) * step), 0, FULL_SCALE).astype(np.uint16)
        side = (c * c + 4 * c) * 32
        for b in range(c):
            if not masks[b].all() and (b == 0 or not np.array_equal(masks[b], masks[0])):
                side += 8 * len(zlib.compress(np.packbits(masks[b]).tobytes(), 9))
        return cls(lo, scale, mean, matrix, zmin, step, comps, side)

    def restore(self, decoded: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """``decoded: float64[C, H, W]`` in the components' 16-bit units -> the scene in ``dtype`` (rounded and
        clipped)."""
        c, h, w = decoded.shape
        z = decoded / self.step + self.zmin[:, None, None]
        n = (np.linalg.inv(self.matrix) @ z.reshape(c, -1)).reshape(c, h, w) + self.mean[:, None, None]
        rec = n * self.scale[:, None, None] + self.lo[:, None, None]
        info = np.iinfo(dtype)
        return np.clip(np.round(rec), info.min, info.max).astype(dtype)


def avif_mono(u16: np.ndarray, q: int, workdir: str | Path, speed: int = AV1_SPEED) -> tuple[int, np.ndarray]:
    """One ``uint16[H, W]`` component through avifenc (monochrome, 12 bits, quantizer ``q`` 0..63) and back:
    (AV1 file bytes, float64[H, W] decoded in the input's 16-bit units)."""
    import imagecodecs

    d = Path(workdir)
    (d / "i.png").write_bytes(imagecodecs.png_encode(np.ascontiguousarray(u16)))
    subprocess.run(["avifenc", "-s", str(speed), "--min", str(q), "--max", str(q), "--yuv", "400", "-d", "12",
                    str(d / "i.png"), str(d / "o.avif")], check=True, capture_output=True)
    subprocess.run(["avifdec", "-d", "16", str(d / "o.avif"), str(d / "o.png")], check=True, capture_output=True)
    dec = imagecodecs.png_decode((d / "o.png").read_bytes())
    return os.path.getsize(d / "o.avif"), (dec[..., 0] if dec.ndim == 3 else dec).astype(np.float64)


def av1_klt_points(orig: np.ndarray, masks: Sequence[np.ndarray], quantizers: Sequence[int] = AV1_QUANTIZERS
                   ) -> Iterator[tuple[int, float, np.ndarray]]:
    """``orig: int[C, H, W]`` at each quantizer: (q, bits per sample with side information, reconstruction
    ``orig.dtype[C, H, W]``). Raises ``subprocess.CalledProcessError`` when avifenc/avifdec fail."""
    if orig.dtype.kind not in "iu":
        raise TypeError(f"{orig.dtype} data: the AV1 peer codes integer scenes")
    plan = KltPlan.from_scene(orig, masks)
    c = orig.shape[0]
    with tempfile.TemporaryDirectory(prefix="av1_peer_") as d:
        for q in quantizers:
            nbytes, dec = 0, np.empty(orig.shape, np.float64)
            for k in range(c):
                size, dec[k] = avif_mono(plan.components[k], q, d)
                nbytes += size
            yield q, (8 * nbytes + plan.side_bits) / orig.size, plan.restore(dec, orig.dtype)


def psnr_scorer(orig: np.ndarray, rec: np.ndarray, mask: np.ndarray) -> float:
    """The scorer's PSNR of one band (dB): over valid pixels, peak = max - min of the valid original."""
    o = orig[mask].astype(np.float64)
    mse = np.mean((o - rec[mask].astype(np.float64)) ** 2)
    return 10 * math.log10(float(o.max() - o.min()) ** 2 / max(float(mse), 1e-12))


def av1_klt_curve(orig: np.ndarray, masks: Sequence[np.ndarray], quantizers: Sequence[int] = AV1_QUANTIZERS
                  ) -> list[tuple[float, float]]:
    """[(bits per sample, PSNR dB)] at each quantizer, PSNR as the scorer's (mean over bands)."""
    return [(bpp, float(np.mean([psnr_scorer(orig[b], rec[b], masks[b]) for b in range(orig.shape[0])])))
            for _, bpp, rec in av1_klt_points(orig, masks, quantizers)]
