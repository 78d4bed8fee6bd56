"""Coding one tile (all its bands) to bytes and back: the torch-free codec the edge and ground share.

Pipeline of :meth:`TileCodec.compress` for ``tile: native[C, H, W]``::

    bands --SpectralTransform--> components z[C, H, W] --pad to 16--> analysis --> y[C, M, h, w]
      y * gain[level] --round--> symbols --range coder (tables[level])--> one payload for the tile

Components whose variance is below the level's expected distortion (``skip_variance[level]``) are not
coded at all: reverse water-filling, they cost nothing and decode as zero. The byte layout is
``cvae.edge.codec.bitstream`` (docs/bitstream.md).

Two entropy models, chosen by the bundle (its manifest's ``entropy_model``); a bundle's *ladder* maps each
public rate level to a latent level and, optionally, a residual step:

- ``factorized`` (tile bitstream v1): one frozen table row per latent channel and level.
- ``adaptive`` (tile bitstream v2, :mod:`cvae.edge.codec.adaptive`): per tile, component and latent channel
  the encoder sends the index of the table that codes it best. Adaptive bundles may have *residual levels*
  (after Bai et al. 2021, "lossy image and residual compression"): the latents of a latent level, then the
  residual ``z - g_s(y_hat)`` quantised with a uniform step and coded with indexes per block. They reach
  qualities the transforms alone cannot (the transform ceiling, benchmarks/transform_ceiling.py); the encoder
  runs the synthesis transform for them. Since tile format v3 the residual is coded as CDF 9/7 wavelet
  subbands (:mod:`cvae.edge.codec.wavelet`; 3% to 21% fewer bits than pixels at the same step), and a tile may code
  the residual alone (no latent component present: where the learned base does not pay for its bits). A different float
  result of ``g_s`` on the satellite and the ground changes the reconstruction by that float difference
  only: the residual's integers and the stream's parsing never depend on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, rangecoder, wavelet
from cvae.edge.codec.spectral import SpectralTransform
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.errors import CorruptTileError, InputError

__all__ = ["Transforms", "TileCodec", "AnalyzedTile", "DecodedTile", "Ladder", "STRIDE"]

STRIDE = 16
#: encoder-only deadzone of the adaptive codec's latent rounding: |y| is rounded down when within this of a
#: half-integer (chosen on training tiles: about -0.2% to -3% BD-rate). The decoder does not depend on it.
LATENT_DEADZONE = 0.05
#: rounding offsets tried per component for a residual level's quantiser (encoder only, rate-distortion
#: optimised with lambda = ln2 * step^2 / 6, the slope of a uniform quantiser at high rate)
RESIDUAL_DEADZONES = (0.0, 0.1, 0.2, 0.3)


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
    z: np.ndarray | None = None   # float32[C, H, W] components (nodata at 0), kept for residual levels
    band_fill: np.ndarray | None = None  # bool[C, H, W]: samples of valid pixels holding the fill value
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # plans per level, g_s output


@dataclass(frozen=True)
class Ladder:
    """The public rate levels: level ``i`` codes the latents of latent level ``latent[i]`` and, where
    ``step[i] > 0``, the residual quantised with that step (normalised units of the components)."""

    latent: np.ndarray            # int32[N]
    step: np.ndarray              # float32[N], 0 = latents only

    @classmethod
    def latent_only(cls, levels: int) -> "Ladder":
        return cls(latent=np.arange(levels, dtype=np.int32), step=np.zeros(levels, np.float32))

    @property
    def residual_rank(self) -> np.ndarray:
        """int[N]: for residual levels, their rank among the residual levels (their index-table context)."""
        return np.cumsum(self.step > 0) - 1

    @property
    def residual_levels(self) -> int:
        return int((self.step > 0).sum())


@dataclass(frozen=True)
class _Plan:
    """What an adaptive tile at one level codes: the streams' symbols and rows, and its estimated bits."""

    present: np.ndarray           # bool[C]
    side: np.ndarray              # int32[G] indexes
    side_rows: np.ndarray         # int32[G] index-table rows
    main: np.ndarray              # int32[N] symbols
    main_rows: np.ndarray         # int32[N] rows of the level's combined table
    bits: float
    latent: int = 0               # the latent level coded
    residual: int = bitstream.RESIDUAL_NONE  # the residual's kind (bitstream.RESIDUAL_*)


