import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cvae.edge.io.tiling import tile_grid


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 700), w=st.integers(1, 700), tile=st.sampled_from([16, 32, 64, 256]))
def test_windows_cover_the_scene_exactly_once(h, w, tile):
    count = np.zeros((h, w), np.int32)
    for win in tile_grid(h, w, tile):
        assert 0 < win.height <= tile and 0 < win.width <= tile
        count[win.slices] += 1
    assert (count == 1).all()


def test_grid_positions_are_row_major():
    wins = list(tile_grid(40, 70, 32))
    assert [(x.row, x.col) for x in wins] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert (wins[-1].height, wins[-1].width) == (8, 6)


@pytest.mark.parametrize("tile", [0, 100, -16])
def test_rejects_bad_tile_size(tile):
    with pytest.raises(ValueError, match="multiple of 16"):
        list(tile_grid(10, 10, tile))
