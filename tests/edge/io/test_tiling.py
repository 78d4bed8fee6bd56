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


def test_band_ranges_leave_out_per_band_fill_values():
    from cvae.edge.io.raster import band_ranges, fill_value_mask

    px = np.full((2, 10, 10), 5000, np.uint16)
    px[:, :3] = 0            # fill in every band: nodata pixels
    px[0, 5, 5] = 0          # fill in band 0 only
    px[1, 6, 6] = 9000
    valid = fill_value_mask(px, None)
    assert valid[5, 5] and not valid[0, 0]
    lo, hi = band_ranges(px, valid, None)
    assert list(lo) == [5000, 5000] and list(hi) == [5000, 9000]
    px8 = np.full((1, 4, 4), 10, np.uint8)
    px8[0, 0, 0] = 255
    assert band_ranges(px8, fill_value_mask(px8, 255), 255)[1][0] == 10
