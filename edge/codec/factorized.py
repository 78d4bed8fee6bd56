"""Tile kind ``factorized`` (tile format v1): the latents alone, one frozen table row per latent channel and level.

Per tile: every component whose variance passes the level's threshold is coded; all coded components share one
range-coder stream (one flush per tile), symbol ``y[c, m, i, j]`` with row ``m`` of ``tables[level]``. No side
information: the public levels are the latent levels in order. Written by factorised bundles; adaptive bundles
made from one (``cvae-export --target adaptive``) read their parent's v1 tiles through this module too.
"""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import bitstream, rangecoder
from cvae.edge.codec.latents import STRIDE, AnalyzedTile, LatentModel, decode_stream, tile_header, to_pixels
from cvae.edge.codec.plan import Plan
from cvae.edge.errors import CorruptTileError, InputError

__all__ = ["FactorizedKind"]

#: bytes of one stream beyond its symbols' estimated bits (coder header, flush, varint length)
_STREAM_BYTES = 19


class FactorizedKind:
    """Reads (and a factorised bundle writes) v1 tiles of a bundle's latent levels (the formats of kind
    'factorized'). A :class:`~cvae.edge.codec.kinds.LearnedKind` with one mode per level and no plans."""

    name = "factorized"
    version = next(f.version for f in bitstream.formats_of(name) if f.written)
    versions = tuple(f.version for f in bitstream.formats_of(name))

    def __init__(self, latents: LatentModel, model_id: bytes):
        self.latents = latents
        self.model_id = model_id
        self.levels = latents.levels

    @classmethod
    def build(cls, latents: LatentModel, model_id: bytes, **_: object) -> "FactorizedKind":
        """Every bundle has its latent levels, so every bundle reads (and a factorised one writes) this kind."""
        return cls(latents, model_id)

    def latent_level(self, level: int) -> int:
        return level

    def modes(self, level: int) -> list[tuple[int, bool]]:
        """One mode per level: its own latent level, no residual."""
        return [(level, False)]

    def searched_modes(self, level: int) -> list[tuple[int, bool]]:
        return self.modes(level)

    def plan(self, a: AnalyzedTile, level: int) -> Plan:
        raise InputError("this bundle is factorised: it has no residual levels, modes or plans")

    def integers(self, u: bitstream.UnpackedTile) -> tuple[np.ndarray, np.ndarray]:
        raise CorruptTileError("parse_integers reads the tiles of adaptive bundles (sent scale indexes); this tile "
                               f"is format v{u.header.version} of a factorised bundle")

    def symbols(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """int32[C, M, h, w]: the latents of latent level ``lat``, rounded to the nearest integer, of the components
        coded there (:meth:`LatentModel.coded`; the others' are not analysed for it and not used)."""
        return np.round(a.latents(self.latents.coded(a, lat)) * self.latents.gain[lat][None, :, None, None]
                        ).astype(np.int32)

    def estimate_bytes(self, a: AnalyzedTile, level: int) -> float:
        sym = self.symbols(a, level)
        keep = self.latents.coded(a, level)
        idx = _rows(sym.shape[1:])
        bits = sum(self.latents.tables[level].estimated_bits(sym[k].reshape(-1), idx) for k in np.flatnonzero(keep))
        return bits / 8 + bitstream.header_size(a.shape[0], a.valid is not None) + (_STREAM_BYTES if keep.any() else 0)

    def encode(self, a: AnalyzedTile, level: int) -> bytes:
        sym = self.symbols(a, level)
        keep = self.latents.coded(a, level)
        idx = _rows(sym.shape[1:])
        t = self.latents.tables[level]
        coded = np.flatnonzero(keep)
        payload = None
        if len(coded):  # one stream for every coded component: one coder flush per tile
            payload = rangecoder.encode(sym[coded].reshape(-1), np.tile(idx, len(coded)), t.cdf, t.cdf_length,
                                        t.offset, t.precision)
        return bitstream.pack_tile(tile_header(a, self.model_id, level, self.version), keep, payload, a.valid)

    def decode_pixels(self, u: bitstream.UnpackedTile) -> np.ndarray:
        """native[C, H, W]: the pixels of a parsed v1 tile (nodata not yet zeroed)."""
        return to_pixels(self.decode(u), u.header)

    def decode(self, u: bitstream.UnpackedTile) -> np.ndarray:
        """float32[C, H, W]: the components of a v1 tile (absent components 0)."""
        header, present_mask, payload = u.header, u.present, u.streams.payload
        c, h, w = header.bands, header.height, header.width
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.latents.channels
        present = np.flatnonzero(present_mask)
        if not len(present):
            return np.zeros((c, h, w), np.float32)
        t = self.latents.tables[header.level]
        s = decode_stream(payload, np.tile(_rows((m, hl, wl)), len(present)), t, "payload")
        y_hat = s.reshape(len(present), m, hl, wl).astype(np.float32)
        y_hat *= self.latents.inv_gain[header.level][None, :, None, None]
        return self.latents.synthesize(y_hat, present, (c, h, w))


def _rows(shape: tuple[int, int, int]) -> np.ndarray:
    """int32[M * h * w]: the table row (the channel) of each symbol of one component, channel-major."""
    m, hl, wl = shape
    return np.repeat(np.arange(m, dtype=np.int32), hl * wl)
