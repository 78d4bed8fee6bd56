"""The mask entropy tables of tile formats v3 to v6, as docs/bitstream.md gives them ("Mask tables"), are the shipped
ones: rebuilt here from the doc's own numbers by the doc's own rule (not by calling ``mask._tables``), and read from
the data file ``docs/tables/mask_tables.txt``, they equal ``cvae.edge.codec.mask.TABLES`` integer for integer.

``python tests/test_docs_mask_tables.py`` rewrites the data file from the shipped tables (only after an intended
format change, which needs a new tile format version)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from cvae.edge.codec import mask

DOCS = Path(__file__).resolve().parents[1] / "docs"
DATA = DOCS / "tables" / "mask_tables.txt"


def doc_rows() -> tuple[dict, list[dict]]:
    """The parameters block of docs/bitstream.md between ``<!-- mask-tables -->`` and ``<!-- /mask-tables -->``."""
    text = (DOCS / "bitstream.md").read_text()
    block = re.search(r"<!-- mask-tables -->\s*```\n(.*?)```\s*<!-- /mask-tables -->", text, re.S)
    assert block, "docs/bitstream.md lost its mask-tables block"
    lines = [ln.split() for ln in block.group(1).strip().splitlines()]
    params = dict(zip(lines[0][0::2], (int(v) for v in lines[0][1::2])))
    head = lines[1]
    rows = [dict(zip(head, ln)) for ln in lines[2:]]
    return params, rows


def geometric(num: int, n: int, q0: int) -> list[int]:
    """The doc's weights: q_0 = 2^40, q_(k+1) = floor(q_k num / 2^16), g_k = max(q_k, 1)."""
    out, q = [], q0
    for _ in range(n):
        out.append(max(q, 1))
        q = q * num // 65536
    return out


def doc_cdf(weights: list[int], precision: int) -> list[int]:
    """The doc's rule: freq = 1 + floor(w (T - K - 1) / S), escape 1, the first largest takes the remainder."""
    total, k, s = 1 << precision, len(weights) + 1, sum(weights)
    freq = [1 + w * (total - k - 1) // s for w in weights] + [1]
    top = max(range(len(freq)), key=lambda i: (freq[i], -i))
    freq[top] += total - sum(freq)
    cdf = [0]
    for f in freq:
        cdf.append(cdf[-1] + f)
    return cdf


def tables_from_doc() -> tuple[int, list[tuple[int, list[int]]]]:
    params, rows = doc_rows()
    q0 = 1 << params["q0_log2"]
    out = []
    for row in rows:
        size, offset = int(row["size"]), int(row["offset"])
        if row["kind"] == "uniform":
            w = [1] * size
        elif row["kind"] == "one-sided":
            w = geometric(int(row["num"]), size, q0)
        else:
            g = geometric(int(row["num"]), size + 1, q0)
            w = g[:0:-1] + g
        out.append((offset, doc_cdf(w, params["precision"])))
    return params["precision"], out


def read_data_file() -> tuple[int, list[tuple[int, list[int]]]]:
    precision, rows = None, []
    for line in DATA.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("precision"):
            precision = int(line.split()[1])
            continue
        head, cdf = line.split(":")
        _, r, _, offset, _, length = head.split()
        assert int(r) == len(rows)
        values = [int(v) for v in cdf.split()]
        assert len(values) == int(length)
        rows.append((int(offset), values))
    return precision, rows


def _assert_shipped(precision: int, rows: list[tuple[int, list[int]]]) -> None:
    t = mask.TABLES
    assert precision == t.precision
    assert len(rows) == len(t.cdf_length)
    for i, (offset, cdf) in enumerate(rows):
        assert offset == int(t.offset[i]), f"row {i}: offset"
        assert len(cdf) == int(t.cdf_length[i]), f"row {i}: cdf_length"
        assert cdf == t.cdf[i, :len(cdf)].tolist(), f"row {i}: cdf"
        assert not t.cdf[i, len(cdf):].any(), f"row {i}: padding"


def test_the_docs_rule_and_numbers_rebuild_the_shipped_mask_tables():
    _assert_shipped(*tables_from_doc())


def test_the_docs_data_file_is_the_shipped_mask_tables():
    _assert_shipped(*read_data_file())


def test_the_doc_calls_the_gap_row_one_sided():
    _, rows = doc_rows()
    assert [r["kind"] for r in rows[:3]] == ["uniform", "two-sided", "one-sided"]
    assert all(r["kind"] == "two-sided" for r in rows[3:])


def write_data_file() -> None:
    t = mask.TABLES
    lines = ["# The mask entropy tables of tile formats v3 to v6 (docs/bitstream.md, \"Mask tables\"): rANS tables",
             "# (docs/range_coder.md), one row per line: `row R offset O length L: cdf[0] .. cdf[L-1]`; the last",
             "# symbol of every row is the escape. Written by `python tests/test_docs_mask_tables.py` from",
             "# cvae.edge.codec.mask.TABLES; tests/test_docs_mask_tables.py checks it equals them.",
             f"precision {t.precision}"]
    for i in range(len(t.cdf_length)):
        n = int(t.cdf_length[i])
        lines.append(f"row {i} offset {int(t.offset[i])} length {n}: " + " ".join(map(str, t.cdf[i, :n].tolist())))
    DATA.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_data_file()
    print(f"wrote {DATA}")
    sys.exit(0)
