"""Scene metadata (packet format version 1, docs/packets.md): what the ground needs to place a scene's tiles.

:class:`SceneMetadata` is the one owner of the metadata's fields: the encoder and the daemon build it, its
:meth:`~SceneMetadata.to_bytes` writes the packet body (:func:`packets.encode_metadata`), and the ground reads it back
with :meth:`~SceneMetadata.from_bytes`, which checks every field against the format before anything is allocated
for the scene (the body is CRC-valid, but could be crafted): a field that fails raises :class:`MetadataError`
naming it, and costs only that scene. Descriptive fields (band descriptions, colour interpretation, tags) that are
malformed are dropped, never fatal. Keys this version does not know are kept (``extra``) and written back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np

from cvae.edge.codec import packets as pk
from cvae.edge.codec.bitstream import DTYPES, MAX_BANDS, MAX_EDGE, PREDICTIVE_LIMIT, SceneSide
from cvae.edge.errors import CodecError

__all__ = ["SceneMetadata", "MetadataError", "MAX_SCENE_SAMPLES", "MODEL_ID_HEX"]

#: the largest scene the format describes (bands x height x width); larger metadata is refused as crafted
MAX_SCENE_SAMPLES = 4_000_000_000
#: hex digits of the bundle's model id the metadata carries (64 bits: ample to tell bundles apart, 48 bytes less per
#: copy than the whole id)
MODEL_ID_HEX = 16
_CARRIED = frozenset(str(d) for d in DTYPES)


class MetadataError(CodecError, ValueError):
    """A metadata body that does not describe a scene this format carries (the message names the field)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _nodata_problem(nodata: Any, dtypes: list[np.dtype]) -> str | None:
    """Why ``nodata`` cannot be a sample value of every dtype in ``dtypes`` (it fills lost tiles and is the
    GeoTIFF's nodata), or None."""
    if nodata is None:
        return None
    if not _is_number(nodata):
        return "nodata is not a number"
    for dt in dtypes:
        if dt.kind in "ui":
            info = np.iinfo(dt)
            if not (math.isfinite(nodata) and float(nodata).is_integer() and info.min <= nodata <= info.max):
                return f"nodata {nodata!r:.40} is not a {dt} value ({info.min}..{info.max})"
        elif math.isfinite(nodata) and abs(nodata) > float(np.finfo(dt).max):
            return f"nodata {nodata!r:.40} is out of {dt}'s range"
    return None


def _strings(v: Any, n: int, limit: int) -> tuple[str, ...] | None:
    """``v`` as ``n`` strings (each cut to ``limit`` characters), or None when it is not a list of n strings."""
    if isinstance(v, list) and len(v) == n and all(isinstance(s, str) for s in v):
        return tuple(s[:limit] for s in v)
    return None


