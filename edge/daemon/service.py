"""The daemon's main loop: inbox -> tiles -> packet files in the outbox, crash-safe (see journal.py)."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cvae.edge.bundle import Bundle
from cvae.edge.codec import packets as pk
from cvae.edge.daemon.config import DaemonConfig
from cvae.edge.daemon.journal import Journal
from cvae.edge.daemon.leases import Leases, LeaseWriteError, outbox_floors
from cvae.edge.daemon.notify import Notifier, watchdog_interval
from cvae.edge.daemon.watch import InboxWatcher
from cvae.edge.encoder import choose_level, scene_metadata, tile_bodies
from cvae.edge.errors import CvaeError, InputError
from cvae.edge.io.raster import GDAL_CACHE_MB, Raster, RasterInfo, band_fill_mask, read_window, scan_raster
from cvae.edge.io.tiling import tile_grid

__all__ = ["Service", "log", "capture_warnings", "PRIORITY"]

_IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


#: syslog priority of each event (journald: 3 err, 4 warning, 5 notice, 6 info); unlisted events are info
PRIORITY = {"giving_up": 3, "quarantine_failed": 3, "refuse_failed": 3, "reload_failed": 3, "state_error": 3,
            "write_error": 3, "scene_failed": 4, "quarantined": 4, "outbox_full": 4, "warning": 4, "vanished": 5}


def log(event: str, **fields) -> None:
    """One JSON object per line on stderr, with its syslog ``priority``. Under systemd (``JOURNAL_STREAM`` set)
    the line starts with ``<N>``, which journald takes as the priority and strips (``journalctl -p warning``
    then shows the warnings and errors); elsewhere the line is plain JSON."""
    prio = PRIORITY.get(event, 6)
    line = json.dumps({"t": round(time.time(), 3), "event": event, "priority": prio, **fields}, default=str)
    print(f"<{prio}>{line}" if os.environ.get("JOURNAL_STREAM") else line, file=sys.stderr, flush=True)


def capture_warnings() -> None:
    """Python and rasterio warnings become ``warning`` log lines instead of free text in the JSON stream."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        log("warning", category=category.__name__, message=str(message)[:500], where=f"{Path(filename).name}:{lineno}")

    warnings.showwarning = show


