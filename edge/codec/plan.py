"""The encoder's decisions for a hybrid tile: which mode a tile of a level codes, and how it quantises.

A residual level allows several *modes* (:meth:`HybridKind.modes`): the latents of its ladder latent level or a
higher one, each with or without the wavelet residual, and the residual alone (no latent component present).
:class:`Planner` prices each searched mode (bits from the adaptive model's cost tables, squared error over valid
pixels) and keeps the one of least ``D + lambda * R`` at the level's slope; a mode with latents keeps them only on
the components where they pay (:meth:`Planner.with_latents`: the header's ``present`` says which). The residual's
coefficients are chosen as they are coded (:meth:`Planner.residual_part`: greedy rate-distortion quantisation with
the coder's own adaptive models). None of this is in the format: the decoder reads the choice from the header and
the integers from the stream, so a better search never breaks a ground station.

Results are frozen dataclasses: a :class:`LatentPart` (the latents of one latent level), a :class:`ResidualPart`
(one quantised residual) and the :class:`Plan` the tile is coded from. Parts, reconstructions and the latest plan
are cached on the :class:`AnalyzedTile` (:class:`~cvae.edge.codec.latents.TileCache`: memory stays per tile). The
planner holds the kind's integers (:class:`~cvae.edge.codec.hybrid_model.HybridModel`), not the kind.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, stepcode, wavelet
from cvae.edge.codec import coefs as coefs_mod
from cvae.edge.codec import levels as levels_mod
from cvae.edge.codec.hybrid_model import HybridModel
from cvae.edge.codec.latents import AnalyzedTile

__all__ = ["LatentPart", "ResidualPart", "Plan", "Planner", "MODE_SEARCHES", "rd_lambda",
           "check_mode_search", "default_mode_search", "CPU_MODE_SEARCH"]

#: 'auto' (the default): the residual alone, with no network at all, on residual levels whose step is at most
#: :data:`NETWORK_FREE_STEP` (4-11 of the shipped ladder) and on the latent-only levels (:data:`LATENT_LEVELS`),
#: 'ladder' on the other residual levels (2-3; measured against 'full': results/shortcut.md); 'full': every allowed
#: latent level (one synthesis each); 'ladder': the ladder's own mode only (one synthesis); 'residual': the residual
#: alone on every level, the latent-only ones at a coarse step (no network at all; the wavelet-only
#: counterfactual). All also weigh the residual-only tile on residual levels.
MODE_SEARCHES = ("auto", "full", "ladder", "residual")
#: residual levels at or below this step code the residual alone and run no network (neither the analysis nor any
#: synthesis). Measured against the full search with the scorer's PSNR (benchmarks/experiments/shortcut_eval.py,
#: results/shortcut.md): at the shipped bundle's levels 7-11 (steps 0.035 .. 0.009) it cost nothing and saved 85%
#: of those levels' encode time (tile format v5, 8 validation scenes). Since the network is weighed per component
#: (tile format v7), extending it to levels 4-6 (steps 0.1 .. 0.05) costs +0.40% BD-rate against the previous
#: default on the 4-band Sentinel-2 scene, +0.07% on the 12-band one, nothing on the other validation scenes, and
#: takes those levels from 2.7-3.1x OpenJPEG's encode time to the residual coder's (issue 22: at most 1.5x); also
#: extending it to levels 2-3 would cost +0.87% and +0.94% there. An encoder decision, not the format. Since steps
#: are continuous (``--psnr``), the boundary sits between two presets, at their geometric mean (0.1 .. 0.14).
NETWORK_FREE_STEP = 0.118
#: 'auto' on the residual levels that do run the network: a tile runs it only when it has at least GATE_MIN_BANDS
#: bands and under GATE_FINE_SHARE of its components' wavelet energy in the finest subbands (smooth multiband tiles),
#: known before any network runs (:meth:`Planner.network_pays`); the others code the residual alone. Measured on
#: the 8 validation scenes at levels 2-6 (benchmarks/experiments/network_gate.py, results/network_gate.md): 28% of
#: the tile-levels run the network and they hold 98% of its gain in D + lambda R; no Landsat-8 or NAIP tile runs it
#: (it never paid there). An encoder decision, not the format.
GATE_FINE_SHARE = 0.05
GATE_MIN_BANDS = 4
#: 'auto' on the latent-only levels (0-1 of the shipped ladder): 'residual' codes every tile as the residual alone
#: at a coarse step (``HybridModel.coarse_step``; the tile names the residual level of that step, as tile format v7
#: allows), no network; 'hybrid' plans the tile at that step with its named level's search (the network where the
#: tile gate passes, weighed per component); 'gate' codes the latents where the gate passes, the coarse residual
#: elsewhere (the default until 2026-12-06). Measured in-process over levels 0-11 on the 8 validation scenes
#: (benchmarks/experiments/latent_levels.py, results/latent_levels.md), BD-rate against the strongest JPEG 2000:
#: 'residual' -9.34% against 'gate''s -7.77% (Sentinel-2 patch), -9.54 / -9.06% (T33NZA 20 m), -9.44 / -9.41% (10 m),
#: -12.84 / -12.56% (Landsat-5), the same on the other four scenes (no tile passed the gate); 'hybrid' -9.66% on
#: T33NZA 10 m, the same as 'residual' elsewhere, for twice 'gate''s time. 'residual' runs levels 0-1 of T33NZA 10 m
#: in 0.50 CPU seconds where 'gate' took 1.78 (the analysis network was 80% of it).
LATENT_LEVELS = "residual"
#: 'auto' on residual levels that run the network: the latents are weighed for the first max(NETWORK_COMPONENTS,
#: C // 4) components only (the KLT's strongest); each keeps them only where they pay in D + lambda R, with the
#: residuals' coded bits (the tile header's ``present`` says which); the others run no network. Measured on the 8
#: validation scenes at levels 2-6 (benchmarks/experiments/network_components.py, results/network_components.md):
#: more of the network's gain than the tile-level choice, on fewer components (a floor on the component's
#: variance against the step kept less of it: the latents also pay on weak components at coarse steps). 1, not 2,
#: since 2026-12-07 (benchmarks/experiments/network_budget.py, results/network_budget.md): BD-rate +0.03 point on
#: T33NZA 10 m and Landsat-5, the same elsewhere, for a third less CPU time on levels 2-3 of T33NZA 10 m (the
#: networks are most of it: issue 22 asks every level within 1.5x OpenJPEG's time).
NETWORK_COMPONENTS = 1


#: the search a codec gets when none is asked (``Bundle.codec``, ``cvae-encode`` and the daemon's ``mode_search``
#: left out): 'auto' when both network halves run off the CPU (TensorRT with a decoder engine, ONNX Runtime on CUDA:
#: ``runtime.protocol.is_accelerated``), else CPU_MODE_SEARCH. On a CPU the networks do not pay their time:
#: on levels 2-3, the only ones where 'auto' runs them, they are 55% of the whole encode (one analysis and one
#: synthesis per 256-pixel tile component, about 40 ms on one x86-64 core, near its peak in ONNX Runtime) and take
#: those levels to 1.8-1.9x OpenJPEG's encode time against 0.4-0.5x without them (results/level_speed_network.md,
#: level_speed_residual.md; issue 22 asks every level within 1.5x), for a BD-rate gain of 0.17-0.19 point on the two
#: 4- and 12-band Sentinel-2 validation scenes, 0.07 on Landsat-5, none on the other five
#: (benchmarks/experiments/network_budget.py, results/network_budget.md). An encoder decision, not the format: the
#: ground decodes either (bytes already differ between backends wherever the analysis' floats round differently).
CPU_MODE_SEARCH = "residual"


def default_mode_search(accelerated: bool) -> str:
    """The mode search for a codec whose networks run on an accelerator (``accelerated``) or on the CPU."""
    return "auto" if accelerated else CPU_MODE_SEARCH


def check_mode_search(mode_search: str) -> None:
    if mode_search not in MODE_SEARCHES:
        raise ValueError(f"mode_search {mode_search!r}: use 'auto' (no network on the latent-only and the finest "
                         "residual levels, the ladder's own mode elsewhere), 'full' (every allowed latent level, one "
                         "synthesis each), 'ladder' (the ladder's own mode, one synthesis) or 'residual' (the "
                         "residual alone everywhere, no network)")


def rd_lambda(step: float) -> float:
    """Distortion per bit at a uniform quantiser's step (high-rate slope: dD/dR = 2 ln2 * step^2 / 12)."""
    return float(np.log(2) * float(step) ** 2 / 6)


