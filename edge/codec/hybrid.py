"""Tile kind ``hybrid`` (tile formats v2 and v3): learned latents with explicitly sent scale indexes, plus a
residual on residual levels.

Each public level of the bundle's :class:`Ladder` codes the latents of a latent level with the adaptive entropy
model (:mod:`cvae.edge.codec.adaptive`: per tile, component and latent channel, the index of the table that codes
it best) and, on residual levels (after Bai et al. 2021, "lossy image and residual compression"), the residual
``z - g_s(y_hat)`` quantised with the level's step, as CDF 9/7 wavelet subbands (:mod:`cvae.edge.codec.wavelet`,
groups laid out by :mod:`cvae.edge.codec.residual`). A residual level may code the residual alone (no latent
component present) where the learned base does not pay for its bits. The encoder's choice among these modes is
:mod:`cvae.edge.codec.plan`; the decoder reads it from the header.

Two streams per tile: ``side`` (the scale indexes, index-table row = context) and ``main`` (the symbols, rows of
the latent level's combined table). Every integer the decoder derives comes from the stream and frozen tables: a
different float result of ``g_s`` on the satellite and the ground changes the reconstruction by that float
difference only, never the parsing. Format v3 (written) is v2's layout with the wavelet residual, transition-coded
masks and per-band fill; v2 tiles (a pixel residual in 32 x 32 blocks) are still read (docs/bitstream.md).
"""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, coefs, rangecoder, residual, wavelet
from cvae.edge.codec.latents import STRIDE, AnalyzedTile, Ladder, LatentModel, decode_stream, scene_range, tile_header
from cvae.edge.codec.plan import Plan, Planner
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.errors import CorruptTileError

__all__ = ["HybridKind", "LATENT_DEADZONE"]

#: encoder-only deadzone of the latent rounding: |y| is rounded down when within this of a half-integer (chosen
#: on training tiles: about -0.2% to -3% BD-rate). The decoder does not depend on it.
LATENT_DEADZONE = 0.05


