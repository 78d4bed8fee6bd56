"""Every C decoder built with ASan + UBSan (tests/fuzz/build_sanitized.py) and fed mutated inputs
(tests/fuzz/fuzz_decoders.py): a short fixed-seed run in the default suite, 100,000 inputs in the slow one. Clean
means every child finished, no sanitizer report, and no decoder raised anything but the codec's typed errors."""
from __future__ import annotations

import re
from pathlib import Path

import build_sanitized  # tests/fuzz, on pythonpath (pyproject.toml)
import fuzz_decoders
import pytest

ENTRY_POINTS = ("_rangecoder.decode", "_predictive.decode", "_coefs.decode", "_coefs.decode_mixed", "_wavelet.inverse",
                "_wavelet.mix")


@pytest.fixture(scope="module")
def so_dir(tmp_path_factory) -> Path:
    cc = build_sanitized.compiler()
    if cc is None or build_sanitized.asan_runtime(cc) is None:
        pytest.skip("no C compiler with an ASan runtime (gcc -print-file-name=libasan.so)")
    out = tmp_path_factory.mktemp("sanitized")
    build_sanitized.build(out, cc)
    return out


def _check(status: int, text: str, done: dict[str, int], inputs: int) -> None:
    assert status == 0, text[-20000:]
    assert not any(m in text for m in fuzz_decoders.REPORT_MARKERS), text[-20000:]
    assert sum(done.values()) == inputs and all(done.values()), done
    reached = {k: sum(int(n) for n in re.findall(rf"{re.escape(k)} (\d+)", text)) for k in ENTRY_POINTS}
    assert all(reached.values()), reached  # every C entry point was fed


def test_sanitized_fuzz_short_fixed_seed(so_dir):
    """3,000 inputs (200 per target), seed 1: about 15 s."""
    status, text, done = fuzz_decoders.run(3000, seed="1", jobs=1, build_dir=so_dir, timeout=240)
    _check(status, text, done, 3000)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sanitized_fuzz_100k_inputs(so_dir):
    """The issue's bar: 100,000 inputs over every C decoder (two children), no finding."""
    status, text, done = fuzz_decoders.run(100_000, seed="100k", jobs=2, build_dir=so_dir, timeout=3000)
    _check(status, text, done, 100_000)


def test_inputs_split_over_the_targets_asked():
    """``--targets``: the inputs go to those targets only, every input counted; an unknown target is refused before
    anything is built."""
    parts = fuzz_decoders.split(1001, 2, ("tile_v11", "coefs_v10"))
    assert [sorted(p) for p in parts] == [["coefs_v10", "tile_v11"]] * 2
    assert sum(n for p in parts for n in p.values()) == 1001
    assert sum(fuzz_decoders.split(3000, 1)[0].values()) == 3000
    with pytest.raises(ValueError, match="tile_v99"):
        fuzz_decoders.run(10, targets=("tile_v99",))
