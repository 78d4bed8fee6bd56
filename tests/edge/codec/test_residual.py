"""The residual's block layout: blocks_of cuts arrays as the format defines, unblock inverts it."""
import numpy as np
from hypothesis import given, settings, strategies as st

from cvae.edge.codec import residual


def _defined(arrays, b):
    """The layout as docs/bitstream.md states it: arrays in order, blocks in raster order, a block's values in
    raster order, then zeros."""
    rows = []
    for q in arrays:
        for y in range(0, q.shape[0], b):
            for x in range(0, q.shape[1], b):
                v = q[y:y + b, x:x + b].reshape(-1)
                rows.append(np.concatenate([v, np.zeros(b * b - len(v), np.int32)]))
    return np.array(rows, np.int32).reshape(-1, b * b)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), min_size=1, max_size=4),
       st.sampled_from([4, 16, 32]), st.integers(0, 2**32 - 1))
def test_blocks_follow_the_defined_layout_and_unblock_inverts_them(shapes, b, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(-2**20, 2**20, size=s).astype(np.int32) for s in shapes]
    blocks, counts = residual.blocks_of(arrays, b)
    np.testing.assert_array_equal(blocks, _defined(arrays, b))
    assert counts.tolist() == [min(b, h - y) * min(b, w - x) for h, w in shapes
                               for y in range(0, h, b) for x in range(0, w, b)]
    values = np.concatenate([blocks[i, :n] for i, n in enumerate(counts)])
    for got, want in zip(residual.unblock(values, shapes, b), arrays):
        np.testing.assert_array_equal(got, want)
