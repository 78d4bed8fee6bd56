"""The daemon's journal: SQLite (stdlib) in WAL mode, the single source of truth across crashes.

A unit of output (scene metadata, or one tile) goes through three steps::

    reserve(scene, unit, seq_first, seq_last)   committed before any byte is written
    write temp file, fsync, rename into outbox, fsync the folder
    finish(scene, unit)                          committed after the rename

After a crash, a reserved unit whose file is in the outbox is finished without rewriting it (so it is
never sent twice); one whose file is not there is redone with fresh sequence counts (so none is reused).
"""
from __future__ import annotations

import functools
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["Journal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scenes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',        -- active, done, quarantined
    tiles INTEGER, bytes INTEGER NOT NULL DEFAULT 0, started REAL NOT NULL, finished REAL, reason TEXT
);
CREATE TABLE IF NOT EXISTS units (
    scene INTEGER NOT NULL, unit INTEGER NOT NULL, file TEXT NOT NULL,
    seq_first INTEGER NOT NULL, seq_last INTEGER NOT NULL,
    state TEXT NOT NULL,                          -- reserved, done
    bytes INTEGER, level INTEGER, seconds REAL,
    PRIMARY KEY (scene, unit)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class Journal:
    """Every public method holds one lock: the main loop and the emit worker share the connection."""

    def __init__(self, path: str | Path, read_only: bool = False):
        """``read_only``: open an existing journal without creating or changing anything (``cvae-edge status``)."""
        self._lock = threading.RLock()
        if read_only:
            if not Path(path).is_file():
                raise FileNotFoundError(path)
            self.db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # one thread at a time uses it (the main loop); tests may run that loop in a worker thread
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss
        self.db.executescript(_SCHEMA)

    @_locked
    def close(self) -> None:
        self.db.close()

    def rollback(self) -> None:
        """Abandon a transaction a failed write left open (disk full, I/O error), so the next one can start."""
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection itself is broken; the next statement reports it

    # -- counters ---------------------------------------------------------------------------------
    @_locked
    def counter(self, name: str, default: int = 0) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    @_locked
    def add(self, name: str, delta: int) -> None:
        self.db.execute("INSERT INTO counters(name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, delta))

    @_locked
    def next_scene_id(self) -> int:
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'scenes'").fetchone()
        return (row[0] if row else 0) + 1

    @_locked
    def raise_floors(self, scene_next: int, seq_next: int, seq_remainder: int | None = None) -> None:
        """Never hand out a scene id below ``scene_next`` nor a sequence count below ``seq_next``; with
        ``seq_remainder``, continue at the next count with that remainder mod 2^14 (after the outbox's newest
        packet). Only ever raises (leases.py: what a lost or restored journal must not repeat)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if self.next_scene_id() < scene_next:
                self.db.execute("DELETE FROM sqlite_sequence WHERE name = 'scenes'")
                self.db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('scenes', ?)", (scene_next - 1,))
            seq = max(self.counter("seq_next"), seq_next)
            if seq_remainder is not None:
                seq += (seq_remainder - seq) % 16384
            self.db.execute("INSERT INTO counters(name, value) VALUES ('seq_next', ?) ON CONFLICT(name) "
                            "DO UPDATE SET value = excluded.value", (seq,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- scenes -----------------------------------------------------------------------------------
    @_locked
    def find_scene(self, path: Path, size: int, mtime_ns: int):
        return self.db.execute("SELECT id, status FROM scenes WHERE path = ? AND size = ? AND mtime_ns = ? "
                               "ORDER BY id DESC LIMIT 1", (str(path), size, mtime_ns)).fetchone()

    @_locked
    def start_scene(self, path: Path, size: int, mtime_ns: int) -> int:
        cur = self.db.execute("INSERT INTO scenes(path, name, size, mtime_ns, started) VALUES (?, ?, ?, ?, ?)",
                              (str(path), path.stem, size, mtime_ns, time.time()))
        assert cur.lastrowid is not None  # an INSERT's row
        return cur.lastrowid

    @_locked
    def set_tiles(self, scene: int, tiles: int) -> None:
        self.db.execute("UPDATE scenes SET tiles = ? WHERE id = ?", (tiles, scene))

    @_locked
    def end_scene(self, scene: int, status: str, reason: str | None = None) -> None:
        self.db.execute("UPDATE scenes SET status = ?, finished = ?, reason = ? WHERE id = ?",
                        (status, time.time(), reason, scene))
        self.add(f"scenes_{status}", 1)

    # -- units ------------------------------------------------------------------------------------
    @_locked
    def unit(self, scene: int, unit: int):
        return self.db.execute("SELECT file, state, seq_first, seq_last FROM units WHERE scene = ? AND unit = ?",
                               (scene, unit)).fetchone()

    @_locked
    def scene_files(self, scene: int) -> list[str]:
        """The packet files reserved or written for ``scene``, in unit order."""
        return [r[0] for r in self.db.execute("SELECT file FROM units WHERE scene = ? ORDER BY unit", (scene,))]

    @_locked
    def reserve(self, scene: int, unit: int, file: str, packets: int) -> int:
        """Allocate ``packets`` sequence counts for ``unit``; returns the first (before wrapping)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            first = self.counter("seq_next")
            self.db.execute("INSERT OR REPLACE INTO units(scene, unit, file, seq_first, seq_last, state) "
                            "VALUES (?, ?, ?, ?, ?, 'reserved')", (scene, unit, file, first, first + packets - 1))
            self.db.execute("INSERT INTO counters(name, value) VALUES ('seq_next', ?) ON CONFLICT(name) "
                            "DO UPDATE SET value = excluded.value", (first + packets,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return first

    @_locked
    def finish(self, scene: int, unit: int, nbytes: int, level: int | None, seconds: float, tile: bool) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("UPDATE units SET state = 'done', bytes = ?, level = ?, seconds = ? "
                            "WHERE scene = ? AND unit = ?", (nbytes, level, seconds, scene, unit))
            self.db.execute("UPDATE scenes SET bytes = bytes + ? WHERE id = ?", (nbytes, scene))
            self.add("bytes", nbytes)
            if tile:
                self.add("tiles", 1)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # -- status -----------------------------------------------------------------------------------
    @_locked
    def status(self) -> dict:
        counters = dict(self.db.execute("SELECT name, value FROM counters").fetchall())
        active = self.db.execute("SELECT id, name, tiles, (SELECT COUNT(*) FROM units u WHERE u.scene = s.id "
                                 "AND u.level IS NOT NULL AND u.state = 'done') FROM scenes s WHERE status = 'active'"
                                 ).fetchall()
        lat = self.db.execute("SELECT seconds FROM units WHERE level IS NOT NULL AND seconds IS NOT NULL "
                              "ORDER BY rowid DESC LIMIT 200").fetchall()
        lat = sorted(r[0] for r in lat)
        return {"counters": counters,
                "active": [{"scene": a, "name": n, "tiles": t, "tiles_done": d} for a, n, t, d in active],
                "tile_latency_p50_s": lat[len(lat) // 2] if lat else None,
                "tile_latency_p99_s": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None}