@dataclass(frozen=True)
class SceneMetadata:
    """One scene's metadata: shape ``bands x height x width`` of ``dtype``, cut into ``tile``-pixel tiles.

    ``nodata``: the fill value (int or float, as the input declared it; None: none); ``crs``: ``"EPSG:n"`` or WKT;
    ``transform``: GDAL/rasterio's six affine coefficients; ``model_id``: the first 16 hex digits of the bundle's
    id; ``source_dtype``: the input's dtype when it was cast losslessly to ``dtype``; ``band_range``: the scene's
    band ranges (format v6 tiles refer to them; :meth:`side`); the rest is descriptive."""

    name: str | None
    width: int
    height: int
    bands: int
    dtype: str
    tile: int
    model_id: str
    nodata: int | float | None = None
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    source_dtype: str | None = None
    band_range: str | None = None
    descriptions: tuple[str, ...] | None = None
    colorinterp: tuple[str, ...] | None = None
    tags: Mapping[str, str] | None = None
    dropped: tuple[str, ...] | None = None
    max_error: tuple[int, ...] | None = None
    psnr_target: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know, written back as-is
    v: int = 1

    # -- the wire --------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON object of the packet body (``None`` optional fields left out, as the encoder always did)."""
        out: dict = {"v": self.v, "name": self.name, "width": self.width, "height": self.height,
                     "bands": self.bands, "dtype": self.dtype, "nodata": self.nodata, "crs": self.crs,
                     "transform": list(self.transform) if self.transform is not None else None, "tile": self.tile,
                     "model_id": self.model_id}
        for key in ("source_dtype", "band_range", "psnr_target"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in ("descriptions", "colorinterp", "dropped", "max_error"):
            if getattr(self, key) is not None:
                out[key] = list(getattr(self, key))
        if self.tags is not None:
            out["tags"] = dict(self.tags)
        return {**out, **self.extra}

    def to_bytes(self) -> bytes:
        return pk.encode_metadata(self.to_dict())

    @classmethod
    def from_bytes(cls, body: bytes) -> "SceneMetadata":
        """The metadata of a reassembled packet body; :class:`packets.PacketFormatError` when it does not parse,
        :class:`MetadataError` when a field is not one the format allows."""
        return cls.from_dict(pk.decode_metadata(body))

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> "SceneMetadata":
        """Every field checked for type and range (docs/packets.md, "What a reader checks"); raises
        :class:`MetadataError` naming the first that fails."""
        try:
            return cls._checked(meta)
        except MetadataError:
            raise
        except (TypeError, ValueError, OverflowError) as e:
            raise MetadataError(f"malformed ({str(e)[:200]})") from e

    @classmethod
    def _checked(cls, meta: Mapping[str, Any]) -> "SceneMetadata":
        dims = [meta.get(k) for k in ("bands", "height", "width", "tile")]
        if not all(_is_int(v) and v > 0 for v in dims):  # type: ignore[operator]  # v is an int there
            raise MetadataError("bands, height, width and tile must be positive integers")
        c, h, w, tile = (int(v) for v in dims)  # type: ignore[arg-type]  # checked just above
        if c > MAX_BANDS or tile > MAX_EDGE or tile % 16:
            raise MetadataError(f"bands {c} or tile {tile} out of range")
        if c * h * w > MAX_SCENE_SAMPLES:
            raise MetadataError(f"{c} x {h} x {w} samples exceed {MAX_SCENE_SAMPLES:,}")
        version = meta.get("v", 1)
        if version != 1 or not _is_int(version):
            raise MetadataError(f"metadata version {str(version)[:20]} is not 1")
        dtype, source = meta.get("dtype"), meta.get("source_dtype")
        if str(dtype) not in _CARRIED:
            raise MetadataError(f"dtype {str(dtype)[:40]!r} is not one the format carries")
        if source is not None and str(source) not in _CARRIED:
            raise MetadataError("source_dtype is not one the format carries")
        nodata = meta.get("nodata")
        problem = _nodata_problem(nodata, [np.dtype(str(dtype))] + ([np.dtype(str(source))] if source else []))
        if problem:
            raise MetadataError(problem)
        tr = meta.get("transform")
        if tr is not None and not (isinstance(tr, list) and len(tr) == 6 and
                                   all(_is_number(v) and math.isfinite(v) for v in tr)):
            raise MetadataError("transform is not six finite numbers")
        crs = meta.get("crs")
        if crs is not None and (not isinstance(crs, str) or len(crs) > 20000):
            raise MetadataError("crs is not a short string")
        model_id = meta.get("model_id")
        if not isinstance(model_id, str):
            raise MetadataError("model_id is not a string")
        band_range = meta.get("band_range")
        SceneSide.from_metadata({"band_range": band_range}, c)  # ValueError when malformed
        name = meta.get("name")
        tags = meta.get("tags")
        max_error = meta.get("max_error")
        psnr = meta.get("psnr_target")
        dropped = meta.get("dropped")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            name=name if isinstance(name, str) or name is None else str(name)[:200], width=w, height=h, bands=c, dtype=str(dtype),
            tile=tile, model_id=model_id, nodata=nodata, crs=crs, transform=tuple(tr) if tr is not None else None,
            source_dtype=str(source) if source is not None else None, band_range=band_range,
            descriptions=_strings(meta.get("descriptions"), c, 1000),
            colorinterp=_strings(meta.get("colorinterp"), c, 40),
            tags={str(k)[:200]: str(v)[:2000] for k, v in list(tags.items())[:200]} if isinstance(tags, dict)
            else None,
            dropped=tuple(str(d)[:40] for d in dropped[:8]) if isinstance(dropped, list) else None,
            max_error=tuple(max_error) if isinstance(max_error, list) and len(max_error) == c and all(
                _is_int(e) and 0 <= e <= PREDICTIVE_LIMIT for e in max_error) else None,
            psnr_target=psnr if _is_number(psnr) and math.isfinite(psnr) else None,  # type: ignore[arg-type]
            extra={k: v for k, v in meta.items() if k not in known}, v=version)

    # -- what the ground derives ----------------------------------------------------------------------------
    @property
    def samples(self) -> int:
        return self.bands * self.height * self.width

    @property
    def grid(self) -> tuple[int, int]:
        """Tile rows and columns."""
        return -(-self.height // self.tile), -(-self.width // self.tile)

    def side(self) -> SceneSide | None:
        """The band ranges v6 tiles refer to (None when the metadata carries none)."""
        return SceneSide.from_metadata({"band_range": self.band_range}, self.bands)
