"""The project's one atomic writer (cvae.edge.io.files)."""
from __future__ import annotations

import os

import pytest

from cvae.edge.io.files import remove_partial, replacing, write_atomic


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("data", [b"abc", [b"a", b"bc"], lambda f: f.write(b"abc")], ids=["bytes", "chunks", "callable"])
def test_write_atomic_writes_bytes_chunks_or_through_a_callable(tmp_path, data):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_atomic(target, data)
    assert target.read_bytes() == b"abc" and not _leftovers(tmp_path)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fails(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(target, fails)
    assert target.read_bytes() == b"old" and not _leftovers(tmp_path)


def test_written_files_get_the_umask_mode_as_open_would(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644


def test_replacing_commits_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "scene.tif"
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".scene.tif.") and tmp.name.endswith(".part")
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_bytes(b"broken")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"new" and not _leftovers(tmp_path)


def test_remove_partial_drops_only_the_temp_files_of_that_target(tmp_path):
    for name in (".a.pkt.part", ".a.pkt.0123abcd.part", ".a.pkt.x.part", ".b.pkt.part", "a.pkt"):
        (tmp_path / name).write_bytes(b"x")
    remove_partial(tmp_path / "a.pkt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.pkt.x.part", ".b.pkt.part", "a.pkt"]


def test_very_long_names_still_get_a_temp_file(tmp_path):
    target = tmp_path / ("x" * 250)
    write_atomic(target, b"x")
    assert target.read_bytes() == b"x" and not _leftovers(tmp_path)
