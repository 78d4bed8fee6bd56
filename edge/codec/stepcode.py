"""The residual's quantisation step as a 16-bit code (tile format v7): a continuous, signalled step.

A v7 tile with a residual carries its step instead of taking the ladder's: the ladder's levels become presets and
an encoder aiming at a quality (``--psnr``) or a byte budget picks any step between them. The code is a tiny
float, ``e = code >> 12`` (0..15) and ``m = code & 0xFFF`` (0..4095)::

    step = (4096 + m) * 2^-(12 + e)

so steps run from ``2^-15`` (e = 15, m = 0) to ``8191 / 4096`` (e = 0, m = 4095) with a relative resolution of
1/4096 (0.002 dB). ``4096 + m < 2^13`` times a power of two is exact in float32, so the decoder's step is the same
number on every platform by construction (no ``pow``, no rounding), and every one of the 65536 codes is a valid
step: a damaged code changes pixels, never parsing.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["STEP_MIN", "STEP_MAX", "step_of", "code_of", "on_grid"]

_MANTISSA = 12
#: the smallest and the largest step a code names
STEP_MIN = 2.0 ** -15
STEP_MAX = 8191 / 4096


def step_of(code: int) -> np.float32:
    """The float32 step of a 16-bit ``code`` (exact: see the module docstring)."""
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"step code {code} is not a 16-bit code")
    e, m = code >> _MANTISSA, code & 0xFFF
    return np.float32(4096 + m) * np.float32(2.0 ** -(_MANTISSA + e))


def code_of(step: float) -> int:
    """The code whose step is nearest ``step`` (relative), for a finite ``step`` in STEP_MIN..STEP_MAX; raises
    ``ValueError`` outside it."""
    if not (math.isfinite(step) and STEP_MIN <= step <= STEP_MAX):
        raise ValueError(f"residual step {step!r} is outside the steps a tile can carry ({STEP_MIN:g} .. "
                         f"{STEP_MAX:g})")
    e = min(15, max(0, -math.floor(math.log2(step))))  # step * 2^e in [1, 2) inside the range
    m = round(step * 2.0 ** (_MANTISSA + e)) - 4096
    if m >= 4096:  # rounded up to the next octave
        e, m = e - 1, 0
    return (e << _MANTISSA) | max(0, m)


def on_grid(step: float) -> float:
    """``step`` rounded to the nearest step a code names (what the decoder will use)."""
    return float(step_of(code_of(step)))
