"""Tile kind ``hybrid`` (tile formats v2, v3, v5, v6, v7, v10; writes v10): learned latents with explicitly sent scale
indexes, plus a residual on residual levels.

Each public level of the bundle's :class:`Ladder` codes the latents of a latent level with the adaptive entropy
model (:mod:`cvae.edge.codec.adaptive`: per tile, component and latent channel, the index of the table that codes
it best) and, on residual levels (after Bai et al. 2021, "lossy image and residual compression"), the residual
``z - g_s(y_hat)`` quantised with the level's step, as CDF 9/7 wavelet subbands (:mod:`cvae.edge.codec.wavelet`)
context-coded in a stream of their own (:mod:`cvae.edge.codec.coefs`). A residual level may code the residual alone
(no latent component present) where the learned base does not pay for its bits. The encoder's choice among these
modes is :mod:`cvae.edge.codec.plan`; the decoder reads it from the header. The integers both sides share (ladder,
modes, contexts, tables) are :class:`~cvae.edge.codec.hybrid_model.HybridModel`.

Streams: ``side`` (the scale indexes, index-table row = context), ``main`` (the symbols, rows of the latent level's
combined table) and ``coefs``. Every integer the decoder derives comes from the stream and frozen tables: a
different float result of ``g_s`` on the satellite and the ground changes the reconstruction by that float
difference only, never the parsing. The read-only formats differ only where their :class:`bitstream.TileFormat`
says: v7 is v10 whose coefficients are coded by version 5's coder instead of the mixing one (``mixed_coefs``); v6 is
v7 whose residual takes its level's ladder step (v7 carries a step code, :mod:`cvae.edge.codec.stepcode`);
v5 is v6 without scene ranges; v2 and v3 (no ``coefs`` stream) carry the residual as groups of ``side`` and
``main`` (:func:`_legacy_residual`, :mod:`cvae.edge.codec.residual`).
"""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, coefs, levels, rangecoder, residual, stepcode, wavelet
from cvae.edge.codec.hybrid_model import HybridModel
from cvae.edge.codec.latents import (STRIDE, AnalyzedTile, Ladder, LatentModel, decode_stream, scene_range,
                                     tile_header, to_pixels)
from cvae.edge.codec.plan import Plan, Planner
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.errors import CorruptTileError

__all__ = ["HybridKind"]

_FORMATS = bitstream.formats_of("hybrid")


