"""Context-adaptive coding of a tile's quantised wavelet residual (tile formats v5 to v7 and v10, the ``coefs``
stream): the layout, in C (``_coefs.c``; v10's coder ``_coefmix.h``).

Why: format v3 codes each 16 x 16 block of a subband with one sent scale index (a Laplacian table per block).
Neighbouring coefficients, the parent one level coarser and the same coefficient of the previous KLT component
say much more about a coefficient's magnitude than its block's index does. Here every coefficient is coded with
adaptive binary models chosen by those integers (``_coefs.c``), adapted as the tile is coded: no side information,
nothing learned, bit-exact by construction (integers only).

Layout of one component's subbands (from :func:`cvae.edge.codec.wavelet.subband_shapes`): coarsest first, ``LL_J``,
then ``HL_J, LH_J, HH_J``, ..., ``HL_1, LH_1, HH_1``; each in raster order; components one after another. A
subband's model class is 0 for ``LL``, ``min(j, 3)`` for the details of level ``j`` (1 = finest); its parent is the
same orientation one level coarser (none at level ``J``). docs/bitstream.md ("Version 5") specifies it.

Two coders read and write that layout, chosen by the caller (``mixed``, from the tile format's ``mixed_coefs``):
version 5's (``mixed=False``: v5, v6, v7) and version 10's (``mixed=True``), which codes the zero flags, the first
bits of the magnitude class and the bit below the leading one with a logistic mixture of five adaptive models under
different contexts (docs/bitstream.md, "Version 10"): 1.3-2.2% fewer bytes at the median of the validation scenes,
about twice the coder's time.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from cvae.edge.codec import _coefs, bitstream, wavelet
from cvae.edge.errors import CorruptTileError

__all__ = ["encode", "encode_rdo", "decode", "decode_values", "flatten", "split", "coding_order", "LIMIT"]

#: largest |coefficient| coded (the C coder's range is int32; a level's step keeps them far below); the decoder
#: refuses a larger one (_coefs.c CF_LIMIT)
LIMIT = 2**30
_STATUS = {1: "stream truncated", 2: "bytes left over after the last coefficient", 3: "coefficient out of range"}


@functools.lru_cache(maxsize=32)
def coding_order(h: int, w: int) -> tuple[tuple[int, ...], np.ndarray]:
    """``(order, geometry)`` for an ``h x w`` component: ``order[i]`` is the index in :func:`wavelet.forward`'s
    list of the i-th coded subband; ``geometry``: int32[n, 4] rows (height, width, model class, parent)."""
    levels = wavelet.levels_for(h, w)
    shapes = wavelet.subband_shapes(h, w, levels)
    order = [len(shapes) - 1]  # LL_J
    where = {}
    rows = [(*shapes[-1], 0, -1)]
    for j in range(levels, 0, -1):  # coarsest details first
        for o in range(3):
            i = 3 * (j - 1) + o
            where[(j, o)] = len(order)
            order.append(i)
            rows.append((*shapes[i], min(j, 3), where[(j + 1, o)] if j < levels else -1))
    geom = np.array(rows, np.int32).reshape(-1, 4)
    geom.setflags(write=False)
    return tuple(order), geom


def flatten(components: list[list[np.ndarray]], h: int, w: int, dtype=np.int32) -> np.ndarray:
    """Per component its subbands in :func:`wavelet.forward`'s order -> ``dtype[N]`` (default int32) in the coding
    order."""
    order, _ = coding_order(h, w)
    return np.concatenate([np.asarray(bands[i], dtype).reshape(-1) for bands in components for i in order])


def _coded_values(components: list[list[np.ndarray]], h: int, w: int) -> np.ndarray:
    """:func:`flatten`, refusing coefficients beyond :data:`LIMIT` before anything is coded (a new array)."""
    q = flatten(components, h, w)
    if len(q) and int(np.abs(q.astype(np.int64)).max()) > LIMIT:
        raise ValueError(f"a residual coefficient exceeds +-{LIMIT}: the level's step is too fine for this tile")
    return q


def split(values: np.ndarray, comps: int, h: int, w: int) -> list[list[np.ndarray]]:
    """The inverse of :func:`flatten`: per component its subbands (views of ``values``) in ``forward``'s order."""
    order, geom = coding_order(h, w)
    out: list[list[np.ndarray]] = []
    pos = 0
    for _ in range(comps):
        bands: list[np.ndarray] = [values[:0]] * len(order)  # every slot filled below (order is a permutation)
        for (hh, ww, _, _), i in zip(geom, order):
            bands[i] = values[pos:pos + hh * ww].reshape(hh, ww)
            pos += hh * ww
        out.append(bands)
    return out


