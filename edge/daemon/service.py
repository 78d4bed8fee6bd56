"""The daemon's main loop: inbox -> tiles -> packet files in the outbox, crash-safe (see journal.py).

The rooms: ``logs`` (JSON lines for journald), ``spool`` (folders, finished inputs, outbox size),
``inbox`` (what waits, what is refused, quarantine), ``scenes`` (coding one scene, quota, write retries),
``cvae.edge.io.files`` (the atomic writer); here: start-up, signals, watchdog, the loop and reload.
"""
from __future__ import annotations

import gc
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cvae.edge.bundle import Bundle
from cvae.edge.codec.tile import TileCodec
from cvae.edge.daemon.config import ConfigError, DaemonConfig
from cvae.edge.daemon.inbox import quarantine_file, scan_inbox
from cvae.edge.daemon.journal import Journal
from cvae.edge.daemon.leases import Leases, LeaseWriteError, outbox_floors
from cvae.edge.daemon.logs import PRIORITY, capture_warnings, log
from cvae.edge.daemon.notify import Notifier, watchdog_interval
from cvae.edge.daemon.scenes import SceneCoding
from cvae.edge.daemon.spool import OutboxMeter, clear_partials, prepare_folders
from cvae.edge.daemon.watch import InboxWatcher
from cvae.edge.errors import CvaeError, InputError
from cvae.edge.io.files import write_atomic

__all__ = ["Service", "Engine", "State", "log", "capture_warnings", "PRIORITY", "write_file_atomic"]

#: the daemon's writer (kept under its old name); Service.write_file is replaceable in failure-injection tests
write_file_atomic = write_atomic


@dataclass(frozen=True)
class Engine:
    """What codes scenes under one config: the bundle, its codec and the packet sealer (None: unsealed).
    Loading it reads files only, so a reload that fails here changes nothing."""

    bundle: Bundle
    codec: TileCodec
    sealer: object | None

    @classmethod
    def load(cls, cfg: DaemonConfig) -> "Engine":
        bundle = Bundle.load(cfg.bundle)
        if cfg.level is not None and cfg.level >= bundle.levels:
            raise InputError(f"level: {cfg.level} is beyond this bundle's levels 0..{bundle.levels - 1}")
        sealer = None
        if cfg.key_file is not None:
            from cvae.edge.cliutil import load_key
            from cvae.edge.codec.security import Sealer

            sealer = Sealer(*load_key(cfg.key_file, key_exposed(cfg)))  # a fresh random salt: IVs never repeat
        # tiles in parallel: one network thread each (ONNX Runtime's own pool would fight the tile threads)
        threads = 1 if cfg.coding_threads > 1 else 0
        return cls(bundle, bundle.codec(cfg.backend, mode_search=cfg.mode_search, threads=threads), sealer)


def key_exposed(cfg: DaemonConfig) -> Callable[[str], None]:
    """What the daemon does with a key file group or others may read (cliutil.load_key): refuse it, unless
    ``allow_shared_key``, then a warning in the log."""

    def exposed(why: str) -> None:
        if not cfg.allow_shared_key:
            raise ConfigError(f"key_file: {why} (or set allow_shared_key: true)")
        log("warning", reason=why)

    return exposed


@dataclass(frozen=True)
class State:
    """The daemon's own state: the journal and the leases that keep ids and counts from ever repeating."""

    journal: Journal
    leases: Leases

    @classmethod
    def open(cls, cfg: DaemonConfig, write_file) -> "State":
        journal = Journal(cfg.state / "journal.sqlite")
        try:
            for folder in (cfg.outbox, cfg.quarantine, cfg.state):  # never the inbox: its producer's temp files
                clear_partials(folder)
            # a lost, fresh or restored journal continues after everything handed out before (leases.py)
            lease_path = cfg.state / "leases.json"
            had_lease = lease_path.exists()
            try:
                leases = Leases(lease_path, write_file)
            except ValueError as e:
                raise ConfigError(str(e)) from e
            scene_floor, seq_after_outbox = outbox_floors(cfg.outbox)
            if not had_lease and scene_floor == 1 and journal.next_scene_id() == 1:
                # a new daemon starts its ids at a random point of the 32-bit space, so two encoders (or a daemon
                # and cvae-encode, whose ids are random) almost never share an id; the ground tells APIDs apart
                import secrets

                scene_floor = 1 + secrets.randbelow(1 << 31)
            journal.raise_floors(max(scene_floor, leases.scene_end), leases.seq_end,
                                 None if had_lease else seq_after_outbox)
        except BaseException:
            journal.close()
            raise
        return cls(journal, leases)


