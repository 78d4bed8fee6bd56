"""Coding one scene in the daemon: the encoder's row loop and packet stream, one packet file per unit.

The units of a scene are those of :class:`cvae.edge.encoder.SceneStream` (opening metadata, tiles, closing
metadata); they go through :func:`cvae.edge.encoder.scene_units`, the row loop ``cvae-encode`` runs too (the
tiles read a tile row at a time and prepared by :func:`cvae.edge.encoder.prepare_tile`), so both write the same
packet bodies. Two stages overlap: the network runs on unit k+1
(the main thread) while unit k is entropy coded, reserved in the journal, written and committed (one worker
thread, so units still complete strictly in order; see journal.py for the crash protocol).
"""
from __future__ import annotations

import errno
import sqlite3
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cvae.edge.codec import packets as pk
from cvae.edge.codec.tile import AnalyzedTile, BoundedTile, TileCodec
from cvae.edge.daemon.leases import LeaseWriteError
from cvae.edge.daemon.logs import log
from cvae.edge.daemon.spool import finish_input
from cvae.edge.encoder import SceneStream, prepare_tile, psnr_target, quality_metadata, scene_units
from cvae.edge.errors import InputError
from cvae.edge.io.files import fsync_dir, remove_partial
from cvae.edge.io.raster import RasterInfo, RowReader, open_rows, scan_raster
from cvae.edge.io.tiling import TileWindow, tile_grid

if TYPE_CHECKING:  # the attributes the Service this is mixed into provides (no import cycle at run time)
    from cvae.edge.bundle import Bundle
    from cvae.edge.daemon.config import DaemonConfig
    from cvae.edge.daemon.journal import Journal
    from cvae.edge.daemon.leases import Leases
    from cvae.edge.daemon.spool import OutboxMeter

__all__ = ["SceneJob", "UnitWork", "SceneCoding", "load_scene"]


@dataclass(frozen=True)
class SceneJob:
    """One scene being coded: its input file, journal id, header scan, tiles and packet stream."""

    path: Path
    scene: int
    info: RasterInfo
    windows: tuple[TileWindow, ...]
    stream: SceneStream

    def file_name(self, unit: int) -> str:
        """The packet file of ``unit`` in the outbox (leases.py reads scene ids back from these names)."""
        return f"{self.scene:08d}_{unit + 1:05d}.pkt"


@dataclass(frozen=True)
class UnitWork:
    """One unit handed from the network stage to the emit stage."""

    index: int                    # -1: opening metadata, 0 .. tiles-1: tiles, tiles: closing metadata
    name: str                     # its packet file in the outbox
    analyzed: AnalyzedTile | BoundedTile | None = None  # a tile ready to code (prepare_tile); None for metadata
    window: TileWindow | None = None
    started: float = 0.0          # time.monotonic() when the unit's first stage began
    level: int | None = None      # the tile's level, chosen in the first stage (0 for an error-bounded tile)


def load_scene(path: Path, max_samples: int, rows: int) -> RasterInfo:
    """Header checks, then one bounded pass (band ranges, the valid rule, NaN check): memory of one row of
    tiles, whatever the scene's size; the pixels are read again a tile row at a time while coding."""
    if path.stat().st_size == 0:
        raise InputError("empty file")
    # scan_raster checks the header first (size, band count, dtype: io.raster.check_header)
    info = scan_raster(path, max_samples=max_samples, rows=rows)
    if info.band_range is None:
        raise InputError("no valid pixel: every pixel is nodata")
    return info


