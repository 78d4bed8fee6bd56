"""The tile bitstream, format versions 1 to 11: the one module that owns its bytes (docs/bitstream.md).

This release writes v10 and v11 (lossy tiles of adaptive bundles; v11 where detail levels have their own rotation), v9 (error-bounded tiles, any bundle; v4 and v8 read only)
and v1 (factorised bundles, none shipped); v2, v3, v5, v6 and v7 are read only. What each version holds is one
:class:`TileFormat` in :data:`FORMATS`: the byte layer, the tile kinds and the decoder ask it
(``header.format.coded_mask``, ``.coefs_stream``, ``.mixed_coefs``, ...) instead of testing version numbers. All
integers big-endian. Layout::

    u8   version            FORMATS' keys
    4B   model id           first 4 bytes of the bundle's SHA-256 model id
    u8   level
    u8   dtype code         see DTYPES
    u8   bands C            1..32
    u16  height H, u16 width W
    u8   flags              bit0: valid mask present; bit1: rotation matrix present (else identity; not v4);
                            bit2 (coded_mask formats): per-band fill masks follow the mask; bit3 (scene_range
                            formats, v6): no band ranges here, the scene's apply (SceneSide, from its metadata)
    mode_bytes formats: u8 latent, u8 residual   the latent level coded and the residual's kind (residual_kinds:
                            0 none, 1 pixel blocks (v2), 2 CDF 9/7 wavelet subbands, cvae.edge.codec.wavelet)
    step_code formats (v7, v10), with a residual: u16 step code   the residual's step (cvae.edge.codec.stepcode)
    C x (f32 lo, f32 hi)    band value range, native units (not with flag bit3)
    C x f16 mean            band mean after normalisation
    C*C x i8 matrix         rotation rows * 127 (only with flag bit1)
    level_rotations (v11):  u8 bit j-1 set: wavelet detail level j has its own rotation, then C*C x i8 for each
    ceil(C/8) B present     bit k (MSB first) set when component k is coded
    streams = 1 (v1): [payload]   varint length, then one range-coder stream holding every present component in
                            order (only when at least one component is present)
    streams >= 2: side, main      each a varint length (0: empty) then a range-coder stream: ``side`` holds the
                            scale indexes (cvae.edge.codec.adaptive), ``main`` the symbols they select
    streams = 3: coefs      varint length (0: no residual), the residual's context-coded coefficients
                            (cvae.edge.codec.coefs; mixed_coefs formats, v10: the mixing coder); side and main then
                            hold the latents only
    [mask]                  only with flag bit0. coded_mask: two varint-prefixed range-coder streams of row
                            transitions (cvae.edge.codec.mask); otherwise (v1, v2) varint length, zlib of packbits

Version 4 (``samples``: error-bounded predictive tiles, :mod:`cvae.edge.codec.predictive`) keeps the fixed fields
and then has ``C x (varint E, zigzag varint lo, varint hi - lo, u8 (ky-1)<<4 | kx-1, u8 oy<<4 | ox, palette)``, one
varint-prefixed coder stream, and the coded masks. Version 8 (``band_modes``) is v4 with one more byte per band, after
its palette: the band's predictor (0 v4's, 1 the replication mode).

A decoder must consume the whole tile; anything left over or missing raises :class:`CorruptTileError`.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple, Sequence, Union

import numpy as np

from cvae.edge.codec import bitstream_v4 as _v4
from cvae.edge.codec import bitstream_v11 as _levels
from cvae.edge.codec import mask as _mask
from cvae.edge.codec.bitstream_v4 import PALETTE_SPAN, PREDICTIVE_LIMIT
from cvae.edge.codec.wire import Reader as _Reader
from cvae.edge.codec.wire import varint as _varint
from cvae.edge.codec.wire import varint_size
from cvae.edge.errors import CorruptTileError

__all__ = ["VERSION", "VERSION_ADAPTIVE", "VERSION_WAVELET", "VERSION_PREDICTIVE", "VERSION_CONTEXT", "VERSION_SCENE",
           "VERSION_STEP", "CODED_MASK_VERSIONS", "TileFormat", "FORMATS", "tile_format", "formats_of", "Payload",
           "Streams", "UnpackedTile", "SceneSide", "PREDICTIVE_LIMIT", "VERSIONS", "RESIDUAL_NONE",
           "RESIDUAL_PIXELS", "RESIDUAL_WAVELET", "TileHeader", "pack_tile", "unpack_tile", "header_size", "DTYPES", "MAX_BANDS",
           "MODEL_ID_BYTES", "MAX_EDGE", "peek_shape", "varint_size", "max_binary_decisions", "PALETTE_SPAN",
           "VERSION_REPLICATION", "VERSION_FEEDBACK", "VERSION_MIXING", "VERSION_LEVELS"]

VERSION = 1            # factorised entropy model
VERSION_ADAPTIVE = 2   # explicitly transmitted scale indexes (adaptive bundles)
VERSION_WAVELET = 3    # v2's layout; the residual may also be wavelet subbands
VERSION_PREDICTIVE = 4  # error-bounded predictive coding of the samples themselves (any bundle; written)
VERSION_CONTEXT = 5    # v3's layout with the residual's coefficients context-coded
VERSION_SCENE = 6      # v5's layout; the band ranges may be the scene's, sent once in its metadata
VERSION_STEP = 7       # v6's layout; a tile with a residual carries its quantisation step
VERSION_REPLICATION = 8  # v4's layout with a predictor per band: v4's or the replication mode
VERSION_FEEDBACK = 9   # v8's layout; mode 0 also reads its own errors and 11 bands, 22 contexts, warm-up (written)
VERSION_MIXING = 10    # v7's layout; the residual's coefficients coded by the mixing coder (written)
VERSION_LEVELS = 11    # v10's layout; detail levels of the residual may have their own rotation (written)
#: residual kinds (v2+ header byte): none, 32 x 32 pixel blocks (v2), wavelet subbands in 16 x 16 blocks (v3+)
RESIDUAL_NONE, RESIDUAL_PIXELS, RESIDUAL_WAVELET = 0, 1, 2


@dataclass(frozen=True)
class TileFormat:
    """What one tile format version holds: the one place that maps a version number to behaviour. The byte
    layer, the kinds and the decoder ask a tile's format (``FORMATS[header.version]``, ``header.format``) these
    questions instead of testing version numbers."""

    version: int
    kind: str                       # the tile kind that reads it: 'factorized', 'hybrid' or 'predictive'
    written: bool                   # the one its kind writes (the shipped bundle: v6 lossy, v4 bounded; v1 only a
    #                                 factorised bundle, none shipped); the others are read only
    streams: int                    # 1: one payload; 2: side, main (scale indexes, symbols); 3: side, main, coefs
    residual_kinds: tuple[int, ...] = (RESIDUAL_NONE,)  # residual kinds the header's residual byte may name
    coded_mask: bool = False        # transition-coded masks and per-band fill masks (else a zlib mask, no fill)
    scene_range: bool = False       # may refer to the scene's band ranges (flag bit 3)
    matrix: bool = True             # may carry a rotation matrix (flag bit 1)
    samples: bool = False           # codes the samples themselves (v4's per-band fields), no latents
    band_modes: bool = False        # samples formats: a predictor mode byte per band (v8, v9)
    feedback: bool = False          # samples formats: v9's coder (error feedback, 11 bands, 22 contexts, warm-up)
    step_code: bool = False         # a tile with a residual carries its step (u16 after the mode bytes)
    mixed_coefs: bool = False       # coefs_stream formats: version 10's mixing coder codes the coefficients (else v5's)
    level_rotations: bool = False   # a byte of detail levels with their own rotation, and those rotations (v11)

    @property
    def mode_bytes(self) -> bool:
        """Whether the latent level and residual kind bytes follow the fixed header (the adaptive formats)."""
        return self.streams >= 2

    @property
    def coefs_stream(self) -> bool:
        """Whether the residual is its own context-coded stream (:mod:`cvae.edge.codec.coefs`), not groups of the
        side and main streams (the legacy layout of v2 and v3, :mod:`cvae.edge.codec.residual`)."""
        return self.streams == 3


#: every tile format this release reads, by version
FORMATS: dict[int, TileFormat] = {f.version: f for f in (
    TileFormat(VERSION, "factorized", written=True, streams=1),
    TileFormat(VERSION_ADAPTIVE, "hybrid", written=False, streams=2, residual_kinds=(RESIDUAL_NONE, RESIDUAL_PIXELS)),
    TileFormat(VERSION_WAVELET, "hybrid", written=False, streams=2,  # v2's pixel blocks kept: v3 readers took them
               residual_kinds=(RESIDUAL_NONE, RESIDUAL_PIXELS, RESIDUAL_WAVELET), coded_mask=True),
    TileFormat(VERSION_PREDICTIVE, "predictive", written=False, streams=1, coded_mask=True, matrix=False,
               samples=True),
    TileFormat(VERSION_CONTEXT, "hybrid", written=False, streams=3, residual_kinds=(RESIDUAL_NONE, RESIDUAL_WAVELET),
               coded_mask=True),
    TileFormat(VERSION_SCENE, "hybrid", written=False, streams=3, residual_kinds=(RESIDUAL_NONE, RESIDUAL_WAVELET),
               coded_mask=True, scene_range=True),
    TileFormat(VERSION_STEP, "hybrid", written=False, streams=3, residual_kinds=(RESIDUAL_NONE, RESIDUAL_WAVELET),
               coded_mask=True, scene_range=True, step_code=True),
    TileFormat(VERSION_REPLICATION, "predictive", written=False, streams=1, coded_mask=True, matrix=False,
               samples=True, band_modes=True),
    TileFormat(VERSION_FEEDBACK, "predictive", written=True, streams=1, coded_mask=True, matrix=False,
               samples=True, band_modes=True, feedback=True),
    TileFormat(VERSION_MIXING, "hybrid", written=True, streams=3, residual_kinds=(RESIDUAL_NONE, RESIDUAL_WAVELET),
               coded_mask=True, scene_range=True, step_code=True, mixed_coefs=True),
    TileFormat(VERSION_LEVELS, "hybrid", written=True, streams=3, residual_kinds=(RESIDUAL_NONE, RESIDUAL_WAVELET),
               coded_mask=True, scene_range=True, step_code=True, mixed_coefs=True, level_rotations=True),
)}
VERSIONS = tuple(FORMATS)
#: the formats with transition-coded masks and per-band fill (a view of FORMATS)
CODED_MASK_VERSIONS = tuple(v for v, f in FORMATS.items() if f.coded_mask)


def tile_format(version: int) -> TileFormat:
    """The format of ``version``; raises :class:`CorruptTileError` naming the versions this release reads."""
    fmt = FORMATS.get(version)
    if fmt is None:
        raise CorruptTileError(f"tile format version {version} is not supported (this decoder reads "
                               f"{', '.join(map(str, VERSIONS))})")
    return fmt


def formats_of(kind: str) -> tuple[TileFormat, ...]:
    """The formats tile kind ``kind`` reads, and the one it writes among them (``written``)."""
    return tuple(f for f in FORMATS.values() if f.kind == kind)


MODEL_ID_BYTES = 4
MAX_BANDS = 32
MAX_EDGE = 2048  # tiles are cut from scenes; a bigger one is a corrupt header, not a tile
DTYPES = tuple(np.dtype(d) for d in ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"))
_FIXED = struct.Struct(">B4sBBBHHB")
_F_MASK, _F_MATRIX, _F_BAND_FILL, _F_SCENE_RANGE = 1, 2, 4, 8


def max_binary_decisions(nbytes: int) -> int:
    """The most adaptive binary decisions a v4 or v5 coder stream of ``nbytes`` bytes can hold (``_bincoder.h``'s
    ``bin_max_decisions``, which derives it): every coded sample or coefficient costs at least one, so a header that
    declares more than this for its payload is corrupt, refused before the decoder allocates anything."""
    return 5701 * (nbytes + 1)


@dataclass(frozen=True)
class SceneSide:
    """Side information a scene sends once, in its metadata, for every tile that shares it (tile format v6):
    the band ranges, which every lossy tile of a scene is normalised with. A v6 tile whose own ranges are bit
    for bit these omits them (flag bit 3); it then decodes only with them, which the ground has wherever it
    can place the tile at all (the metadata is repeated). (A scene-wide KLT was measured and left out: tiles
    coded with the scene's rotation instead of their own lose more than the matrix bytes above the lowest
    levels: benchmarks/scene_klt.py, results/scene_klt.md.)

    lo, hi: float32[C], ``hi >= lo``, finite."""

    lo: np.ndarray
    hi: np.ndarray

    def to_metadata(self) -> dict:
        """The metadata key (docs/packets.md): ``band_range``, the hex of the C x (f32 lo, f32 hi) big-endian
        bytes a tile header would hold."""
        return {"band_range": np.stack([self.lo, self.hi], axis=1).astype(">f4").tobytes().hex()}

    @classmethod
    def from_metadata(cls, meta: dict, bands: int) -> "SceneSide | None":
        """The scene side information a metadata dict carries (None when it has none); raises ``ValueError``
        when it is malformed: not a string of 16 hex digits per band, ranges not finite or not ordered."""
        rng = meta.get("band_range")
        if rng is None:
            return None
        if not isinstance(rng, str) or len(rng) != 16 * bands:
            raise ValueError(f"band_range: expected {16 * bands} hex digits for {bands} bands")
        try:
            raw = bytes.fromhex(rng)
        except ValueError:
            raise ValueError("band_range: not hex digits") from None
        lohi = np.frombuffer(raw, ">f4").astype(np.float32).reshape(bands, 2)
        if not np.isfinite(lohi).all() or (lohi[:, 1] < lohi[:, 0]).any():
            raise ValueError("band_range: ranges are not finite or not ordered")
        return cls(lohi[:, 0].copy(), lohi[:, 1].copy())


@dataclass(frozen=True)
class TileHeader:
    model_id: bytes
    level: int
    dtype: np.dtype
    bands: int
    height: int
    width: int
    lo: np.ndarray      # float32[C]; v4: float64[C] holding the exact integer range of the tile's coded samples
    hi: np.ndarray      # float32[C]; v4: as lo
    mean: np.ndarray    # float32[C] (float16-exact)
    matrix: np.ndarray  # int8[C, C]
    version: int = VERSION
    latent: int = 0         # mode_bytes formats: latent level the latents were coded at
    residual: int = RESIDUAL_NONE  # mode_bytes formats: the residual's kind (RESIDUAL_*); 0: no residual
    band_fill: np.ndarray | None = None  # coded_mask formats: bool[C, H, W] samples of valid pixels that hold the fill value
    max_error: np.ndarray | None = None  # v4: int64[C] bound on |decoded - original| per band (0: lossless)
    replication: np.ndarray | None = None  # v4: uint8[C, 4] ky, kx, oy, ox of each band's replicated blocks
    palette: tuple | None = None  # v4: per band None, or int64[K] the values a lossless band uses (coded as ranks)
    modes: np.ndarray | None = None  # v8, v9: uint8[C] each band's predictor, 0 v4's, 1 the replication mode (None: 0)
    scene_range: bool = False   # v6+: lo, hi are the scene's (SceneSide), not sent in the tile
    step: int | None = None     # v7, v10 with a residual: the step code (cvae.edge.codec.stepcode); None otherwise
    #: v11: per wavelet detail level j = 1.. (index j - 1) its own int8[C, C] rotation, or None: the tile's matrix
    level_matrices: tuple | None = None

    @property
    def format(self) -> TileFormat:
        """What the tile's format version holds (:data:`FORMATS`)."""
        return FORMATS[self.version]