@dataclass(frozen=True)
class DecodedTile:
    pixels: np.ndarray            # native dtype [C, H, W]; invalid pixels hold 0
    valid: np.ndarray             # bool[H, W]
    level: int
    header: bitstream.TileHeader


class TileCodec:
    """Compress and decompress tiles with frozen tables; ``transforms`` runs the network."""

    def __init__(self, tables: list[EntropyTables], gain: np.ndarray, inv_gain: np.ndarray,
                 transforms: Transforms, model_id: bytes, skip_variance: np.ndarray | None = None,
                 adaptive: am.AdaptiveModel | None = None, ladder: Ladder | None = None,
                 compatible_ids: tuple[bytes, ...] = (), mode_search: str = "full"):
        """``adaptive`` switches to tile bitstream v2 (a ladder with residual levels needs it); ``ladder``
        defaults to the latent levels in order; ``compatible_ids``: model ids of
        factorised bundles with the same networks and tables, whose v1 tiles this codec also decodes."""
        self.tables = tables
        self.gain = np.asarray(gain, np.float32)
        self.inv_gain = np.asarray(inv_gain, np.float32)
        self.transforms = transforms
        self.model_id = model_id
        self.latent_levels = len(tables)
        self.adaptive = adaptive
        ladder = Ladder.latent_only(self.latent_levels) if ladder is None else ladder
        if ladder.residual_levels and adaptive is None:
            raise ValueError("residual levels need the adaptive entropy model")
        if len(ladder.latent) == 0 or ladder.latent.min() < 0 or ladder.latent.max() >= self.latent_levels:
            raise ValueError(f"ladder latent levels {ladder.latent.tolist()} are not all in 0..{self.latent_levels - 1}")
        if adaptive is None and not np.array_equal(ladder.latent, np.arange(self.latent_levels)):
            raise ValueError("a factorised codec's levels are its latent levels in order")
        self.ladder = ladder
        self.levels = len(ladder.latent)
        self.accepted_ids = {m[:bitstream.MODEL_ID_BYTES] for m in (model_id, *compatible_ids)}
        self.skip_variance = (np.zeros(self.latent_levels, np.float32) if skip_variance is None
                              else np.asarray(skip_variance, np.float32))
        if self.gain.shape != (self.latent_levels, tables[0].channels) or self.inv_gain.shape != self.gain.shape:
            raise ValueError(f"gains {self.gain.shape}/{self.inv_gain.shape} do not match "
                             f"{self.latent_levels} levels of {tables[0].channels} channels")
        if adaptive is not None and adaptive.index_tables.channels != \
                self.latent_levels * self.gain.shape[1] + ladder.residual_levels:
            raise ValueError("adaptive index tables do not match the levels and channels of the bundle")
        if mode_search not in ("full", "ladder"):
            raise ValueError(f"mode_search {mode_search!r}: use 'full' (every allowed latent level, one synthesis "
                             "each) or 'ladder' (the ladder's own mode, one synthesis)")
        self.mode_search = mode_search
        self._combined: dict[int, EntropyTables] = {}
        self._fcosts: dict[int, np.ndarray] = {}

    @property
    def version(self) -> int:
        """The tile bitstream version this codec writes."""
        return bitstream.VERSION if self.adaptive is None else bitstream.VERSION_WAVELET

    def latent_level(self, level: int) -> int:
        """The latent level whose gains and tables ``level`` codes its latents with."""
        return int(self.ladder.latent[level])

    def has_residual(self, level: int) -> bool:
        return bool(self.ladder.step[level] > 0)

    # -- encoder -------------------------------------------------------------------------------------
    def analyze(self, tile: np.ndarray, valid: np.ndarray | None = None,
                band_range: tuple[np.ndarray, np.ndarray] | None = None, rotate: bool = True,
                band_fill: np.ndarray | None = None) -> AnalyzedTile:
        """Run the network once on ``tile: native[C, H, W]``; ``valid: bool[H, W]`` marks data pixels.
        ``rotate=False`` codes the normalised bands themselves (no KLT), for comparison. ``band_fill:
        bool[C, H, W]``: samples of valid pixels that hold the scene's nodata value in their band only; format
        v3 sends them so the ground restores the exact value (adaptive bundles; ignored by format v1)."""
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
        if band_fill is not None:
            band_fill = np.asarray(band_fill, bool)
            if band_fill.shape != tile.shape:
                raise InputError(f"band_fill shape {band_fill.shape} != tile shape {tile.shape}")
            band_fill = band_fill if band_fill.any() and self.adaptive is not None else None
        return AnalyzedTile(shape=(c, h, w), dtype=tile.dtype, spectral=st, variance=variance.astype(np.float32),
                            y=y, valid=valid, z=z if self.ladder.residual_levels else None, band_fill=band_fill)

    def symbols(self, a: AnalyzedTile, level: int) -> np.ndarray:
        """int32[C, M, h, w]: the quantised latents of every component at ``level``'s ladder latent level."""
        self._check_level(level)
        return self._symbols_at(a, self.latent_level(level))

    def _symbols_at(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        y = a.y * self.gain[lat][None, :, None, None]
        if self.adaptive is None:
            return np.round(y).astype(np.int32)
        return (np.sign(y) * np.floor(np.abs(y) + (0.5 - LATENT_DEADZONE))).astype(np.int32)

    def coded_components(self, a: AnalyzedTile, level: int) -> np.ndarray:
        """bool[C]: components whose latents are worth coding at ``level``."""
        return self._coded_at(a, self.latent_level(level))

    def _coded_at(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        return a.variance > self.skip_variance[lat]

    def estimate_bytes(self, a: AnalyzedTile, level: int) -> float:
        """Expected size at ``level`` from the tables, without coding (for rate control)."""
        if self.adaptive is not None:
            p = self._plan(a, level)
            streams = (len(p.side) > 0) + (len(p.main) > 0)
            return p.bits / 8 + bitstream.header_size(a.shape[0], a.valid is not None, self.version) + 2 + \
                am.STREAM_OVERHEAD_BYTES * streams
        sym = self.symbols(a, level)
        keep = self.coded_components(a, level)
        idx = self._indexes(sym.shape[1:])
        bits = sum(self.tables[level].estimated_bits(sym[k].reshape(-1), idx) for k in np.flatnonzero(keep))
        return bits / 8 + bitstream.header_size(a.shape[0], a.valid is not None) + (19 if keep.any() else 0)

    def encode(self, a: AnalyzedTile, level: int) -> bytes:
        if self.adaptive is not None:
            return self._encode_adaptive(a, level)
        sym = self.symbols(a, level)
        keep = self.coded_components(a, level)
        idx = self._indexes(sym.shape[1:])
        t = self.tables[level]
        coded = np.flatnonzero(keep)
        payload = None
        if len(coded):  # one stream for every coded component: one coder flush per tile
            payload = rangecoder.encode(sym[coded].reshape(-1), np.tile(idx, len(coded)), t.cdf, t.cdf_length,
                                        t.offset, t.precision)
        return bitstream.pack_tile(self._header(a, level), keep, payload, a.valid)

    def compress(self, tile: np.ndarray, level: int, valid: np.ndarray | None = None,
                 band_range: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
        """``tile: native[C, H, W]`` (uint8/uint16/int16/int32/float) -> bytes at rate ``level``."""
        return self.encode(self.analyze(tile, valid, band_range), level)

    def _header(self, a: AnalyzedTile, level: int, plan: _Plan | None = None) -> bitstream.TileHeader:
        return bitstream.TileHeader(model_id=self.model_id[:bitstream.MODEL_ID_BYTES], level=level, dtype=a.dtype,
                                    bands=a.shape[0], height=a.shape[1], width=a.shape[2], lo=a.spectral.lo,
                                    hi=a.spectral.hi, mean=a.spectral.mean, matrix=a.spectral.matrix,
                                    version=self.version, latent=plan.latent if plan else 0,
                                    residual=plan.residual if plan else bitstream.RESIDUAL_NONE,
                                    band_fill=a.band_fill if self.version == bitstream.VERSION_WAVELET else None)

    # -- adaptive entropy model ------------------------------------------------------------------------------
    def _tables_for(self, lat: int) -> EntropyTables:
        if lat not in self._combined:
            self._combined[lat] = self.adaptive.combined(self.tables[lat])
        return self._combined[lat]

    def _factorized_costs(self, lat: int) -> np.ndarray:
        if lat not in self._fcosts:
            self._fcosts[lat] = self.adaptive.factorized_costs(self.tables[lat])
        return self._fcosts[lat]

    def _latent_reconstruction(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """float32[C, H, W]: what the decoder's synthesis makes of latent level ``lat`` (0 for skipped components)."""
        key = ("z_hat", lat)
        if key not in a.cache:
            keep = np.flatnonzero(self._coded_at(a, lat))
            y_hat = self._symbols_at(a, lat)[keep].astype(np.float32) * self.inv_gain[lat][None, :, None, None]
            a.cache[key] = self._synthesize(y_hat, keep, a.shape)
        return a.cache[key]

    def _synthesize(self, y_hat: np.ndarray, present: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        c, h, w = shape
        z = np.zeros((c, h, w), np.float32)
        for i in range(0, len(present), 4):  # bounded memory for many-band tiles
            x = self.transforms.synthesis(np.ascontiguousarray(y_hat[i:i + 4]))
            z[present[i:i + 4]] = x[:, 0, :h, :w]
        return z

    def _latent_part(self, a: AnalyzedTile, lat: int) -> dict:
        """The latent groups of latent level ``lat``, their chosen indexes and bits (cached per tile)."""
        key = ("latent", lat)
        if key not in a.cache:
            sym = self._symbols_at(a, lat)
            present = self._coded_at(a, lat)
            c, m, hl, wl = sym.shape
            p = int(present.sum())
            groups = sym[present].reshape(p * m, hl * wl)
            channel = np.tile(np.arange(m, dtype=np.int32), p)
            idx, bits = self.adaptive.choose(groups, lat * m + channel, factorized_costs=self._factorized_costs(lat),
                                             factorized_rows=channel)
            a.cache[key] = {"present": present, "groups": groups, "idx": idx, "ctx": lat * m + channel,
                            "rows": self.adaptive.rows(idx, channel), "sizes": np.full(p * m, hl * wl),
                            "bits": float(bits.sum())}
        return a.cache[key]

    def _residual_part(self, a: AnalyzedTile, level: int, lat: int | None,
                       kind: int = bitstream.RESIDUAL_WAVELET) -> dict:
        """The residual of latent level ``lat``'s reconstruction (``lat=None``: of nothing, the components
        themselves) quantised with ``level``'s step, as ``kind`` (pixel blocks or wavelet subbands), per
        component with the rounding offset of least ``D + lambda * R``; its groups, indexes, bits and squared
        error over valid pixels."""
        step = float(self.ladder.step[level])
        r = a.z - self._latent_reconstruction(a, lat) if lat is not None else a.z.copy()
        if a.valid is not None:
            r[:, ~a.valid] = 0.0  # nodata costs nothing
        lam = _lambda(step)
        ctx_row = self._residual_context(level)
        c, h, w = r.shape
        levels = wavelet.levels_for(h, w)
        out, err = [], 0.0
        for k in range(c):
            if kind == bitstream.RESIDUAL_WAVELET:
                coefs = [b / np.float32(step) for b in wavelet.forward(r[k], levels)]
            else:
                coefs = [r[k] / np.float32(step)]
            best = None
            for theta in RESIDUAL_DEADZONES:
                q = [(np.sign(x) * np.floor(np.abs(x) + (0.5 - theta))).astype(np.int32) for x in coefs]
                blocks, counts = _blocks_of(q, _block_size(kind))
                idx, bits = self.adaptive.choose(blocks, np.full(len(blocks), ctx_row, np.int32), counts=counts)
                if kind == bitstream.RESIDUAL_WAVELET:
                    e = r[k] - wavelet.inverse([x.astype(np.float32) for x in q], levels) * np.float32(step)
                else:
                    e = (coefs[0] - q[0]) * np.float32(step)
                if a.valid is not None:
                    e = e[a.valid]
                d = float(np.sum(e.astype(np.float64) ** 2))
                if best is None or d + lam * float(bits.sum()) < best[0]:
                    best = (d + lam * float(bits.sum()), d, blocks, counts, idx, bits)
            err += best[1]
            out.append(best[2:])
        blocks, counts, idx, bits = (np.concatenate([o[i] for o in out]) for i in range(4))
        return {"groups": blocks, "sizes": counts, "idx": idx, "ctx": np.full(len(blocks), ctx_row, np.int32),
                "rows": self.adaptive.rows(idx, None), "bits": float(bits.sum()), "err": err, "kind": kind}

    def _no_latents(self, a: AnalyzedTile) -> dict:
        """The latent part of a residual-only tile: no component present, nothing coded."""
        e = np.zeros(0, np.int32)
        return {"present": np.zeros(a.shape[0], bool), "groups": np.zeros((0, 1), np.int32), "idx": e, "ctx": e,
                "rows": e, "sizes": np.zeros(0, np.int64), "bits": 0.0}

    def _latent_error(self, a: AnalyzedTile, lat: int) -> float:
        key = ("err", lat)
        if key not in a.cache:
            d = a.z - self._latent_reconstruction(a, lat)
            if a.valid is not None:
                d = d[:, a.valid]
            a.cache[key] = float(np.sum(d.astype(np.float64) ** 2))
        return a.cache[key]

    def _residual_context(self, level: int) -> int:
        return self.latent_levels * self.gain.shape[1] + int(self.ladder.residual_rank[level])

    def modes(self, level: int) -> list[tuple[int, bool]]:
        """The ``(latent level, residual)`` choices a tile of ``level`` may make: a latent level codes its
        ladder latent level; a residual level its ladder latent level or any higher one, with or without the
        residual (the decoder reads the choice from the tile header). A residual level may also code the
        residual with no latent component present (the header then names the ladder's latent level)."""
        lat = self.latent_level(level)
        if not self.has_residual(level):
            return [(lat, False)]
        return [(b, res) for b in range(lat, self.latent_levels) for res in (True, False)]

    def searched_modes(self, level: int) -> list[tuple[int, bool]]:
        """The modes the encoder tries: all of :meth:`modes` (``mode_search='full'``), or only the ladder's own
        (``'ladder'``: one synthesis per tile instead of one per allowed latent level, for a slow onboard CPU).
        Both also weigh the residual-only tile on residual levels (it needs no synthesis)."""
        if self.mode_search == "ladder":
            return [(self.latent_level(level), self.has_residual(level))]
        return self.modes(level)

    def _plan(self, a: AnalyzedTile, level: int) -> _Plan:
        self._check_level(level)
        if a.cache.get("plan", (None,))[0] == level:  # only the latest plan is kept: memory stays per tile
            return a.cache["plan"][1]
        candidates = []
        for lat, res in self.searched_modes(level):
            parts = [self._latent_part(a, lat)]
            if res:
                parts.append(self._residual_part(a, level, lat))
            candidates.append((lat, res, parts))
        if self.has_residual(level):  # the residual alone: no synthesis to run, so 'ladder' weighs it too
            candidates.append((self.latent_level(level), True, [self._no_latents(a), self._residual_part(a, level, None)]))
        best = None
        for lat, res, parts in candidates:
            bits = sum(p["bits"] for p in parts)
            if len(candidates) > 1:  # rate-distortion choice at the level's slope
                cost = (parts[1]["err"] if res else self._latent_error(a, lat)) + _lambda(self.ladder.step[level]) * bits
            else:
                cost = 0.0
            if best is None or cost < best[0]:
                best = (cost, lat, res, parts, bits)
        _, lat, res, parts, total = best
        side = np.concatenate([p["idx"] for p in parts]).astype(np.int32)
        size = np.concatenate([p["sizes"] for p in parts])
        coded = side != am.ZERO
        main = np.concatenate([p["groups"][i, :n] for p in parts
                               for i, n in zip(np.flatnonzero(p["idx"] != am.ZERO), p["sizes"][p["idx"] != am.ZERO])]
                              or [np.zeros(0, np.int32)]).astype(np.int32)
        main_rows = np.repeat(np.concatenate([p["rows"] for p in parts])[coded], size[coded]).astype(np.int32)
        plan = _Plan(present=parts[0]["present"], side=side,
                     side_rows=np.concatenate([p["ctx"] for p in parts]).astype(np.int32), main=main,
                     main_rows=main_rows, bits=total, latent=lat,
                     residual=parts[1]["kind"] if res else bitstream.RESIDUAL_NONE)
        a.cache["plan"] = (level, plan)
        return plan

    def _encode_adaptive(self, a: AnalyzedTile, level: int) -> bytes:
        p = self._plan(a, level)
        it = self.adaptive.index_tables
        side = rangecoder.encode(p.side, p.side_rows, it.cdf, it.cdf_length, it.offset, it.precision) if len(p.side) else b""
        t = self._tables_for(p.latent)
        main = rangecoder.encode(p.main, p.main_rows, t.cdf, t.cdf_length, t.offset, t.precision) if len(p.main) else b""
        return bitstream.pack_tile(self._header(a, level, p), p.present, (side, main), a.valid)

    def parse_integers(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """A v2 tile's integers, ``(indexes int32[G], values int32[N])``: everything the decoder derives from
        the stream before any network runs (identical on every platform by construction)."""
        header, present_mask, payload, _ = bitstream.unpack_tile(data)
        if header.version not in bitstream.ADAPTIVE_VERSIONS or self.adaptive is None or header.level >= self.levels:
            raise CorruptTileError("parse_integers reads version 2 and 3 tiles of this adaptive bundle's levels")
        return self._integers(header, present_mask, payload)[:2]

    def _integers(self, header: bitstream.TileHeader, present_mask: np.ndarray, payload: tuple[bytes, bytes]):
        c, h, w = header.bands, header.height, header.width
        level, lat = header.level, header.latent
        if (lat, bool(header.residual)) not in self.modes(level):
            raise CorruptTileError(f"tile codes latent level {lat}{' + residual' if header.residual else ''}, which "
                                   f"level {level} of this bundle does not allow; the tile is corrupt")
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.gain.shape[1]
        present = np.flatnonzero(present_mask)
        channel = np.tile(np.arange(m, dtype=np.int32), len(present))
        ctx = [lat * m + channel]
        sizes = [np.full(len(channel), hl * wl)]
        if header.residual:
            counts = _block_counts(c, h, w, header.residual)
            ctx.append(np.full(len(counts), self._residual_context(level), np.int32))
            sizes.append(counts)
        ctx_all, size = np.concatenate(ctx).astype(np.int32), np.concatenate(sizes)
        side, main = payload
        it = self.adaptive.index_tables
        idx = _decode_stream(side, ctx_all, it, "scale indexes")
        if (idx < 0).any() or (idx >= am.NUM_INDEXES).any() or (idx[len(channel):] == am.FACTORIZED).any():
            raise CorruptTileError("scale index out of range; the tile is corrupt")
        rows = np.concatenate([self.adaptive.rows(idx[:len(channel)], channel),
                               self.adaptive.rows(idx[len(channel):], None)])
        coded = idx != am.ZERO
        sym = _decode_stream(main, np.repeat(rows[coded], size[coded]).astype(np.int32), self._tables_for(lat),
                             "symbols")
        values = np.zeros(int(size.sum()), np.int32)
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        pos = np.concatenate([np.arange(s, s + n) for s, n in zip(starts[coded], size[coded])] or
                             [np.zeros(0, np.int64)]).astype(np.int64)
        values[pos] = sym
        return idx, values, present, channel

    def _decode_adaptive(self, header: bitstream.TileHeader, present_mask: np.ndarray,
                         payload: tuple[bytes, bytes]) -> np.ndarray:
        c, h, w = header.bands, header.height, header.width
        lat, level = header.latent, header.level
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.gain.shape[1]
        _, values, present, channel = self._integers(header, present_mask, payload)
        n_lat = len(channel) * hl * wl
        y_hat = values[:n_lat].reshape(len(present), m, hl, wl).astype(np.float32)
        y_hat *= self.inv_gain[lat][None, :, None, None]
        z = self._synthesize(y_hat, present, (c, h, w))
        if header.residual:
            step = np.float32(self.ladder.step[level])
            shapes = _residual_shapes(h, w, header.residual)
            arrays = _unblock_to(values[n_lat:], shapes * c, _block_size(header.residual))
            levels = wavelet.levels_for(h, w)
            for k in range(c):
                q = [x.astype(np.float32) for x in arrays[k * len(shapes):(k + 1) * len(shapes)]]
                z[k] += (wavelet.inverse(q, levels) if header.residual == bitstream.RESIDUAL_WAVELET else q[0]) * step
        return z

    # -- decoder -------------------------------------------------------------------------------------
    def decompress(self, data: bytes) -> DecodedTile:
        header, present_mask, payload, valid = bitstream.unpack_tile(data)
        if header.model_id not in self.accepted_ids:
            raise CorruptTileError(f"tile was coded with model {header.model_id.hex()}, this bundle is "
                                   f"{self.model_id[:bitstream.MODEL_ID_BYTES].hex()}; decode with the matching bundle")
        if header.version in bitstream.ADAPTIVE_VERSIONS and self.adaptive is None:
            raise CorruptTileError("tile uses the adaptive entropy model (bitstream v2) but this bundle is "
                                   "factorised; decode with the adaptive bundle it was coded with")
        limit = self.levels if header.version in bitstream.ADAPTIVE_VERSIONS else self.latent_levels
        if header.level >= limit:
            raise CorruptTileError(f"tile level {header.level} does not exist in this bundle ({limit} levels "
                                   f"for bitstream v{header.version})")
        h, w = header.height, header.width
        if header.version in bitstream.ADAPTIVE_VERSIONS:
            z = self._decode_adaptive(header, present_mask, payload)
        else:
            z = self._decode_factorized(header, present_mask, payload)
        st = SpectralTransform(lo=header.lo, hi=header.hi, mean=header.mean, matrix=header.matrix)
        rec = st.inverse(z)
        pixels = _to_dtype(rec, header.dtype, header.lo, header.hi)
        if valid is None:
            valid = np.ones((h, w), bool)
        else:
            pixels[:, ~valid] = 0
        return DecodedTile(pixels=pixels, valid=valid, level=header.level, header=header)

    def _decode_factorized(self, header: bitstream.TileHeader, present_mask: np.ndarray,
                           payload: bytes | None) -> np.ndarray:
        c, h, w = header.bands, header.height, header.width
        hl, wl = -(-h // STRIDE), -(-w // STRIDE)
        m = self.gain.shape[1]
        idx = self._indexes((m, hl, wl))
        t = self.tables[header.level]
        present = np.flatnonzero(present_mask)
        if not len(present):
            return np.zeros((c, h, w), np.float32)
        s = _decode_stream(payload, np.tile(idx, len(present)), t, "payload")
        y_hat = s.reshape(len(present), m, hl, wl).astype(np.float32)
        y_hat *= self.inv_gain[header.level][None, :, None, None]
        return self._synthesize(y_hat, present, (c, h, w))

    def _indexes(self, shape: tuple[int, int, int]) -> np.ndarray:
        m, hl, wl = shape
        return np.repeat(np.arange(m, dtype=np.int32), hl * wl)

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.levels:
            raise InputError(f"level {level} is out of range; this bundle has levels 0..{self.levels - 1}")


def _lambda(step: float) -> float:
    """Distortion per bit at a uniform quantiser's step (high-rate slope: dD/dR = 2 ln2 * step^2 / 12)."""
    return float(np.log(2) * float(step) ** 2 / 6)


def _decode_stream(data: bytes, rows: np.ndarray, t: EntropyTables, what: str) -> np.ndarray:
    """Decode ``len(rows)`` symbols; an empty stream is right exactly when no symbol is expected."""
    if not len(rows):
        if data:
            raise CorruptTileError(f"{what}: {len(data)} bytes where no symbol is coded; the tile is corrupt")
        return np.zeros(0, np.int32)
    try:
        return rangecoder.decode(data, rows, t.cdf, t.cdf_length, t.offset, t.precision)
    except rangecoder.CorruptStreamError as e:
        raise CorruptTileError(f"entropy-coded {what}: {e}") from e


def _residual_shapes(h: int, w: int, kind: int) -> list[tuple[int, int]]:
    """The arrays one component's residual is coded as: the pixels, or the wavelet subbands in coding order."""
    if kind == bitstream.RESIDUAL_WAVELET:
        return wavelet.subband_shapes(h, w, wavelet.levels_for(h, w))
    return [(h, w)]


def _block_size(kind: int) -> int:
    """Side of a residual group: 32 pixels, or 16 coefficients of a subband (measured: -0.5% to -1% BD-rate
    against 32, the side information of smaller groups costing more than they gain below 16)."""
    return am.WAVELET_BLOCK if kind == bitstream.RESIDUAL_WAVELET else am.RESIDUAL_BLOCK


def _shape_counts(shapes: list[tuple[int, int]], b: int) -> np.ndarray:
    """int[nb]: values of each b x b block of each array, arrays in order, blocks in raster order."""
    out = []
    for h, w in shapes:
        bh = np.minimum(b, h - np.arange(0, h, b))
        bw = np.minimum(b, w - np.arange(0, w, b))
        out.append(np.outer(bh, bw).reshape(-1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def _block_counts(c: int, h: int, w: int, kind: int = bitstream.RESIDUAL_PIXELS) -> np.ndarray:
    """int[C * nb]: values of each residual block, component-major (see :func:`_residual_shapes`)."""
    return np.tile(_shape_counts(_residual_shapes(h, w, kind), _block_size(kind)), c)


def _blocks_of(arrays: list[np.ndarray], b: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 2-D arrays -> (int32[nb, b*b] block values in raster order, zero-padded; counts int[nb])."""
    counts = _shape_counts([x.shape for x in arrays], b)
    out = np.zeros((len(counts), b * b), np.int32)
    i = 0
    for q in arrays:
        h, w = q.shape
        for y in range(0, h, b):
            for x in range(0, w, b):
                v = q[y:y + b, x:x + b].reshape(-1)
                out[i, :len(v)] = v
                i += 1
    return out, counts


def _unblock_to(values: np.ndarray, shapes: list[tuple[int, int]], b: int) -> list[np.ndarray]:
    """Inverse of :func:`_blocks_of` for the concatenated real values: int32 arrays of ``shapes``."""
    out, pos = [], 0
    for h, w in shapes:
        q = np.zeros((h, w), np.int32)
        for y in range(0, h, b):
            for x in range(0, w, b):
                bh, bw = min(b, h - y), min(b, w - x)
                q[y:y + bh, x:x + bw] = values[pos:pos + bh * bw].reshape(bh, bw)
                pos += bh * bw
        out.append(q)
    return out


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