@dataclass(frozen=True)
class LatentPart:
    """The latents of one latent level: ``G`` groups of symbols with their chosen scale indexes and bits."""

    groups: np.ndarray            # int32[G, S] symbols of each group, zero-padded to S
    sizes: np.ndarray             # int64[G] real symbols per group
    idx: np.ndarray               # int32[G] chosen scale indexes (adaptive.ZERO: nothing coded)
    ctx: np.ndarray               # int32[G] index-table rows (contexts) of the indexes
    rows: np.ndarray              # int32[G] rows of the combined table that code each group
    bits: float                   # estimated bits of the symbols and indexes
    present: np.ndarray           # bool[C] components coded
    comp_bits: np.ndarray | None = None  # float64[C] those bits per component (0 where absent)


@dataclass(frozen=True)
class ResidualPart:
    """One quantised residual (wavelet subbands, :data:`bitstream.RESIDUAL_WAVELET`): per component its int32
    subbands (wavelet.forward's order), its bits and error."""

    arrays: tuple[list[np.ndarray], ...]
    bits: float                   # the coded stream's bits
    err: float                    # squared error of the reconstruction over valid pixels
    recon: np.ndarray | None = None  # float32[C, H, W] what the decoder adds: inverse(subbands) * step
    comp_err: np.ndarray | None = None   # float64[C] ``err`` per component
    stream: bytes = b""           # the coefficients coded (the ``coefs`` stream)
    level_matrices: tuple | None = None  # the detail levels' own rotations they were coded under (v11), or None


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
    coefs: tuple[list[np.ndarray], ...] | None = None  # the residual's subbands per component (coefs_stream formats)
    coefs_stream: bytes = b""     # those coefficients context-coded (bits counts them exactly)
    step: float = 0.0             # the residual's step (on the step code's grid; 0 without a residual)
    err: float | None = None      # with a residual: squared error of the components over valid pixels
    recon: np.ndarray | None = None  # with a residual: float32[C, H, W] the residual the decoder adds
    level: int | None = None      # the level the tile names when not the one asked (a latent-only level's tile
    #                               coded as a coarse residual names the residual level of its step)
    level_matrices: tuple | None = None  # a residual-only tile's level rotations (tile format v11), or None

    @property
    def mode(self) -> str:
        """'latents', 'latents+residual' or 'residual only'."""
        if not self.residual:
            return "latents"
        return "latents+residual" if self.present.any() else "residual only"


