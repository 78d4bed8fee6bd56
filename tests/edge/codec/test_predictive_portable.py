"""The predictive coder's portable C (``_predictive.c`` built with ``-DPR_NO_SIMD``: the scalar loops that every
platform without x86-64's SSE2 compiles, aarch64 included) writes and reads the same bytes as the extension this
machine built: the narrow pass's vector loops are its scalar loops four lanes at a time, integer for integer."""
from __future__ import annotations

import importlib.util
import subprocess
import sysconfig
from pathlib import Path

import build_sanitized  # tests/fuzz, on pythonpath (pyproject.toml): compiler()
import numpy as np
import pytest
from test_predictive_v8 import stack  # beside this file
from test_predictive_v9 import spectral

from cvae.edge.codec import _predictive, bitstream, predictive
from cvae.edge.codec.predictive import PredictiveKind

CODEC = Path(__file__).resolve().parents[3] / "edge" / "codec"
KIND = PredictiveKind(bytes.fromhex("0badcafe"))


@pytest.fixture(scope="module")
def portable(tmp_path_factory):
    cc = build_sanitized.compiler()
    if cc is None:
        pytest.skip("no C compiler (gcc or cc) on PATH")
    out = tmp_path_factory.mktemp("portable") / f"_predictive{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    subprocess.run([cc, "-O1", "-std=c99", "-shared", "-fPIC", "-DPR_NO_SIMD", f"-I{sysconfig.get_paths()['include']}",
                    f"-I{CODEC}", str(CODEC / "_predictive.c"), "-o", str(out)], check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("_predictive", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiles():
    """(tile, max_error, valid, band_fill): lossless and bounded, 1 to 14 bands, 8- to 32-bit, nodata and band fill,
    replicated bands (mode 1, blocks) and a range too wide for the narrow pass."""
    rng = np.random.default_rng(25)
    valid = np.ones((40, 36), bool)
    valid[:, :5] = False
    valid[30:, 20:] = False
    fill = np.zeros((3, 40, 36), bool)
    fill[1, 10:14, 8:30] = True
    out = [(spectral(rng, b, 40, 36), e, None, None) for b in (1, 4, 14) for e in (0, 1, 4)]
    out += [(spectral(rng, 3, 40, 36, np.uint8), 0, valid, fill), (spectral(rng, 3, 40, 36), 2, valid, None)]
    out += [(stack(rng, 72, 48, dt), e, None, None) for dt in (np.uint16, np.int16) for e in (0, 3)]
    out += [(np.repeat(np.repeat(spectral(rng, 2, 20, 18), 2, 1), 2, 2), 0, valid, None)]  # aligned 2 x 2 blocks
    out += [((spectral(rng, 2, 12, 13).astype(np.int32) - 30000) * 60000, 5, None, None)]  # the wide pass
    return out


def test_portable_build_writes_and_reads_the_same_bytes(portable, monkeypatch):
    for tile, e, valid, fill in _tiles():
        native = KIND.encode_tile(tile, e, valid, fill)
        expected = _decoded(native)
        with monkeypatch.context() as m:
            m.setattr(predictive, "_predictive", portable)
            assert KIND.encode_tile(tile, e, valid, fill) == native
            np.testing.assert_array_equal(_decoded(native), expected)


def test_portable_build_estimates_the_same_costs(portable):
    rng = np.random.default_rng(7)
    x = np.repeat(spectral(rng, 3, 40, 19), 2, axis=2)[:, :, 1:37].astype(np.int64)  # equal neighbour pairs
    c, h, w = x.shape
    lo, hi = x.min(axis=(1, 2)), x.max(axis=(1, 2))
    args = (x, np.zeros(x.shape, np.uint8), np.tile(np.array([1, 1, 0, 0], np.uint8), (c, 1)), c, h, w,
            np.zeros(c, np.int64), lo, hi, np.array([0, 1, 0], np.uint8))
    for v9 in (False, True):
        assert portable.encode_costs(*args, v9) == _predictive.encode_costs(*args, v9)
        assert portable.costs(*args, v9) == _predictive.costs(*args, v9)


def _decoded(data: bytes) -> np.ndarray:
    header, _, payload, v = bitstream.unpack_tile(data)
    return KIND.decode_tile(header, payload, v)
