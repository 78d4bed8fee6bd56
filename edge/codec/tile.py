"""Coding one tile (all its bands) to bytes and back: the torch-free codec the edge and ground share.

:class:`TileCodec` is a small facade over the *tile kinds*, one module each; it runs what every kind shares and
dispatches the rest through the kinds' protocols (:mod:`~cvae.edge.codec.kinds`), never by naming a kind::

    bands --SpectralTransform--> components z[C, H, W] --pad to 16--> analysis --> y[C, M, h, w]   (analyze)
      --> the bundle's writing kind: symbols, entropy coding, header (encode) --> bytes
    bytes --header version--> the kind that reads it --> pixels                                    (decompress)

Kinds (:data:`KINDS`): learned (:data:`LEARNED_KINDS`) :mod:`~cvae.edge.codec.hybrid` (adaptive bundles: latents
with sent scale indexes plus a wavelet residual, writes tile format v6; its encoder decisions are
:mod:`~cvae.edge.codec.plan`) and :mod:`~cvae.edge.codec.factorized` (format v1, read only), and sample kinds
(:data:`SAMPLE_KINDS`) :mod:`~cvae.edge.codec.predictive` (format v4: error-bounded, lossless at E = 0; no network;
:meth:`TileCodec.compress_bounded`). A bundle writes its levels with the first learned kind it can build, bounded
tiles with the first sample kind, and reads every kind it can build. Which formats a kind reads and writes is in
:data:`cvae.edge.codec.bitstream.FORMATS`. A new kind is one module implementing a protocol and one entry here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cvae.edge.codec import adaptive as am
from cvae.edge.codec import bitstream, levels, stepcode, weighting
from cvae.edge.codec.factorized import FactorizedKind
from cvae.edge.codec.hybrid import HybridKind
from cvae.edge.codec.kinds import LearnedKind, SampleKind, TileKind
from cvae.edge.codec.latents import STRIDE, AnalyzedTile, Ladder, LatentModel, TileCache, to_dtype
from cvae.edge.codec.plan import Plan, Planner, check_mode_search
from cvae.edge.codec.predictive import BoundedTile, PredictiveKind, check_max_error
from cvae.edge.codec.spectral import MATRIX_SCALE, SpectralTransform
from cvae.edge.codec.tables import EntropyTables
from cvae.edge.errors import CorruptTileError, InputError

if TYPE_CHECKING:
    from cvae.edge.runtime.protocol import Transforms

__all__ = ["TileCodec", "TileKind", "LearnedKind", "SampleKind", "KINDS", "LEARNED_KINDS", "SAMPLE_KINDS",
           "AnalyzedTile", "BoundedTile", "DecodedTile", "Ladder", "STRIDE", "to_dtype"]

#: learned kinds, in order of preference: a bundle's levels are written by the first it can build
LEARNED_KINDS: tuple[Any, ...] = (HybridKind, FactorizedKind)
#: sample kinds: a bundle's bounded tiles are written by the first it can build
SAMPLE_KINDS: tuple[Any, ...] = (PredictiveKind,)
#: every tile kind
KINDS = LEARNED_KINDS + SAMPLE_KINDS

if TYPE_CHECKING:  # each kind implements its protocol (checked by mypy, not at run time)
    def _implements(h: HybridKind, f: FactorizedKind, p: PredictiveKind) -> tuple[LearnedKind, LearnedKind, SampleKind]:
        return h, f, p


@dataclass(frozen=True)
class DecodedTile:
    pixels: np.ndarray            # native dtype [C, H, W]; invalid pixels hold 0
    valid: np.ndarray             # bool[H, W]
    level: int
    header: bitstream.TileHeader
    max_error: np.ndarray | None = None  # int64[C]: the bound the tile was coded to (predictive tiles)


class TileCodec:
    """Compress and decompress tiles with frozen tables; ``transforms`` runs the network."""

    def __init__(self, tables: list[EntropyTables], gain: np.ndarray, inv_gain: np.ndarray,
                 transforms: "Transforms", model_id: bytes, skip_variance: np.ndarray | None = None,
                 adaptive: am.AdaptiveModel | None = None, ladder: Ladder | None = None,
                 compatible_ids: tuple[bytes, ...] = (), mode_search: str = "auto"):
        """``adaptive`` (index tables) makes the codec write the hybrid kind's format, v6 (a ladder with residual levels needs
        it); ``ladder`` defaults to the latent levels in order; ``compatible_ids``: model ids of factorised bundles
        with the same networks and tables, whose v1 tiles this codec also decodes."""
        self.latents = LatentModel(tables, gain, inv_gain, transforms, skip_variance)
        ladder = Ladder.latent_only(self.latents.levels) if ladder is None else ladder
        if ladder.residual_levels and adaptive is None:
            raise ValueError("residual levels need the adaptive entropy model")
        if len(ladder.latent) == 0 or ladder.latent.min() < 0 or ladder.latent.max() >= self.latents.levels:
            raise ValueError(f"ladder latent levels {ladder.latent.tolist()} are not all in 0..{self.latents.levels - 1}")
        if adaptive is None and not np.array_equal(ladder.latent, np.arange(self.latents.levels)):
            raise ValueError("a factorised codec's levels are its latent levels in order")
        check_mode_search(mode_search)
        def build(kinds: tuple[Any, ...]) -> list[Any]:
            made = (k.build(self.latents, model_id, adaptive=adaptive, ladder=ladder, mode_search=mode_search)
                    for k in kinds)
            return [k for k in made if k is not None]

        learned: list[LearnedKind] = build(LEARNED_KINDS)
        samples: list[SampleKind] = build(SAMPLE_KINDS)
        self.kinds: list[TileKind] = [*learned, *samples]
        self.writer: LearnedKind = learned[0]
        self.bounded: SampleKind = samples[0]
        self._readers: dict[int, TileKind] = {v: k for k in reversed(self.kinds) for v in k.versions}
        self.model_id = model_id
        self.adaptive = adaptive
        self.ladder = ladder
        self.mode_search = mode_search
        self.levels = self.writer.levels
        self.accepted_ids = {m[:bitstream.MODEL_ID_BYTES] for m in (model_id, *compatible_ids)}

    # the latent model's parts, as attributes (callers read them)
    tables = property(lambda self: self.latents.tables)
    gain = property(lambda self: self.latents.gain)
    inv_gain = property(lambda self: self.latents.inv_gain)
    transforms = property(lambda self: self.latents.transforms)
    skip_variance = property(lambda self: self.latents.skip_variance)
    latent_levels = property(lambda self: self.latents.levels)

    def close(self) -> None:
        """Release the network's runtime (TensorRT engine, CUDA memory, ONNX Runtime sessions) when its transforms
        have a ``close``; the codec's owner calls it on shutdown and after replacing the codec. Idempotent."""
        close = getattr(self.transforms, "close", None)
        if close is not None:
            close()

    @property
    def version(self) -> int:
        """The tile format version this codec writes."""
        return self.writer.version

    @property
    def hybrid(self) -> HybridKind:
        """The writing kind of an adaptive bundle, for tools and tests that inspect its planner and tables."""
        if self.adaptive is None:
            raise InputError("this bundle is factorised: it has no residual levels, modes or plans")
        assert isinstance(self.writer, HybridKind)
        return self.writer

    def latent_level(self, level: int) -> int:
        """The latent level whose gains and tables ``level`` codes its latents with."""
        return self.writer.latent_level(level)

    def has_residual(self, level: int) -> bool:
        return bool(self.ladder.step[level] > 0)

    def modes(self, level: int) -> list[tuple[int, bool]]:
        """The ``(latent level, residual)`` choices a tile of ``level`` may make (the writing kind's)."""
        return self.writer.modes(level)

    def searched_modes(self, level: int) -> list[tuple[int, bool]]:
        """The modes with latents the encoder tries (:meth:`Planner.searched_modes`)."""
        return self.writer.searched_modes(level)

    # -- encoder -------------------------------------------------------------------------------------
    def analyze(self, tile: np.ndarray, valid: np.ndarray | None = None,
                band_range: tuple[np.ndarray, np.ndarray] | None = None, rotate: bool = True,
                band_fill: np.ndarray | None = None, scene: bitstream.SceneSide | None = None,
                matrix: np.ndarray | None = None) -> AnalyzedTile:
        """The spectral transform of ``tile: native[C, H, W]``, the analysis network to run once when a level
        needs the latents (:class:`AnalyzedTile`); ``valid: bool[H, W]`` marks data pixels.
        ``rotate=False`` codes the normalised bands themselves (no KLT), for comparison. ``band_fill:
        bool[C, H, W]``: samples of valid pixels that hold the scene's nodata value in their band only; format
        the formats with coded masks send them so the ground restores the exact value (adaptive bundles; ignored by
        factorised ones).
        ``scene``: the scene's band ranges as its metadata sends them (:class:`bitstream.SceneSide`); they
        normalise the tile (unless ``band_range`` is given), and a v6 tile whose ranges they are refers to them.
        ``matrix``: an int8 rotation used instead of the tile's own KLT (for comparison)."""
        tile = _check_tile(tile)
        c, h, w = tile.shape
        if scene is not None:
            if len(scene.lo) != c:
                raise InputError(f"scene side information has {len(scene.lo)} bands, the tile {c}")
            band_range = (scene.lo, scene.hi) if band_range is None else band_range
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != (h, w):
                raise InputError(f"valid mask shape {valid.shape} != tile shape {(h, w)}; pass a bool[H, W] mask")
            if valid.all():
                valid = None
        st = SpectralTransform.fit(tile, valid, band_range=band_range, rotate=rotate, matrix=matrix)
        z = st.forward(tile)
        if valid is not None:
            z[:, ~valid] = 0.0  # fill with the band mean: nodata costs no bits
            variance = z[:, valid].var(axis=1) if valid.any() else np.zeros(c, np.float32)
        else:
            variance = z.reshape(c, -1).var(axis=1)
        hp, wp = -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE
        if band_fill is not None:
            band_fill = np.asarray(band_fill, bool)
            if band_fill.shape != tile.shape:
                raise InputError(f"band_fill shape {band_fill.shape} != tile shape {tile.shape}")
            band_fill = band_fill if band_fill.any() and self.adaptive is not None else None
        return AnalyzedTile(shape=(c, h, w), dtype=tile.dtype, spectral=st, variance=variance.astype(np.float32),
                            analysis=self._analysis(z), valid=valid, z=z if self.ladder.residual_levels else None,
                            band_fill=band_fill, scene=scene,
                            latent_shape=(self.latents.channels, hp // STRIDE, wp // STRIDE))

    def _analysis(self, z: np.ndarray):
        """The analysis network for components ``z: float32[C, H, W]``, run for the components a level first needs
        (padded to a multiple of :data:`STRIDE` by repeating the edge)."""
        c, h, w = z.shape
        hp, wp = -(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE

        def analysis(components: np.ndarray) -> np.ndarray:
            zp = np.pad(z[components], ((0, 0), (0, hp - h), (0, wp - w)), mode="edge")[:, None]
            return self.transforms.analysis(np.ascontiguousarray(zp, np.float32))
        return analysis

    def weighted(self, a: AnalyzedTile, level: int | None, step: float | None = None,
                 details: bool = True, rotations: bool = True) -> AnalyzedTile:
        """``a`` with its rotation chosen and its components weighted for the residual step ``step`` (default:
        ``a.step``, else ``level``'s preset, or a latent-only level's coarse step): the tile's own KLT or the
        principal axes of its detail coefficients (``details``; :func:`weighting.detail_rotation`), whichever
        :func:`weighting.rate_proxy` says codes cheaper at the step, then that rotation's rows scaled so that the
        bands' mean PSNR, not their summed error, is what one step serves (:mod:`cvae.edge.codec.weighting`); marked final
        (:attr:`AnalyzedTile.weighted`), so a tile already weighted comes back as it is. Tiles of one band, of
        factorised bundles, or analysed without a residual are not weighted. :meth:`plan`,
        :meth:`estimate_bytes` and :meth:`encode` take a tile as it is: the encoder weighs each tile for the level it
        codes (:func:`cvae.edge.encoder.prepare_tile`, :meth:`compress`); a search over steps weighs once and keeps
        that tile (``--psnr`` at its first estimate, ``--tile-bytes`` at the level found)."""
        if a.weighted or self.adaptive is None or a.z is None or a.shape[0] < 2 or not callable(a.analysis):
            return a
        if step is None:
            step = a.step
        if step is None and level is not None:
            model = self.hybrid.model
            step = model.preset_step(level) if self.has_residual(level) else model.coarse_step(level)
        if step is None:
            return a
        step = stepcode.on_grid(step)
        cached = a.cache.weighted
        if cached is not None and cached[0] == (step, details, rotations):
            return cached[1]
        st = a.spectral
        subbands = Planner.z_subbands(a)
        samples = weighting.error_samples(subbands)
        rotation = st.matrix
        alt = weighting.detail_rotation(subbands, st.matrix) if details else None
        if alt is not None:  # the details' own axes where they code cheaper at this step
            t = (alt.astype(np.float64) / MATRIX_SCALE) @ np.linalg.inv(st.matrix.astype(np.float64) / MATRIX_SCALE)
            moved = (t @ samples.astype(np.float64)).astype(np.float32)
            if weighting.rate_proxy(moved, step) < weighting.rate_proxy(samples, step):
                rotation, samples = alt, moved
        share = max(float(a.valid.mean()), 1e-3) if a.valid is not None else 1.0
        scale = (st.hi.astype(np.float64) - st.lo.astype(np.float64)) if np.dtype(a.dtype).kind in "iu" else None
        cov = weighting.error_covariance(samples, step, share)
        err = weighting.band_errors(cov, rotation, scale)
        m = weighting.weighted_matrix(rotation, weighting.row_scales(cov, err, rotation, st.hi > st.lo))
        if m is None and rotation is not st.matrix:
            m = rotation
        out = dataclasses.replace(a, weighted=True) if m is None else self._reweigh(a, m)
        lm = levels.rotations(Planner.z_subbands(out), out.spectral.matrix, step, share, scale, st.hi > st.lo) \
            if rotations else None
        if lm is not None:  # detail levels coded along their own axes where that pays (tile format v11)
            out = dataclasses.replace(out, level_matrices=lm)
        a.cache.weighted = ((step, details, rotations), out)
        return out

    def _reweigh(self, a: AnalyzedTile, matrix: np.ndarray) -> AnalyzedTile:
        """``a`` rotated by ``matrix`` (int8[C, C]) instead of its own: the components made from ``a``'s (a linear
        map, so nodata pixels stay 0), their variances and analysis network; a fresh cache."""
        assert a.z is not None
        c, h, w = a.shape
        old = a.spectral.matrix.astype(np.float64) / MATRIX_SCALE
        t = (matrix.astype(np.float64) / MATRIX_SCALE) @ np.linalg.inv(old)
        z = (t.astype(np.float32) @ a.z.reshape(c, -1)).reshape(c, h, w)
        flat = z[:, a.valid] if a.valid is not None else z.reshape(c, -1)
        variance = flat.var(axis=1) if flat.shape[1] else np.zeros(c, np.float32)
        return dataclasses.replace(a, spectral=dataclasses.replace(a.spectral, matrix=matrix), z=z,
                                   variance=variance.astype(np.float32), analysis=self._analysis(z), weighted=True,
                                   cache=TileCache())

    def symbols(self, a: AnalyzedTile, level: int) -> np.ndarray:
        """int32[C, M, h, w]: the quantised latents at ``level``'s ladder latent level of the components coded there
        (:meth:`coded_components`); the others are not analysed for it and read 0."""
        self._check_level(level)
        return self.writer.symbols(a, self.latent_level(level))

    def coded_components(self, a: AnalyzedTile, level: int) -> np.ndarray:
        """bool[C]: components whose latents are worth coding at ``level``."""
        return self.latents.coded(a, self.latent_level(level))

    def plan(self, a: AnalyzedTile, level: int, step: float | None = None) -> Plan:
        """What the encoder codes for ``a`` at ``level`` (adaptive bundles): mode, indexes, symbols, bits; on a
        residual level the residual quantised with ``step`` (default: the level's preset)."""
        self._check_level(level)
        return self.hybrid.plan(a, level, step) if step is not None else self.writer.plan(a, level)

    def estimate_bytes(self, a: AnalyzedTile, level: int, step: float | None = None) -> float:
        """Expected size at ``level`` (and residual ``step``) from the tables, without coding (for rate control)."""
        self._check_level(level)
        return self.hybrid.estimate_bytes(a, level, step) if step is not None else self.writer.estimate_bytes(a, level)

    def encode(self, a: AnalyzedTile | BoundedTile, level: int, step: float | None = None) -> bytes:
        """An analysed tile at ``level`` (on a residual level, with the residual quantised with ``step``: any
        step between the ladder's, :meth:`level_for_step` names its level; default the tile's own
        :attr:`AnalyzedTile.step`, else the level's preset), or a
        bounded tile (:meth:`bound`) to its error bound (level 0)."""
        if isinstance(a, AnalyzedTile):
            self._check_level(level)
            step = a.step if step is None else step
            if step is not None:
                return self.hybrid.encode(a, level, step)
            return self.writer.encode(a, level)
        return self.bounded.encode(a, level)

    def level_for_step(self, step: float) -> int:
        """The residual level whose preset step is nearest ``step`` (the level a tile coded at ``step`` names)."""
        return self.hybrid.level_for_step(step)

    def compress(self, tile: np.ndarray, level: int, valid: np.ndarray | None = None,
                 band_range: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
        """``tile: native[C, H, W]`` (uint8/uint16/int16/int32/float) -> bytes at rate ``level``."""
        return self.encode(self.weighted(self.analyze(tile, valid, band_range), level), level)

    def bound(self, tile: np.ndarray, max_error, valid: np.ndarray | None = None,
              band_fill: np.ndarray | None = None) -> BoundedTile:
        """``tile: native[C, H, W]`` checked for coding to ``max_error`` (one value or one per band, digital
        numbers; 0 = lossless): :meth:`encode` it at level 0. No network runs."""
        tile = _check_tile(tile)
        if valid is not None:
            valid = np.asarray(valid, bool)
            if valid.shape != tile.shape[1:]:
                raise InputError(f"valid mask shape {valid.shape} != tile shape {tile.shape[1:]}; pass bool[H, W]")
        if band_fill is not None and np.shape(band_fill) != tile.shape:
            raise InputError(f"band_fill shape {np.shape(band_fill)} != tile shape {tile.shape}")
        return BoundedTile(tile, check_max_error(max_error, tile.shape[0]), valid, band_fill)

    def compress_bounded(self, tile: np.ndarray, max_error, valid: np.ndarray | None = None,
                         band_fill: np.ndarray | None = None) -> bytes:
        """``tile: native[C, H, W]`` -> tile format v4 bytes decoding to within ``max_error`` of every valid
        sample; nodata and band-fill samples come back exactly."""
        return self.encode(self.bound(tile, max_error, valid, band_fill), 0)

    # -- decoder -------------------------------------------------------------------------------------
    def parse_integers(self, data: bytes, scene: bitstream.SceneSide | None = None) -> tuple[np.ndarray, np.ndarray]:
        """An adaptive tile's integers, ``(indexes int32[G], values int32[N])``: everything the decoder derives
        from the stream before any network runs (identical on every platform by construction)."""
        u = bitstream.unpack_tile(data, scene)
        kind = self._reader(u.header)
        if kind is not self.writer:
            raise CorruptTileError(f"parse_integers reads the tiles this bundle writes (format v{self.version}) "
                                   f"and its older formats; this tile is format v{u.header.version}")
        return self.writer.integers(u)

    def decompress(self, data: bytes, scene: bitstream.SceneSide | None = None) -> DecodedTile:
        """A tile's bytes -> pixels; ``scene``: its scene's side information (from the scene metadata), which
        a v6 tile may refer to (:class:`bitstream.SceneSide`)."""
        u = bitstream.unpack_tile(data, scene)
        header = u.header
        pixels = self._reader(header).decode_pixels(u)
        valid = u.valid
        if valid is None:
            valid = np.ones((header.height, header.width), bool)
        else:
            pixels[:, ~valid] = 0
        return DecodedTile(pixels=pixels, valid=valid, level=header.level, header=header, max_error=header.max_error)

    def _reader(self, header: bitstream.TileHeader) -> TileKind:
        """The kind that reads ``header``'s tile with this bundle, or a :class:`CorruptTileError` saying why none."""
        if header.model_id not in self.accepted_ids:
            raise CorruptTileError(f"tile was coded with model {header.model_id.hex()}, this bundle is "
                                   f"{self.model_id[:bitstream.MODEL_ID_BYTES].hex()}; decode with the matching bundle")
        kind = self._readers.get(header.version)
        if kind is None:
            raise CorruptTileError(f"tile uses tile format v{header.version} (kind '{header.format.kind}': the "
                                   "adaptive entropy model) but this bundle is factorised; decode with the adaptive "
                                   "bundle it was coded with")
        if header.level >= kind.levels:
            raise CorruptTileError(f"tile level {header.level} does not exist in this bundle ({kind.levels} levels "
                                   f"for tile format v{header.version})")
        return kind

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.levels:
            raise InputError(f"level {level} is out of range; this bundle has levels 0..{self.levels - 1}")


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
