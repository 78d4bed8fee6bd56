"""Whether ``weighting.error_covariance`` in float32 (2026-12-07; float64 before) changes any ``--level`` encode.

The component weights every tile is coded with (:meth:`cvae.edge.codec.tile.TileCodec.weighted`) come from this
covariance, and the ``--psnr`` step estimates evaluate it 8-10 times per searched tile: float32 made it 3x faster.
This encodes each scene at levels 0, 2, 4, 6, 8 and 11 with the float64 version (the code before, inlined here) and
with the shipped one, and compares every packet byte. Prints one line per scene and level, then the count that
differ (0: the weights round to the same int8 rows, so every byte is the same).

    python benchmarks/experiments/covariance_float32.py .dev/val/*.tif
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

LEVELS = (0, 2, 4, 6, 8, 11)


def float64_covariance(samples: np.ndarray, step: float, share: float = 1.0) -> np.ndarray:
    """``weighting.error_covariance`` as it was before 2026-12-07 (float64 throughout)."""
    from cvae.edge.codec import weighting as w

    x = samples.astype(np.float64) * (1 / step)
    mag = np.abs(x)
    zero = w.ZERO_FLOOR + w.ZERO_RISE * np.mean(mag < 0.5, axis=1) ** 2
    e = x - np.where(mag < zero[:, None], 0.0, np.sign(x) * np.floor(mag + 0.5))
    return (e @ e.T) * (step * step / max(e.shape[1], 1) / share)


def main(argv: list[str]) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import weighting
    from cvae.edge.encoder import EncodeOptions, encode_scene

    if not argv:
        print(__doc__)
        return 2
    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1)
    shipped = weighting.error_covariance
    differ = 0
    try:
        for path in map(Path, argv):
            for level in LEVELS:
                got = []
                for fn in (float64_covariance, shipped):
                    weighting.error_covariance = fn
                    enc = encode_scene(path, bundle, codec, EncodeOptions(level=level, scene_id=1, threads=1))
                    got.append((hashlib.sha256(b"".join(enc.packets)).hexdigest()[:12], enc.nbytes))
                differ += got[0] != got[1]
                print(f"{path.stem} level {level}: float64 {got[0][0]} {got[0][1]} B, float32 {got[1][0]} "
                      f"{got[1][1]} B{'' if got[0] == got[1] else '  DIFFER'}", flush=True)
    finally:
        weighting.error_covariance = shipped
    print(f"encodes whose packets differ: {differ} of {len(argv) * len(LEVELS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