class Service(SceneCoding):
    def __init__(self, cfg: DaemonConfig, notifier: Notifier | None = None):
        self.notifier = notifier or Notifier()
        self.stop = False
        self.reload = False
        self.write_file = write_file_atomic  # replaceable in failure-injection tests
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emit")
        self._setup(cfg)
        self._last_ping = 0.0
        self.wd = watchdog_interval()

    def _setup(self, cfg: DaemonConfig) -> None:
        """Folders, engine, state for ``cfg``; adopted together, and only once all three are ready."""
        prepare_folders(cfg)
        engine = Engine.load(cfg)
        try:
            state = State.open(cfg, self.write_file)
        except BaseException:
            engine.codec.close()  # the new engine is not adopted: free its sessions (and a TensorRT context)
            raise
        self.outbox = OutboxMeter(cfg.outbox, cfg.poll_interval_s)  # after State.open dropped the partial files
        self.cfg = cfg
        self.bundle, self.codec, self.sealer = engine.bundle, engine.codec, engine.sealer
        self.journal, self.leases = state.journal, state.leases

    # -- signals and the watchdog -----------------------------------------------------------------
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
        """Files to encode, oldest first; entries that are not regular files go to quarantine on the way."""
        scan = scan_inbox(self.cfg.inbox)
        for path, reason in scan.refused:
            try:
                self.quarantine(path, reason)
            except (OSError, sqlite3.Error) as err:
                log("refuse_failed", file=path.name, error=str(err))
        return list(scan.files)

    def quarantine(self, path: Path, reason: str, scene: int | None = None) -> None:
        quarantine_file(path, self.cfg.inbox, self.cfg.quarantine, reason, self.write_file)
        if scene is not None:
            self.journal.end_scene(scene, "quarantined", reason)
        self.journal.add("quarantined", 1)
        log("quarantined", file=path.name, reason=reason)

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

    # -- loop -------------------------------------------------------------------------------------
    def run(self, once: bool = False, config_path: Path | None = None) -> int:
        capture_warnings()
        self.notifier.notify("READY=1", f"STATUS=engine loaded, model {self.bundle.model_id[:12]}")
        self.watcher = InboxWatcher(self.cfg.inbox)
        log("ready", model=self.bundle.model_id[:16], inbox=str(self.cfg.inbox), outbox=str(self.cfg.outbox),
            watch=self.watcher.mode, mode_search=self.codec.mode_search)  # resolved: 'residual' on a CPU by default
        state_delay, state_errors = 0.5, 0
        try:
            while not self.stop:
                if self.reload:
                    self.reload = False
                    if config_path is not None:  # no config file (a test's Service): nothing to reload from
                        self.do_reload(config_path)
                files = self.pending()
                for f in files:
                    if self.stop or self.reload:  # a reload is taken between scenes, not after the whole queue
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
                    self._idle()
        finally:
            self.notifier.notify("STOPPING=1")
            log("stopping")
            self._pool.shutdown(wait=True)
            self.watcher.close()
            self.journal.close()
            self.codec.close()  # network sessions, TensorRT contexts and CUDA memory: nothing codes any more
        return 0

    def _idle(self) -> None:
        """Wait for the inbox to change (inotify, else polling), a rescan at least every poll interval."""
        self.ping("idle")
        end = time.monotonic() + self.cfg.poll_interval_s
        while not self.stop and not self.reload and time.monotonic() < end:
            if self.watcher.wait(min(0.5, self.cfg.poll_interval_s)):
                break
            if self.watcher.mode == "polling":
                self.sleep(min(0.2, max(0.0, end - time.monotonic())))
            self.ping()

    def do_reload(self, config_path: Path) -> None:
        """SIGHUP: the new config, bundle, codec and state are all adopted, or, if any fails, none is and the
        daemon goes on exactly as before (the old journal stays open until the new one is ready)."""
        self.notifier.notify("RELOADING=1")
        old_journal, old_codec = self.journal, self.codec
        try:
            self._setup(DaemonConfig.from_yaml(config_path))
        except (CvaeError, OSError, sqlite3.Error) as e:
            log("reload_failed", error=str(e))
        else:
            old_journal.close()
            old_codec.close()  # reloads are taken between scenes: nothing uses the old engine any more
            # what the old engine held (network sessions, arenas: ~160 MB) is freed by reference counting; a
            # collection also frees any cycle, so that no reload keeps what it replaced
            gc.collect()
            log("reloaded", config=str(config_path), mode_search=self.codec.mode_search)
        self.notifier.notify("READY=1")
