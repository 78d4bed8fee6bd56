"""Frozen entropy tables: the only entropy model the edge and the ground use.

One :class:`EntropyTables` per rate level. Row ``c`` models latent channel ``c``: the integers
``offset[c] .. offset[c] + cdf_length[c] - 3`` are coded with the table, anything else through the escape
symbol (``cdf_length[c] - 2``) and the range coder's bypass path (``docs/range_coder.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["EntropyTables", "quantize_pmf", "PRECISION"]

PRECISION = 16


@dataclass(frozen=True)
class EntropyTables:
    """cdf: int32[C, L]; cdf_length: int32[C]; offset: int32[C]; precision: bits of the CDF total."""

    cdf: np.ndarray
    cdf_length: np.ndarray
    offset: np.ndarray
    precision: int = PRECISION

    def __post_init__(self) -> None:
        c = self.cdf.shape[0]
        if self.cdf.ndim != 2 or self.cdf_length.shape != (c,) or self.offset.shape != (c,):
            raise ValueError(f"EntropyTables: shapes cdf {self.cdf.shape}, cdf_length {self.cdf_length.shape}, "
                             f"offset {self.offset.shape} do not agree; expected [C, L], [C], [C]")

    @property
    def channels(self) -> int:
        return int(self.cdf.shape[0])

    @classmethod
    def from_pmf(cls, pmf: np.ndarray, offset: np.ndarray, support: np.ndarray | None = None,
                 precision: int = PRECISION) -> "EntropyTables":
        """Quantise ``pmf: float[C, K]`` (row ``c`` over integers ``offset[c] + i`` for ``i < support[c]``)."""
        pmf = np.asarray(pmf, np.float64)
        c, k = pmf.shape
        support = np.full(c, k, np.int64) if support is None else np.asarray(support, np.int64)
        length = support + 2  # + escape symbol + the closing total
        cdf = np.zeros((c, int(length.max())), np.int32)
        for i in range(c):
            p = pmf[i, :support[i]]
            tail = max(0.0, 1.0 - float(p.sum()))
            cdf[i, :length[i]] = quantize_pmf(np.append(p, tail), precision)
        return cls(cdf=cdf, cdf_length=length.astype(np.int32), offset=np.asarray(offset, np.int32),
                   precision=precision)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, cdf=self.cdf, cdf_length=self.cdf_length, offset=self.offset,
                 precision=np.int32(self.precision))

    @classmethod
    def from_file(cls, path: str | Path) -> "EntropyTables":
        with np.load(path, allow_pickle=False) as z:
            return cls(cdf=z["cdf"].astype(np.int32), cdf_length=z["cdf_length"].astype(np.int32),
                       offset=z["offset"].astype(np.int32), precision=int(z["precision"]))

    def estimated_bits(self, symbols: np.ndarray, indexes: np.ndarray) -> float:
        """Ideal code length of ``symbols`` under the tables, escapes counted as the escape symbol alone
        (the bypass bits come on top). Used for rate control without coding."""
        v = symbols.astype(np.int64) - self.offset[indexes]
        esc = (v < 0) | (v >= self.cdf_length[indexes] - 2)
        v = np.where(esc, self.cdf_length[indexes] - 2, v)
        freq = self.cdf[indexes, v + 1].astype(np.int64) - self.cdf[indexes, v]
        return float(np.sum(self.precision - np.log2(freq)))


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """float[K] probabilities -> int32[K + 1] CDF from 0 to ``1 << precision``, every symbol >= 1."""
    total = 1 << precision
    k = len(pmf)
    if k > total:
        raise ValueError(f"quantize_pmf: {k} symbols do not fit a {precision}-bit table")
    freq = np.maximum(1, np.round(pmf / max(pmf.sum(), 1e-300) * (total - k)).astype(np.int64) + 0)
    freq = np.maximum(freq, 1)
    diff = total - int(freq.sum())
    # Settle the rounding difference on the largest entries, never taking one below 1.
    order = np.argsort(-freq)
    i = 0
    while diff != 0:
        j = order[i % k]
        step = 1 if diff > 0 else -1
        if freq[j] + step >= 1:
            freq[j] += step
            diff -= step
        i += 1
    return np.concatenate([[0], np.cumsum(freq)]).astype(np.int32)