def _bounded_name(name: str, limit: int = 200) -> str:
    """``name`` short enough that ``name + '.reason.txt'`` fits NAME_MAX (255), kept unique by a hash."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name.encode()[:limit - 13].decode(errors="ignore") + "_" + digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Service:
    def __init__(self, cfg: DaemonConfig, notifier: Notifier | None = None):
        self.cfg = cfg
        self.notifier = notifier or Notifier()
        self.stop = False
        self.reload = False
        self.write_file = write_file_atomic  # replaceable in failure-injection tests
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emit")
        self._setup(cfg)
        self._last_ping = 0.0
        self.wd = watchdog_interval()

    def _setup(self, cfg: DaemonConfig) -> None:
        for d in (cfg.inbox, cfg.outbox, cfg.done, cfg.quarantine, cfg.state):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("done", "quarantine"):  # inputs move there by rename: a copy across filesystems is not atomic
            if os.stat(getattr(cfg, name)).st_dev != os.stat(cfg.inbox).st_dev:
                from cvae.edge.daemon.config import ConfigError

                raise ConfigError(f"{name}: {getattr(cfg, name)} is on another filesystem than inbox {cfg.inbox}; "
                                  "inputs are moved by an atomic rename, so put both on one filesystem")
        self.bundle = Bundle.load(cfg.bundle)
        if cfg.level is not None and cfg.level >= self.bundle.levels:
            raise InputError(f"level: {cfg.level} is beyond this bundle's levels 0..{self.bundle.levels - 1}")
        self.codec = self.bundle.codec(cfg.backend, mode_search=cfg.mode_search)
        self.sealer = None
        if cfg.key_file is not None:
            from cvae.edge.codec.security import Sealer, load_key_file

            self.sealer = Sealer(*load_key_file(cfg.key_file))  # a fresh random salt: IVs never repeat
            from cvae.edge.codec.security import key_file_exposure

            exposure = key_file_exposure(cfg.key_file)
            if exposure and not cfg.allow_shared_key:
                from cvae.edge.daemon.config import ConfigError

                raise ConfigError(f"key_file: {exposure} (or set allow_shared_key: true)")
            if exposure:
                log("warning", reason=exposure)
        self.journal = Journal(cfg.state / "journal.sqlite")
        for stale in cfg.outbox.glob(".*.part"):  # temp files of a write cut short: never visible, safe to drop
            stale.unlink(missing_ok=True)
        # a lost, fresh or restored journal continues after everything handed out before (leases.py)
        lease_path = cfg.state / "leases.json"
        had_lease = lease_path.exists()
        try:
            self.leases = Leases(lease_path, self.write_file)
        except ValueError as e:
            from cvae.edge.daemon.config import ConfigError

            raise ConfigError(str(e)) from e
        scene_floor, seq_after_outbox = outbox_floors(cfg.outbox)
        if not had_lease and scene_floor == 1 and self.journal.next_scene_id() == 1:
            # a new daemon starts its ids at a random point of the 32-bit space, so two encoders (or a daemon and
            # cvae-encode, whose ids are random) almost never share an id; the ground also tells APIDs apart
            import secrets

            scene_floor = 1 + secrets.randbelow(1 << 31)
        self.journal.raise_floors(max(scene_floor, self.leases.scene_end), self.leases.seq_end,
                                  None if had_lease else seq_after_outbox)

    # -- signals ----------------------------------------------------------------------------------
    def install_signals(self) -> None:
        def on_term(signum, frame):
            self.stop = True

        def on_hup(signum, frame):
            self.reload = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)

    def ping(self, status: str | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if force or self.wd is None or now - self._last_ping >= min(self.wd, 5.0):
            lines = ["WATCHDOG=1"] + ([f"STATUS={status}"] if status else [])
            self.notifier.notify(*lines)
            self._last_ping = now

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stop and time.monotonic() < end:
            self.ping()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))

    # -- inbox ------------------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        files = []
        for e in os.scandir(self.cfg.inbox):
            if e.name.startswith(".") or e.name.lower().endswith(_IGNORED_SUFFIXES):
                continue
            if e.is_symlink() or not e.is_file(follow_symlinks=False):
                self._refuse_entry(Path(e.path), e)
                continue
            files.append((e.stat().st_mtime_ns, e.name, Path(e.path)))
        return [p for _, _, p in sorted(files)]

    def _refuse_entry(self, path: Path, entry: os.DirEntry) -> None:
        """Symlinks (never followed: they may point anywhere), FIFOs, sockets, devices and folders are moved to
        quarantine with the reason, so they neither block nor silently sit in the inbox."""
        kind = ("symlink" + (" (dangling)" if not os.path.exists(path) else "") if entry.is_symlink()
                else "folder" if entry.is_dir(follow_symlinks=False) else "special file (FIFO, socket or device)")
        try:
            self.quarantine(path, f"InputError: {kind} in the inbox; only regular files are encoded: move or copy "
                                  "the GeoTIFF itself into the inbox")
        except (OSError, sqlite3.Error) as err:
            log("refuse_failed", file=path.name, error=str(err))

    def outbox_bytes(self) -> int:
        return sum(e.stat().st_size for e in os.scandir(self.cfg.outbox) if e.is_file())

    def quarantine(self, path: Path, reason: str, scene: int | None = None) -> None:
        name = _bounded_name(path.name)
        target = self.cfg.quarantine / name
        if target.exists():  # a second bad file of the same name: keep both
            stem = hashlib.sha256(f"{path.name}{time.time_ns()}".encode()).hexdigest()[:8]
            name = _bounded_name(f"{stem}_{path.name}")
            target = self.cfg.quarantine / name
        os.replace(path, target)
        self.write_file(self.cfg.quarantine / f"{name}.reason.txt", (reason + "\n").encode())
        _fsync_dir(self.cfg.inbox)
        if scene is not None:
            self.journal.end_scene(scene, "quarantined", reason)
        self.journal.add("quarantined", 1)
        log("quarantined", file=path.name, reason=reason)

    # -- one scene --------------------------------------------------------------------------------
    def load(self, path: Path) -> RasterInfo:
        """Header checks, then one bounded pass (band ranges, the valid rule, NaN check): memory of one row of
        tiles, whatever the scene's size; the pixels are read again a tile row at a time while coding."""
        if path.stat().st_size == 0:
            raise InputError("empty file")
        # scan_raster checks the header first (size, band count, dtype: io.raster.check_header)
        info = scan_raster(path, max_samples=self.cfg.max_scene_pixels, rows=self.cfg.tile_size)
        if info.band_range is None:
            raise InputError("no valid pixel: every pixel is nodata")
        return info

    def process(self, path: Path) -> bool:
        """Encode one scene; True when it finished (done or quarantined), False when stopped midway."""
        st = path.stat()
        found = self.journal.find_scene(path, st.st_size, st.st_mtime_ns)
        if found and found[1] == "active":
            scene = found[0]
        else:
            self.leases.cover_scene(self.journal.next_scene_id())
            scene = self.journal.start_scene(path, st.st_size, st.st_mtime_ns)
        try:
            info = self.load(path)
        except (InputError, OSError) as e:
            self.quarantine(path, f"{type(e).__name__}: {e}", scene)
            return True
        import rasterio

        c, h, w = info.shape
        windows = list(tile_grid(h, w, self.cfg.tile_size))
        self.journal.set_tiles(scene, len(windows))
        header = Raster(np.broadcast_to(np.zeros(1, info.dtype), info.shape), np.ones((1, 1), bool), info.nodata,
                        info.profile, info.descriptions, info.colorinterp, info.tags)  # shape and dtype only
        meta = pk.encode_metadata({**scene_metadata(header, path.stem, self.bundle, self.cfg.tile_size,
                                                    source_dtype=info.source_dtype), "scene_id": scene})
        mid = bytes.fromhex(self.bundle.model_id)[:4]
        meta_header = pk.SecondaryHeader(kind=pk.KIND_METADATA, model_id=mid, scene_id=scene)
        log("scene_start", scene=scene, file=path.name, shape=list(info.shape), tiles=len(windows))
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(path) as ds:
            return self._units(path, scene, ds, info, windows, meta_header, meta)

    def _units(self, path, scene, ds, info, windows, meta_header, meta) -> bool:
        block_row, block = -1, None
        units = [-1] + list(range(len(windows))) + [len(windows)]
        # Two stages overlap: the network runs on tile k+1 (this thread) while tile k is entropy coded,
        # reserved, written and committed (one worker thread, so units still complete strictly in order).
        pending = None
        for unit in units:
            if self.stop:
                break
            t0 = time.monotonic()
            row = self.journal.unit(scene, unit)
            name = f"{scene:08d}_{unit + 1:05d}.pkt"
            if row is not None and row[1] == "done":
                continue
            if row is not None and (self.cfg.outbox / row[0]).exists():
                if pending is not None and not pending.result():
                    return False
                pending = None
                self.journal.finish(scene, unit, (self.cfg.outbox / row[0]).stat().st_size, None, 0.0,
                                    tile=0 <= unit < len(windows))
                continue  # written before a crash, not yet recorded: never rewrite (it may be on its way down)
            analyzed = None
            if 0 <= unit < len(windows):
                win = windows[unit]
                if win.row != block_row:  # one row of tiles in memory at a time
                    block_row, block = win.row, read_window(ds, info, win.y0, win.height)
                xs = slice(win.x0, win.x0 + win.width)
                px, ok = block[0][:, :, xs], block[1][:, xs]
                analyzed = self.codec.analyze(px, ok, band_range=info.band_range,
                                              band_fill=band_fill_mask(px, ok, info.nodata))
            if pending is not None and not pending.result():
                return False
            pending = self._pool.submit(self._emit, scene, unit, name, analyzed,
                                        windows[unit] if analyzed is not None else None, len(windows),
                                        meta_header, meta, t0)
            self.ping(f"scene {scene} {path.name}: unit {unit + 2}/{len(units)}")
        if pending is not None and not pending.result():
            return False
        if self.stop:
            return False
        self.finish_input(path)
        self.journal.end_scene(scene, "done")
        log("scene_done", scene=scene, file=path.name, tiles=len(windows))
        return True

    def _emit(self, scene, unit, name, analyzed, window, tiles, meta_header, meta, t0) -> bool:
        """Stage 2 of a unit: quantise + entropy code, reserve sequence counts, write, commit."""
        if not self.wait_for_quota():
            return False
        level = None
        if analyzed is not None:
            level = self.cfg.level if self.cfg.level is not None else choose_level(self.codec, analyzed, self.cfg.tile_bytes)
            bodies = tile_bodies(self.codec, analyzed, window, level, unit, tiles, meta_header, meta)
        else:
            bodies = [(meta_header, meta)]
        writer = pk.PacketWriter(self.cfg.apid, sealer=self.sealer)
        n = sum(max(1, -(-len(b) // writer.max_segment)) for _, b in bodies)
        self.leases.cover_seq(self.journal.counter("seq_next") + n - 1)
        first = self.journal.reserve(scene, unit, name, n)
        writer.seq_count = first % pk.SEQ_MODULO
        data = b"".join(p for h, b in bodies for p in writer.packets(h, b))
        if not self.write_with_retry(self.cfg.outbox / name, data):
            return False
        self.journal.finish(scene, unit, len(data), level, time.monotonic() - t0, tile=level is not None)
        return True

    def finish_input(self, path: Path) -> None:
        _fsync_dir(self.cfg.outbox)  # every packet file is durable before the input goes
        if self.cfg.after_success == "delete":
            path.unlink()
        else:
            os.replace(path, self.cfg.done / path.name)
            _fsync_dir(self.cfg.done)
        _fsync_dir(self.cfg.inbox)

    def wait_for_quota(self) -> bool:
        paused = False
        while self.outbox_bytes() >= self.cfg.outbox_quota_bytes:
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
        delay = 0.5
        while True:
            try:
                self.write_file(path, data)
                return True
            except OSError as e:
                self.journal.add("write_errors", 1)
                log("write_error", file=path.name, errno=errno.errorcode.get(e.errno, e.errno), error=str(e),
                    retry_in_s=delay)
                Path(path.parent / f".{path.name}.part").unlink(missing_ok=True)
                self.sleep(delay)
                if self.stop:
                    return False
                delay = min(self.cfg.retry_max_s, delay * 2)

    # -- loop -------------------------------------------------------------------------------------
    def run(self, once: bool = False, config_path: Path | None = None) -> int:
        capture_warnings()
        self.notifier.notify("READY=1", f"STATUS=engine loaded, model {self.bundle.model_id[:12]}")
        self.watcher = InboxWatcher(self.cfg.inbox)
        log("ready", model=self.bundle.model_id[:16], inbox=str(self.cfg.inbox), outbox=str(self.cfg.outbox),
            watch=self.watcher.mode)
        state_delay, state_errors = 0.5, 0
        try:
            while not self.stop:
                if self.reload and config_path is not None:
                    self.reload = False
                    self.do_reload(config_path)
                files = self.pending()
                for f in files:
                    if self.stop:
                        break
                    try:
                        self.process(f)
                        state_delay, state_errors = 0.5, 0
                    except FileNotFoundError:
                        log("vanished", file=f.name)
                    except (sqlite3.Error, LeaseWriteError) as e:  # the daemon's own state: retry, never exit
                        self.journal.rollback()
                        state_errors += 1
                        log("state_error", file=f.name, error=str(e), retry_in_s=state_delay)
                        if once and state_errors >= 8:  # a one-shot run reports it; the service keeps trying
                            log("giving_up", reason="the journal keeps failing", error=str(e))
                            return 1
                        self.sleep(state_delay)
                        state_delay = min(self.cfg.retry_max_s, state_delay * 2)
                        break
                    except Exception as e:  # noqa: BLE001 - any per-file failure: quarantine it, go on
                        self._quarantine_failed(f, e)
                if once and not self.pending():
                    break
                if not files:
                    self.ping("idle")
                    end = time.monotonic() + self.cfg.poll_interval_s  # a rescan at least this often
                    while not self.stop and not self.reload and time.monotonic() < end:
                        if self.watcher.wait(min(0.5, self.cfg.poll_interval_s)):
                            break
                        if self.watcher.mode == "polling":
                            self.sleep(min(0.2, max(0.0, end - time.monotonic())))
                        self.ping()
        finally:
            self.notifier.notify("STOPPING=1")
            log("stopping")
            self._pool.shutdown(wait=True)
            self.watcher.close()
            self.journal.close()
        return 0

    def _quarantine_failed(self, path: Path, e: Exception) -> None:
        """A scene whose processing raised: into quarantine with the reason, so the queue never blocks on it."""
        log("scene_failed", file=path.name, error=f"{type(e).__name__}: {e}")
        if not path.exists():
            return
        try:
            self.quarantine(path, f"{type(e).__name__} while encoding: {e}")
        except (OSError, sqlite3.Error) as q:
            log("quarantine_failed", file=path.name, error=str(q))
            self.sleep(self.cfg.poll_interval_s)

    def do_reload(self, config_path: Path) -> None:
        self.notifier.notify("RELOADING=1")
        try:
            cfg = DaemonConfig.from_yaml(config_path)
            self.journal.close()
            self._setup(cfg)
            self.cfg = cfg
            log("reloaded", config=str(config_path))
        except CvaeError as e:
            log("reload_failed", error=str(e))
            self.journal = Journal(self.cfg.state / "journal.sqlite")
        self.notifier.notify("READY=1")
