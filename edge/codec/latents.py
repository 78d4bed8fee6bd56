"""What every learned tile kind shares: the analysed tile, the rate ladder, and the latent model (frozen tables,
per-level gains, the network halves).

``AnalyzedTile`` is the encoder's tile after the spectral transform and the analysis network, before any
quantisation: every level of every kind is coded from it. ``LatentModel`` holds what the latents of a latent
level need on both sides: the level's factorised tables, its gains, the variance threshold below which a
component is not coded (reverse water-filling), and the network that turns latents back into components.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from cvae.edge.codec import bitstream, rangecoder
from cvae.edge.codec.spectral import SpectralTransform
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.errors import CorruptTileError

if TYPE_CHECKING:  # the protocol lives with the backends; the codec only calls it
    from cvae.edge.codec.plan import LatentPart, Plan
    from cvae.edge.runtime.protocol import Transforms

__all__ = ["STRIDE", "AnalyzedTile", "TileCache", "Ladder", "LatentModel", "tile_header", "decode_stream", "to_dtype",
           "to_pixels"]

#: the analysis transform's downsampling: tiles are padded to a multiple of it
STRIDE = 16


@dataclass
class TileCache:
    """What coding one analysed tile computes once and reuses across its levels (memory stays per tile)."""

    y: np.ndarray | None = None          # float32[C, M, h, w] latents of the components analysed so far
    y_done: np.ndarray | None = None     # bool[C] components the analysis network has run on
    #: per latent level: (bool[C] components synthesised, float32[C, H, W] their synthesis, 0 elsewhere)
    z_hat: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: per (latent level, bool[C] components as bytes): the coded groups
    latent_parts: dict[tuple[int, bytes], "LatentPart"] = field(default_factory=dict)
    latent_err: dict[int, float] = field(default_factory=dict)  # per latent level: squared error of z_hat
    plan: "tuple[tuple, Plan] | None" = None  # the latest plan and its (level, step, modes searched)
    gate: bool | None = None  # 'auto''s network gate for this tile (Planner.network_pays), once computed
    z_bands: list[list[np.ndarray]] | None = None  # per component: the CDF 9/7 subbands of z (Planner.z_subbands)
    #: the latest ((step, details, rotations), tile) of :meth:`TileCodec.weighted`: the tile weighted for that step
    weighted: "tuple[tuple[float, bool, bool], AnalyzedTile] | None" = None


@dataclass(frozen=True)
class AnalyzedTile:
    """A tile after the spectral transform, before quantisation: every level can be coded from it. The analysis
    network runs when something first asks for a component's latents, on that component only: a tile coded as
    the residual alone never runs it (:data:`cvae.edge.codec.plan.NETWORK_FREE_STEP`), and components too faint
    to be coded at a level (:meth:`LatentModel.coded`) are not analysed for it."""

    shape: tuple[int, int, int]   # C, H, W
    dtype: np.dtype
    spectral: SpectralTransform
    variance: np.ndarray          # float32[C] per component over valid pixels
    analysis: Callable[[np.ndarray], np.ndarray] | np.ndarray  # float32[C, M, h, w] latents, or the network run
    #: making them for the components given (int[k] indexes -> float32[k, M, h, w])
    valid: np.ndarray | None      # bool[H, W] or None when every pixel is valid
    z: np.ndarray | None = None   # float32[C, H, W] components (nodata at 0), kept for residual levels
    band_fill: np.ndarray | None = None  # bool[C, H, W]: samples of valid pixels holding the fill value
    scene: bitstream.SceneSide | None = None  # the scene's band ranges, sent in its metadata (v6 tiles refer to them)
    latent_shape: tuple[int, int, int] = (0, 0, 0)  # M, h, w of one component's latents
    #: the residual step the tile is to be coded at on a residual level (a quality target's choice: ``--psnr``,
    #: ``dataclasses.replace(a, step=...)`` shares the cache); None: the level's preset
    step: float | None = None
    #: the mode search the tile is to be planned with (:data:`cvae.edge.codec.plan.MODE_SEARCHES`; a quality
    #: target's choice, as ``step``); None: the codec's
    search: str | None = None
    #: whether the rotation's rows are final (:meth:`TileCodec.weighted` chose them; :mod:`cvae.edge.codec.weighting`)
    weighted: bool = False
    #: per wavelet detail level (index j - 1) the rotation a residual-only tile codes it with, or None: the tile's
    #: matrix (tile format v11, :mod:`cvae.edge.codec.levels`); None: every level under the matrix
    level_matrices: tuple | None = None
    cache: TileCache = field(default_factory=TileCache, compare=False, repr=False)  # parts, plans, g_s output

    @property
    def y(self) -> np.ndarray:
        """float32[C, M, h, w]: the analysis network's latents of every component (run on first use, then kept)."""
        return self.latents(np.ones(self.shape[0], bool))

    def latents(self, keep: np.ndarray) -> np.ndarray:
        """float32[C, M, h, w]: the latents of the components ``keep: bool[C]`` (the network runs on those not
        analysed yet, once each); the other components' rows are whatever is known of them (zeros if nothing)."""
        if not callable(self.analysis):
            return self.analysis
        cache = self.cache
        if cache.y_done is None:
            cache.y_done = np.zeros(self.shape[0], bool)
        todo = np.flatnonzero(np.asarray(keep, bool) & ~cache.y_done)
        if len(todo):
            y = self.analysis(todo)
            if cache.y is None:
                cache.y = np.zeros((self.shape[0],) + y.shape[1:], np.float32)
            cache.y[todo] = y
            cache.y_done[todo] = True
        if cache.y is None:  # no component asked for: no network run, all latents zero
            cache.y = np.zeros((self.shape[0],) + tuple(self.latent_shape), np.float32)
        return cache.y

    @property
    def analysed(self) -> bool:
        """Whether the analysis network has run (on some component) or was given."""
        return not callable(self.analysis) or (self.cache.y_done is not None and bool(self.cache.y_done.any()))


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