class HybridKind:
    """Writes and reads the tiles of an adaptive bundle's ladder (the formats of kind 'hybrid')."""

    name = "hybrid"
    version = next(f.version for f in _FORMATS if f.written and not f.level_rotations)
    #: the format of a residual-only tile whose detail levels have their own rotations (Plan.level_matrices)
    levels_version = next(f.version for f in _FORMATS if f.written and f.level_rotations)
    versions = tuple(f.version for f in _FORMATS)

    def __init__(self, latents: LatentModel, model_id: bytes, adaptive: am.AdaptiveModel, ladder: Ladder,
                 mode_search: str = "auto"):
        self.model = HybridModel(latents, adaptive, ladder)
        self.latents = latents
        self.model_id = model_id
        self.adaptive = adaptive
        self.ladder = ladder
        self.levels = self.model.levels
        self.planner = Planner(self.model, mode_search, bitstream.FORMATS[self.version])
        self._planners = {mode_search: self.planner}

    @classmethod
    def build(cls, latents: LatentModel, model_id: bytes, adaptive: am.AdaptiveModel | None = None,
              ladder: Ladder | None = None, mode_search: str = "auto", **_: object) -> "HybridKind | None":
        """The kind of an adaptive bundle (``None`` for a factorised one: it has no index tables)."""
        if adaptive is None:
            return None
        return cls(latents, model_id, adaptive, Ladder.latent_only(latents.levels) if ladder is None else ladder,
                   mode_search)

    # -- the ladder and its modes (HybridModel) --------------------------------------------------------------
    def latent_level(self, level: int) -> int:
        return self.model.latent_level(level)

    def modes(self, level: int) -> list[tuple[int, bool]]:
        """:meth:`HybridModel.modes`."""
        return self.model.modes(level)

    def searched_modes(self, level: int) -> list[tuple[int, bool]]:
        """:meth:`Planner.searched_modes`."""
        return self.planner.searched_modes(level)

    def residual_context(self, level: int) -> int:
        return self.model.residual_context(level)

    def tables_for(self, lat: int) -> EntropyTables:
        return self.model.tables_for(lat)

    def symbols(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """:meth:`HybridModel.symbols`."""
        return self.model.symbols(a, lat)

    # -- encoder --------------------------------------------------------------------------------------------
    def plan(self, a: AnalyzedTile, level: int, step: float | None = None) -> Plan:
        """The plan of ``a`` at ``level`` (and ``step``), by the tile's own mode search when it names one
        (:attr:`AnalyzedTile.search`), else the kind's."""
        return self.planner_for(a.search).plan(a, level, step)

    def planner_for(self, search: str | None) -> Planner:
        """The planner of mode search ``search`` (None: the kind's own)."""
        if search is None:
            return self.planner
        if search not in self._planners:
            self._planners[search] = Planner(self.model, search, bitstream.FORMATS[self.version])
        return self._planners[search]

    def estimate_bytes(self, a: AnalyzedTile, level: int, step: float | None = None) -> float:
        return self.plan_bytes(a, self.plan(a, level, step))

    def plan_bytes(self, a: AnalyzedTile, p: Plan) -> float:
        """The tile's bytes for plan ``p`` (the latents' from the tables, the residual's stream exactly)."""
        streams = (len(p.side) > 0) + (len(p.main) > 0)  # v5's residual stream: counted exactly in p.bits
        return p.bits / 8 + bitstream.header_size(a.shape[0], a.valid is not None, self.version,
                                                  scene_range(a), bool(p.residual)) + 2 + \
            bitstream.varint_size(len(p.coefs_stream)) + am.STREAM_OVERHEAD_BYTES * streams

    def level_for_step(self, step: float) -> int:
        """:meth:`HybridModel.level_for_step`."""
        return self.model.level_for_step(step)

    def encode(self, a: AnalyzedTile, level: int, step: float | None = None) -> bytes:
        """The tile at ``level``; on a residual level with the residual quantised with ``step`` (any step a code
        names, :mod:`cvae.edge.codec.stepcode`, rounded to the nearest; default the level's preset)."""
        if step is not None:
            step = stepcode.on_grid(step)
        return self.pack(a, level, self.plan(a, level, step))

    def pixels(self, a: AnalyzedTile, level: int, p: Plan) -> np.ndarray:
        """native[C, H, W]: what the decoder makes of plan ``p`` (:meth:`decode_pixels`' float steps on the
        planner's own latents, synthesis and coefficients), without coding or parsing anything: lets a quality
        target measure a candidate (``--psnr``)."""
        c, h, w = a.shape
        z = self.planner.reconstruction(a, p.latent, p.present).copy() if p.present.any() else \
            np.zeros((c, h, w), np.float32)
        if p.coefs is not None:
            if p.recon is not None and np.float32(p.step) == stepcode.step_of(stepcode.code_of(p.step)):
                z += p.recon  # the planner's inverse(subbands) * step, the decoder's float steps
            else:
                step = stepcode.step_of(stepcode.code_of(p.step))
                comps = p.coefs if p.level_matrices is None else levels.to_main(list(p.coefs), p.level_matrices,
                                                                                  a.spectral.matrix)
                for k, comp in enumerate(comps):
                    z[k] += wavelet.inverse([x.astype(np.float32) for x in comp], wavelet.levels_for(h, w)) * step
        header = tile_header(a, self.model_id, level, self.version, p.latent, p.residual)
        return to_pixels(z, header)

    def pack(self, a: AnalyzedTile, level: int, p: Plan) -> bytes:
        """The tile's bytes for plan ``p`` (range-codes both streams)."""
        it = self.adaptive.index_tables
        side = rangecoder.encode(p.side, p.side_rows, it.cdf, it.cdf_length, it.offset, it.precision) if len(p.side) else b""
        t = self.tables_for(p.latent)
        main = rangecoder.encode(p.main, p.main_rows, t.cdf, t.cdf_length, t.offset, t.precision) if len(p.main) else b""
        header = tile_header(a, self.model_id, level if p.level is None else p.level,
                             self.version if p.level_matrices is None else self.levels_version, p.latent, p.residual,
                             stepcode.code_of(p.step) if p.residual else None, p.level_matrices)
        return bitstream.pack_tile(header, p.present, (side, main, p.coefs_stream), a.valid)

    # -- decoder --------------------------------------------------------------------------------------------
    def integers(self, u: bitstream.UnpackedTile) -> tuple[np.ndarray, np.ndarray]:
        """``(indexes int32[G], values int32[N])``: everything the decoder derives from the stream before any network
        runs (identical on every platform by construction)."""
        idx, values, _, _ = self._integers(u)
        return idx, values

    def _integers(self, u: bitstream.UnpackedTile) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`integers`, then ``present int[P]`` and ``channel int32[P*M]``."""
        header, fmt, streams = u.header, u.header.format, u.streams
        c, h, w = header.bands, header.height, header.width
        level, lat = header.level, header.latent
        if (lat, bool(header.residual)) not in self.modes(level):
            raise CorruptTileError(f"tile codes latent level {lat}{' + residual' if header.residual else ''}, which "
                                   f"level {level} of this bundle does not allow; the tile is corrupt")
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.latents.channels
        present = np.flatnonzero(u.present)
        channel = np.tile(np.arange(m, dtype=np.int32), len(present))
        ctx = [lat * m + channel]
        sizes = [np.full(len(channel), hl * wl)]
        if header.residual and not fmt.coefs_stream:  # v2, v3: the residual's groups follow the latents'
            counts = residual.block_counts(c, h, w, header.residual)
            ctx.append(np.full(len(counts), self.residual_context(level), np.int32))
            sizes.append(counts)
        ctx_all, size = np.concatenate(ctx).astype(np.int32), np.concatenate(sizes)
        if fmt.coefs_stream and bool(header.residual) != bool(streams.coefs):
            raise CorruptTileError("residual coefficients: a stream where the header codes no residual, or none "
                                   "where it does; the tile is corrupt")
        it = self.adaptive.index_tables
        idx = decode_stream(streams.side, ctx_all, it, "scale indexes")
        if (idx < 0).any() or (idx >= am.NUM_INDEXES).any() or (idx[len(channel):] == am.FACTORIZED).any():
            raise CorruptTileError("scale index out of range; the tile is corrupt")
        rows = np.concatenate([self.adaptive.rows(idx[:len(channel)], channel),
                               self.adaptive.rows(idx[len(channel):], None)])
        coded = idx != am.ZERO
        sym = decode_stream(streams.main, np.repeat(rows[coded], size[coded]).astype(np.int32), self.tables_for(lat),
                            "symbols")
        values = np.zeros(int(size.sum()), np.int32)
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        pos = np.concatenate([np.arange(s, s + n) for s, n in zip(starts[coded], size[coded])] or
                             [np.zeros(0, np.int64)]).astype(np.int64)
        values[pos] = sym
        if fmt.coefs_stream and header.residual:
            values = np.concatenate([values, coefs.decode_values(streams.coefs, c, h, w, fmt.mixed_coefs)])
        return idx, values, present, channel

    def decode(self, u: bitstream.UnpackedTile) -> np.ndarray:
        """float32[C, H, W]: the components of a tile."""
        header = u.header
        c, h, w = header.bands, header.height, header.width
        lat, level = header.latent, header.level
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.latents.channels
        _, values, present, channel = self._integers(u)
        n_lat = len(channel) * hl * wl
        y_hat = values[:n_lat].reshape(len(present), m, hl, wl).astype(np.float32)
        y_hat *= self.latents.inv_gain[lat][None, :, None, None]
        z = self.latents.synthesize(y_hat, present, (c, h, w))
        if header.residual:
            step = stepcode.step_of(header.step) if header.format.step_code and header.step is not None else \
                np.float32(self.ladder.step[level])
            if header.format.coefs_stream:  # the coefficients in the coefs stream's coding order
                comps = coefs.split(values[n_lat:], c, h, w)
                if header.level_matrices is not None:  # v11: each detail level to the tile's matrix (levels.to_main)
                    comps = levels.to_main(comps, header.level_matrices, header.matrix)
                for k, comp in enumerate(comps):
                    z[k] += wavelet.inverse([x.astype(np.float32) for x in comp], wavelet.levels_for(h, w)) * step
            else:
                z += _legacy_residual(values[n_lat:], header) * step
        return z

    def decode_pixels(self, u: bitstream.UnpackedTile) -> np.ndarray:
        """native[C, H, W]: the tile's pixels (nodata not yet zeroed)."""
        return to_pixels(self.decode(u), u.header)


def _legacy_residual(values: np.ndarray, header: bitstream.TileHeader) -> np.ndarray:
    """float32[C, H, W]: the residual (in steps) of a v2 or v3 tile, whose groups follow the latents' in ``side``
    and ``main``: 32 x 32 pixel blocks (residual kind 1) or 16 x 16 blocks of wavelet subbands (kind 2)."""
    c, h, w = header.bands, header.height, header.width
    shapes = residual.shapes(h, w, header.residual)
    arrays = residual.unblock(values, shapes * c, residual.block_size(header.residual))
    levels = wavelet.levels_for(h, w)
    out = np.zeros((c, h, w), np.float32)
    for k in range(c):
        q = [x.astype(np.float32) for x in arrays[k * len(shapes):(k + 1) * len(shapes)]]
        out[k] = wavelet.inverse(q, levels) if header.residual == bitstream.RESIDUAL_WAVELET else q[0]
    return out
