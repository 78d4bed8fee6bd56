"""Scene ids and packet sequence counts that never repeat, even when the journal is lost.

The journal (journal.py) hands out scene ids (SQLite AUTOINCREMENT) and sequence counts (``seq_next``). A
journal that is deleted, corrupted or restored from an old copy would start again at scene 1 and count 0:
the new packet files would overwrite files still waiting for downlink, and the ground would merge two scenes
that share an id. Two guards make that impossible:

- **Leases** (``state/leases.json``): the journal may only hand out ids below ``scene_end`` and counts below
  ``seq_end``. Before going beyond, the daemon writes a larger lease (temp file, fsync, rename). A fresh or
  older journal is raised to the lease ends first, so it continues after everything any earlier journal could
  have handed out. The blocks are 1: the lease is an exact high-water mark written before each reservation
  (one small atomic write per packet file), because CCSDS counts are only 14 bits: skipping a block at every
  restart would wrap the count within a few restarts onto packets still waiting in the outbox.
- **The outbox**: packet files still there name their scene (``{scene:08d}_{unit:05d}.pkt``) and carry their
  sequence counts. Scene ids continue above the highest one found; the sequence count continues after the
  last packet of the newest file (CCSDS counts are 14 bits: the counter is raised to the next value with
  that remainder). This covers a lost state folder as well, for everything not yet downlinked.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from cvae.edge.codec import packets as pk

__all__ = ["Leases", "LeaseWriteError", "outbox_floors", "SCENE_BLOCK", "SEQ_BLOCK"]

SCENE_BLOCK = 1
SEQ_BLOCK = 1
_NAME = re.compile(r"^(\d{8,10})_\d{5}\.pkt$")


class LeaseWriteError(Exception):
    """The lease could not be written (state folder full or failing): a failure of the daemon's own state,
    retried with back-off like a journal error, never blamed on the scene being coded."""


class Leases:
    """The upper bounds the journal may allocate below, persisted in ``path`` (JSON, written atomically)."""

    def __init__(self, path: Path, write_file):
        self.path = Path(path)
        self.write_file = write_file
        self.scene_end, self.seq_end = 0, 0
        if self.path.exists():
            try:
                d = json.loads(self.path.read_text())
                self.scene_end, self.seq_end = int(d["scene_end"]), int(d["seq_end"])
            except (ValueError, KeyError, TypeError) as e:
                # a damaged lease cannot be trusted to be an upper bound: refuse, never guess low
                raise ValueError(f"{self.path}: damaged lease file ({e}); restore it from a backup, or move it away "
                                 "only if the outbox holds every packet file not yet downlinked") from e

    def _save(self) -> None:
        try:
            self.write_file(self.path, json.dumps({"scene_end": self.scene_end, "seq_end": self.seq_end}).encode())
        except OSError as e:
            raise LeaseWriteError(f"{self.path}: {e}") from e

    def cover_scene(self, scene_id: int) -> None:
        """Make sure ``scene_id`` lies below the lease before the journal hands it out."""
        if scene_id >= self.scene_end:
            old, self.scene_end = self.scene_end, scene_id + SCENE_BLOCK
            self._commit(lambda: setattr(self, "scene_end", old))

    def cover_seq(self, last: int) -> None:
        """Make sure sequence counts up to ``last`` (unwrapped) lie below the lease."""
        if last >= self.seq_end:
            old, self.seq_end = self.seq_end, last + SEQ_BLOCK
            self._commit(lambda: setattr(self, "seq_end", old))

    def _commit(self, undo) -> None:
        try:
            self._save()
        except LeaseWriteError:
            undo()  # the file still says the old end: so must we, or the next try would skip the write
            raise


def outbox_floors(outbox: Path) -> tuple[int, int | None]:
    """``(lowest scene id not used by a file in the outbox, next 14-bit sequence count after the newest file or
    None when the outbox holds no packet)``."""
    scene_floor, newest = 1, None
    for e in os.scandir(outbox):
        m = _NAME.match(e.name)
        if not m or not e.is_file():
            continue
        scene_floor = max(scene_floor, int(m.group(1)) + 1)
        key = (e.stat().st_mtime_ns, e.name)
        if newest is None or key > newest[0]:
            newest = (key, Path(e.path))
    seq = None
    if newest is not None:
        packets = list(pk.parse_stream(newest[1].read_bytes()))
        if packets:
            seq = (packets[-1].seq_count + 1) % pk.SEQ_MODULO
    return scene_floor, seq
