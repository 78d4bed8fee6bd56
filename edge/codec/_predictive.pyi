# Type stub of the C extension _predictive.c (private: use cvae.edge.codec.predictive).
from typing import Any

FORMAT_VERSION: int

def encode(x: Any, skip: Any, rep: Any, C: int, H: int, W: int, max_error: Any, lo: Any, hi: Any) -> bytes: ...
def decode(data: Any, skip: Any, rep: Any, C: int, H: int, W: int, max_error: Any, lo: Any, hi: Any,
           out: Any) -> tuple[int, Any]: ...
