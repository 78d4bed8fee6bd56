"""Forward-adaptive entropy model: explicitly transmitted scale indexes (tile formats v2, v3, v5, v6: the hybrid
kind's, docs/bitstream.md).

Why: one frozen factorised density per latent channel codes every tile with the training set's average
statistics; a tile of open sea and a tile of a city get the same tables. Here the encoder picks, for every
*group* of symbols, the table of a fixed bank that codes that group in the fewest bits, and transmits the
choice. A group is one latent channel of one spectral component of a tile (``h*w`` symbols), or one
block of one component's quantised residual in the read-only formats v3 (16 x 16 coefficients of one wavelet
subband) and v2 (32 x 32 pixels); formats v5 and v6, which the shipped bundle writes, code the residual in a
context-coded stream of its own instead (:mod:`cvae.edge.codec.coefs`; residual levels, :mod:`cvae.edge.codec.hybrid`).

Why it cannot desynchronise: the decoder reads the indexes from the stream; every table it then uses is
integer data frozen in the bundle (``adaptive.npz``). Nothing the decoder derives depends on floating point
(no hyper-decoder network), so the satellite (TensorRT FP16 on a Jetson, ONNX Runtime) and any ground CPU
parse the same stream into the same integers. The network's float output only changes *which* integers are
coded, never how a stream is parsed (CompressAI issues #279/#309 are impossible by construction).

Index alphabet, ``NUM_INDEXES = 64``::

    0        ZERO        every symbol of the group is 0: nothing is coded for it
    1        FACTORIZED  the group's own row of the level's factorised table (latent groups only)
    2..63    Laplacian   zero-mean discretised Laplacian of scale ``scales[i - 2]`` (bank row ``i - 2``)

The indexes are range-coded too, with frozen tables (``index_tables``) of one row per context: latent level
``l`` and channel ``m`` -> row ``l * M + m``; residual level ``r`` -> row ``L * M + r``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cvae.edge.codec.tables import PRECISION, EntropyTables

__all__ = ["AdaptiveModel", "NUM_INDEXES", "ZERO", "FACTORIZED", "FIRST_LAPLACE", "laplace_bank",
           "STREAM_OVERHEAD_BYTES", "RESIDUAL_BLOCK", "WAVELET_BLOCK", "COST_SPAN"]

NUM_INDEXES = 64
ZERO, FACTORIZED, FIRST_LAPLACE = 0, 1, 2
#: residual groups are blocks of this many pixels a side (pixel residuals, tile format v2, read only) ...
RESIDUAL_BLOCK = 32
#: ... or of this many coefficients of one wavelet subband a side (tile format v3, read only; the encoder's bit
#: estimate of a residual)
WAVELET_BLOCK = 16
#: bytes a non-empty range-coder stream costs beyond its symbols (header, two states, final words), + length
STREAM_OVERHEAD_BYTES = 19
_MAX_HALF = 640          # widest Laplacian row: values beyond are escaped (docs/range_coder.md)
COST_SPAN = 4096  # bit costs are tabulated for |v| <= this; larger values are clipped (estimates only)


def laplace_bank(scales: np.ndarray, precision: int = PRECISION) -> EntropyTables:
    """Integer tables of zero-mean discretised Laplacians, one row per scale (float64 maths, run once at export;
    the result is data: decoders load it, they never recompute it)."""
    scales = np.asarray(scales, np.float64)
    halves = np.clip(np.ceil(scales * 12.0), 2, _MAX_HALF).astype(np.int64)  # tail beyond: exp(-12) of the mass
    width = int(2 * halves.max() + 1)
    pmf = np.zeros((len(scales), width))
    for i, (s, h) in enumerate(zip(scales, halves)):
        k = np.arange(-h, h + 1, dtype=np.float64)
        cdf = lambda x: np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / s), 1 - 0.5 * np.exp(-np.maximum(x, 0) / s))
        pmf[i, :2 * h + 1] = cdf(k + 0.5) - cdf(k - 0.5)
    return EntropyTables.from_pmf(pmf, -halves.astype(np.int32), support=2 * halves + 1, precision=precision)


def _bit_costs(t: EntropyTables) -> np.ndarray:
    """float32[rows, 2 * COST_SPAN + 1]: bits to code value ``v`` (column ``v + COST_SPAN``) with each row,
    escapes with their Elias-gamma bits (docs/range_coder.md)."""
    v = np.arange(-COST_SPAN, COST_SPAN + 1, dtype=np.int64)
    out = np.empty((t.channels, len(v)), np.float32)
    for c in range(t.channels):
        n = int(t.cdf_length[c]) - 2
        freq = np.diff(t.cdf[c, :n + 2].astype(np.int64))
        rel = v - int(t.offset[c])
        inside = (rel >= 0) & (rel < n)
        bits = np.empty(len(v))
        bits[inside] = t.precision - np.log2(freq[rel[inside]])
        z = np.where(rel < 0, 2 * (-rel - 1) + 1, 2 * (rel - n))[~inside]
        bits[~inside] = t.precision - np.log2(freq[n]) + 2 * np.floor(np.log2(z + 1)) + 1
        out[c] = bits
    return out


@dataclass(frozen=True)
class AdaptiveModel:
    """The bank of Laplacian tables and the tables that code the indexes; both frozen in ``adaptive.npz``.

    bank: EntropyTables with NUM_INDEXES - 2 rows (scales ascending)
    scales: float64[NUM_INDEXES - 2] (informative: the decoder never uses them)
    index_tables: EntropyTables with ``latent_levels * M + residual_levels`` rows over 0..NUM_INDEXES-1
    """

    bank: EntropyTables
    scales: np.ndarray
    index_tables: EntropyTables
    # derived from the tables (not compared, not in repr): the encoder's bit-cost tables
    _bank_costs: np.ndarray = field(init=False, repr=False, compare=False)
    _index_costs: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.bank.channels != NUM_INDEXES - FIRST_LAPLACE:
            raise ValueError(f"adaptive bank has {self.bank.channels} rows; the format needs {NUM_INDEXES - FIRST_LAPLACE}")
        object.__setattr__(self, "_bank_costs", _bit_costs(self.bank))
        object.__setattr__(self, "_index_costs", _bit_costs(self.index_tables)[:, COST_SPAN:COST_SPAN + NUM_INDEXES])

    # -- files -----------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, bank_cdf=self.bank.cdf, bank_cdf_length=self.bank.cdf_length,
                            bank_offset=self.bank.offset, scales=self.scales, index_cdf=self.index_tables.cdf,
                            index_cdf_length=self.index_tables.cdf_length, index_offset=self.index_tables.offset,
                            precision=np.int32(self.bank.precision))

    @classmethod
    def from_file(cls, path: str | Path) -> "AdaptiveModel":
        with np.load(path, allow_pickle=False) as z:
            p = int(z["precision"])
            bank = EntropyTables(z["bank_cdf"].astype(np.int32), z["bank_cdf_length"].astype(np.int32),
                                 z["bank_offset"].astype(np.int32), p)
            idx = EntropyTables(z["index_cdf"].astype(np.int32), z["index_cdf_length"].astype(np.int32),
                                z["index_offset"].astype(np.int32), p)
            return cls(bank=bank, scales=z["scales"].astype(np.float64), index_tables=idx)

    @classmethod
    def build(cls, scales: np.ndarray, index_counts: np.ndarray) -> "AdaptiveModel":
        """From the bank's scales and ``index_counts: float[contexts, NUM_INDEXES]`` (how often each index was
        chosen per context on training tiles; smoothed so every index stays codable)."""
        counts = np.asarray(index_counts, np.float64) + 0.5
        idx = EntropyTables.from_pmf(counts / counts.sum(axis=1, keepdims=True), np.zeros(len(counts), np.int32))
        return cls(bank=laplace_bank(scales), scales=np.asarray(scales, np.float64), index_tables=idx)

    @classmethod
    def uniform(cls, scales: np.ndarray, contexts: int) -> "AdaptiveModel":
        """Index tables that code every index alike: the starting point for fitting ``index_counts``."""
        return cls.build(scales, np.ones((contexts, NUM_INDEXES)))

    @property
    def bank_costs(self) -> np.ndarray:
        """float32[bank rows, 2 * COST_SPAN + 1]: bits to code value ``v`` (column ``v + COST_SPAN``) per row."""
        return self._bank_costs

    @property
    def index_costs(self) -> np.ndarray:
        """float32[contexts, NUM_INDEXES]: bits to code each scale index in each index-table row."""
        return self._index_costs

    # -- encoder: choosing indexes -----------------------------------------------------------------------------
    def choose(self, groups: np.ndarray, contexts: np.ndarray, counts: np.ndarray | None = None,
               factorized_costs: np.ndarray | None = None, factorized_rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Pick each group's cheapest index.

        groups: int32[G, n] symbols; counts: int[G] how many of the n are real (the rest is padding, None: all);
        contexts: int32[G] index-table rows; factorized_costs: float32[R, 2*COST_SPAN+1] bit costs of the
        factorised rows and factorized_rows: int32[G] the row of each group (both None: FACTORIZED not offered).
        Returns ``(indexes int32[G], bits float64[G])``, bits = payload + index bits of the choice.
        """
        g, n = groups.shape
        col = np.clip(groups, -COST_SPAN, COST_SPAN).astype(np.int64) + COST_SPAN
        real = None if counts is None else (np.arange(n)[None, :] < np.asarray(counts)[:, None])
        cost = np.full((g, NUM_INDEXES), np.inf)
        # Histogram of each group over the values it holds, then one product with the tabulated costs: the same
        # sums as gathering every symbol's cost, at O(values) instead of O(symbols) per table.
        lo, hi = (int(col.min()), int(col.max())) if col.size else (COST_SPAN, COST_SPAN)
        span = hi - lo + 1
        flat = (col - lo + np.arange(g)[:, None] * span).reshape(-1)
        hist = np.bincount(flat if real is None else flat[real.reshape(-1)], minlength=g * span)
        hist = hist.reshape(g, span).astype(np.float64)
        cost[:, FIRST_LAPLACE:] = hist @ self._bank_costs[:, lo:hi + 1].T.astype(np.float64)
        if factorized_costs is not None:
            rows = factorized_costs[np.asarray(factorized_rows), lo:hi + 1].astype(np.float64)
            cost[:, FACTORIZED] = np.einsum("gv,gv->g", hist, rows)
        nonzero = groups != 0 if real is None else (groups != 0) & real
        cost[:, ZERO] = np.where(nonzero.any(axis=1), np.inf, 0.0)
        cost += self._index_costs[np.asarray(contexts)]
        best = np.argmin(cost, axis=1).astype(np.int32)
        return best, cost[np.arange(g), best]

    def factorized_costs(self, tables: EntropyTables) -> np.ndarray:
        """Bit costs of a level's factorised rows, for :meth:`choose`."""
        return _bit_costs(tables)

    # -- both sides: the tables one level's symbols are coded with ----------------------------------------------
    def combined(self, factorized: EntropyTables | None) -> EntropyTables:
        """Bank rows first (row ``i - 2`` for index ``i``), then the factorised rows (row ``bank + channel``)."""
        if factorized is None:
            return self.bank
        width = max(self.bank.cdf.shape[1], factorized.cdf.shape[1])
        pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1])))
        return EntropyTables(cdf=np.concatenate([pad(self.bank.cdf), pad(factorized.cdf)]),
                             cdf_length=np.concatenate([self.bank.cdf_length, factorized.cdf_length]),
                             offset=np.concatenate([self.bank.offset, factorized.offset]),
                             precision=self.bank.precision)

    def rows(self, indexes: np.ndarray, factorized_rows: np.ndarray | None) -> np.ndarray:
        """int32[G]: the row of :meth:`combined` each group's symbols use (undefined for ZERO groups)."""
        indexes = np.asarray(indexes, np.int64)
        out = indexes - FIRST_LAPLACE
        if factorized_rows is not None:
            out = np.where(indexes == FACTORIZED, self.bank.channels + np.asarray(factorized_rows), out)
        return out.astype(np.int32)
