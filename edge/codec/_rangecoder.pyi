# Type stub of the C extension _rangecoder.c (private: use cvae.edge.codec.rangecoder).
from typing import Any

FORMAT_VERSION: int
PRECISION_MIN: int
PRECISION_MAX: int
OK: int
ERR_ESCAPE: int
ERR_FINAL: int
ERR_HEADER: int
ERR_INDEX: int
ERR_OVERFLOW: int
ERR_SHORT: int
ERR_STATE: int
ERR_TABLE: int
ERR_TRAILING: int
ERR_TRUNCATED: int

def encode(symbols: Any, indexes: Any, cdfs: Any, L: int, cdf_lengths: Any, offsets: Any,
           precision: int) -> tuple[int, Any]: ...
def decode(data: Any, indexes: Any, cdfs: Any, L: int, cdf_lengths: Any, offsets: Any, precision: int,
           out: Any) -> tuple[int, Any]: ...