class Planner:
    """The rate-distortion mode search over a :class:`HybridModel` (``mode_search``: one of :data:`MODE_SEARCHES`)
    for tiles of format ``fmt`` (default: the one kind 'hybrid' writes), whose coefficient coder it codes with."""

    def __init__(self, model: HybridModel, mode_search: str = "auto", fmt: bitstream.TileFormat | None = None):
        check_mode_search(mode_search)
        self.model = model
        self.mode_search = mode_search
        fmt = fmt or next(f for f in bitstream.formats_of("hybrid") if f.written)
        self.mixed = fmt.mixed_coefs  # the coefficient coder: version 10's mixing coder or version 5's

    def searched_modes(self, level: int, step: float | None = None) -> list[tuple[int, bool]]:
        """The modes with latents the encoder tries: all of :meth:`HybridModel.modes` (``'full'``), the ladder's
        own (``'ladder'``, and ``'auto'`` on the residual levels that run a network), or none on residual levels
        (``'residual'``, and ``'auto'`` on network-free levels) and on the latent-only levels that code a coarse
        residual alone (``'residual'``, and ``'auto'`` with :data:`LATENT_LEVELS` ``'residual'``). Every search also
        weighs the residual-only tile on residual levels (it needs no synthesis)."""
        k = self.model
        if k.has_residual(level) and (self.mode_search == "residual" or self.network_free(level, step)):
            return []
        if not k.has_residual(level) and k.ladder.residual_levels and \
                (self.mode_search == "residual" or (self.mode_search == "auto" and LATENT_LEVELS == "residual")):
            return []
        if self.mode_search != "full":
            return [(k.latent_level(level), k.has_residual(level))]
        return k.modes(level)

    def tile_modes(self, a: AnalyzedTile, level: int, step: float | None = None) -> list[tuple[int, bool]]:
        """:meth:`searched_modes` for ``a``; none where 'auto''s gate turns it from the network (network_pays)."""
        searched = self.searched_modes(level, step)
        if searched and self.mode_search == "auto" and self.model.has_residual(level) and not self.network_pays(a):
            return []
        return searched

    def network_free(self, level: int, step: float | None = None) -> bool:
        """Whether ``level`` at ``step`` (default: its own) codes the residual alone, with no network (``'auto'``)."""
        k = self.model
        if not (self.mode_search == "auto" and k.has_residual(level)):
            return False
        step = k.preset_step(level) if step is None else step
        return step <= stepcode.on_grid(NETWORK_FREE_STEP)  # steps on the code's grid, the preset's included

    def network_pays(self, a: AnalyzedTile) -> bool:
        """'auto''s gate for residual levels that run the network: at least GATE_MIN_BANDS bands and under
        GATE_FINE_SHARE of the components' wavelet energy in the finest level's subbands (cached per tile)."""
        if a.cache.gate is None:
            if a.shape[0] < GATE_MIN_BANDS or a.z is None:
                a.cache.gate = False
            else:
                fine = total = 0.0
                for bands in self.z_subbands(a):
                    e = [float(np.sum(np.square(x, dtype=np.float64))) for x in bands]
                    fine, total = fine + sum(e[:3]), total + sum(e)
                a.cache.gate = total > 0 and fine < GATE_FINE_SHARE * total
        return bool(a.cache.gate)

    @staticmethod
    def z_subbands(a: AnalyzedTile) -> list[list[np.ndarray]]:
        """Per component, the CDF 9/7 subbands of the tile's components ``a.z`` (nodata at 0): the residual of a
        tile with no latents, what the gate and ``--psnr``'s step estimate read (cached per tile)."""
        if a.cache.z_bands is None:
            assert a.z is not None  # analysed for a residual level
            levels = wavelet.levels_for(a.shape[1], a.shape[2])
            a.cache.z_bands = [wavelet.forward(comp, levels) for comp in a.z]
        return a.cache.z_bands

    def plan(self, a: AnalyzedTile, level: int, step: float | None = None, network: bool = True) -> Plan:
        """The mode of least ``D + lambda * R`` among the searched ones, ready to code; on a residual level the
        residual is quantised with ``step`` (on the step code's grid; default: the level's preset). ``network=False``:
        the residual alone, whatever the search (a residual level only)."""
        k = self.model
        if k.has_residual(level):
            step = k.preset_step(level) if step is None else step
        elif step is not None:
            raise ValueError(f"level {level} codes latents only: it takes no residual step")
        elif self.coarse(a, level):  # with no searched mode: no network (LATENT_LEVELS, 'residual')
            return self._coarse(a, level, network=bool(self.searched_modes(level)))
        searched = self.tile_modes(a, level, step) if network else []
        key = (level, step, tuple(searched))  # searches that try the same modes make the same plan
        cached = a.cache.plan
        if cached is not None and cached[0] == key:  # only the latest plan is kept: memory stays per tile
            return cached[1]
        # candidates: (latent level, its latent part, the residual part or None)
        candidates: list[tuple[int, LatentPart, ResidualPart | None]] = []
        # the residual alone: under the detail levels' own rotations where the tile has them (a candidate of its
        # own), under the tile's matrix where a latent level with a residual merges it per component
        merged = any(res for _, res in searched)
        alone = self.residual_part(a, level, None, step) if step is not None and \
            (merged or a.level_matrices is None) else None
        rotated = self.residual_part(a, level, None, step, rotate=True) if step is not None and \
            a.level_matrices is not None else None
        for lat, res in searched:
            if not res:
                candidates.append((lat, self.latent_part(a, lat), None))
            elif alone is not None and step is not None:
                mixed = self.with_latents(a, level, lat, step, alone)
                if mixed is not None:
                    candidates.append((lat, *mixed))
        if rotated is not None:
            candidates.append((k.latent_level(level), self.no_latents(a), rotated))
        elif alone is not None and not (len(searched) == 1 and candidates):
            # the residual alone (no synthesis to run, so every search weighs it), unless a single searched latent
            # level already chose per component against it, on the coded bits
            candidates.append((k.latent_level(level), self.no_latents(a), alone))
        best: tuple[float, int, LatentPart, ResidualPart | None] | None = None
        for lat, latent, resid in candidates:
            bits = latent.bits + (resid.bits if resid is not None else 0.0)
            if len(candidates) > 1:  # rate-distortion choice at the step's slope
                err = resid.err if resid is not None else self.latent_error(a, lat)
                cost = err + rd_lambda(step or 0.0) * bits
            else:
                cost = 0.0
            if best is None or cost < best[0]:
                best = (cost, lat, latent, resid)
        assert best is not None  # every level searches at least one mode
        _, lat, latent, resid = best
        coefs, stream = (resid.arrays, resid.stream) if resid is not None else (None, b"")
        lm = resid.level_matrices if resid is not None else None
        # the residual was coded when it was quantised: its size is exact (its bits count v11's rotations; + their byte)
        total = latent.bits + (resid.bits + (8.0 if lm else 0.0) if resid is not None else 0.0)
        coded = latent.idx != am.ZERO
        main = np.concatenate([latent.groups[i, :n] for i, n in zip(np.flatnonzero(coded), latent.sizes[coded])]
                              or [np.zeros(0, np.int32)]).astype(np.int32)
        main_rows = np.repeat(latent.rows[coded], latent.sizes[coded]).astype(np.int32)
        plan = Plan(present=latent.present, side=latent.idx.astype(np.int32), side_rows=latent.ctx.astype(np.int32),
                    main=main, main_rows=main_rows, bits=total, latent=lat,
                    residual=bitstream.RESIDUAL_WAVELET if resid is not None else bitstream.RESIDUAL_NONE,
                    coefs=coefs, coefs_stream=stream, step=float(step) if resid is not None and step else 0.0,
                    err=resid.err if resid is not None else None, recon=resid.recon if resid is not None else None,
                    level_matrices=lm)
        a.cache.plan = (key, plan)
        return plan

    def coarse(self, a: AnalyzedTile, level: int) -> bool:
        """Whether latent-only ``level`` codes ``a`` as a coarse residual (:meth:`_coarse`), not its latents."""
        return self.mode_search in ("auto", "residual") and a.z is not None and self.model.ladder.residual_levels > 0 \
            and (not self.searched_modes(level) or LATENT_LEVELS == "hybrid" or not self.network_pays(a))

    def _coarse(self, a: AnalyzedTile, level: int, network: bool) -> Plan:
        """Latent-only level ``level``'s tile as a residual at its coarse step (``HybridModel.coarse_step``), naming
        the residual level of that step; ``network``: with that level's search (else the residual alone)."""
        k = self.model
        coarse = stepcode.on_grid(k.coarse_step(level))
        named = k.level_for_step(coarse)
        return dataclasses.replace(self.plan(a, named, coarse, network=network), level=named)

    def reconstruction(self, a: AnalyzedTile, lat: int, keep: np.ndarray | None = None) -> np.ndarray:
        """float32[C, H, W]: what the decoder's synthesis makes of latent level ``lat`` with the latents of the
        components ``keep: bool[C]`` (default: every one coded there, :meth:`LatentModel.coded`; the others read 0).
        Synthesis runs per component, once per tile and latent level (a cached array: copy before writing)."""
        lm = self.model.latents
        keep = lm.coded(a, lat) if keep is None else np.asarray(keep, bool)
        done, z = a.cache.z_hat.get(lat, (np.zeros(a.shape[0], bool), None))
        todo = np.flatnonzero(keep & ~done)
        if len(todo) or z is None:
            y_hat = self.model.symbols(a, lat, keep | done)[todo].astype(np.float32) * \
                lm.inv_gain[lat][None, :, None, None]
            new = lm.synthesize(y_hat, todo, a.shape)
            z = new if z is None else np.where((keep & ~done)[:, None, None], new, z)
            done = keep | done
            a.cache.z_hat[lat] = (done, z)
        return z if np.array_equal(keep, done) else np.where(keep[:, None, None], z, np.float32(0))

    def latent_part(self, a: AnalyzedTile, lat: int, keep: np.ndarray | None = None) -> LatentPart:
        """The latent groups of latent level ``lat`` of the components ``keep: bool[C]`` (default: every one coded
        there), their chosen indexes and bits (cached per tile)."""
        k = self.model
        keep = k.latents.coded(a, lat) if keep is None else np.asarray(keep, bool)
        key = (lat, keep.tobytes())
        if key not in a.cache.latent_parts:
            sym = k.symbols(a, lat, keep)
            c, m, hl, wl = sym.shape
            p = int(keep.sum())
            groups = sym[keep].reshape(p * m, hl * wl)
            channel = np.tile(np.arange(m, dtype=np.int32), p)
            idx, bits = k.adaptive.choose(groups, lat * m + channel, factorized_costs=k.factorized_costs(lat),
                                          factorized_rows=channel)
            comp_bits = np.zeros(c)
            comp_bits[keep] = np.asarray(bits, np.float64).reshape(p, m).sum(axis=1)
            a.cache.latent_parts[key] = LatentPart(groups=groups, sizes=np.full(p * m, hl * wl), idx=idx,
                                                   ctx=lat * m + channel, rows=k.adaptive.rows(idx, channel),
                                                   bits=float(bits.sum()), present=keep, comp_bits=comp_bits)
        return a.cache.latent_parts[key]

    def with_latents(self, a: AnalyzedTile, level: int, lat: int, step: float,
                     alone: ResidualPart) -> tuple[LatentPart, ResidualPart] | None:
        """The tile with the latents of latent level ``lat`` on the components where they pay against ``alone`` (the
        residual alone) in ``D + lambda R``, each component decided on its own with its residuals' coded bits (each
        coded alone); only the :meth:`network_components` run the network. None where no component gains."""
        keep = self.network_components(a, lat)
        latent, resid = self.latent_part(a, lat, keep), self.residual_part(a, level, lat, step, keep)
        assert latent.comp_bits is not None and resid.comp_err is not None and alone.comp_err is not None
        lam = rd_lambda(step)
        gain = np.zeros(a.shape[0])
        for i in np.flatnonzero(keep):
            coded = [8 * len(coefs_mod.encode([part.arrays[i]], a.shape[1], a.shape[2], self.mixed))
                     for part in (resid, alone)]
            gain[i] = alone.comp_err[i] + lam * coded[1] - (resid.comp_err[i] + lam * (latent.comp_bits[i] + coded[0]))
        pays = keep & (gain > 0)
        if not pays.any():
            return None
        if np.array_equal(pays, keep):
            return latent, resid
        return self.latent_part(a, lat, pays), _merge(resid, alone, pays, a.shape[1], a.shape[2], self.mixed)

    def network_components(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """bool[C]: the components whose latents a residual level weighs (each keeps them only where they pay,
        :meth:`with_latents`): those coded at ``lat``; under 'auto' only the first ``max(NETWORK_COMPONENTS, C // 4)``
        (the KLT's strongest): the others run no network."""
        keep = self.model.latents.coded(a, lat)
        if self.mode_search == "auto":
            keep = keep & (np.arange(a.shape[0]) < max(NETWORK_COMPONENTS, a.shape[0] // 4))
        return keep

    def residual_part(self, a: AnalyzedTile, level: int, lat: int | None, step: float | None = None,
                      keep: np.ndarray | None = None, rotate: bool = False) -> ResidualPart:
        """The residual of latent level ``lat``'s reconstruction with the latents of the components ``keep``
        (``lat=None``: of nothing, the components themselves) as wavelet subbands quantised with ``step`` (default:
        ``level``'s preset): rounded to the nearest, then coded with the coder's greedy rate-distortion choice at the
        step's slope (:func:`coefs.encode_rdo`: each nonzero coefficient as itself or one step toward zero; against
        the four rounding offsets per subband it replaced, median -1.49% BD-rate on the validation scenes, every scene
        better: benchmarks/experiments/coef_rdoq_psnr.py). Its coefficients, stream, and squared error over valid
        pixels (in pixels, per component). ``rotate`` (``lat=None``, a tile with ``level_matrices``): each detail
        level coded under its own rotation (tile format v11, :mod:`cvae.edge.codec.levels`)."""
        step = self.model.preset_step(level) if step is None else float(step)
        assert a.z is not None  # a tile analysed for coding has its components
        r = a.z - self.reconstruction(a, lat, keep) if lat is not None else a.z  # a.z: nodata already 0
        if a.valid is not None and lat is not None:
            r[:, ~a.valid] = 0.0  # nodata costs nothing
        c, h, w = r.shape
        levels = wavelet.levels_for(h, w)
        lm = a.level_matrices if rotate and lat is None else None
        bands = [wavelet.forward(r[comp], levels) for comp in range(c)] if lat is not None else self.z_subbands(a)
        if lm is not None:
            bands = levels_mod.to_levels(bands, lm, a.spectral.matrix)
        scaled = [[np.asarray(x, np.float64) / step for x in comp] for comp in bands]
        nearest = [[(np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) for x in bands] for bands in scaled]
        # D + lambda R in units of the step: (x - v)^2 + rd_lambda(step) / step^2 * bits
        stream, arrays = coefs_mod.encode_rdo(nearest, scaled, h, w, rd_lambda(step) / (step * step), self.mixed)
        recon = np.zeros((c, h, w), np.float32)
        comp_err = np.zeros(c)
        back = arrays if lm is None else levels_mod.to_main(arrays, lm, a.spectral.matrix)
        for comp in range(c):
            recon[comp] = wavelet.inverse([x.astype(np.float32) for x in back[comp]], levels) * np.float32(step)
            e = r[comp] - recon[comp]
            if a.valid is not None:
                e = e[a.valid]
            comp_err[comp] = float(np.sum(e.astype(np.float64) ** 2))
        side = 8.0 * sum(int(m.size) for m in lm if m is not None) if lm is not None else 0.0  # v11's rotations
        return ResidualPart(arrays=tuple(arrays), bits=8.0 * len(stream) + side, err=float(comp_err.sum()),
                            recon=recon, comp_err=comp_err, stream=stream, level_matrices=lm)

    @staticmethod
    def no_latents(a: AnalyzedTile) -> LatentPart:
        """The latent part of a residual-only tile: no component present, nothing coded."""
        e = np.zeros(0, np.int32)
        return LatentPart(groups=np.zeros((0, 1), np.int32), sizes=np.zeros(0, np.int64), idx=e, ctx=e, rows=e,
                          bits=0.0, present=np.zeros(a.shape[0], bool))

    def latent_error(self, a: AnalyzedTile, lat: int) -> float:
        """Squared error over valid pixels of latent level ``lat``'s reconstruction alone (cached per tile)."""
        if lat not in a.cache.latent_err:
            d = a.z - self.reconstruction(a, lat)
            if a.valid is not None:
                d = d[:, a.valid]
            a.cache.latent_err[lat] = float(np.sum(d.astype(np.float64) ** 2))
        return a.cache.latent_err[lat]


def _merge(resid: ResidualPart, alone: ResidualPart, pick: np.ndarray, h: int, w: int, mixed: bool) -> ResidualPart:
    """Per component ``resid``'s (``pick: bool[C]``) or ``alone``'s residual: the residual of a tile whose picked
    components carry latents (components are quantised and their errors summed independently), coded again as one
    stream by the tile format's coder (``mixed``: version 10's; the coefficients as chosen: no second
    rate-distortion pass)."""
    assert resid.comp_err is not None and alone.comp_err is not None and resid.recon is not None and \
        alone.recon is not None
    arrays = tuple(r if p else q for r, q, p in zip(resid.arrays, alone.arrays, pick))
    err = np.where(pick, resid.comp_err, alone.comp_err)
    stream = coefs_mod.encode(list(arrays), h, w, mixed)
    return ResidualPart(arrays=arrays, bits=8.0 * len(stream), err=float(err.sum()),
                        recon=np.where(pick[:, None, None], resid.recon, alone.recon), comp_err=err, stream=stream)
