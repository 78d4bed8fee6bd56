"""Valid-mask coding of tile format v3: exact round trips, hostile streams, tables as fixed integers."""
import hashlib
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import mask as mk
from cvae.edge.errors import CorruptTileError


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_any_mask_round_trips_exactly(h, w, density, seed):
    valid = np.random.default_rng(seed).random((h, w)) < density
    s1, s2 = mk.encode_mask(valid)
    np.testing.assert_array_equal(mk.decode_mask(s1, s2, h, w), valid)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.lists(st.tuples(st.integers(-4, 4), st.integers(1, 6),
                                                                  st.integers(0, 40)), min_size=1, max_size=4))
def test_masks_of_straight_edges_round_trip_and_pick_the_cheapest_choice(h, w, stripes):
    """Stripes (several transitions per row, repeated over rows: the first- and second-order predictions)."""
    yy, xx = np.mgrid[0:h, 0:w]
    valid = np.zeros((h, w), bool)
    for slope, den, x0 in stripes:
        valid ^= xx >= x0 + (slope * yy) // den
    s1, s2 = mk.encode_mask(valid)
    np.testing.assert_array_equal(mk.decode_mask(s1, s2, h, w), valid)
    ts, u = mk._transitions(valid)
    for choice in range(16):  # no choice codes stream 2 in fewer bytes than the one taken
        rows, _ = mk._stream2_rows(u, choice)
        assert rows == [] or len(s2) <= len(_stream2_for(valid, choice))


def _stream2_for(valid: np.ndarray, choice: int) -> bytes:
    """Stream 2 coded with one given choice, from the symbols the decoder's walk implies."""
    ts, u = mk._transitions(valid)
    rows, where = mk._stream2_rows(u, choice)
    sym = []
    for r, i, mode in where:
        t = int(ts[r][i])
        prev = [0] + [int(v) for v in ts[r]]
        sym.append(t - prev[i] - 1 if mode == 0 else
                   t - int(ts[r - 1][i]) if mode == 1 else t - (2 * int(ts[r - 1][i]) - int(ts[r - 2][i])))
    return mk._encode(sym, rows)


GOLDEN_TABLES_SHA256 = "5b0b513b436967c5dc2475fd7935e6b8955ea7939124fcbe902073b51e8ecdc1"


def _footprint(h=256, w=256, slope=0.21, x0=37.0):
    """A tile crossed by a tilted scene edge, as Landsat nodata borders are."""
    rows = np.arange(h)[:, None]
    return np.arange(w)[None, :] >= np.round(x0 + slope * rows)


@pytest.mark.parametrize("slope", [0.0, 0.21, 1.0, 4.7])
def test_a_straight_edge_costs_a_fraction_of_zlib(slope):
    valid = _footprint(slope=slope) & _footprint(slope=-0.2, x0=300)[:, ::-1]
    s1, s2 = mk.encode_mask(valid)
    np.testing.assert_array_equal(mk.decode_mask(s1, s2, *valid.shape), valid)
    assert len(s1) + len(s2) < 0.6 * len(zlib.compress(np.packbits(valid).tobytes(), 9))


def test_tables_are_the_specified_integers():
    """The tables are built from integers only; their bytes are part of the format (a change is a new version)."""
    t = mk.TABLES
    digest = hashlib.sha256(t.cdf.tobytes() + t.cdf_length.tobytes() + t.offset.tobytes()).hexdigest()
    assert digest == GOLDEN_TABLES_SHA256
    assert (np.diff(t.cdf, axis=1)[np.arange(t.cdf.shape[1] - 1)[None, :] < t.cdf_length[:, None] - 1] > 0).all()


def test_truncated_or_flipped_streams_raise_corrupt_tile_only(rng):
    valid = _footprint()
    s1, s2 = mk.encode_mask(valid)
    for cut in (0, 1, len(s1) // 2):
        with pytest.raises(CorruptTileError):
            mk.decode_mask(s1[:cut], s2, 256, 256)
    for _ in range(300):
        a, b = bytearray(s1), bytearray(s2)
        target = a if rng.random() < 0.5 else b
        if not target:
            continue
        target[rng.integers(len(target))] ^= 1 << int(rng.integers(8))
        try:
            out = mk.decode_mask(bytes(a), bytes(b), 256, 256)
        except CorruptTileError:
            continue
        assert out.shape == (256, 256)


def test_a_row_declaring_more_transitions_than_columns_is_corrupt():
    from cvae.edge.codec import rangecoder

    t = mk.TABLES
    # choice 0, then row 0 claims u = 16 (8 transitions) in a 4-pixel-wide tile
    s1 = rangecoder.encode(np.array([0, 16], np.int32), np.array([0, 1], np.int32), t.cdf, t.cdf_length,
                           t.offset, t.precision)
    with pytest.raises(CorruptTileError, match="more transitions"):
        mk.decode_mask(s1, b"", 1, 4)


def test_stream_two_must_be_empty_without_transitions():
    s1, s2 = mk.encode_mask(np.ones((8, 8), bool))
    assert s2 == b""
    with pytest.raises(CorruptTileError):
        mk.decode_mask(s1, b"\x10" * 17, 8, 8)
