"""Regenerate ``rangecoder_v1.bin``, the golden stream of range coder format version 1.

Run ``python tests/edge/codec/golden/make_rangecoder_golden.py`` after an intended format change
(and bump the format version). The inputs are built from the raw output of numpy's PCG64 bit
generator with integer arithmetic only: NumPy keeps bit-generator streams stable across releases
(NEP 19), unlike ``Generator`` methods, and no floating point is involved, so the inputs are the
same on every machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SEED = 20240601
N = 600
N_ROWS = 3
WIDTH = 20  # 18 direct values + escape symbol + final entry
PRECISION = 16
OFFSETS = (-9, 0, -1000)
GOLDEN_PATH = Path(__file__).with_name("rangecoder_v1.bin")

__all__ = ["GOLDEN_PATH", "golden_case", "main"]


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peaked integer tables: frequencies halve every (2 / (c + 1)) steps from the centre."""
    total = 1 << PRECISION
    n = WIDTH - 2
    centre = n // 2
    cdfs = np.zeros((N_ROWS, WIDTH), dtype=np.int32)
    for c in range(N_ROWS):
        freq = [max(1, 4096 >> min(12, abs(k - centre) * (c + 1) // 2)) for k in range(n)]
        freq.append(1024 * (c + 1))  # escape: frequent enough to appear often
        freq[centre] += total - sum(freq)
        assert min(freq) >= 1, freq
        cdfs[c, 1:] = np.cumsum(freq)
    lengths = np.full(N_ROWS, WIDTH, dtype=np.int32)
    return cdfs, lengths, np.asarray(OFFSETS, dtype=np.int32)


def golden_case() -> dict[str, np.ndarray | int]:
    """The golden inputs: symbols/indexes int32[N], cdfs int32[C, L], cdf_lengths, offsets."""
    cdfs, lengths, offsets = _tables()
    raw = np.random.PCG64(SEED).random_raw(2 * N).astype(np.uint64)
    indexes = ((raw[N:] >> np.uint64(7)) % np.uint64(N_ROWS)).astype(np.int32)
    symbols = np.empty(N, dtype=np.int32)
    n = WIDTH - 2
    for i in range(N):
        c = int(indexes[i])
        word = int(raw[i])
        slot = word & ((1 << PRECISION) - 1)
        k = int(np.searchsorted(cdfs[c, : lengths[c]], slot, side="right")) - 1
        if k < n:  # drawn from the table's own distribution
            symbols[i] = int(offsets[c]) + k
            continue
        # escape drawn: pick an out-of-range value, from just outside the table to int32's ends
        far = (word >> 32) - (1 << 31)  # any int32
        choices = (int(offsets[c]) - 1, int(offsets[c]) + n, -(1 << 31), (1 << 31) - 1, far)
        value = choices[(word >> 16) % len(choices)]
        if 0 <= value - int(offsets[c]) < n:
            value = -(1 << 31)
        symbols[i] = value
    symbols[:4] = (-(1 << 31), (1 << 31) - 1, int(offsets[indexes[2]]) - 1, 0)
    return {
        "symbols": symbols,
        "indexes": indexes,
        "cdfs": cdfs,
        "cdf_lengths": lengths,
        "offsets": offsets,
        "precision": PRECISION,
    }


def main() -> int:
    from cvae.edge.codec.rangecoder import encode

    data = encode(**golden_case())
    GOLDEN_PATH.write_bytes(data)
    print(f"wrote {GOLDEN_PATH} ({len(data)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
