"""Rate control for byte budgets: the level (and residual step) of a tile for ``--tile-bytes``, and the levels of a
scene's tiles for ``--scene-bytes`` (:mod:`cvae.edge.encoder` runs them)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from cvae.edge.codec import stepcode
from cvae.edge.codec.tile import TileCodec

__all__ = ["BUDGET_FILL", "choose_level", "choose_rate", "allocate_scene", "fill_scene"]


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
    once, at that level's preset: :meth:`TileCodec.weighted`). A tile at a latent-only level (a budget under the first
    residual level's size) keeps that size, unless the codec codes that level as a coarse residual (mode searches
    'auto' and 'residual': :meth:`HybridModel.coarse_step`), whose step is then searched the same way."""
    return _fill(codec, analyzed, budget)[1:]


def _fill(codec: TileCodec, analyzed, budget: int) -> tuple[bytes, Any, int]:
    """:func:`choose_rate`'s search: ``(coded tile, tile, level)``."""
    level = choose_level(codec, analyzed, budget)
    data = codec.encode(codec.weighted(analyzed, level), level)
    while len(data) > budget and level > 0:  # the estimate fitted, the tile does not (its masks are not estimated)
        level -= 1
        data = codec.encode(codec.weighted(analyzed, level), level)
    analyzed = codec.weighted(analyzed, level)  # weighted at the level found: the search below keeps that tile
    steps = codec.ladder.step
    at = _coarse_steps(codec, analyzed) if steps[level] <= 0 else steps
    if at is None or len(data) > budget:  # latents (or nothing fits): its size is the tile's
        return data, analyzed, level
    finer = [float(at[lv]) for lv in range(level + 1, codec.levels) if at[lv] > 0] + [stepcode.STEP_MIN]
    coarse, fine = math.log(float(at[level])), math.log(finer[0])  # fits; does not fit (or the finest step)
    best = (data, analyzed, level)
    for _ in range(12):
        if len(best[0]) >= BUDGET_FILL * budget:
            break
        mid = (coarse + fine) / 2
        step = stepcode.on_grid(math.exp(mid))
        lv = codec.level_for_step(step)
        if codec.estimate_bytes(analyzed, lv, step) > budget:
            fine = mid
            continue
        a = dataclasses.replace(analyzed, step=step)
        coded = codec.encode(a, lv)
        if len(coded) > budget:
            fine = mid
        else:
            coarse = mid
            if len(coded) > len(best[0]):
                best = (coded, a, lv)
    return best


def _coarse_steps(codec: TileCodec, analyzed) -> np.ndarray | None:
    """Each level's residual step: the ladder's, and a latent-only level's coarse step where the planner codes it as
    a coarse residual (:meth:`Planner.coarse`); None where the first latent-only level codes latents."""
    hybrid = getattr(codec, "hybrid", None)
    steps = np.array(codec.ladder.step, np.float64)
    latent = [int(lv) for lv in np.flatnonzero(steps <= 0)]
    if hybrid is None or not all(hybrid.planner.coarse(analyzed, lv) for lv in latent):
        return None
    for lv in latent:
        steps[lv] = hybrid.model.coarse_step(lv)
    return steps


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


def fill_scene(codec: TileCodec, analyzed: list, estimates: np.ndarray, budget: int, writer) -> list:
    """``[(tile, level, coded tile)]`` for a scene budget of ``budget`` bytes on the wire (what the tiles' packets may
    take): each tile's level from :func:`allocate_scene` on ``estimates`` (float[T, L], wire bytes), then its share
    of the budget: its estimate at that level plus what the levels leave, in proportion; each tile filled to its
    share by :func:`choose_rate` (coded sizes: never over it, a residual level at least BUDGET_FILL of it); a tile
    the levels put at the top level stays there (a scene budget buys nothing finer than the ladder). What tiles could
    not spend (a tile at its finest step, or whose masks the estimates missed) goes to the tiles that filled theirs;
    what a tile over its share took (nothing cheaper) comes from the others (two rounds at most). ``writer``: the
    :class:`~cvae.edge.codec.packets.PacketWriter` whose packets count (its ``wire_bytes``). Over the budget only
    where nothing is cheaper (every tile at level 0)."""
    t = len(analyzed)
    levels = allocate_scene(estimates, budget)
    base = estimates[np.arange(t), levels]
    shares = np.floor(base + max(budget - base.sum(), 0.0) * base / max(base.sum(), 1e-9)).astype(np.int64)
    chosen: list = [None] * t
    sizes = np.zeros(t, np.int64)
    top = levels == estimates.shape[1] - 1
    for i in np.flatnonzero(top):
        a = codec.weighted(analyzed[i], int(levels[i]))
        chosen[i] = (a, int(levels[i]), codec.encode(a, int(levels[i])))
        sizes[i] = writer.wire_bytes(len(chosen[i][2]))
    todo = np.flatnonzero(~top)
    for _ in range(3):
        for i in todo:
            share = int(shares[i])  # less its framing, which a body of that size needs at most
            data, a, lv = _fill(codec, analyzed[i], max(2 * share - writer.wire_bytes(share), 1))
            chosen[i], sizes[i] = (a, lv, data), writer.wire_bytes(len(data))
        left = budget - int(sizes.sum())
        # under: more for the tiles that filled their shares; over (a tile over its share had nothing cheaper): less
        # for the others, in proportion
        move = ((sizes >= BUDGET_FILL * shares) if left > 0 else (sizes <= shares)) & ~top
        if 0 <= left < (1 - BUDGET_FILL) * budget or not move.any():
            break
        shares[move] += np.floor(left * sizes[move] / max(int(sizes[move].sum()), 1)).astype(np.int64)
        todo = np.flatnonzero(move)
    return chosen
