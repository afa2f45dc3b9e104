# lichen.worker: one worker process of the `lichen` command.
#
# Strategy: after fork the worker loads the app (so HUP's new workers run new
# code), serves the listeners it inherited with one WSGIServer on its hub,
# and proves it is alive by touching its heartbeat file from a hub timer: if
# the loop blocks, the touches stop and the master kills the worker. Signals
# only queue work for the hub: TERM stops gracefully, INT/QUIT quickly. What
# the worker shares with its master (exit codes, log files) comes from
# lichen.process; the worker never imports the master's module.
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from lichen.apploader import AppLoadError, load_app
from lichen.config import Config
from lichen.hub import get_hub, spawn
from lichen.loop import Timer
from lichen.process import WORKER_BOOT_ERROR, WORKER_RELOAD, reopen_log_files
from lichen.sync import Event

__all__ = ["run_worker", "build_server"]

log = logging.getLogger("lichen.error")


def build_server(cfg: Config, listeners: list[Any], app: Any) -> Any:
    from lichen.wsgi import WSGIServer

    st = cfg.settings
    # The command's logs are its loggers (configured by the master), not the
    # library's defaults (gevent's: sys.stderr).
    access = None if st.no_access_log else logging.getLogger("lichen.access")
    # A CommandSettings is a Settings: the server reads its own fields.
    return WSGIServer(listeners, app, log=access, error_log=log, certfile=st.certfile, keyfile=st.keyfile,
                      settings=st)


def _load(cfg: Config) -> Any:
    if not cfg.app:
        from lichen.demo import app

        return app
    pythonpath = [p for p in (cfg.pythonpath or "").split(",") if p]
    return load_app(cfg.app, chdir=cfg.chdir, pythonpath=pythonpath)


def run_worker(cfg: Config, listeners: list[Any], heartbeat: Any, age: int, max_requests: int) -> int:
    """Serve until told to stop; returns the process exit code."""
    try:
        app = _load(cfg)
    except AppLoadError as e:
        log.error("cannot load the application: %s", e)
        return WORKER_BOOT_ERROR
    server = build_server(cfg, listeners, app)
    hub = get_hub()
    done = Event()
    outcome = {"code": 0}

    def stop(graceful: bool, code: int = 0) -> None:
        if done.is_set() or server.stopping:
            return
        outcome["code"] = code
        spawn(_stop, graceful)

    def _stop(graceful: bool) -> None:
        server.stop(cfg.graceful_timeout if graceful else 0)
        done.set()

    # Handlers run between bytecodes of whatever greenlet is current: they only
    # queue a callback for the hub.
    signal.signal(signal.SIGTERM, lambda s, f: hub.run_callback(stop, True))
    signal.signal(signal.SIGINT, lambda s, f: hub.run_callback(stop, False))
    signal.signal(signal.SIGQUIT, lambda s, f: hub.run_callback(stop, False))
    signal.signal(signal.SIGUSR1, lambda s, f: hub.run_callback(reopen_log_files))
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)

    server.start()
    fd = heartbeat.fileno()
    os.write(fd, b"1")  # booted
    watched = _ModuleWatcher() if cfg.reload else None

    def beat(_flags: int) -> None:
        try:
            os.utime(fd)
        except OSError:
            pass
        if max_requests and getattr(server, "requests_served", 0) >= max_requests and not server.stopping:
            log.info("worker %d served %d requests (max-requests): restarting", os.getpid(), server.requests_served)
            stop(True)
        if os.getppid() == 1 and not server.stopping:
            log.error("worker %d: the master died; stopping", os.getpid())
            stop(True)
        if watched is not None and not server.stopping:
            changed = watched.changed()
            if changed:
                log.info("worker %d: %s changed; reloading", os.getpid(), changed)
                stop(True, WORKER_RELOAD)

    period = min(max(cfg.timeout / 4, 0.2), 1.0) if cfg.timeout else 1.0
    timer = Timer(hub.loop)
    timer.callback = beat
    timer.start(period, period)
    log.info("worker %d (age %d) serving", os.getpid(), age)
    try:
        done.wait()
    finally:
        timer.close()
    return outcome["code"]


class _ModuleWatcher:
    """mtimes of the loaded modules' source files (for --reload)."""

    def __init__(self) -> None:
        self.mtimes = self._scan()

    @staticmethod
    def _scan() -> dict[str, float]:
        out = {}
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path or not path.endswith(".py") or "/site-packages/" in path or path.startswith(sys.base_prefix):
                continue
            try:
                out[path] = os.stat(path).st_mtime
            except OSError:
                pass
        return out

    def changed(self) -> str | None:
        for path, mtime in self.mtimes.items():
            try:
                if os.stat(path).st_mtime != mtime:
                    return path
            except OSError:
                return path
        return None