class LatentModel:
    """The latent levels of a bundle: ``tables[l]`` (factorised, one row per channel), ``gain[l]``/``inv_gain[l]``
    (float32[M] each), ``skip_variance[l]``, and ``transforms`` running the network."""

    def __init__(self, tables: list[EntropyTables], gain: np.ndarray, inv_gain: np.ndarray,
                 transforms: "Transforms", skip_variance: np.ndarray | None = None):
        self.tables = tables
        self.gain = np.asarray(gain, np.float32)
        self.inv_gain = np.asarray(inv_gain, np.float32)
        self.transforms = transforms
        self.levels = len(tables)
        self.skip_variance = (np.zeros(self.levels, np.float32) if skip_variance is None
                              else np.asarray(skip_variance, np.float32))
        if self.gain.shape != (self.levels, tables[0].channels) or self.inv_gain.shape != self.gain.shape:
            raise ValueError(f"gains {self.gain.shape}/{self.inv_gain.shape} do not match "
                             f"{self.levels} levels of {tables[0].channels} channels")

    @property
    def channels(self) -> int:
        """M, the latent channels per component."""
        return int(self.gain.shape[1])

    def coded(self, a: AnalyzedTile, lat: int) -> np.ndarray:
        """bool[C]: components whose variance makes their latents worth coding at latent level ``lat``."""
        return a.variance > self.skip_variance[lat]

    def synthesize(self, y_hat: np.ndarray, present: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """``y_hat: float32[P, M, h, w]`` of components ``present: int[P]`` -> float32[C, H, W] (absent: 0)."""
        c, h, w = shape
        z = np.zeros((c, h, w), np.float32)
        for i in range(0, len(present), 4):  # bounded memory for many-band tiles
            x = self.transforms.synthesis(np.ascontiguousarray(y_hat[i:i + 4]))
            z[present[i:i + 4]] = x[:, 0, :h, :w]
        return z


def scene_range(a: AnalyzedTile) -> bool:
    """Whether ``a``'s band ranges are bit for bit its scene's, so that a v6 tile refers to them instead of
    sending them (the scene sends them once, in its metadata)."""
    return a.scene is not None and np.array_equal(a.spectral.lo.view(np.uint32), a.scene.lo.view(np.uint32)) and \
        np.array_equal(a.spectral.hi.view(np.uint32), a.scene.hi.view(np.uint32))


def tile_header(a: AnalyzedTile, model_id: bytes, level: int, version: int, latent: int = 0,
                residual: int = bitstream.RESIDUAL_NONE, step: int | None = None,
                level_matrices: tuple | None = None) -> bitstream.TileHeader:
    """The header of ``a`` coded at ``level`` in format ``version`` (band fill travels in the formats with coded
    masks; those with scene ranges refer to the scene's band ranges where they are the tile's; ``level_matrices``
    the residual's level rotations, v11)."""
    fmt = bitstream.FORMATS[version]
    return bitstream.TileHeader(model_id=model_id[:bitstream.MODEL_ID_BYTES], level=level, dtype=a.dtype,
                                bands=a.shape[0], height=a.shape[1], width=a.shape[2], lo=a.spectral.lo,
                                hi=a.spectral.hi, mean=a.spectral.mean, matrix=a.spectral.matrix, version=version,
                                latent=latent, residual=residual,
                                band_fill=a.band_fill if fmt.coded_mask else None,
                                scene_range=fmt.scene_range and scene_range(a),
                                step=step if fmt.step_code and residual else None,
                                level_matrices=level_matrices if fmt.level_rotations else None)


def decode_stream(data: bytes, rows: np.ndarray, t: EntropyTables, what: str) -> np.ndarray:
    """Decode ``len(rows)`` symbols of one range-coder stream; an empty stream is right exactly when no symbol is
    expected. Any damage is a :class:`CorruptTileError` naming ``what``."""
    if not len(rows):
        if data:
            raise CorruptTileError(f"{what}: {len(data)} bytes where no symbol is coded; the tile is corrupt")
        return np.zeros(0, np.int32)
    try:
        return rangecoder.decode(data, rows, t.cdf, t.cdf_length, t.offset, t.precision)
    except rangecoder.CorruptStreamError as e:
        raise CorruptTileError(f"entropy-coded {what}: {e}") from e


def to_pixels(z: np.ndarray, header: bitstream.TileHeader) -> np.ndarray:
    """``z: float32[C, H, W]`` decoded components of a learned tile -> its pixels in ``header.dtype`` (the inverse
    spectral transform of the header's ranges, means and rotation, then :func:`to_dtype`)."""
    st = SpectralTransform(lo=header.lo, hi=header.hi, mean=header.mean, matrix=header.matrix)
    return to_dtype(st.inverse(z), header.dtype, header.lo, header.hi)


def to_dtype(rec: np.ndarray, dtype: np.dtype, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """float ``rec[C, H, W]`` -> ``dtype``, clipped to the tile's own band range (never overshoot), integers rounded."""
    rec = np.clip(rec, lo[:, None, None], hi[:, None, None])
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(rec), info.min, info.max).astype(dtype)
    return rec.astype(dtype)
