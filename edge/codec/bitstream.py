"""The tile bitstream, format versions 1 to 6: the one module that owns its bytes (docs/bitstream.md).

All integers big-endian. Layout::

    u8   version            1 (factorised bundles), 2, 3, 5 or 6 (adaptive bundles)
    4B   model id           first 4 bytes of the bundle's SHA-256 model id
    u8   level
    u8   dtype code         see DTYPES
    u8   bands C            1..32
    u16  height H, u16 width W
    u8   flags              bit0: valid mask present; bit1: rotation matrix present (else identity)
    (flags bit2, v3/v5/v6: per-band fill masks follow the mask)
    (flags bit3, v6: no band ranges here, the scene's apply: SceneSide, from the scene metadata)
    v2+: u8 latent, u8 residual   the latent level coded and the residual's kind: 0 none, 1 pixel blocks,
                                  2 (v3, v5) CDF 9/7 wavelet subbands (cvae.edge.codec.wavelet)
    C x (f32 lo, f32 hi)    band value range, native units (not with flag bit3)
    C x f16 mean            band mean after normalisation
    C*C x i8 matrix         rotation rows * 127 (only with flag bit1)
    ceil(C/8) B present     bit k (MSB first) set when component k is coded
    v1: [payload]           varint length, then one range-coder stream holding every present component
                            in order (only when at least one component is present)
    v2+: side, main         each a varint length (0: empty) then a range-coder stream: ``side`` holds the
                            scale indexes (cvae.edge.codec.adaptive), ``main`` the symbols they select
    v5, v6: coefs           varint length (0: no residual), the residual's context-coded coefficients
                            (cvae.edge.codec.coefs); side and main then hold the latents only
    [mask]                  only with flag bit0. v1, v2: varint length, zlib stream of np.packbits(valid);
                            v3, v5, v6: two varint-prefixed range-coder streams of row transitions (cvae.edge.codec.mask)

Version 4 (error-bounded predictive tiles, :mod:`cvae.edge.codec.predictive`) keeps the fixed fields and then has
``C x (varint E, zigzag varint lo, varint hi - lo, u8 (ky-1)<<4 | kx-1, u8 oy<<4 | ox)``, one varint-prefixed coder
stream, and v3's masks.

A decoder must consume the whole tile; anything left over or missing raises :class:`CorruptTileError`.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from cvae.edge.codec import mask as _mask
from cvae.edge.errors import CorruptTileError

__all__ = ["VERSION", "VERSION_ADAPTIVE", "VERSION_WAVELET", "VERSION_PREDICTIVE", "VERSION_CONTEXT", "VERSION_SCENE",
           "CONTEXT_VERSIONS", "CODED_MASK_VERSIONS", "SceneSide", "PREDICTIVE_LIMIT", "ADAPTIVE_VERSIONS", "VERSIONS", "RESIDUAL_NONE",
           "RESIDUAL_PIXELS", "RESIDUAL_WAVELET", "TileHeader", "pack_tile", "unpack_tile", "header_size", "DTYPES", "MAX_BANDS",
           "MODEL_ID_BYTES", "MAX_EDGE", "peek_shape", "varint_size", "max_binary_decisions"]

VERSION = 1            # factorised entropy model
VERSION_ADAPTIVE = 2   # explicitly transmitted scale indexes (adaptive bundles)
VERSION_WAVELET = 3    # v2's layout; the residual may also be wavelet subbands (what adaptive bundles write now)
VERSION_PREDICTIVE = 4  # error-bounded predictive coding of the samples themselves (any bundle)
VERSION_CONTEXT = 5    # v3's layout with the residual's coefficients context-coded
VERSION_SCENE = 6      # v5's layout; the band ranges may be the scene's, sent once in its metadata (written now)
ADAPTIVE_VERSIONS = (VERSION_ADAPTIVE, VERSION_WAVELET, VERSION_CONTEXT, VERSION_SCENE)
VERSIONS = (VERSION, VERSION_ADAPTIVE, VERSION_WAVELET, VERSION_PREDICTIVE, VERSION_CONTEXT, VERSION_SCENE)
#: versions whose residual coefficients are a third, context-coded stream (cvae.edge.codec.coefs)
CONTEXT_VERSIONS = (VERSION_CONTEXT, VERSION_SCENE)
#: versions whose masks are transition-coded and which may carry per-band fill masks
CODED_MASK_VERSIONS = (VERSION_WAVELET, VERSION_PREDICTIVE, VERSION_CONTEXT, VERSION_SCENE)
#: a v4 band's range and error bound stay within +-2^33 (uint32 and int32 samples fit; products stay in int64)
PREDICTIVE_LIMIT = 1 << 33
#: residual kinds (v2+ header byte): none, 32 x 32 pixel blocks, wavelet subbands in 16 x 16 blocks (v3)
RESIDUAL_NONE, RESIDUAL_PIXELS, RESIDUAL_WAVELET = 0, 1, 2
_MAX_RESIDUAL = {VERSION_ADAPTIVE: RESIDUAL_PIXELS, VERSION_WAVELET: RESIDUAL_WAVELET, VERSION_CONTEXT: RESIDUAL_WAVELET,
                 VERSION_SCENE: RESIDUAL_WAVELET}
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
    latent: int = 0         # v2+: latent level the latents were coded at
    residual: int = RESIDUAL_NONE  # v2+: the residual's kind (RESIDUAL_*); 0: no residual
    band_fill: np.ndarray | None = None  # v3, v4, v5: bool[C, H, W] samples of valid pixels that hold the fill value
    max_error: np.ndarray | None = None  # v4: int64[C] bound on |decoded - original| per band (0: lossless)
    replication: np.ndarray | None = None  # v4: uint8[C, 4] ky, kx, oy, ox of each band's replicated blocks
    palette: tuple | None = None  # v4: per band None, or int64[K] the values a lossless band uses (coded as ranks)
    scene_range: bool = False   # v6: lo, hi are the scene's (SceneSide), not sent in the tile


def peek_shape(data: bytes) -> tuple[int, int, int] | None:
    """``(C, H, W)`` a tile declares, from its fixed header alone (``None`` when too short): lets a decoder refuse a
    tile that does not fit its place before allocating anything for it."""
    if len(data) < _FIXED.size:
        return None
    _, _, _, _, c, h, w, _ = _FIXED.unpack(data[:_FIXED.size])
    return c, h, w


def header_size(bands: int, has_mask: bool, version: int = VERSION, scene_range: bool = False) -> int:
    """Bytes of the header before the payloads (the rotation matrix counted; the band ranges unless they are
    the scene's)."""
    extra = 2 if version in ADAPTIVE_VERSIONS else 0
    return _FIXED.size + extra + (2 if scene_range else 10) * bands + bands * bands + (bands + 7) // 8 + \
        (1 if has_mask else 0)


def pack_tile(h: TileHeader, present: np.ndarray, payload: bytes | tuple[bytes, bytes] | None,
              valid: np.ndarray | None) -> bytes:
    """``present: bool[C]``. Version 1: ``payload`` bytes, required exactly when some component is present.
    Versions 2 and 3: ``payload = (side, main)``, either may be empty; version 5: ``(side, main, coefs)``."""
    c = h.bands
    identity = np.array_equal(h.matrix, (np.eye(c) * 127).astype(np.int8))
    band_fill = h.band_fill if h.band_fill is not None and np.any(h.band_fill) else None
    if band_fill is not None and h.version not in CODED_MASK_VERSIONS:
        raise ValueError("pack_tile: per-band fill masks need tile format version 3, 4 or 5")
    if h.scene_range and h.version != VERSION_SCENE:
        raise ValueError("pack_tile: only tile format version 6 refers to the scene's band ranges")
    flags = (_F_MASK if valid is not None else 0) | (0 if identity else _F_MATRIX) | \
        (_F_BAND_FILL if band_fill is not None else 0) | (_F_SCENE_RANGE if h.scene_range else 0)
    if h.version not in VERSIONS:
        raise ValueError(f"pack_tile: unknown tile format version {h.version}")
    out = bytearray(_FIXED.pack(h.version, h.model_id, h.level, DTYPES.index(np.dtype(h.dtype)), c,
                                h.height, h.width, flags))
    if h.version == VERSION_PREDICTIVE:
        return _pack_v4(out, h, payload, valid, band_fill)
    if h.version in ADAPTIVE_VERSIONS:
        if not 0 <= int(h.residual) <= _MAX_RESIDUAL[h.version] or \
                (h.version in CONTEXT_VERSIONS and int(h.residual) == RESIDUAL_PIXELS):
            raise ValueError(f"pack_tile: residual kind {int(h.residual)} does not exist in format version {h.version}")
        out += bytes([h.latent, int(h.residual)])
    if not h.scene_range:
        out += np.stack([h.lo, h.hi], axis=1).astype(">f4").tobytes()
    out += h.mean.astype(">f2").tobytes()
    if not identity:
        out += h.matrix.astype(np.int8).tobytes()
    present = np.asarray(present, bool)
    if h.version in ADAPTIVE_VERSIONS:
        streams = 3 if h.version in CONTEXT_VERSIONS else 2
        if present.shape != (c,) or not isinstance(payload, tuple) or len(payload) != streams:
            raise ValueError("pack_tile: a version 2 or 3 tile takes payload=(side, main), a version 5 or 6 tile "
                             "(side, main, coefs), and present bool[C]")
        out += np.packbits(present).tobytes()
        for stream in payload:
            out += _varint(len(stream)) + bytes(stream)
    else:
        if present.shape != (c,) or (payload is None) == bool(present.any()):
            raise ValueError("pack_tile: give a payload exactly when some component is present")
        out += np.packbits(present).tobytes()
        if payload is not None:
            out += _varint(len(payload)) + payload
    if valid is not None and h.version in CODED_MASK_VERSIONS:  # v4 returned above
        out += _coded_masks(valid, None)
    elif valid is not None:
        z = zlib.compress(np.packbits(valid).tobytes(), 9)
        out += _varint(len(z)) + z
    return bytes(out + _coded_masks(None, band_fill))


def _coded_masks(valid: np.ndarray | None, band_fill: np.ndarray | None) -> bytes:
    """v3/v4/v5/v6: the valid mask, then each band's fill mask, each as two varint-prefixed transition streams."""
    out = bytearray()
    for m in ([valid] if valid is not None else []) + (list(band_fill) if band_fill is not None else []):
        for stream in _mask.encode_mask(m):
            out += _varint(len(stream)) + stream
    return bytes(out)


def _pack_v4(out: bytearray, h: TileHeader, payload: bytes, valid: np.ndarray | None,
             band_fill: np.ndarray | None) -> bytes:
    e = np.asarray(h.max_error, np.int64)
    lo, hi = np.asarray(h.lo, np.float64), np.asarray(h.hi, np.float64)
    if e.shape != (h.bands,) or lo.shape != (h.bands,) or hi.shape != (h.bands,) or not isinstance(payload, bytes):
        raise ValueError("pack_tile: a version 4 tile takes max_error, lo, hi of shape [C] and payload bytes")
    if (lo != np.round(lo)).any() or (hi < lo).any() or (np.abs(lo) > PREDICTIVE_LIMIT).any() or \
            (np.abs(hi) > PREDICTIVE_LIMIT).any() or (e < 0).any() or (e > PREDICTIVE_LIMIT).any():
        raise ValueError("pack_tile: version 4 ranges must be ordered integers and bounds in 0..2^33")
    rep = np.asarray(h.replication if h.replication is not None else np.tile([1, 1, 0, 0], (h.bands, 1)), np.int64)
    if rep.shape != (h.bands, 4) or (rep[:, :2] < 1).any() or (rep[:, :2] > 16).any() or (rep[:, 2:] < 0).any() or \
            (rep[:, 2:] >= rep[:, :2]).any():
        raise ValueError("pack_tile: version 4 replication must be [C, 4] of ky, kx in 1..16 and offsets below them")
    palette = h.palette if h.palette is not None else (None,) * h.bands
    for eb, lb, hb, (ky, kx, oy, ox), pal in zip(e.tolist(), lo.astype(np.int64).tolist(),
                                                 hi.astype(np.int64).tolist(), rep.tolist(), palette):
        out += _varint(eb) + _varint(2 * lb if lb >= 0 else -2 * lb - 1) + _varint(hb - lb)
        out += bytes([(ky - 1) << 4 | (kx - 1), oy << 4 | ox])
        out += _pack_palette(pal, lb, hb, eb)
    out += _varint(len(payload)) + payload
    return bytes(out + _coded_masks(valid, band_fill))


def unpack_tile(data: bytes, scene: SceneSide | None = None
                ) -> tuple[TileHeader, np.ndarray, bytes | tuple[bytes, bytes] | None, np.ndarray | None]:
    """Parse a tile; raises :class:`CorruptTileError` on anything malformed. The payload is ``bytes | None``
    for version 1, ``(side, main)`` for versions 2 and 3 and ``(side, main, coefs)`` for versions 5 and 6.
    ``scene``: the scene's band ranges (from its metadata), which a v6 tile may refer to."""
    r = _Reader(bytes(data))
    version, model_id, level, dcode, c, height, width, flags = r.unpack(_FIXED)
    if version not in VERSIONS:
        raise CorruptTileError(f"tile format version {version} is not supported (this decoder reads "
                               f"{', '.join(map(str, VERSIONS))})")
    if dcode >= len(DTYPES):
        raise CorruptTileError(f"unknown dtype code {dcode}")
    if not 1 <= c <= MAX_BANDS or not 0 < height <= MAX_EDGE or not 0 < width <= MAX_EDGE:
        raise CorruptTileError(f"bad tile shape bands={c} height={height} width={width}")
    known = _F_MASK | _F_MATRIX | _F_BAND_FILL | (_F_SCENE_RANGE if version == VERSION_SCENE else 0)
    if flags & ~known or (flags & _F_BAND_FILL and version not in CODED_MASK_VERSIONS) \
            or (flags & _F_MATRIX and version == VERSION_PREDICTIVE):
        raise CorruptTileError(f"unknown flag bits {flags:#x} for tile format version {version}")
    if flags & _F_SCENE_RANGE and (scene is None or len(scene.lo) != c):
        raise CorruptTileError("the tile uses the scene's band ranges, which its scene metadata carries: decode it "
                               "with that metadata (the ground decoder does; the tile alone cannot be decoded)")
    if version == VERSION_PREDICTIVE:
        return _unpack_v4(r, model_id, level, DTYPES[dcode], c, height, width, flags)
    latent, residual = 0, 0
    if version in ADAPTIVE_VERSIONS:
        latent, residual = r.take(2)
        if residual > _MAX_RESIDUAL[version] or (version in CONTEXT_VERSIONS and residual == RESIDUAL_PIXELS):
            raise CorruptTileError(f"residual kind {residual} does not exist in tile format version {version} "
                                   f"({'0 or 2' if version in CONTEXT_VERSIONS else f'0..{_MAX_RESIDUAL[version]}'})")
    if flags & _F_SCENE_RANGE:
        lohi = np.stack([scene.lo, scene.hi], axis=1).astype(np.float32)
    else:
        lohi = np.frombuffer(r.take(8 * c), ">f4").astype(np.float32).reshape(c, 2)
    mean = np.frombuffer(r.take(2 * c), ">f2").astype(np.float32)
    if not (np.isfinite(lohi).all() and np.isfinite(mean).all()) or (lohi[:, 1] < lohi[:, 0]).any():
        raise CorruptTileError("band ranges or means are not finite or not ordered")
    if flags & _F_MATRIX:
        matrix = np.frombuffer(r.take(c * c), np.int8).reshape(c, c).copy()
        if abs(np.linalg.det(matrix.astype(np.float64) / 127)) < 0.25:
            raise CorruptTileError("rotation matrix is singular")
    else:
        matrix = (np.eye(c) * 127).astype(np.int8)
    bits = np.unpackbits(np.frombuffer(r.take((c + 7) // 8), np.uint8))
    if bits[c:].any():
        raise CorruptTileError("padding bits of the component map are set")
    present = bits[:c].astype(bool)
    if version in ADAPTIVE_VERSIONS:
        payload = tuple(r.take(r.varint()) for _ in range(3 if version in CONTEXT_VERSIONS else 2))
    else:
        payload = r.take(r.varint()) if present.any() else None
    valid = None
    if flags & _F_MASK and version in CODED_MASK_VERSIONS:  # v4 returned above
        valid = _mask.decode_mask(r.take(r.varint()), r.take(r.varint()), height, width)
    elif flags & _F_MASK:
        try:
            raw = zlib.decompressobj().decompress(r.take(r.varint()), (height * width + 7) // 8 + 1)
        except zlib.error as e:
            raise CorruptTileError(f"valid mask does not decompress: {e}") from e
        if len(raw) != (height * width + 7) // 8:
            raise CorruptTileError("valid mask has the wrong size")
        valid = np.unpackbits(np.frombuffer(raw, np.uint8))[:height * width].reshape(height, width).astype(bool)
    band_fill = _band_fill(r, flags, c, height, width)
    _check_consumed(r)
    header = TileHeader(model_id=model_id, level=level, dtype=DTYPES[dcode], bands=c, height=height, width=width,
                        lo=lohi[:, 0].copy(), hi=lohi[:, 1].copy(), mean=mean, matrix=matrix, version=version,
                        latent=latent, residual=int(residual), band_fill=band_fill,
                        scene_range=bool(flags & _F_SCENE_RANGE))
    return header, present, payload, valid


def _band_fill(r: "_Reader", flags: int, c: int, height: int, width: int) -> np.ndarray | None:
    if not flags & _F_BAND_FILL:
        return None
    return np.stack([_mask.decode_mask(r.take(r.varint()), r.take(r.varint()), height, width) for _ in range(c)])


def _check_consumed(r: "_Reader") -> None:
    if r.pos != len(r.data):
        raise CorruptTileError(f"{len(r.data) - r.pos} bytes left over after the tile; the tile is corrupt")


def _unpack_v4(r: "_Reader", model_id: bytes, level: int, dtype: np.dtype, c: int, height: int, width: int,
               flags: int):
    e, lo, hi = np.zeros(c, np.int64), np.zeros(c, np.float64), np.zeros(c, np.float64)
    rep = np.zeros((c, 4), np.uint8)
    palette: list = []
    for b in range(c):
        e[b] = r.varint(limit=PREDICTIVE_LIMIT)
        z = r.varint(limit=2 * PREDICTIVE_LIMIT)
        lo[b] = z // 2 if z % 2 == 0 else -(z + 1) // 2
        hi[b] = lo[b] + r.varint(limit=2 * PREDICTIVE_LIMIT)
        k, o = r.take(2)
        rep[b] = (k >> 4) + 1, (k & 15) + 1, o >> 4, o & 15
        if rep[b, 2] >= rep[b, 0] or rep[b, 3] >= rep[b, 1]:
            raise CorruptTileError(f"band {b}: replication offsets {rep[b, 2:].tolist()} not below the block "
                                   f"{rep[b, :2].tolist()}; the tile is corrupt")
        palette.append(_unpack_palette(r, int(lo[b]), int(hi[b]), int(e[b])))
    if (np.abs(lo) > PREDICTIVE_LIMIT).any() or (np.abs(hi) > PREDICTIVE_LIMIT).any():
        raise CorruptTileError("version 4 band range beyond +-2^33; the tile is corrupt")
    payload = r.take(r.varint())
    valid = _mask.decode_mask(r.take(r.varint()), r.take(r.varint()), height, width) if flags & _F_MASK else None
    band_fill = _band_fill(r, flags, c, height, width)
    _check_consumed(r)
    header = TileHeader(model_id=model_id, level=level, dtype=dtype, bands=c, height=height, width=width, lo=lo,
                        hi=hi, mean=np.zeros(c, np.float32), matrix=(np.eye(c) * 127).astype(np.int8),
                        version=VERSION_PREDICTIVE, band_fill=band_fill, max_error=e, replication=rep,
                        palette=tuple(palette))
    return header, np.ones(c, bool), payload, valid


#: largest value range a v4 palette may span (its bitmap: 128 KiB before zlib)
PALETTE_SPAN = 1 << 20


def _pack_palette(pal, lo: int, hi: int, e: int) -> bytes:
    """v4 per band: 0, or 1 + LEB128 length + zlib of the packed bitmap of the values ``lo .. hi`` the band uses."""
    if pal is None:
        return b"\0"
    pal = np.asarray(pal, np.int64)
    if e != 0 or hi - lo + 1 > PALETTE_SPAN or len(pal) == 0 or pal[0] != lo or pal[-1] != hi or \
            (np.diff(pal) <= 0).any():
        raise ValueError("pack_tile: a palette is the sorted values of a lossless band, from lo to hi, within 2^20")
    bits = np.zeros(hi - lo + 1, bool)
    bits[pal - lo] = True
    z = zlib.compress(np.packbits(bits).tobytes(), 9)
    return b"\1" + _varint(len(z)) + z


def _unpack_palette(r: "_Reader", lo: int, hi: int, e: int) -> np.ndarray | None:
    kind = r.take(1)[0]
    if kind == 0:
        return None
    span = hi - lo + 1
    if kind != 1 or e != 0 or span > PALETTE_SPAN:
        raise CorruptTileError(f"palette kind {kind} with bound {e} over {span} values; the tile is corrupt")
    try:
        raw = zlib.decompressobj().decompress(r.take(r.varint()), (span + 7) // 8 + 1)
    except zlib.error as ex:
        raise CorruptTileError(f"palette does not inflate: {ex}") from ex
    if len(raw) != (span + 7) // 8:
        raise CorruptTileError("palette bitmap has the wrong size")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))
    if bits[span:].any() or not bits[0] or not bits[span - 1]:
        raise CorruptTileError("palette bitmap padding set, or lo / hi unused")
    return lo + np.flatnonzero(bits[:span]).astype(np.int64)


def varint_size(n: int) -> int:
    """Bytes of the unsigned LEB128 length prefix of ``n`` (what a stream's length costs in the tile)."""
    return len(_varint(n))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CorruptTileError(f"tile truncated: needs {n} bytes at offset {self.pos}, has {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, s: struct.Struct) -> tuple:
        return s.unpack(self.take(s.size))

    def varint(self, limit: int | None = None) -> int:
        """An unsigned LEB128 integer of at most 5 bytes; with ``limit``, of at most ``limit`` (else corrupt)."""
        n, shift = 0, 0
        longest = 35 if limit is None else max(35, limit.bit_length() + 7)
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if limit is not None and n > limit:
                    raise CorruptTileError(f"varint {n} exceeds {limit}; the tile is corrupt")
                return n
            if shift >= longest:
                raise CorruptTileError(f"varint longer than {longest // 7} bytes")
