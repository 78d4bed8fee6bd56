"""Write the expected decoded integers of every golden tile: ``<golden>.expected.npz`` beside each golden file.

What a decoder written from ``docs/`` alone must derive from the golden bytes, as data it can compare with
(docs/README.md, "Checking a decoder"). Every array is an integer (or boolean) array; nothing here depends on a
floating-point computation, so the files hold on every platform. Readable without this project: an ``.npz`` is a zip
of ``.npy`` files (numpy's documented format: a short ASCII header giving dtype, order and shape, then the raw
little-endian array).

Per golden (``tile_v2.bin``, ``tile_v3_*.bin``, ``tile_v5_*.bin``, ``tile_v6_*.bin``, ``tile_v7_*.bin``,
``tile_v10_*.bin``, ``tile_v11_residual.bin``: adaptive formats):

``indexes``       int32[G]   the scale indexes decoded from ``side``, in group order (docs/bitstream.md, version 2)
``values``        int32[N]   every symbol in group order, 0 for the groups of index 0 (latent groups, then for v2/v3
                             the residual groups); for v5/v6/v7/v10 followed by the residual's coefficients from
                             ``coefs`` in that stream's coding order
``latent_count``  int64[]    how many of ``values`` are latents (``P M h w``)
``present``       bool[C]    the present bits
``valid``         bool[H, W] the decoded valid mask (all True without flag bit 0)
``band_fill``     bool[C, H, W] the decoded per-band fill masks (all False without flag bit 2)
``mask_stream1``, ``mask_stream2``  int32[...]  with flag bit 0: the rANS symbols of the valid mask's two streams
                             (stream 1: ``choice`` then the row changes; stream 2: the transition symbols)
``step_code``, ``step``  int64[], float32[]  v7, v10 and v11 tiles with a residual: the header's step code and the step
                             it names (the one float here: exact by construction, docs/bitstream.md, version 7)
``level_mask``, ``level_matrices``  int64[], int8[k, C, C]  v11: the level rotations' byte and its k matrices in level order
``pixels``        [C, H, W] in the tile's dtype: only for tiles with no component present (no network runs,
                             the decoded samples are exact on every platform)

``tile_v4.bin``, ``tile_v8.bin``, ``tile_v9.bin`` (error-bounded): ``samples`` int64[C, H, W] (the decoded samples, 0 where skipped), ``valid``,
``band_fill``, ``mask_stream1``, ``mask_stream2``, ``coder_lo``, ``coder_hi`` int64[C] (the range the coder works in);
``tile_v8.bin`` and ``tile_v9.bin`` also ``modes`` uint8[C] (each band's predictor).

``rangecoder_v1.bin`` (the rANS test vector, also the v1 tile of ``packets_v1.bin``): ``symbols``, ``indexes``,
``cdfs``, ``cdf_lengths``, ``offsets`` (the decoder's inputs and the symbols it must return).

``packets_v1.expected.json`` (the three packet files): the metadata object every copy decodes to, the tile body's
length and SHA-256, the SPI and key of the sealed file, and per file its packet, metadata and tile-segment counts.

Run ``python tests/edge/codec/golden/make_golden_expected.py`` after regenerating a golden; ``tests/test_docs_goldens.py``
checks the shipped decoder against these files.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import bitstream, mask, rangecoder, stepcode
from cvae.edge.codec.predictive import PredictiveKind, coder_range
from cvae.edge.codec.tile import TileCodec

HERE = Path(__file__).resolve().parent
ADAPTIVE = ["tile_v2.bin"] + [f"tile_v{v}_{n}.bin" for v in (3, 5, 6, 7, 10) for n in ("residual", "hybrid", "masked")] + \
    ["tile_v7_stepped.bin", "tile_v10_stepped.bin", "tile_v11_residual.bin"]
V4 = "tile_v4.bin"
V8 = "tile_v8.bin"  # version 8 (error-bounded, a predictor per band): the same arrays as tile_v4.bin, and ``modes``
V9 = "tile_v9.bin"  # version 9 (v8's layout, v9's coder): the same arrays as tile_v8.bin


def expected_path(golden: str) -> Path:
    return HERE / (Path(golden).stem + ".expected.npz")


def scene_for(golden: str) -> bitstream.SceneSide | None:
    """The scene side information a golden decodes with (only the v6, v7 and v10 hybrid tiles refer to their scene's
    range)."""
    if golden not in ("tile_v6_hybrid.bin", "tile_v7_hybrid.bin", "tile_v10_hybrid.bin"):
        return None
    meta = {"band_range": json.loads((HERE / f"{golden.rsplit('_', 1)[0]}_integers.json").read_text())["scene_band_range"]}
    return bitstream.SceneSide.from_metadata(meta, 4)


def mask_symbols(valid: np.ndarray) -> dict[str, np.ndarray]:
    """The rANS symbols of the valid mask's two streams (the encoder's streams are the golden's: checked by the
    caller, which finds them in the tile)."""
    s1, s2 = mask.encode_mask(valid)
    h = valid.shape[0]
    t = mask.TABLES
    sym1 = rangecoder.decode(s1, np.array([0] + [1] * h, np.int32), t.cdf, t.cdf_length, t.offset, t.precision)
    u = np.cumsum(sym1[1:].astype(np.int64))
    rows, _ = mask._stream2_rows(u, int(sym1[0]))
    sym2 = (rangecoder.decode(s2, np.asarray(rows, np.int32), t.cdf, t.cdf_length, t.offset, t.precision)
            if rows else np.zeros(0, np.int32))
    return {"mask_stream1": sym1.astype(np.int32), "mask_stream2": sym2.astype(np.int32), "_s1": s1, "_s2": s2}


def _masks(out: dict, data: bytes, header: bitstream.TileHeader, valid: np.ndarray | None) -> None:
    c, h, w = header.bands, header.height, header.width
    out["valid"] = np.ones((h, w), bool) if valid is None else np.asarray(valid, bool)
    out["band_fill"] = np.zeros((c, h, w), bool) if header.band_fill is None else np.asarray(header.band_fill, bool)
    if valid is not None:
        sym = mask_symbols(valid)
        s1, s2 = sym.pop("_s1"), sym.pop("_s2")
        stream = bitstream._varint(len(s1)) + s1 + bitstream._varint(len(s2)) + s2
        assert stream in data, "the valid mask's streams are not the encoder's: the symbols would not be the tile's"
        out.update(sym)


def adaptive_expected(codec: TileCodec, golden: str) -> dict[str, np.ndarray]:
    data = (HERE / golden).read_bytes()
    scene = scene_for(golden)
    header, present, _, valid = bitstream.unpack_tile(data, scene)
    idx, values = codec.parse_integers(data, scene)
    m = codec.latents.channels
    hl, wl = -(-header.height // 16), -(-header.width // 16)
    out = {"indexes": np.asarray(idx, np.int32), "values": np.asarray(values, np.int32),
           "latent_count": np.int64(int(present.sum()) * m * hl * wl), "present": np.asarray(present, bool)}
    if header.step is not None:
        out["step_code"] = np.int64(header.step)
        out["step"] = stepcode.step_of(header.step)
    if header.level_matrices is not None:  # v11: the level rotations' byte and matrices, in level order
        lm = header.level_matrices
        out["level_mask"] = np.int64(sum(1 << j for j, m in enumerate(lm) if m is not None))
        out["level_matrices"] = np.stack([m for m in lm if m is not None]).astype(np.int8) if any(
            m is not None for m in lm) else np.zeros((0, header.bands, header.bands), np.int8)
    _masks(out, data, header, valid)
    if not present.any():
        out["pixels"] = codec.decompress(data, scene).pixels
    return out


def v4_expected(golden: str = V4) -> dict[str, np.ndarray]:
    data = (HERE / golden).read_bytes()
    header, _, payload, valid = bitstream.unpack_tile(data)
    out = {"samples": PredictiveKind(header.model_id).decode_tile(header, payload, valid).astype(np.int64)}
    if header.format.band_modes:
        out["modes"] = np.asarray(header.modes, np.uint8)
    lo, hi = coder_range(header)
    out["coder_lo"], out["coder_hi"] = lo.astype(np.int64), hi.astype(np.int64)
    _masks(out, data, header, valid)
    return out


def rangecoder_expected() -> dict[str, np.ndarray]:
    from make_rangecoder_golden import golden_case

    g = golden_case()
    return {k: np.asarray(g[k], np.int32) for k in ("symbols", "indexes", "cdfs", "cdf_lengths", "offsets")}


PACKETS = HERE / "packets_v1.expected.json"


def packets_expected() -> dict:
    """What a reader of ``packets_v1*.bin`` must get: the metadata object (every copy), the tile body (the v1 tile
    around ``rangecoder_v1.bin``'s stream), and the key that opens the sealed file."""
    import hashlib

    import make_packet_golden as pg
    from cvae.edge.codec import packets as pk
    from cvae.edge.codec.security import Opener

    body = pg.tile_body()
    out = {"metadata": pg.META, "tile_body": {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()},
           "sealed": {"spi": pg.SPI, "key_hex": pg.KEY.hex()}, "files": {}}
    for name in ("packets_v1.bin", "packets_v1_sealed.bin", "packets_v1_zlib_meta.bin"):
        ps = list(pk.parse_stream((HERE / name).read_bytes()))
        opener = Opener({pg.SPI: pg.KEY})
        data = [opener.open(q.aad, q.data) if q.header.secured else q.data for q in ps]
        metas = [pk.decode_metadata(d) for q, d in zip(ps, data) if q.header.base_kind == pk.KIND_METADATA]
        tile = b"".join(d for q, d in zip(ps, data) if q.header.base_kind == pk.KIND_TILE)
        assert all(m == pg.META for m in metas) and tile == body, name
        out["files"][name] = {"packets": len(ps), "metadata_copies": len(metas),
                              "tile_segments": sum(q.header.base_kind == pk.KIND_TILE for q in ps)}
    return out


def all_expected() -> dict[str, dict[str, np.ndarray]]:
    codec = Bundle.load().codec("onnxruntime")
    out = {g: adaptive_expected(codec, g) for g in ADAPTIVE}
    out[V4] = v4_expected()
    out[V8] = v4_expected(V8)
    out[V9] = v4_expected(V9)
    out["rangecoder_v1.bin"] = rangecoder_expected()
    return out


def main() -> int:
    for golden, arrays in all_expected().items():
        path = expected_path(golden)
        np.savez_compressed(path, **arrays)
        print(f"wrote {path.name} ({path.stat().st_size} B): {', '.join(arrays)}")
    PACKETS.write_text(json.dumps(packets_expected(), indent=1) + "\n")
    print(f"wrote {PACKETS.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