def peek_shape(data: bytes) -> tuple[int, int, int] | None:
    """``(C, H, W)`` a tile declares, from its fixed header alone (``None`` when too short): lets a decoder refuse a
    tile that does not fit its place before allocating anything for it."""
    if len(data) < _FIXED.size:
        return None
    _, _, _, _, c, h, w, _ = _FIXED.unpack(data[:_FIXED.size])
    return c, h, w


def header_size(bands: int, has_mask: bool, version: int = VERSION, scene_range: bool = False,
                residual: bool = False) -> int:
    """Bytes of the header before the payloads (the rotation matrix counted; the band ranges unless they are
    the scene's; the step code of a v7 or v10 tile with a ``residual``)."""
    fmt = FORMATS[version]
    extra = (2 if fmt.mode_bytes else 0) + (2 if fmt.step_code and residual else 0)
    return _FIXED.size + extra + (2 if scene_range else 10) * bands + bands * bands + (bands + 7) // 8 + \
        (1 if has_mask else 0)


def _listed(versions: Sequence[int]) -> str:
    """'3, 4, 5 or 6'."""
    names = [str(v) for v in versions]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)


#: what pack_tile takes and unpack_tile returns as a tile's coder streams: ``bytes | None`` (v1: only when some
#: component is present; v4: always), ``(side, main)`` (v2, v3) or ``(side, main, coefs)`` (v5+)
Payload = Union[bytes, tuple[bytes, ...], None]


