"""The two protocols a tile kind implements, so that :class:`~cvae.edge.codec.tile.TileCodec` dispatches without
naming kinds.

* :class:`LearnedKind`: tiles carrying latents of the bundle's network (``factorized``: v1, ``hybrid``: v2, v3, v5,
  v6). Codes an :class:`AnalyzedTile` at a rate level; decodes to pixels through the synthesis network and the
  inverse spectral transform.
* :class:`SampleKind`: tiles coding the samples themselves (``predictive``: v4). Codes a :class:`BoundedTile` to its
  error bound (level 0); decodes with no network.

Every kind reads the formats :func:`bitstream.formats_of` gives for its ``name`` (``versions``) and writes the one
of them marked ``written`` (``version``). A kind is built for a bundle by ``build(latents, model_id, adaptive=,
ladder=, mode_search=)`` (``None``: this bundle cannot have it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Union

import numpy as np

if TYPE_CHECKING:
    from cvae.edge.codec.bitstream import UnpackedTile
    from cvae.edge.codec.latents import AnalyzedTile
    from cvae.edge.codec.plan import Plan
    from cvae.edge.codec.predictive import BoundedTile

__all__ = ["LearnedKind", "SampleKind", "TileKind"]


class LearnedKind(Protocol):
    """A kind whose tiles carry learned latents, at ``levels`` public rate levels."""

    name: str
    version: int
    versions: tuple[int, ...]
    levels: int

    def latent_level(self, level: int) -> int:
        """The latent level whose gains and tables ``level`` codes its latents with."""
        ...

    def modes(self, level: int) -> list[tuple[int, bool]]:
        """The ``(latent level, residual)`` choices a tile of ``level`` may make."""
        ...

    def searched_modes(self, level: int) -> list[tuple[int, bool]]:
        """The modes with latents the encoder tries at ``level``."""
        ...

    def symbols(self, a: "AnalyzedTile", lat: int) -> np.ndarray:
        """int32[C, M, h, w]: the quantised latents of latent level ``lat``."""
        ...

    def plan(self, a: "AnalyzedTile", level: int) -> "Plan":
        """What the encoder codes for ``a`` at ``level`` (kinds without modes raise ``InputError``)."""
        ...

    def estimate_bytes(self, a: "AnalyzedTile", level: int) -> float:
        """Expected size at ``level`` from the tables, without coding."""
        ...

    def encode(self, a: "AnalyzedTile", level: int) -> bytes:
        ...

    def integers(self, u: "UnpackedTile") -> tuple[np.ndarray, np.ndarray]:
        """``(indexes int32[G], values int32[N])`` a tile parses to before any network runs (kinds without sent
        indexes raise ``CorruptTileError``)."""
        ...

    def decode_pixels(self, u: "UnpackedTile") -> np.ndarray:
        """native[C, H, W]: the pixels of a parsed tile (nodata not yet zeroed)."""
        ...


class SampleKind(Protocol):
    """A kind coding the samples themselves to an error bound, no network on either side."""

    name: str
    version: int
    versions: tuple[int, ...]
    levels: int

    def encode(self, t: "BoundedTile", level: int) -> bytes:
        """``t`` at ``level`` 0 (the bound is the quality)."""
        ...

    def decode_pixels(self, u: "UnpackedTile") -> np.ndarray:
        """native[C, H, W]: the samples of a parsed tile (nodata not yet zeroed)."""
        ...


#: either kind: what the decoder looks a tile's version up in
TileKind = Union[LearnedKind, SampleKind]
