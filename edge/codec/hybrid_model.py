"""The integers of the hybrid kind, shared by its encoder decisions and its decoder: a bundle's ladder of levels,
the modes a level allows, the contexts of its scale indexes and the tables its streams are coded with.

:class:`HybridModel` is what :class:`~cvae.edge.codec.plan.Planner` (the encoder's mode search) and
:class:`~cvae.edge.codec.hybrid.HybridKind` (bytes) both hold; neither holds the other.
"""
from __future__ import annotations

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import stepcode
from cvae.edge.codec.latents import AnalyzedTile, Ladder, LatentModel
from cvae.edge.codec.tables import EntropyTables

__all__ = ["HybridModel", "LATENT_DEADZONE"]

#: encoder-only deadzone of the latent rounding: |y| is rounded down when within this of a half-integer (chosen
#: on training tiles: about -0.2% to -3% BD-rate). The decoder does not depend on it.
LATENT_DEADZONE = 0.05


class HybridModel:
    """An adaptive bundle's latent levels, index tables and ladder (``ladder.latent[i]``, ``ladder.step[i]``)."""

    def __init__(self, latents: LatentModel, adaptive: am.AdaptiveModel, ladder: Ladder):
        if adaptive.index_tables.channels != latents.levels * latents.channels + ladder.residual_levels:
            raise ValueError("adaptive index tables do not match the levels and channels of the bundle")
        self.latents = latents
        self.adaptive = adaptive
        self.ladder = ladder
        self.levels = len(ladder.latent)
        self._combined: dict[int, EntropyTables] = {}
        self._fcosts: dict[int, np.ndarray] = {}

    def latent_level(self, level: int) -> int:
        return int(self.ladder.latent[level])

    def has_residual(self, level: int) -> bool:
        return bool(self.ladder.step[level] > 0)

    def preset_step(self, level: int) -> float:
        """The step a residual level codes with when none is asked: the ladder's, on the step code's grid (tile
        format v7 carries it; :mod:`cvae.edge.codec.stepcode`)."""
        return stepcode.on_grid(float(self.ladder.step[level]))

    def coarse_step(self, level: int) -> float:
        """A latent-only level's nominal residual step: the first residual level's, times the ladder's ratio between
        its first two residual steps once per level below it (0.2 -> 0.29, 0.41 on the shipped bundle)."""
        res = np.flatnonzero(self.ladder.step > 0)
        first = float(self.ladder.step[res[0]])
        ratio = first / float(self.ladder.step[res[1]]) if len(res) > 1 else 1.5
        return first * ratio ** max(0, int(res[0]) - level)

    def level_for_step(self, step: float) -> int:
        """The residual level a tile coded at ``step`` names: the one whose ladder step is nearest in ratio (its
        latent level and modes are the tile's). Raises ``ValueError`` when the ladder has no residual level."""
        levels = np.flatnonzero(self.ladder.step > 0)
        if not len(levels):
            raise ValueError("this bundle's ladder has no residual level: it cannot code a residual step")
        return int(levels[np.argmin(np.abs(np.log(self.ladder.step[levels].astype(np.float64) / step)))])

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

    def symbols(self, a: AnalyzedTile, lat: int, keep: np.ndarray | None = None) -> np.ndarray:
        """int32[C, M, h, w]: the latents of latent level ``lat``, rounded with :data:`LATENT_DEADZONE`, of the
        components ``keep: bool[C]`` (default: those coded there, :meth:`LatentModel.coded`; the others' are not
        analysed for it and not used)."""
        keep = self.latents.coded(a, lat) if keep is None else keep
        y = a.latents(keep) * self.latents.gain[lat][None, :, None, None]
        return (np.sign(y) * np.floor(np.abs(y) + (0.5 - LATENT_DEADZONE))).astype(np.int32)
