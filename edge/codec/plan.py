"""The encoder's decisions for a hybrid tile: which mode a tile of a level codes, and how it quantises.

A residual level allows several *modes* (:meth:`HybridKind.modes`): the latents of its ladder latent level or a
higher one, each with or without the wavelet residual, and the residual alone (no latent component present).
:class:`Planner` prices each searched mode (bits from the adaptive model's cost tables, squared error over valid
pixels) and keeps the one of least ``D + lambda * R`` at the level's slope. For the residual it also picks, per
component, the rounding offset of least ``D + lambda * R`` among :data:`RESIDUAL_DEADZONES`. None of this is in
the format: the decoder reads the choice from the header, so a better search never breaks a ground station.

Results are frozen dataclasses: a :class:`Part` (latents of one level, or one residual) and the :class:`Plan`
the tile is coded from. Parts and the latest plan are cached on the :class:`AnalyzedTile` (memory stays per tile).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, residual, wavelet
from cvae.edge.codec import _coefs
from cvae.edge.codec import coefs as coefs_mod
from cvae.edge.codec.latents import AnalyzedTile

if TYPE_CHECKING:
    from cvae.edge.codec.hybrid import HybridKind

__all__ = ["Part", "Plan", "Planner", "MODE_SEARCHES", "RESIDUAL_DEADZONES", "rd_lambda", "check_mode_search"]

#: rounding offsets tried per component for a residual level's quantiser (encoder only, rate-distortion
#: optimised with lambda = ln2 * step^2 / 6, the slope of a uniform quantiser at high rate)
RESIDUAL_DEADZONES = (0.0, 0.1, 0.2, 0.3)
#: 'auto' (the default): the residual alone, with no network at all, on residual levels whose step is at most
#: :data:`NETWORK_FREE_STEP`, 'ladder' on the other residual levels (measured against 'full' on the validation set:
#: median +0.02% BD-rate, at most +0.75% on one scene, benchmarks/results/shortcut.md); 'full': every allowed latent
#: level (one synthesis each); 'ladder':
#: the ladder's own mode only (one synthesis); 'residual': the residual alone on every residual level (no
#: synthesis; the wavelet-only counterfactual). All also weigh the residual-only tile on residual levels.
MODE_SEARCHES = ("auto", "full", "ladder", "residual")
#: residual levels at or below this step code the residual alone and run no network (neither the analysis nor any
#: synthesis). Measured on the 8 validation scenes against the full search, tile format v5
#: (benchmarks/shortcut_eval.py, results/shortcut.md): at the shipped bundle's levels 7-11 (steps 0.035 .. 0.009)
#: it costs 0.00% BD-rate (median and worst scene) and saves 85% of those levels' encode time; extending it to
#: level 6 costs +0.66% on the worst scene, to every residual level +1.38%. An encoder decision, not the format.
NETWORK_FREE_STEP = 0.035


def check_mode_search(mode_search: str) -> None:
    if mode_search not in MODE_SEARCHES:
        raise ValueError(f"mode_search {mode_search!r}: use 'auto' (no network on the finest residual levels, "
                         "'full' elsewhere), 'full' (every allowed latent level, one synthesis each), 'ladder' "
                         "(the ladder's own mode, one synthesis) or 'residual' (the residual alone on residual "
                         "levels, no synthesis)")


def rd_lambda(step: float) -> float:
    """Distortion per bit at a uniform quantiser's step (high-rate slope: dD/dR = 2 ln2 * step^2 / 12)."""
    return float(np.log(2) * float(step) ** 2 / 6)


@dataclass(frozen=True)
class Part:
    """One coded part of a tile: ``G`` groups of symbols with their chosen scale indexes and bits."""

    groups: np.ndarray            # int32[G, S] symbols of each group, zero-padded to S
    sizes: np.ndarray             # int64[G] real symbols per group
    idx: np.ndarray               # int32[G] chosen scale indexes (adaptive.ZERO: nothing coded)
    ctx: np.ndarray               # int32[G] index-table rows (contexts) of the indexes
    rows: np.ndarray              # int32[G] rows of the combined table that code each group
    bits: float                   # estimated bits of the symbols and indexes
    present: np.ndarray | None = None  # latent parts: bool[C] components coded
    err: float = 0.0              # residual parts: squared error of the reconstruction over valid pixels
    kind: int = bitstream.RESIDUAL_NONE  # residual parts: bitstream.RESIDUAL_*
    arrays: tuple | None = None   # residual parts: per component its int32 subbands (wavelet.forward's order)


