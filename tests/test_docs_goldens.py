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
    assert goldens == sorted([*mk.ADAPTIVE, mk.V4])
    for name in [*goldens, "rangecoder_v1.bin"]:
        assert mk.expected_path(name).is_file(), f"{name}: run make_golden_expected.py"


@pytest.mark.parametrize("golden", [*mk.ADAPTIVE, mk.V4, "rangecoder_v1.bin"])
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
