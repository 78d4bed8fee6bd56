"""The golden tiles of bitstream version 3, as the shipped (adaptive) bundle wrote them before version 5.

Frozen: the encoder writes version 6 now (make_tile_v6_golden.py codes the same inputs), so these files are
decode-only goldens (version 3 keeps decoding). This module keeps the inputs and ``describe`` of every version.

Three 4-band 64 x 64 uint16 tiles built from seeded integers only (an integer random walk plus noise), each
encoded by ``TileCodec.analyze`` / ``encode`` of the shipped bundle on ONNX Runtime (CPU, float32):

``tile_v3_residual.bin``  a residual-only tile: wavelet residual (``header.residual == 2``), no component present
``tile_v3_hybrid.bin``    a hybrid tile: latents of some component(s) plus the wavelet residual
``tile_v3_masked.bin``    a tile with a valid mask (nodata pixels) and per-band fill masks (header flag bit 2)
``tile_v3_integers.json`` what any platform's decoder must derive from those bytes with no float involved:
                          header fields, SHA-256 of the integers ``TileCodec.parse_integers`` returns, and
                          (residual-only tile: no network runs) of the decoded pixels

The encoder runs the network (float), so the encoded bytes are only guaranteed on the platform they were
made on: x86-64, CPU ONNX Runtime. The integers and header fields in the JSON are platform independent.

They were made with ``python tests/edge/codec/golden/make_tile_v3_golden.py`` before version 5; running it now
refuses (it would write version 5 bytes into version 3 files).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from cvae.edge.codec import bitstream
from cvae.edge.codec.tile import TileCodec

HERE = Path(__file__).resolve().parent
FILES = {name: HERE / f"tile_v3_{name}.bin" for name in ("residual", "hybrid", "masked")}
INTEGERS = HERE / "tile_v3_integers.json"
BANDS, HEIGHT, WIDTH = 4, 64, 64
FILL = 0  # the scene's nodata value of the masked tile


def walk_tile(seed: int) -> np.ndarray:
    """uint16[4, 64, 64]: a 2-D integer random walk (smooth structure) scaled per band, plus integer noise."""
    rng = np.random.default_rng(seed)
    f = rng.integers(-3, 4, (HEIGHT, WIDTH)).cumsum(0).cumsum(1)
    f -= f.min()
    return np.stack([2000 + f * (2 + k) // 4 + rng.integers(-5, 6, (HEIGHT, WIDTH))
                     for k in range(BANDS)]).astype(np.uint16)


def masked_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The masked case: ``(tile, valid bool[H, W], band_fill bool[C, H, W])``; nodata pixels hold ``FILL`` in
    every band, band-fill samples (valid pixels, some bands only) hold ``FILL`` in their band."""
    tile = walk_tile(1)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    valid = ~((xx + yy < 20) | ((yy >= 40) & (yy < 44)) | ((xx - 48) ** 2 + (yy - 16) ** 2 < 49))
    rng = np.random.default_rng(7)
    band_fill = np.zeros(tile.shape, bool)
    band_fill[2, 50:58, 30:50] = True                     # a saturated patch in band 2
    band_fill[0] = rng.integers(0, 97, (HEIGHT, WIDTH)) == 0  # scattered dropouts in band 0
    band_fill &= valid[None]
    tile[:, ~valid] = FILL
    tile[band_fill] = FILL
    return tile, valid, band_fill


#: name -> (level, how the tile is analysed); the comments state the mode the encoder chooses there
CASES = {
    "residual": 8,   # latent 3, residual 2, no component present
    "hybrid": 9,     # latent 5, residual 2, component 0 present
    "masked": 6,     # latent 3, residual 2, no component present; valid mask and band fill
}


def hybrid_band_range() -> tuple[np.ndarray, np.ndarray]:
    """The hybrid case's scene-wide band range (wider than the tile's: what makes the latents pay there)."""
    t = walk_tile(0)
    hi = np.float32(3000 + (t.astype(np.int64) - 2000).max() // 2)
    return np.full(BANDS, 1000, np.float32), np.full(BANDS, hi, np.float32)


def analyzed(codec: TileCodec, name: str, scene: bitstream.SceneSide | None = None):
    """``scene`` (format v6): the hybrid case's band range as scene side information, which its tile then
    refers to instead of carrying it."""
    if name == "residual":
        return codec.analyze(walk_tile(0))
    if name == "hybrid":
        if scene is not None:
            return codec.analyze(walk_tile(0), scene=scene)
        return codec.analyze(walk_tile(0), band_range=hybrid_band_range())
    tile, valid, band_fill = masked_inputs()
    return codec.analyze(tile, valid, band_fill=band_fill)


def encode_all(codec: TileCodec) -> dict[str, bytes]:
    """The golden tiles' bytes as this machine's encoder writes them."""
    return {name: codec.encode(analyzed(codec, name), level) for name, level in CASES.items()}


def sha(a: np.ndarray, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.dtype(dtype)).tobytes()).hexdigest()


def describe(codec: TileCodec, data: bytes, scene: bitstream.SceneSide | None = None) -> dict:
    """Everything a decoder derives from ``data`` (with its scene's side information, format v6) without running
    a float network (platform independent)."""
    header, present, _, valid = bitstream.unpack_tile(data, scene)
    idx, values = codec.parse_integers(data, scene)
    out = {"version": header.version, "level": header.level, "latent": header.latent, "residual": header.residual,
           "dtype": header.dtype.name, "shape": [header.bands, header.height, header.width],
           "model_id": header.model_id.hex(), "present": present.astype(int).tolist(),
           "lo": header.lo.astype(float).tolist(), "hi": header.hi.astype(float).tolist(),
           "mean": header.mean.astype(float).tolist(), "matrix": header.matrix.astype(int).tolist(),
           "indexes": {"count": len(idx), "sha256": sha(idx, ">i4")},
           "values": {"count": len(values), "nonzero": int(np.count_nonzero(values)), "sha256": sha(values, ">i4")},
           **({"step": header.step} if header.step is not None else {}),  # v7: the step code
           "valid": None if valid is None else sha(np.packbits(valid), "u1"),
           "band_fill": None if header.band_fill is None else sha(np.packbits(header.band_fill), "u1")}
    if not present.any():  # residual only: decoding runs no network, the pixels are exact everywhere
        out["pixels_sha256"] = sha(codec.decompress(data, scene).pixels, ">u2")
    return out


def main() -> int:
    print("the version 3 goldens are frozen (the encoder writes version 6): use make_tile_v6_golden.py")
    return 1


if __name__ == "__main__":
    sys.exit(main())
