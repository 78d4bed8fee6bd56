"""Rate control for byte budgets: the level (and residual step) of a tile for ``--tile-bytes``, and the levels of a
scene's tiles for ``--scene-bytes`` (:mod:`cvae.edge.encoder` runs them)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from cvae.edge.codec import stepcode
from cvae.edge.codec.tile import TileCodec

__all__ = ["BUDGET_FILL", "choose_level", "choose_rate", "allocate_scene"]


def choose_level(codec: TileCodec, analyzed, budget: int) -> int:
    """The highest level whose estimated size fits ``budget`` bytes, the tile weighted for it
    (:meth:`TileCodec.weighted`; level 0 if none does)."""
    best = 0
    for level in range(codec.levels):
        if codec.estimate_bytes(codec.weighted(analyzed, level), level) <= budget:
            best = level
    return best


#: ``--tile-bytes``: a tile between two residual presets is searched until it spends at least this share of the budget
BUDGET_FILL = 0.99


def choose_rate(codec: TileCodec, analyzed, budget: int):
    """``(tile, level)``: the highest level whose estimated size fits ``budget`` bytes (:func:`choose_level`) and,
    when it is a residual level, the residual step between its preset and the next one's (beyond the finest preset:
    down to the finest step a tile carries) whose tile fills the budget (at least BUDGET_FILL of it, never over:
    tile format v7 carries the step; a bisection on ln(step) with the planner's sizes, each kept one checked by
    coding; a level whose estimate fits but whose tile does not gives way to the one below; the components weighted
    once, at that level's preset: :meth:`TileCodec.weighted`). A tile at a latent-only
    level (a budget under the first residual level's size) keeps that size."""
    level = choose_level(codec, analyzed, budget)
    size = len(codec.encode(codec.weighted(analyzed, level), level))
    while size > budget and level > 0:  # the estimate fitted, the tile does not (its masks are not estimated)
        level -= 1
        size = len(codec.encode(codec.weighted(analyzed, level), level))
    analyzed = codec.weighted(analyzed, level)  # weighted at the level found: the search below keeps that tile
    steps = codec.ladder.step
    if steps[level] <= 0 or size > budget:  # a latent-only level (or nothing fits): its size is the tile's
        return analyzed, level
    finer = [float(steps[lv]) for lv in range(level + 1, codec.levels) if steps[lv] > 0] + [stepcode.STEP_MIN]
    coarse, fine = math.log(float(steps[level])), math.log(finer[0])  # fits; does not fit (or the finest step)
    best = (size, analyzed, level)
    for _ in range(12):
        if best[0] >= BUDGET_FILL * budget:
            break
        mid = (coarse + fine) / 2
        step = stepcode.on_grid(math.exp(mid))
        lv = codec.level_for_step(step)
        if codec.estimate_bytes(analyzed, lv, step) > budget:
            fine = mid
            continue
        a = dataclasses.replace(analyzed, step=step)
        n = len(codec.encode(a, lv))
        if n > budget:
            fine = mid
        else:
            coarse = mid
            if n > best[0]:
                best = (n, a, lv)
    return best[1], best[2]


def allocate_scene(estimates: np.ndarray, budget: float) -> np.ndarray:
    """Per-tile levels for a scene budget. ``estimates: float[T, L]`` bytes of each tile at each level.

    Start from the highest uniform level that fits, then raise single tiles, cheapest step first, while the
    budget allows. Levels never go below 0 (the budget may then be exceeded: nothing cheaper exists).
    """
    t, n_levels = estimates.shape
    levels = np.zeros(t, int)
    for lv in range(n_levels):
        if estimates[:, lv].sum() <= budget:
            levels[:] = lv
    spent = estimates[np.arange(t), levels].sum()
    while True:
        can = levels < n_levels - 1
        if not can.any():
            return levels
        step = np.where(can, estimates[np.arange(t), np.minimum(levels + 1, n_levels - 1)] -
                        estimates[np.arange(t), levels], np.inf)
        i = int(np.argmin(step))
        if spent + step[i] > budget:
            return levels
        levels[i] += 1
        spent += step[i]
