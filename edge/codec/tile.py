"""Coding one tile (all its bands) to bytes and back: the torch-free codec the edge and ground share.

Pipeline of :meth:`TileCodec.compress` for ``tile: native[C, H, W]``::

    bands --SpectralTransform--> components z[C, H, W] --pad to 16--> analysis --> y[C, M, h, w]
      y * gain[level] --round--> symbols --range coder (tables[level])--> one payload for the tile

Components whose variance is below the level's expected distortion (``skip_variance[level]``) are not
coded at all: reverse water-filling, they cost nothing and decode as zero. The byte layout is
``cvae.edge.codec.bitstream`` (docs/bitstream.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cvae.edge.codec import bitstream, rangecoder
from cvae.edge.codec.spectral import SpectralTransform
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.errors import CorruptTileError, InputError

__all__ = ["Transforms", "TileCodec", "AnalyzedTile", "DecodedTile", "STRIDE"]

STRIDE = 16


class Transforms(Protocol):
    """The network halves, whatever runs them (ONNX Runtime, TensorRT, torch)."""

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """float32[B, 1, H, W] (H, W multiples of 16) -> float32[B, M, H/16, W/16]."""

    def synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        """float32[B, M, h, w] -> float32[B, 1, 16h, 16w]."""


@dataclass(frozen=True)
class AnalyzedTile:
    """A tile after the network, before quantisation: every level can be coded from it."""

    shape: tuple[int, int, int]   # C, H, W
    dtype: np.dtype
    spectral: SpectralTransform
    variance: np.ndarray          # float32[C] per component over valid pixels
    y: np.ndarray                 # float32[C, M, h, w]
    valid: np.ndarray | None      # bool[H, W] or None when every pixel is valid


@dataclass(frozen=True)
class DecodedTile:
    pixels: np.ndarray            # native dtype [C, H, W]; invalid pixels hold 0
    valid: np.ndarray             # bool[H, W]
    level: int
    header: bitstream.TileHeader


class TileCodec:
    """Compress and decompress tiles with frozen tables; ``transforms`` runs the network."""

    def __init__(self, tables: list[EntropyTables], gain: np.ndarray, inv_gain: np.ndarray,
                 transforms: Transforms, model_id: bytes, skip_variance: np.ndarray | None = None):
        self.tables = tables
        self.gain = np.asarray(gain, np.float32)
        self.inv_gain = np.asarray(inv_gain, np.float32)
        self.transforms = transforms
        self.model_id = model_id
        self.levels = len(tables)
        self.skip_variance = (np.zeros(self.levels, np.float32) if skip_variance is None
                              else np.asarray(skip_variance, np.float32))
        if self.gain.shape != (self.levels, tables[0].channels) or self.inv_gain.shape != self.gain.shape:
            raise ValueError(f"gains {self.gain.shape}/{self.inv_gain.shape} do not match "
                             f"{self.levels} levels of {tables[0].channels} channels")

    # -- encoder -------------------------------------------------------------------------------------
    def analyze(self, tile: np.ndarray, valid: np.ndarray | None = None,
                band_range: tuple[np.ndarray, np.ndarray] | None = None, rotate: bool = True) -> AnalyzedTile:
        """Run the network once on ``tile: native[C, H, W]``; ``valid: bool[H, W]`` marks data pixels.
        ``rotate=False`` codes the normalised bands themselves (no KLT), for comparison."""
        tile = _check_tile(tile)
        c, h, w = tile.shape
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != (h, w):
                raise InputError(f"valid mask shape {valid.shape} != tile shape {(h, w)}; pass a bool[H, W] mask")
            if valid.all():
                valid = None
        st = SpectralTransform.fit(tile, valid, band_range=band_range, rotate=rotate)
        z = st.forward(tile)
        if valid is not None:
            z[:, ~valid] = 0.0  # fill with the band mean: nodata costs no bits
            variance = z[:, valid].var(axis=1) if valid.any() else np.zeros(c, np.float32)
        else:
            variance = z.reshape(c, -1).var(axis=1)
        hp, wp = -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE
        zp = np.pad(z, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")[:, None]
        y = self.transforms.analysis(np.ascontiguousarray(zp, np.float32))
        return AnalyzedTile(shape=(c, h, w), dtype=tile.dtype, spectral=st, variance=variance.astype(np.float32),
                            y=y, valid=valid)

    def symbols(self, a: AnalyzedTile, level: int) -> np.ndarray:
        """int32[C, M, h, w]: the quantised latents of every component at ``level``."""
        self._check_level(level)
        return np.round(a.y * self.gain[level][None, :, None, None]).astype(np.int32)

    def coded_components(self, a: AnalyzedTile, level: int) -> np.ndarray:
        """bool[C]: components worth coding at ``level``."""
        return a.variance > self.skip_variance[level]

    def estimate_bytes(self, a: AnalyzedTile, level: int) -> float:
        """Expected size at ``level`` from the tables, without coding (for rate control)."""
        sym = self.symbols(a, level)
        keep = self.coded_components(a, level)
        idx = self._indexes(sym.shape[1:])
        bits = sum(self.tables[level].estimated_bits(sym[k].reshape(-1), idx) for k in np.flatnonzero(keep))
        return bits / 8 + bitstream.header_size(a.shape[0], a.valid is not None) + (19 if keep.any() else 0)

    def encode(self, a: AnalyzedTile, level: int) -> bytes:
        sym = self.symbols(a, level)
        keep = self.coded_components(a, level)
        idx = self._indexes(sym.shape[1:])
        t = self.tables[level]
        coded = np.flatnonzero(keep)
        payload = None
        if len(coded):  # one stream for every coded component: one coder flush per tile
            payload = rangecoder.encode(sym[coded].reshape(-1), np.tile(idx, len(coded)), t.cdf, t.cdf_length,
                                        t.offset, t.precision)
        header = bitstream.TileHeader(model_id=self.model_id[:bitstream.MODEL_ID_BYTES], level=level,
                                      dtype=a.dtype, bands=a.shape[0], height=a.shape[1], width=a.shape[2],
                                      lo=a.spectral.lo, hi=a.spectral.hi, mean=a.spectral.mean,
                                      matrix=a.spectral.matrix)
        return bitstream.pack_tile(header, keep, payload, a.valid)

    def compress(self, tile: np.ndarray, level: int, valid: np.ndarray | None = None,
                 band_range: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
        """``tile: native[C, H, W]`` (uint8/uint16/int16/int32/float) -> bytes at rate ``level``."""
        return self.encode(self.analyze(tile, valid, band_range), level)

    # -- decoder -------------------------------------------------------------------------------------
    def decompress(self, data: bytes) -> DecodedTile:
        header, present_mask, payload, valid = bitstream.unpack_tile(data)
        if header.model_id != self.model_id[:bitstream.MODEL_ID_BYTES]:
            raise CorruptTileError(f"tile was coded with model {header.model_id.hex()}, this bundle is "
                                   f"{self.model_id[:bitstream.MODEL_ID_BYTES].hex()}; decode with the matching bundle")
        if header.level >= self.levels:
            raise CorruptTileError(f"tile level {header.level} does not exist in this bundle ({self.levels} levels)")
        c, h, w = header.bands, header.height, header.width
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.gain.shape[1]
        idx = self._indexes((m, hl, wl))
        t = self.tables[header.level]
        present = np.flatnonzero(present_mask)
        z = np.zeros((c, h, w), np.float32)
        if len(present):
            try:
                s = rangecoder.decode(payload, np.tile(idx, len(present)), t.cdf, t.cdf_length, t.offset, t.precision)
            except rangecoder.CorruptStreamError as e:
                raise CorruptTileError(f"entropy-coded payload: {e}") from e
            y_hat = s.reshape(len(present), m, hl, wl).astype(np.float32)
            y_hat *= self.inv_gain[header.level][None, :, None, None]
            for i in range(0, len(present), 4):  # bounded memory for many-band tiles
                x = self.transforms.synthesis(y_hat[i:i + 4])
                z[present[i:i + 4]] = x[:, 0, :h, :w]
        st = SpectralTransform(lo=header.lo, hi=header.hi, mean=header.mean, matrix=header.matrix)
        rec = st.inverse(z)
        pixels = _to_dtype(rec, header.dtype, header.lo, header.hi)
        if valid is None:
            valid = np.ones((h, w), bool)
        else:
            pixels[:, ~valid] = 0
        return DecodedTile(pixels=pixels, valid=valid, level=header.level, header=header)

    def _indexes(self, shape: tuple[int, int, int]) -> np.ndarray:
        m, hl, wl = shape
        return np.repeat(np.arange(m, dtype=np.int32), hl * wl)

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.levels:
            raise InputError(f"level {level} is out of range; this bundle has levels 0..{self.levels - 1}")


def _check_tile(tile: np.ndarray) -> np.ndarray:
    tile = np.asarray(tile)
    if tile.ndim == 2:
        tile = tile[None]
    if tile.ndim != 3 or min(tile.shape) == 0:
        raise InputError(f"tile shape {tile.shape}: expected [bands, height, width] with no empty axis")
    if max(tile.shape[1:]) > bitstream.MAX_EDGE:
        raise InputError(f"tile {tile.shape[1]}x{tile.shape[2]} exceeds {bitstream.MAX_EDGE} pixels a side; "
                         "cut the scene into tiles (cvae.edge.io.tiling)")
    if tile.shape[0] > bitstream.MAX_BANDS:
        raise InputError(f"tile has {tile.shape[0]} bands, the format carries at most {bitstream.MAX_BANDS}")
    if tile.dtype not in bitstream.DTYPES:
        raise InputError(f"tile dtype {tile.dtype} is not supported; use one of "
                         f"{', '.join(str(d) for d in bitstream.DTYPES)}")
    if tile.dtype.kind == "f" and not np.isfinite(tile).all():
        raise InputError("tile holds NaN or infinite values; mark them as nodata with the valid mask")
    return tile


def _to_dtype(rec: np.ndarray, dtype: np.dtype, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    rec = np.clip(rec, lo[:, None, None], hi[:, None, None])  # the tile's own range: never overshoot
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(rec), info.min, info.max).astype(dtype)
    return rec.astype(dtype)