class HybridKind:
    """Writes v6 and reads v2/v3/v5/v6 tiles of an adaptive bundle's ladder."""

    name = "hybrid"
    version = bitstream.VERSION_SCENE
    versions = bitstream.ADAPTIVE_VERSIONS
    spectral = True

    def __init__(self, latents: LatentModel, model_id: bytes, adaptive: am.AdaptiveModel, ladder: Ladder,
                 mode_search: str = "auto"):
        if adaptive.index_tables.channels != latents.levels * latents.channels + ladder.residual_levels:
            raise ValueError("adaptive index tables do not match the levels and channels of the bundle")
        self.latents = latents
        self.model_id = model_id
        self.adaptive = adaptive
        self.ladder = ladder
        self.levels = len(ladder.latent)
        self.planner = Planner(self, mode_search)
        self._combined: dict[int, EntropyTables] = {}
        self._fcosts: dict[int, np.ndarray] = {}

    @classmethod
    def build(cls, latents: LatentModel, model_id: bytes, adaptive: am.AdaptiveModel | None = None,
              ladder: Ladder | None = None, mode_search: str = "auto", **_) -> "HybridKind | None":
        """The kind of an adaptive bundle (``None`` for a factorised one: it has no index tables)."""
        if adaptive is None:
            return None
        return cls(latents, model_id, adaptive, Ladder.latent_only(latents.levels) if ladder is None else ladder,
                   mode_search)

    # -- the ladder and its modes ---------------------------------------------------------------------------
    def latent_level(self, level: int) -> int:
        return int(self.ladder.latent[level])

    def has_residual(self, level: int) -> bool:
        return bool(self.ladder.step[level] > 0)

    def modes(self, level: int) -> list[tuple[int, bool]]:
        """The ``(latent level, residual)`` choices a tile of ``level`` may make: a latent level codes its
        ladder latent level; a residual level its ladder latent level or any higher one, with or without the
        residual (the decoder reads the choice from the tile header). A residual level may also code the
        residual with no latent component present (the header then names the ladder's latent level)."""
        lat = self.latent_level(level)
        if not self.has_residual(level):
            return [(lat, False)]
        return [(b, res) for b in range(lat, self.latents.levels) for res in (True, False)]

    def residual_context(self, level: int) -> int:
        """The index-table row of a residual level's indexes (after the ``L * M`` latent rows)."""
        return self.latents.levels * self.latents.channels + int(self.ladder.residual_rank[level])

    def tables_for(self, lat: int) -> EntropyTables:
        """The combined table (factorised rows of latent level ``lat``, then the Laplacian bank) of ``main``."""
        if lat not in self._combined:
            self._combined[lat] = self.adaptive.combined(self.latents.tables[lat])
        return self._combined[lat]

    def factorized_costs(self, lat: int) -> np.ndarray:
        if lat not in self._fcosts:
            self._fcosts[lat] = self.adaptive.factorized_costs(self.latents.tables[lat])
        return self._fcosts[lat]

    def symbols(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """int32[C, M, h, w]: the latents of latent level ``lat``, rounded with :data:`LATENT_DEADZONE`, of the
        components coded there (:meth:`LatentModel.coded`; the others' are not analysed for it and not used)."""
        y = a.latents(self.latents.coded(a, lat)) * self.latents.gain[lat][None, :, None, None]
        return (np.sign(y) * np.floor(np.abs(y) + (0.5 - LATENT_DEADZONE))).astype(np.int32)

    # -- encoder --------------------------------------------------------------------------------------------
    def plan(self, a: AnalyzedTile, level: int) -> Plan:
        return self.planner.plan(a, level)

    def estimate_bytes(self, a: AnalyzedTile, level: int) -> float:
        p = self.plan(a, level)
        streams = (len(p.side) > 0) + (len(p.main) > 0)  # v5's residual stream: counted exactly in p.bits
        return p.bits / 8 + bitstream.header_size(a.shape[0], a.valid is not None, self.version,
                                                  scene_range(a)) + 2 + \
            (bitstream.varint_size(len(p.coefs_stream)) if self.version in bitstream.CONTEXT_VERSIONS else 0) + \
            am.STREAM_OVERHEAD_BYTES * streams

    def encode(self, a: AnalyzedTile, level: int) -> bytes:
        return self.pack(a, level, self.plan(a, level))

    def pack(self, a: AnalyzedTile, level: int, p: Plan) -> bytes:
        """The tile's bytes for plan ``p`` (range-codes both streams)."""
        it = self.adaptive.index_tables
        side = rangecoder.encode(p.side, p.side_rows, it.cdf, it.cdf_length, it.offset, it.precision) if len(p.side) else b""
        t = self.tables_for(p.latent)
        main = rangecoder.encode(p.main, p.main_rows, t.cdf, t.cdf_length, t.offset, t.precision) if len(p.main) else b""
        header = tile_header(a, self.model_id, level, self.version, p.latent, p.residual)
        if self.version not in bitstream.CONTEXT_VERSIONS:
            return bitstream.pack_tile(header, p.present, (side, main), a.valid)
        return bitstream.pack_tile(header, p.present, (side, main, p.coefs_stream), a.valid)

    # -- decoder --------------------------------------------------------------------------------------------
    def integers(self, header: bitstream.TileHeader, present_mask: np.ndarray, payload: tuple[bytes, bytes]):
        """``(indexes int32[G], values int32[N], present int[P], channel int32[P*M])``: everything the decoder
        derives from the stream before any network runs (identical on every platform by construction)."""
        c, h, w = header.bands, header.height, header.width
        level, lat = header.level, header.latent
        if (lat, bool(header.residual)) not in self.modes(level):
            raise CorruptTileError(f"tile codes latent level {lat}{' + residual' if header.residual else ''}, which "
                                   f"level {level} of this bundle does not allow; the tile is corrupt")
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.latents.channels
        present = np.flatnonzero(present_mask)
        channel = np.tile(np.arange(m, dtype=np.int32), len(present))
        ctx = [lat * m + channel]
        sizes = [np.full(len(channel), hl * wl)]
        context = header.version in bitstream.CONTEXT_VERSIONS  # v5, v6: the residual is its own stream
        if header.residual and not context:
            counts = residual.block_counts(c, h, w, header.residual)
            ctx.append(np.full(len(counts), self.residual_context(level), np.int32))
            sizes.append(counts)
        ctx_all, size = np.concatenate(ctx).astype(np.int32), np.concatenate(sizes)
        side, main = payload[:2]
        if context and bool(header.residual) != bool(payload[2]):
            raise CorruptTileError("residual coefficients: a stream where the header codes no residual, or none "
                                   "where it does; the tile is corrupt")
        it = self.adaptive.index_tables
        idx = decode_stream(side, ctx_all, it, "scale indexes")
        if (idx < 0).any() or (idx >= am.NUM_INDEXES).any() or (idx[len(channel):] == am.FACTORIZED).any():
            raise CorruptTileError("scale index out of range; the tile is corrupt")
        rows = np.concatenate([self.adaptive.rows(idx[:len(channel)], channel),
                               self.adaptive.rows(idx[len(channel):], None)])
        coded = idx != am.ZERO
        sym = decode_stream(main, np.repeat(rows[coded], size[coded]).astype(np.int32), self.tables_for(lat), "symbols")
        values = np.zeros(int(size.sum()), np.int32)
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        pos = np.concatenate([np.arange(s, s + n) for s, n in zip(starts[coded], size[coded])] or
                             [np.zeros(0, np.int64)]).astype(np.int64)
        values[pos] = sym
        if context and header.residual:
            values = np.concatenate([values, coefs.decode_values(payload[2], c, h, w)])
        return idx, values, present, channel

    def decode(self, header: bitstream.TileHeader, present_mask: np.ndarray,
               payload: tuple[bytes, bytes]) -> np.ndarray:
        """float32[C, H, W]: the components of a v2/v3 tile."""
        c, h, w = header.bands, header.height, header.width
        lat, level = header.latent, header.level
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.latents.channels
        _, values, present, channel = self.integers(header, present_mask, payload)
        n_lat = len(channel) * hl * wl
        y_hat = values[:n_lat].reshape(len(present), m, hl, wl).astype(np.float32)
        y_hat *= self.latents.inv_gain[lat][None, :, None, None]
        z = self.latents.synthesize(y_hat, present, (c, h, w))
        if header.residual:
            step = np.float32(self.ladder.step[level])
            shapes = residual.shapes(h, w, header.residual)
            if header.version in bitstream.CONTEXT_VERSIONS:  # the coefficients in v5's coding order
                arrays = [band for comp in coefs.split(values[n_lat:], c, h, w) for band in comp]
            else:
                arrays = residual.unblock(values[n_lat:], shapes * c, residual.block_size(header.residual))
            levels = wavelet.levels_for(h, w)
            for k in range(c):
                q = [x.astype(np.float32) for x in arrays[k * len(shapes):(k + 1) * len(shapes)]]
                z[k] += (wavelet.inverse(q, levels) if header.residual == bitstream.RESIDUAL_WAVELET else q[0]) * step
        return z