@dataclass(frozen=True)
class Streams:
    """A tile's coder streams by role; empty where its format has none."""

    payload: bytes = b""  # v1: the latents of every present component; v4: the samples
    side: bytes = b""     # v2+: the scale indexes
    main: bytes = b""     # v2+: the symbols they select
    coefs: bytes = b""    # v5+: the residual's context-coded coefficients


class UnpackedTile(NamedTuple):
    """A parsed tile: ``header``, ``present: bool[C]`` (components coded), ``payload`` (as :func:`pack_tile`
    takes it, :data:`Payload`), ``valid: bool[H, W] | None``. :attr:`streams` names the streams by role."""

    header: TileHeader
    present: np.ndarray
    payload: Payload
    valid: np.ndarray | None

    @property
    def streams(self) -> Streams:
        p = self.payload
        if isinstance(p, tuple):
            return Streams(side=p[0], main=p[1], coefs=p[2] if len(p) > 2 else b"")
        return Streams(payload=p or b"")


def pack_tile(h: TileHeader, present: np.ndarray, payload: Payload, valid: np.ndarray | None) -> bytes:
    """``present: bool[C]``. Version 1: ``payload`` bytes, required exactly when some component is present.
    Versions 2 and 3: ``payload = (side, main)``, either may be empty; versions 5-7 and 10: ``(side, main, coefs)``;
    version 4: bytes."""
    c = h.bands
    fmt = FORMATS.get(h.version)
    if fmt is None:
        raise ValueError(f"pack_tile: unknown tile format version {h.version}")
    identity = np.array_equal(h.matrix, (np.eye(c) * 127).astype(np.int8))
    band_fill = h.band_fill if h.band_fill is not None and np.any(h.band_fill) else None
    if band_fill is not None and not fmt.coded_mask:
        raise ValueError("pack_tile: per-band fill masks need tile format version "
                         f"{_listed(CODED_MASK_VERSIONS)}")
    if h.scene_range and not fmt.scene_range:
        raise ValueError("pack_tile: only tile format version "
                         f"{_listed([v for v, f in FORMATS.items() if f.scene_range])} refers to the scene's band ranges")
    flags = (_F_MASK if valid is not None else 0) | (0 if identity else _F_MATRIX) | \
        (_F_BAND_FILL if band_fill is not None else 0) | (_F_SCENE_RANGE if h.scene_range else 0)
    out = bytearray(_FIXED.pack(h.version, h.model_id, h.level, DTYPES.index(np.dtype(h.dtype)), c,
                                h.height, h.width, flags))
    if fmt.samples:
        if not isinstance(payload, bytes):
            raise ValueError(f"pack_tile: a version {h.version} tile takes payload bytes")
        return bytes(out + _v4.pack_fields(h, payload) + _mask.coded_masks(valid, band_fill))
    if fmt.mode_bytes:
        if int(h.residual) not in fmt.residual_kinds:
            raise ValueError(f"pack_tile: residual kind {int(h.residual)} does not exist in format version {h.version}")
        out += bytes([h.latent, int(h.residual)])
        if fmt.step_code and h.residual:
            if h.step is None or not 0 <= h.step <= 0xFFFF:
                raise ValueError(f"pack_tile: a version {h.version} tile with a residual takes its step code (0..65535)")
            out += struct.pack(">H", h.step)
    if not h.scene_range:
        out += np.stack([h.lo, h.hi], axis=1).astype(">f4").tobytes()
    out += h.mean.astype(">f2").tobytes()
    if not identity:
        out += h.matrix.astype(np.int8).tobytes()
    if fmt.level_rotations:
        out += _levels.pack(h.level_matrices, c, h.height, h.width)
    elif h.level_matrices is not None and any(m is not None for m in h.level_matrices):
        raise ValueError(f"pack_tile: a version {h.version} tile has no level rotations")
    present = np.asarray(present, bool)
    if fmt.mode_bytes:
        if present.shape != (c,) or not isinstance(payload, tuple) or len(payload) != fmt.streams:
            raise ValueError(f"pack_tile: a version {h.version} tile takes present bool[C] and payload="
                             f"{'(side, main, coefs)' if fmt.coefs_stream else '(side, main)'}")
        out += np.packbits(present).tobytes()
        for stream in payload:
            out += _varint(len(stream)) + bytes(stream)
    else:
        if present.shape != (c,) or (payload is None) == bool(present.any()) or isinstance(payload, tuple):
            raise ValueError("pack_tile: give a payload exactly when some component is present")
        out += np.packbits(present).tobytes()
        if payload is not None:
            out += _varint(len(payload)) + payload
    if fmt.coded_mask:
        return bytes(out + _mask.coded_masks(valid, band_fill))
    if valid is not None:  # v1, v2: zlib of the packed bits (no fill masks)
        z = zlib.compress(np.packbits(valid).tobytes(), 9)
        out += _varint(len(z)) + z
    return bytes(out)