def _coder(mixed: bool) -> tuple[Callable[..., bytes], Callable[..., tuple[int, Any]]]:
    """(encode, decode) of ``_coefs``: version 10's mixing coder or version 5's."""
    return (_coefs.encode_mixed, _coefs.decode_mixed) if mixed else (_coefs.encode, _coefs.decode)


def encode_rdo(components: list[list[np.ndarray]], scaled: list[list[np.ndarray]], h: int, w: int,
               lam: float, mixed: bool = False) -> tuple[bytes, list[list[np.ndarray]]]:
    """The ``coefs`` stream of ``components`` (per component its int32 subbands, :func:`wavelet.forward`'s order)
    with the encoder's greedy rate-distortion choice (``_coefs.c``): each nonzero coefficient coded as itself or one
    step toward zero, whichever costs less in ``(x - v)^2 + lam * bits`` with ``x`` from ``scaled`` (the subbands over
    the step, same layout) and the bits from the coder's adaptive models as they stand. ``(stream, the coefficients
    coded)``; the stream is a normal stream of its coder (``mixed``: version 10's), :func:`decode` reads it."""
    _, geom = coding_order(h, w)
    q = _coded_values(components, h, w)  # the C coder writes the values it codes into it
    stream = _coder(mixed)[0](q, len(components), geom, flatten(scaled, h, w, np.float64), float(lam))
    return stream, split(q, len(components), h, w)


def encode(components: list[list[np.ndarray]], h: int, w: int, mixed: bool = False) -> bytes:
    """Per component its int32 subbands in :func:`wavelet.forward`'s order -> the residual's ``coefs`` stream (v5 to
    v7; ``mixed``: v10's)."""
    _, geom = coding_order(h, w)
    return _coder(mixed)[0](_coded_values(components, h, w), len(components), geom)


def decode_values(data: bytes, comps: int, h: int, w: int, mixed: bool = False) -> np.ndarray:
    """int32[N]: the stream's coefficients in the coding order (what the decoder parses, before any float); any
    damage is a :class:`CorruptTileError`. ``mixed``: a version 10 stream."""
    _, geom = coding_order(h, w)
    n = comps * int((geom[:, 0].astype(np.int64) * geom[:, 1]).sum())
    if n > bitstream.max_binary_decisions(len(data)):  # every coefficient costs a decision: refused before allocating
        raise CorruptTileError(f"residual coefficients: {len(data)} bytes cannot hold {n} coefficients; the tile is "
                               "corrupt")
    out = np.zeros(n, np.int32)
    status, detail = _coder(mixed)[1](data, comps, geom, out)
    if status:
        raise CorruptTileError(f"residual coefficients: {_STATUS.get(status, f'status {status}')} (at {detail}); "
                               "the tile is corrupt")
    return out


def decode(data: bytes, comps: int, h: int, w: int, mixed: bool = False) -> list[list[np.ndarray]]:
    """The inverse of :func:`encode`: per component its int32 subbands in :func:`wavelet.forward`'s order."""
    return split(decode_values(data, comps, h, w, mixed), comps, h, w)