@dataclass(frozen=True)
class Plan:
    """What a hybrid tile at one level codes: the streams' symbols and rows, and its estimated bits."""

    present: np.ndarray           # bool[C]
    side: np.ndarray              # int32[G] indexes
    side_rows: np.ndarray         # int32[G] index-table rows
    main: np.ndarray              # int32[N] symbols
    main_rows: np.ndarray         # int32[N] rows of the level's combined table
    bits: float
    latent: int = 0               # the latent level coded
    residual: int = bitstream.RESIDUAL_NONE  # the residual's kind (bitstream.RESIDUAL_*)
    coefs: tuple | None = None    # format v5: the residual's subbands per component, coded apart from side/main
    coefs_stream: bytes = b""     # format v5: those coefficients context-coded (bits counts them exactly)

    @property
    def mode(self) -> str:
        """'latents', 'latents+residual' or 'residual only'."""
        if not self.residual:
            return "latents"
        return "latents+residual" if self.present.any() else "residual only"


class Planner:
    """The rate-distortion mode search of a :class:`HybridKind` (``mode_search``: one of :data:`MODE_SEARCHES`)."""

    def __init__(self, kind: "HybridKind", mode_search: str = "auto"):
        check_mode_search(mode_search)
        # a proxy, not the kind itself: the kind owns its planner, and a reference back would make a cycle that
        # keeps a replaced codec (its network sessions: ~160 MB) alive until a full collection (a daemon reload)
        self.kind = weakref.proxy(kind)
        self.mode_search = mode_search

    def searched_modes(self, level: int) -> list[tuple[int, bool]]:
        """The modes with latents the encoder tries: all of :meth:`HybridKind.modes` (``'full'``), the ladder's
        own (``'ladder'``, and ``'auto'`` on the residual levels that run a network), or none on residual levels
        (``'residual'``, and ``'auto'`` on network-free levels). Every search also weighs the
        residual-only tile on residual levels (it needs no synthesis)."""
        k = self.kind
        if k.has_residual(level) and (self.mode_search == "residual" or self.network_free(level)):
            return []
        if self.mode_search != "full":
            return [(k.latent_level(level), k.has_residual(level))]
        return k.modes(level)

    def network_free(self, level: int) -> bool:
        """Whether ``level`` codes the residual alone without running the network (``'auto'``)."""
        k = self.kind
        return self.mode_search == "auto" and k.has_residual(level) and k.ladder.step[level] <= NETWORK_FREE_STEP

    def plan(self, a: AnalyzedTile, level: int) -> Plan:
        """The mode of least ``D + lambda * R`` among the searched ones, ready to code."""
        k = self.kind
        if a.cache.get("plan", (None,))[0] == level:  # only the latest plan is kept: memory stays per tile
            return a.cache["plan"][1]
        candidates = []
        for lat, res in self.searched_modes(level):
            parts = [self.latent_part(a, lat)]
            if res:
                parts.append(self.residual_part(a, level, lat))
            candidates.append((lat, res, parts))
        if k.has_residual(level):  # the residual alone: no synthesis to run, so every search weighs it
            candidates.append((k.latent_level(level), True, [self.no_latents(a), self.residual_part(a, level, None)]))
        best = None
        for lat, res, parts in candidates:
            bits = sum(p.bits for p in parts)
            if len(candidates) > 1:  # rate-distortion choice at the level's slope
                cost = (parts[1].err if res else self.latent_error(a, lat)) + rd_lambda(k.ladder.step[level]) * bits
            else:
                cost = 0.0
            if best is None or cost < best[0]:
                best = (cost, lat, res, parts, bits)
        _, lat, res, parts, total = best
        coefs, stream = None, b""
        if res:  # tile format v5: the residual goes to its own context-coded stream
            coefs, parts = parts[1].arrays, parts[:1]
            stream = coefs_mod.encode(list(coefs), a.shape[1], a.shape[2])  # coded once: its size is exact
            total = parts[0].bits + 8 * len(stream)
        side = np.concatenate([p.idx for p in parts]).astype(np.int32)
        size = np.concatenate([p.sizes for p in parts])
        coded = side != am.ZERO
        main = np.concatenate([p.groups[i, :n] for p in parts
                               for i, n in zip(np.flatnonzero(p.idx != am.ZERO), p.sizes[p.idx != am.ZERO])]
                              or [np.zeros(0, np.int32)]).astype(np.int32)
        main_rows = np.repeat(np.concatenate([p.rows for p in parts])[coded], size[coded]).astype(np.int32)
        plan = Plan(present=parts[0].present, side=side, side_rows=np.concatenate([p.ctx for p in parts]).astype(np.int32),
                    main=main, main_rows=main_rows, bits=total, latent=lat,
                    residual=bitstream.RESIDUAL_WAVELET if res else bitstream.RESIDUAL_NONE, coefs=coefs,
                    coefs_stream=stream)
        a.cache["plan"] = (level, plan)
        return plan

    def reconstruction(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """float32[C, H, W]: what the decoder's synthesis makes of latent level ``lat`` (0 for skipped components)."""
        key = ("z_hat", lat)
        if key not in a.cache:
            lm = self.kind.latents
            keep = np.flatnonzero(lm.coded(a, lat))
            y_hat = self.kind.symbols(a, lat)[keep].astype(np.float32) * lm.inv_gain[lat][None, :, None, None]
            a.cache[key] = lm.synthesize(y_hat, keep, a.shape)
        return a.cache[key]

    def latent_part(self, a: AnalyzedTile, lat: int) -> Part:
        """The latent groups of latent level ``lat``, their chosen indexes and bits (cached per tile)."""
        key = ("latent", lat)
        if key not in a.cache:
            k = self.kind
            sym = k.symbols(a, lat)
            present = k.latents.coded(a, lat)
            c, m, hl, wl = sym.shape
            p = int(present.sum())
            groups = sym[present].reshape(p * m, hl * wl)
            channel = np.tile(np.arange(m, dtype=np.int32), p)
            idx, bits = k.adaptive.choose(groups, lat * m + channel, factorized_costs=k.factorized_costs(lat),
                                          factorized_rows=channel)
            a.cache[key] = Part(groups=groups, sizes=np.full(p * m, hl * wl), idx=idx, ctx=lat * m + channel,
                                rows=k.adaptive.rows(idx, channel), bits=float(bits.sum()), present=present)
        return a.cache[key]

    def residual_part(self, a: AnalyzedTile, level: int, lat: int | None) -> Part:
        """The residual of latent level ``lat``'s reconstruction (``lat=None``: of nothing, the components
        themselves) as wavelet subbands quantised with ``level``'s step, per component with the rounding offset of
        least ``D + lambda * R``; its coefficients, bits and squared error over valid pixels. The bits are version
        3's block estimate (each 16 x 16 block with its cheapest table and scale index, ``_coefs.block_bits``):
        choosing by the v5 coder's own bits instead changes D + lambda R by 0.03% and costs four codings."""
        k = self.kind
        step = float(k.ladder.step[level])
        r = a.z - self.reconstruction(a, lat) if lat is not None else a.z.copy()
        if a.valid is not None:
            r[:, ~a.valid] = 0.0  # nodata costs nothing
        lam = rd_lambda(step)
        index_costs = np.ascontiguousarray(k.adaptive.index_costs[k.residual_context(level)], np.float32)
        bank = k.adaptive.bank_costs
        c, h, w = r.shape
        levels = wavelet.levels_for(h, w)
        b = residual.block_size(bitstream.RESIDUAL_WAVELET)
        arrays, err, total = [], 0.0, 0.0
        for comp in range(c):
            coefs = wavelet.forward(r[comp], levels)
            shapes = [x.shape for x in coefs]
            ends = np.cumsum([x.size for x in coefs])[:-1]
            flat = np.concatenate([x.reshape(-1) for x in coefs]) / np.float32(step)  # every subband at once
            sign, mag = np.sign(flat), np.abs(flat)
            best = None
            for theta in RESIDUAL_DEADZONES:
                qf = (sign * np.floor(mag + (0.5 - theta))).astype(np.int32)
                q = [x.reshape(shape) for x, shape in zip(np.split(qf, ends), shapes)]
                bits = sum(_coefs.block_bits(x, x.shape[0], x.shape[1], b, bank, am.COST_SPAN, index_costs) for x in q)
                e = r[comp] - wavelet.inverse([x.astype(np.float32) for x in q], levels) * np.float32(step)
                if a.valid is not None:
                    e = e[a.valid]
                d = float(np.sum(e.astype(np.float64) ** 2))
                if best is None or d + lam * bits < best[0]:
                    best = (d + lam * bits, d, bits, q)
            err += best[1]
            total += best[2]
            arrays.append(best[3])
        none = np.zeros(0, np.int32)
        return Part(groups=np.zeros((0, 1), np.int32), sizes=np.zeros(0, np.int64), idx=none, ctx=none, rows=none,
                    bits=total, err=err, kind=bitstream.RESIDUAL_WAVELET, arrays=tuple(arrays))

    @staticmethod
    def no_latents(a: AnalyzedTile) -> Part:
        """The latent part of a residual-only tile: no component present, nothing coded."""
        e = np.zeros(0, np.int32)
        return Part(groups=np.zeros((0, 1), np.int32), sizes=np.zeros(0, np.int64), idx=e, ctx=e, rows=e, bits=0.0,
                    present=np.zeros(a.shape[0], bool))

    def latent_error(self, a: AnalyzedTile, lat: int) -> float:
        """Squared error over valid pixels of latent level ``lat``'s reconstruction alone (cached per tile)."""
        key = ("err", lat)
        if key not in a.cache:
            d = a.z - self.reconstruction(a, lat)
            if a.valid is not None:
                d = d[:, a.valid]
            a.cache[key] = float(np.sum(d.astype(np.float64) ** 2))
        return a.cache[key]
