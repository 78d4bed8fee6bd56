# Type stub of the C extension _predictive.c (private: use cvae.edge.codec.predictive).
# encode, encode_costs: (x, skip, rep, C, H, W, max_error, lo, hi[, modes[, v9]]); decode: (data, skip, rep, C, H, W,
# max_error, lo, hi, out[, modes[, v9]]); v9: true for tile format v9 (v4 and v8 otherwise).
from typing import Any

FORMAT_VERSION: int

def encode(*args: Any) -> bytes: ...
def encode_costs(*args: Any) -> tuple[bytes, tuple[int, ...]]: ...
def decode(*args: Any) -> tuple[int, Any]: ...
