"""Cutting a scene into fixed tiles and putting it back together.

Tiles are ``tile x tile`` pixels from the top-left corner; the last row and column are smaller (the codec
pads them to the network's stride by edge replication and crops back, so no bits are spent on padding).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

__all__ = ["TileWindow", "tile_grid"]


@dataclass(frozen=True)
class TileWindow:
    row: int
    col: int
    y0: int
    x0: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y0 + self.height), slice(self.x0, self.x0 + self.width)


def tile_grid(height: int, width: int, tile: int) -> Iterator[TileWindow]:
    """Row-major windows covering ``height x width`` exactly once."""
    if tile <= 0 or tile % 16:
        raise ValueError(f"tile_size: {tile} is not a positive multiple of 16 (the network's stride)")
    if height <= 0 or width <= 0:
        raise ValueError(f"scene size {height}x{width} is empty")
    for r, y0 in enumerate(range(0, height, tile)):
        for c, x0 in enumerate(range(0, width, tile)):
            yield TileWindow(r, c, y0, x0, min(tile, height - y0), min(tile, width - x0))
