"""A scene's metadata packet, built from its raster: :class:`cvae.edge.codec.metadata.SceneMetadata` with the
georeferencing, shape, dtype, nodata, tiling and model id, and the descriptive fields that fit.

The encoder checks what it builds with the ground's own checks, so a scene the ground would refuse (a nodata
value its dtype cannot hold, say) is refused here, before its first packet, with the fix.
"""
from __future__ import annotations

import json
from dataclasses import fields
from typing import Any, Mapping

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import bitstream
from cvae.edge.codec.metadata import MODEL_ID_HEX, MetadataError, SceneMetadata
from cvae.edge.errors import InputError
from cvae.edge.io.raster import Raster

__all__ = ["scene_metadata", "descriptive_metadata", "META_EXTRA_LIMIT"]

#: bytes of JSON the descriptive metadata may add to each metadata copy; beyond, tags and then descriptions
#: are dropped (and the scene's metadata says which were dropped)
META_EXTRA_LIMIT = 2048
_FIELDS = frozenset(f.name for f in fields(SceneMetadata)) - {"extra"}


def descriptive_metadata(raster: Raster) -> dict:
    """Band descriptions, colour interpretation and dataset tags, within META_EXTRA_LIMIT bytes of JSON."""
    extra: dict[str, Any] = {}
    if any(raster.descriptions):
        extra["descriptions"] = [d or "" for d in raster.descriptions]
    if raster.colorinterp and any(ci not in ("undefined", "gray") for ci in raster.colorinterp):
        extra["colorinterp"] = list(raster.colorinterp)
    # AREA_OR_POINT=Area is what GDAL writes anyway: not worth bytes in every metadata copy
    tags = {str(k): str(v) for k, v in (raster.tags or {}).items() if not (k == "AREA_OR_POINT" and v == "Area")}
    if tags:
        extra["tags"] = tags
    dropped = []
    for key in ("tags", "descriptions", "colorinterp"):
        if len(json.dumps(extra, separators=(",", ":"))) <= META_EXTRA_LIMIT:
            break
        if key in extra:
            del extra[key]
            dropped.append(key)
    if dropped:
        extra["dropped"] = dropped
    return extra


def scene_metadata(raster: Raster, name: str, bundle: Bundle, tile_size: int, source_dtype=None,
                   side: bitstream.SceneSide | None = None, extra: Mapping[str, Any] | None = None) -> SceneMetadata:
    """The scene's metadata: georeferencing, shape, dtype (and the input's, when cast losslessly for coding),
    nodata, tiling, model id, band descriptions, colour interpretation, tags; ``side``: the band ranges its tiles
    refer to (format v6); ``extra``: the quality target's keys and the daemon's ``scene_id``. Raises
    :class:`InputError` for a scene the ground would refuse, naming the field and the fix."""
    prof = raster.profile
    crs = prof.get("crs")
    crs_out = None
    if crs is not None:
        epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
        crs_out = f"EPSG:{epsg}" if epsg else crs.to_wkt()
    transform = prof.get("transform")
    c, h, w = raster.pixels.shape
    keys: dict[str, Any] = {**descriptive_metadata(raster), **(side.to_metadata() if side is not None else {}),
                            **(extra or {})}
    if source_dtype is not None and np.dtype(source_dtype) != raster.pixels.dtype:
        keys["source_dtype"] = str(np.dtype(source_dtype))
    typed = {k: tuple(v) if isinstance(v, list) else v for k, v in keys.items() if k in _FIELDS}
    meta = SceneMetadata(name=name, width=w, height=h, bands=c, dtype=str(raster.pixels.dtype),
                         tile=tile_size, model_id=bundle.model_id[:MODEL_ID_HEX], nodata=raster.nodata,
                         crs=crs_out, transform=tuple(transform)[:6] if transform is not None else None,
                         extra={k: v for k, v in keys.items() if k not in _FIELDS},
                         **typed)  # type: ignore[arg-type]  # the optional fields, as the encoder's callers give them
    try:
        SceneMetadata.from_dict(meta.to_dict())  # what the ground will check, checked before the first packet
    except MetadataError as e:
        raise InputError(f"{name}: the scene's metadata would be refused by the ground: {e}; fix the input "
                         "(e.g. a nodata value its data type can hold: gdal_edit.py -a_nodata VALUE)") from None
    return meta
