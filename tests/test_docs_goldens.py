"""The expected decoded integers that docs/README.md hands a station (``tests/edge/codec/golden/*.expected.npz``) are
what the shipped decoder derives from every golden file, and agree with the SHA-256 pinned in ``tile_v*_integers.json``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import make_golden_expected as mk  # tests/edge/codec/golden, on pytest's pythonpath (pyproject.toml)

GOLDEN = Path(mk.__file__).resolve().parent
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def derived():
    return mk.all_expected()


def _sha(a: np.ndarray, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.dtype(dtype)).tobytes()).hexdigest()


def test_every_golden_tile_has_expected_integers():
    goldens = sorted(p.name for p in GOLDEN.glob("tile_v*.bin"))
    assert goldens == sorted([*mk.ADAPTIVE, mk.V4, mk.V8, mk.V9])
    for name in [*goldens, "rangecoder_v1.bin"]:
        assert mk.expected_path(name).is_file(), f"{name}: run make_golden_expected.py"


@pytest.mark.parametrize("golden", [*mk.ADAPTIVE, mk.V4, mk.V8, mk.V9, "rangecoder_v1.bin"])
def test_the_decoder_derives_the_expected_integers(derived, golden):
    with np.load(mk.expected_path(golden)) as f:
        stored = {k: f[k] for k in f.files}
    fresh = derived[golden]
    assert sorted(stored) == sorted(fresh)
    for key, value in fresh.items():
        assert stored[key].dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(stored[key], value, err_msg=f"{golden}: {key}")


@pytest.mark.parametrize("golden", [g for g in mk.ADAPTIVE if g != "tile_v2.bin"])
def test_expected_integers_match_the_pinned_hashes(golden):
    version, name = golden[len("tile_v"):-len(".bin")].split("_")
    pinned = json.loads((GOLDEN / f"tile_v{version}_integers.json").read_text())[name]
    with np.load(mk.expected_path(golden)) as f:
        assert _sha(f["indexes"], ">i4") == pinned["indexes"]["sha256"]
        assert _sha(f["values"], ">i4") == pinned["values"]["sha256"]
        assert f["present"].astype(int).tolist() == pinned["present"]
        if "pixels" in f.files:
            assert _sha(f["pixels"], ">u2") == pinned["pixels_sha256"]


def test_the_docs_name_every_expected_file():
    text = (DOCS / "README.md").read_text()
    assert "make_golden_expected.py" in text and ".expected.npz" in text


# -- the float steps as docs/bitstream.md states them ("Decoding a tile" 3-4, version 3's "The inverse, step by step")
_F = np.float32
_ALPHA, _BETA, _GAMMA, _DELTA, _K = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971, \
    1.230174104914001
_LL = (1.965907255313617, 4.122410234401326, 8.416743237365488, 16.93556578059223, 33.92491418373113)
_HH = (0.520218122554536, 0.967215944274607, 2.079255373335683, 4.300480601208342, 8.686719203695743)


def _inverse_1d(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Along axis 0: the doc's 1-D inverse lifting."""
    ns, nd = len(s), len(d)
    out = np.empty((ns + nd,) + s.shape[1:], np.float32)
    if nd == 0:
        out[0::2] = s
        return out
    s, d = (s * _F(_K)).astype(np.float32), (d * _F(1 / _K)).astype(np.float32)
    for cp, cu in ((_GAMMA, _DELTA), (_ALPHA, _BETA)):
        dm1 = np.concatenate([d[:1], d[:ns - 1]]) if ns > 1 else d[:1]   # d[i-1], d[-1] = d[0]
        di = np.concatenate([d, d[-1:]])[:ns]                              # d[i], d[nd] = d[nd-1]
        s = (s - _F(cu) * (dm1 + di)).astype(np.float32)
        sp = np.concatenate([s, s[-1:]])[1:nd + 1]                         # s[i+1], s[ns] = s[ns-1]
        d = (d - _F(cp) * (s[:nd] + sp)).astype(np.float32)
    out[0::2], out[1::2] = s, d
    return out


def _levels(h: int, w: int) -> int:
    return max([j for j in range(6) if min(h, w) >> j >= 8], default=0)


def _doc_residual(values: np.ndarray, h: int, w: int) -> np.ndarray:
    """One component's coefficients in version 5's coding order -> float32[h, w] (gains undone, inverse)."""
    levels = _levels(h, w)
    shapes, hh, ww = [], h, w   # per level j = 1..J: (LL_j's parent shape) -> detail shapes
    for _ in range(levels):
        shapes.append(((hh - hh // 2, ww - ww // 2), (hh // 2, ww - ww // 2), (hh - hh // 2, ww // 2), (hh // 2, ww // 2)))
        hh, ww = hh - hh // 2, ww - ww // 2
    pos = 0

    def take(shape):
        nonlocal pos
        n = shape[0] * shape[1]
        pos += n
        return values[pos - n:pos].reshape(shape).astype(np.float32)

    if levels == 0:
        return take((h, w))
    a = take(shapes[-1][0]) / _F(_LL[levels - 1])
    details = {}
    for j in range(levels, 0, -1):   # coded coarsest first: (HL_j, LH_j, HH_j)
        _, hl_s, lh_s, hh_s = shapes[j - 1]
        g = _F(np.sqrt(_LL[j - 1] * _HH[j - 1]))
        details[j] = (take(hl_s) / g, take(lh_s) / g, take(hh_s) / _F(_HH[j - 1]))
    for j in range(levels, 0, -1):
        hl, lh, hh_ = details[j]
        lo = _inverse_1d(a.T, lh.T).T
        hi = _inverse_1d(hl.T, hh_.T).T
        a = _inverse_1d(lo, hi)
    assert pos == len(values)
    return a


@pytest.mark.parametrize("golden", [f"tile_v{v}_{n}.bin" for v in (5, 6) for n in ("residual", "masked")])
def test_the_docs_float_steps_reproduce_the_residual_only_pixels(golden):
    """docs/bitstream.md's claim: stated float32 steps, summing j in order, give the golden pixels bit for bit."""
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import bitstream

    header, _, _, _ = bitstream.unpack_tile((GOLDEN / golden).read_bytes())
    step = _F(Bundle.load().ladder.step[header.level])
    with np.load(mk.expected_path(golden)) as f:
        values, pixels, valid = f["values"], f["pixels"], f["valid"]
    c, h, w = header.bands, header.height, header.width
    z = np.zeros((c, h, w), np.float32)
    for k in range(c):
        z[k] = z[k] + _doc_residual(values[k * h * w:(k + 1) * h * w], h, w) * step
    rinv = np.linalg.inv(header.matrix.astype(np.float64) / 127).astype(np.float32)
    lo, hi = header.lo.astype(np.float32), header.hi.astype(np.float32)
    scale = np.where(hi - lo > 0, hi - lo, _F(1)).astype(np.float32)
    out = np.zeros((c, h, w), np.float32)
    for i in range(c):
        acc = (rinv[i, 0] * z[0]).astype(np.float32)
        for j in range(1, c):
            acc = (acc + rinv[i, j] * z[j]).astype(np.float32)
        xn = (acc + _F(header.mean[i])).astype(np.float32)
        out[i] = np.clip((xn * scale[i]).astype(np.float32) + lo[i], lo[i], hi[i])
    got = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    got[:, ~valid] = 0
    np.testing.assert_array_equal(got, pixels)


def test_the_packet_goldens_expected_file_is_what_the_reader_gets():
    assert json.loads(mk.PACKETS.read_text()) == json.loads(json.dumps(mk.packets_expected()))