class SceneCoding:
    """Scene coding, mixed into :class:`cvae.edge.daemon.service.Service`, whose attributes it uses: ``cfg``,
    ``bundle``, ``codec``, ``sealer``, ``journal``, ``leases``, ``outbox`` (a :class:`~cvae.edge.daemon.spool.
    OutboxMeter`), ``write_file``, ``stop``, ``_pool``, and its ``ping``, ``sleep`` and ``quarantine``."""

    cfg: DaemonConfig
    bundle: Bundle
    codec: TileCodec
    sealer: Any
    journal: Journal
    leases: Leases
    outbox: OutboxMeter
    write_file: Callable[[Path, bytes], None]
    stop: bool
    _pool: ThreadPoolExecutor

    if TYPE_CHECKING:
        def ping(self, status: str | None = None, force: bool = False) -> None: ...
        def sleep(self, seconds: float) -> None: ...
        def quarantine(self, path: Path, reason: str, scene: int | None = None) -> None: ...

    def load(self, path: Path) -> RasterInfo:
        return load_scene(path, self.cfg.max_scene_pixels, self.cfg.tile_size)

    def process(self, path: Path) -> bool:
        """Encode one scene; True when it finished (done or quarantined), False when stopped midway.

        A scene is refused from its header and one bounded scan, before its first packet (a bound on true
        floats, a wrong number of bounds, ...). A failure found later (a unit that raises) removes the scene's
        packet files still in the outbox and closes its journal entry: a refusal never reads as a channel loss
        on the ground, nor stays ``active``."""
        st = path.stat()
        found = self.journal.find_scene(path, st.st_size, st.st_mtime_ns)
        if found and found[1] == "active":
            scene = found[0]
        else:
            self.leases.cover_scene(self.journal.next_scene_id())
            scene = self.journal.start_scene(path, st.st_size, st.st_mtime_ns)
        try:
            info = self.load(path)
            # e.g. 4 bounds for 3 bands, or a bound on true floats: refused before any packet
            quality = quality_metadata(self.cfg.max_error, self.cfg.psnr, info.shape[0], info.integral)
        except (InputError, OSError) as e:
            self.quarantine(path, f"{type(e).__name__}: {e}", scene)
            return True
        c, h, w = info.shape
        windows = tuple(tile_grid(h, w, self.cfg.tile_size))
        self.journal.set_tiles(scene, len(windows))
        stream = SceneStream.for_scene(info.header(), path.stem, self.bundle, self.cfg.tile_size, scene,
                                       len(windows), source_dtype=info.source_dtype,
                                       extra={"scene_id": scene, **quality}, band_range=info.band_range,
                                       version=self.codec.version, max_error=self.cfg.max_error)
        job = SceneJob(path, scene, info, windows, stream)
        log("scene_start", scene=scene, file=path.name, shape=list(info.shape), tiles=len(windows))
        threads = self.cfg.coding_threads
        try:
            with open_rows(path, info) as rows, ThreadPoolExecutor(threads, thread_name_prefix="code") as coders:
                if not self._units(job, rows, coders, threads):
                    return False
        except (sqlite3.Error, LeaseWriteError, FileNotFoundError):
            raise  # the daemon's own state (retried by the loop), or the input gone: the scene stays as it is
        except Exception as e:  # noqa: BLE001 - any failure of a unit: the scene is refused whole
            self.refuse_scene(job, f"{type(e).__name__} while encoding: {e}")
            return True
        finish_input(self.cfg, path)
        self.journal.end_scene(scene, "done")
        log("scene_done", scene=scene, file=path.name, tiles=len(windows))
        return True

    def refuse_scene(self, job: SceneJob, reason: str) -> None:
        """A scene refused after some of its units were written: the packet files of it still in the outbox go
        (made durable), then the input goes to quarantine and the journal entry is closed. A crash midway
        leaves the entry active: the scene is taken up again and fails at the same unit, which finishes this."""
        removed = 0
        for name in self.journal.scene_files(job.scene):
            try:
                (self.cfg.outbox / name).unlink()
                removed += 1
            except FileNotFoundError:
                pass  # not written yet, or already taken by the downlink
        if removed:
            fsync_dir(self.cfg.outbox)
            self.outbox.rescan()
        log("scene_refused", scene=job.scene, file=job.path.name, packet_files_removed=removed, reason=reason)
        self.quarantine(job.path, reason, job.scene)

    def _units(self, job: SceneJob, rows: RowReader, coders: ThreadPoolExecutor, threads: int) -> bool:
        """Stage 1 of each unit here (read, prepare), its coding on ``coders`` (up to ``threads`` units in flight),
        stage 2 (reserve counts, write, commit) on the one emit thread, in unit order whatever finishes first.
        True once every unit is written and committed; False when stopped; a unit's failure is raised once the
        units in flight are settled (none written after it)."""
        units = job.stream.units
        flight: deque = deque()  # emit futures, oldest first
        halted: list[int | None] = []  # set once a unit fails: the units queued behind it must not commit past it

        def emit(work: UnitWork, coded: Future) -> bool:
            if halted or self.stop:
                return False
            try:
                ok = self._emit(job, work, coded)
            except BaseException:
                halted.append(work.index)
                raise
            if not ok:
                halted.append(work.index)
            return ok

        def settle(keep: int) -> bool:  # wait until at most ``keep`` units are in flight; False: one failed
            while len(flight) > keep:
                if not flight.popleft().result():
                    return False
            return True

        failed = []  # set when a unit written before a crash could not be recorded after those before it failed
        clock = [0.0]  # when the unit being submitted was taken up
        target = psnr_target(job.info, self.cfg.psnr, list(job.windows), self.codec, job.path,  # --psnr: the scene's
                             job.stream.side)  # step, and the tiles its curve pass analysed

        def skipped(unit: int) -> None:  # a tile written before a restart counts for nothing in the scene's PSNR
            if target is not None and job.stream.is_tile(unit):
                target.commit(unit)

        def pending():  # the units still to write, in order, read lazily (scene_units: one unit ahead at most)
            for unit in units:
                if self.stop:
                    return
                clock[0] = time.monotonic()
                row = self.journal.unit(job.scene, unit)
                if row is not None and row[1] == "done":
                    skipped(unit)
                    continue
                if row is not None and (self.cfg.outbox / row[0]).exists():
                    if not settle(0):
                        failed.append(unit)
                        return
                    self.journal.finish(job.scene, unit, (self.cfg.outbox / row[0]).stat().st_size, None, 0.0,
                                        tile=job.stream.is_tile(unit))
                    skipped(unit)
                    continue  # written before a crash, not yet recorded: never rewrite (it may be on its way down)
                yield unit

        def submit(unit: int, win, px, valid):  # stage 1 here (prepare: the network), the coding on ``coders``
            t0, cfg = clock[0], self.cfg
            work = UnitWork(unit, job.file_name(unit), started=t0)
            if win is not None:
                tile, level = prepare_tile(self.codec, px, valid, job.info, cfg.level, cfg.tile_bytes, cfg.max_error,
                                           cfg.psnr, scene=job.stream.side, target=target, unit=unit)
                work = UnitWork(unit, work.name, tile, win, t0, level)
            if not settle(threads - 1):
                return None
            return work, coders.submit(job.stream.bodies, unit, self.codec, work.analyzed, work.window, work.level)

        try:
            # depth 1: each unit is read, prepared and submitted only once the one before it is handed on
            for unit, submitted in scene_units(rows, job.windows, pending(), submit, 1):
                if submitted is None:
                    return False
                flight.append(self._pool.submit(emit, *submitted))
                self.ping(f"scene {job.scene} {job.path.name}: unit {unit + 2}/{len(units)}")
            return not failed and settle(0) and not self.stop
        except BaseException:
            halted.append(None)  # the units queued behind the failure write nothing ...
            for f in flight:  # ... and those being written finish before the scene is cleaned up
                try:
                    f.result()
                except BaseException:  # noqa: BLE001 - the first failure is the one raised
                    pass
            raise

    def _emit(self, job: SceneJob, work: UnitWork, coded: Future) -> bool:
        """Stage 2 of a unit, coded (quantised and entropy coded) in ``coded``: reserve sequence counts, write,
        commit. Runs on the one emit thread, so units commit in order."""
        if not self.wait_for_quota():
            return False
        bodies = coded.result()  # a coding error propagates as the unit's failure
        level = work.level
        writer = pk.PacketWriter(self.cfg.apid, sealer=self.sealer)
        n = sum(max(1, -(-len(b) // writer.max_segment)) for _, b in bodies)
        self.leases.cover_seq(self.journal.counter("seq_next") + n - 1)
        first = self.journal.reserve(job.scene, work.index, work.name, n)
        writer.seq_count = first % pk.SEQ_MODULO
        data = b"".join(p for h, b in bodies for p in writer.packets(h, b))
        if not self.write_with_retry(self.cfg.outbox / work.name, data):
            return False
        self.outbox.add(len(data))
        self.journal.finish(job.scene, work.index, len(data), level, time.monotonic() - work.started,
                            tile=level is not None)
        return True

    def wait_for_quota(self) -> bool:
        """Hold the emit stage while the outbox is over its quota (the downlink drains it); False if stopped.
        Its cost does not grow with the outbox's file count (spool.OutboxMeter)."""
        paused = False
        while self.outbox.over(self.cfg.outbox_quota_bytes):
            if not paused:
                log("outbox_full", quota=self.cfg.outbox_quota_bytes)
                self.journal.add("quota_pauses", 1)
                paused = True
            self.ping("paused: outbox over quota")
            self.sleep(self.cfg.poll_interval_s)
            if self.stop:
                return False
        return True

    def write_with_retry(self, path: Path, data: bytes) -> bool:
        """Write a packet file, retrying failed writes (ENOSPC, EIO) with back-off until stopped."""
        delay = 0.5
        while True:
            try:
                self.write_file(path, data)
                return True
            except OSError as e:
                self.journal.add("write_errors", 1)
                log("write_error", file=path.name, errno=errno.errorcode.get(e.errno or 0, e.errno), error=str(e),
                    retry_in_s=delay)
                remove_partial(path)
                self.sleep(delay)
                if self.stop:
                    return False
                delay = min(self.cfg.retry_max_s, delay * 2)
