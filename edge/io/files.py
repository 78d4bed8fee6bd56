"""The project's one atomic file writer: readers see the old file or the whole new one, never a part.

A temp file in the target's folder (``.NAME.XXXXXXXX.part``: hidden, and dropped as stale by the daemon at
start), fsync, ``os.replace`` over the target, fsync of the folder so the rename itself survives a power cut.
Everything that writes a result file goes through here: packet files, lease and quarantine reasons (daemon),
``cvae-encode``, ``cvae-decode``'s GeoTIFFs, scene packs, checkpoints, exports and benchmark results.
"""
from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Union

__all__ = ["write_atomic", "replacing", "fsync_dir", "remove_partial", "PARTIAL_SUFFIX"]

#: suffix of the temp files of writes in progress (or cut short by a crash)
PARTIAL_SUFFIX = ".part"
#: longest target name kept whole in a temp name (NAME_MAX is 255 bytes: room for the dot, token and suffix)
_NAME_LIMIT = 200

Data = Union[bytes, bytearray, memoryview, Iterable[bytes], Callable[[BinaryIO], object]]


def fsync_dir(path: str | Path) -> None:
    """Make the entries of folder ``path`` (a rename into it, a removal) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    name = path.name.encode()[:_NAME_LIMIT].decode(errors="ignore")
    return path.with_name(f".{name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def _commit(tmp: Path, path: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_atomic(path: str | Path, data: Data) -> None:
    """Write ``path`` atomically and durably.

    ``data``: bytes, an iterable of bytes chunks (e.g. a list of packets), or a callable that writes to the
    binary file it is given (``lambda f: np.savez(f, **arrays)``). The file is created with the umask's mode,
    as ``open(path, "wb")`` would. On any error the temp file is removed and the target is left as it was.
    """
    path = Path(path)
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            elif isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """For writers that want a file name rather than a file (GDAL, onnxruntime's quantizer): yields a temp
    path beside ``path`` to write; on leaving the block normally it is fsynced and renamed over ``path`` (and
    the folder fsynced), on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        yield tmp
        _commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partial(path: str | Path) -> None:
    """Remove the temp files of writes to ``path`` cut short (``.NAME.part`` and ``.NAME.XXXXXXXX.part``)."""
    path = Path(path)
    name = path.name.encode()[:_NAME_LIMIT].decode(errors="ignore")
    mine = re.compile(rf"\.{re.escape(name)}(\.[0-9a-f]{{8}})?{re.escape(PARTIAL_SUFFIX)}")
    with os.scandir(path.parent) as entries:
        for e in entries:
            if mine.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                Path(e.path).unlink(missing_ok=True)