def unpack_tile(data: bytes, scene: SceneSide | None = None) -> UnpackedTile:
    """Parse a tile; raises :class:`CorruptTileError` on anything malformed. ``scene``: the scene's band ranges
    (from its metadata), which a v6 tile may refer to."""
    r = _Reader(bytes(data))
    version, model_id, level, dcode, c, height, width, flags = r.unpack(_FIXED)
    fmt = tile_format(version)
    if dcode >= len(DTYPES):
        raise CorruptTileError(f"unknown dtype code {dcode}")
    if not 1 <= c <= MAX_BANDS or not 0 < height <= MAX_EDGE or not 0 < width <= MAX_EDGE:
        raise CorruptTileError(f"bad tile shape bands={c} height={height} width={width}")
    known = _F_MASK | (_F_MATRIX if fmt.matrix else 0) | (_F_BAND_FILL if fmt.coded_mask else 0) | \
        (_F_SCENE_RANGE if fmt.scene_range else 0)
    if flags & ~known:
        raise CorruptTileError(f"unknown flag bits {flags:#x} for tile format version {version}")
    if fmt.samples:
        f = _v4.unpack_fields(r, c, fmt.band_modes)
        valid = _mask.read_coded(r, height, width) if flags & _F_MASK else None
        band_fill = (_mask.band_fills(r, c, height, width) if flags & _F_BAND_FILL else None)
        r.check_consumed()
        return UnpackedTile(TileHeader(model_id=model_id, level=level, dtype=DTYPES[dcode], bands=c, height=height,
                                       width=width, lo=f.lo, hi=f.hi, mean=np.zeros(c, np.float32),
                                       matrix=(np.eye(c) * 127).astype(np.int8), version=version,
                                       band_fill=band_fill, max_error=f.max_error, replication=f.replication,
                                       palette=f.palette, modes=f.modes), np.ones(c, bool), f.payload, valid)
    latent, residual, step = 0, 0, None
    if fmt.mode_bytes:
        latent, residual = r.take(2)
        if residual not in fmt.residual_kinds:
            raise CorruptTileError(f"residual kind {residual} does not exist in tile format version {version} "
                                   f"({_listed(fmt.residual_kinds)})")
        if fmt.step_code and residual:
            step = int.from_bytes(r.take(2), "big")  # every code is a step (stepcode)
    if flags & _F_SCENE_RANGE:
        if scene is None or len(scene.lo) != c:
            raise CorruptTileError("the tile uses the scene's band ranges, which its scene metadata carries: decode "
                                   "it with that metadata (the ground decoder does; the tile alone cannot be decoded)")
        lohi = np.stack([scene.lo, scene.hi], axis=1).astype(np.float32)
    else:
        lohi = np.frombuffer(r.take(8 * c), ">f4").astype(np.float32).reshape(c, 2)
    mean = np.frombuffer(r.take(2 * c), ">f2").astype(np.float32)
    if not (np.isfinite(lohi).all() and np.isfinite(mean).all()) or (lohi[:, 1] < lohi[:, 0]).any():
        raise CorruptTileError("band ranges or means are not finite or not ordered")
    if flags & _F_MATRIX:
        matrix = np.frombuffer(r.take(c * c), np.int8).reshape(c, c).copy()
        if abs(np.linalg.det(matrix.astype(np.float64) / 127)) < _levels.MIN_DET:
            raise CorruptTileError("rotation matrix is singular")
    else:
        matrix = (np.eye(c) * 127).astype(np.int8)
    levels = _levels.unpack(r, c, height, width) if fmt.level_rotations else None
    bits = np.unpackbits(np.frombuffer(r.take((c + 7) // 8), np.uint8))
    if bits[c:].any():
        raise CorruptTileError("padding bits of the component map are set")
    present = bits[:c].astype(bool)
    payload: Payload
    if fmt.mode_bytes:
        payload = tuple(r.take(r.varint()) for _ in range(fmt.streams))
    else:
        payload = r.take(r.varint()) if present.any() else None
    valid = None
    if flags & _F_MASK:
        valid = _mask.read_coded(r, height, width) if fmt.coded_mask else _mask.zlib_mask(r.take(r.varint()), height, width)
    band_fill = (_mask.band_fills(r, c, height, width) if flags & _F_BAND_FILL else None)
    r.check_consumed()
    header = TileHeader(model_id=model_id, level=level, dtype=DTYPES[dcode], bands=c, height=height, width=width,
                        lo=lohi[:, 0].copy(), hi=lohi[:, 1].copy(), mean=mean, matrix=matrix, version=version,
                        latent=latent, residual=int(residual), band_fill=band_fill,
                        scene_range=bool(flags & _F_SCENE_RANGE), step=step, level_matrices=levels)
    return UnpackedTile(header, present, payload, valid)
