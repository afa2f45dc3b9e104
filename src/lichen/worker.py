# lichen.worker: one worker process of the `lichen` command.
#
# Strategy: after fork the worker boots: post_fork hook, the TLS context
# (read as root), switch to --user and --group, load the app (so HUP's new
# workers run new code; with --preload the master's copy is used), wrap the
# app for the pre_request/post_request hooks, post_worker_init hook. A
# failure there is a BootError: its one-line reason goes into the heartbeat
# file and the worker exits with WORKER_BOOT_ERROR, which makes the master
# stop with that line (the traceback is logged at debug level). Then the
# worker serves the listeners it inherited with one WSGIServer on its hub
# and proves it is alive by touching its heartbeat file from a hub timer: if
# the loop blocks, the touches stop and the master kills the worker (SIGABRT
# first when a worker_abort hook wants to run). Signals only queue work for
# the hub: TERM stops gracefully, INT/QUIT quickly (after worker_int); they
# stay blocked from the fork until the handlers are in place, so one sent
# while the app loads is handled once the worker serves. What
# the worker shares with its master (the Worker record, exit codes, log
# files, user switching) comes from lichen.process; it never imports the
# master's module.
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from lichen.apploader import AppLoadError, load_configured
from lichen.config import Config
from lichen.hooks import HookError, request_hooks
from lichen.hub import get_hub, spawn
from lichen.loop import Timer
from lichen.process import (SIGNALS, WORKER_BOOT_ERROR, WORKER_RELOAD, Worker, flush_logs, mark_booted,
                            reopen_log_files, report_boot_error, resolve_user, set_process_name, switch_user)
from lichen.sync import Event

__all__ = ["run_worker", "check_worker", "build_server", "BootError"]

log = logging.getLogger("lichen.error")


class BootError(Exception):
    """The worker cannot start serving; str() is the one-line reason."""


def build_server(cfg: Config, listeners: list[Any], app: Any, ssl_context: Any = None) -> Any:
    from lichen.wsgi import WSGIServer

    st = cfg.settings
    # The command's logs are its loggers (configured by the master), not the
    # library's defaults (gevent's: sys.stderr).
    access = None if st.no_access_log else logging.getLogger("lichen.access")
    # A CommandSettings is a Settings: the server reads its own fields.
    return WSGIServer(listeners, app, log=access, error_log=log, ssl_context=ssl_context, settings=st)


def tls_context(cfg: Config) -> Any:
    """The server's SSLContext from --certfile and friends, or None. Raises BootError."""
    st = cfg.settings
    if not st.certfile:
        return None
    for flag, path in (("--certfile", st.certfile), ("--keyfile", st.keyfile), ("--ca-certs", st.ca_certs)):
        if path and not os.path.isfile(path):
            raise BootError(f"{flag}: no such file {path!r}")
    from lichen.tls import server_context

    try:
        return server_context(st.certfile, st.keyfile, ca_certs=st.ca_certs, cert_reqs=st.cert_reqs,
                              ciphers=st.ciphers)
    except ValueError as e:  # "ciphers: ...": it names the option
        name, _, problem = str(e).partition(": ")
        raise BootError(f"--{name.replace('_', '-')}: {problem}") from e
    except OSError as e:  # ssl.SSLError included
        raise BootError(f"cannot load the TLS certificate {st.certfile!r} or its key: "
                        f"{getattr(e, 'reason', None) or e.strerror or e}") from e


def _boot(server: Any, worker: Worker, hooks: bool = True) -> tuple[Any, Any]:
    """The app, wrapped for the request hooks, and its TLS context."""
    cfg: Config = server.cfg
    try:
        if hooks:
            cfg.hooks.run("post_fork", server, worker, fatal=True)
        st = cfg.settings
        # As root still: the key may be readable by root alone, and the
        # server's modules by root alone too where the package is installed.
        context = tls_context(cfg)
        import lichen.wsgi  # noqa: F401
        try:
            switch_user(*resolve_user(st.user, st.group), keep_owned=[worker.tmp])
        except (OSError, ValueError) as e:
            raise BootError(f"cannot switch to user {st.user or '-'} / group {st.group or '-'}: "
                            f"{getattr(e, 'strerror', None) or e}") from e
        try:
            app = server.preloaded if server.preloaded is not None else load_configured(cfg.settings)
        except AppLoadError as e:
            raise BootError(f"cannot load the application: {e}") from e
        worker.wsgi = app
        if hooks:
            cfg.hooks.run("post_worker_init", worker, fatal=True)
    except HookError as e:
        raise BootError(str(e)) from e
    return request_hooks(app, cfg.hooks, worker), context


def _boot_or_report(server: Any, worker: Worker, hooks: bool = True) -> tuple[Any, Any] | None:
    try:
        return _boot(server, worker, hooks)
    except BootError as e:
        if e.__cause__ is not None:
            log.debug("worker %d could not boot", os.getpid(), exc_info=e.__cause__)
        report_boot_error(worker.tmp, str(e))
        return None


def check_worker(server: Any, worker: Worker) -> int:
    """--check-config: boot as a worker would (no hooks), without serving."""
    return 0 if _boot_or_report(server, worker, hooks=False) is not None else WORKER_BOOT_ERROR


def run_worker(server: Any, worker: Worker) -> int:
    """Boot, then serve until told to stop; returns the process exit code.
    `server` is the master (hooks' `server`): cfg, sockets, preloaded."""
    cfg: Config = server.cfg
    set_process_name(cfg.settings.proc_name)
    booted = _boot_or_report(server, worker)
    if booted is None:
        return WORKER_BOOT_ERROR
    app, context = booted
    worker.sockets = list(server.sockets)
    wsgi_server = build_server(cfg, worker.sockets, app, context)
    hub = get_hub()
    done = Event()
    outcome = {"code": 0}

    def stop(graceful: bool, code: int = 0) -> None:
        if done.is_set() or wsgi_server.stopping:
            return
        worker.alive = False
        outcome["code"] = code
        spawn(_stop, graceful)

    def _stop(graceful: bool) -> None:
        wsgi_server.stop(cfg.graceful_timeout if graceful else 0)
        done.set()

    def quit_now() -> None:
        cfg.hooks.run("worker_int", worker)
        stop(False)

    def abort(signum: int, frame: Any) -> None:
        # The master found our loop blocked: this runs when the blocking call
        # returns to Python, if it ever does (the master's SIGKILL follows).
        worker.alive = False
        cfg.hooks.run("worker_abort", worker)
        flush_logs()
        os._exit(1)

    # Handlers run between bytecodes of whatever greenlet is current: they only
    # queue a callback for the hub.
    signal.signal(signal.SIGTERM, lambda s, f: hub.run_callback(stop, True))
    signal.signal(signal.SIGINT, lambda s, f: hub.run_callback(quit_now))
    signal.signal(signal.SIGQUIT, lambda s, f: hub.run_callback(quit_now))
    signal.signal(signal.SIGUSR1, lambda s, f: hub.run_callback(reopen_log_files))
    signal.signal(signal.SIGABRT, abort)
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    # Blocked since the fork (lichen.process.SIGNALS): one sent while we
    # booted is handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    wsgi_server.start()
    fd = worker.tmp.fileno()
    mark_booted(worker.tmp)
    worker.booted = True
    watched = _FileWatcher(cfg.settings.reload_extra_files) if cfg.reload else None
    max_requests = worker.max_requests

    def beat(_flags: int) -> None:
        try:
            os.utime(fd)
        except OSError:
            pass
        served = getattr(wsgi_server, "requests_served", 0)
        if max_requests and served >= max_requests and not wsgi_server.stopping:
            log.info("worker %d served %d requests (max-requests): restarting", os.getpid(), served)
            stop(True)
        if os.getppid() != worker.ppid and not wsgi_server.stopping:
            log.error("worker %d: the master died; stopping", os.getpid())
            stop(True)
        if watched is not None and not wsgi_server.stopping:
            changed = watched.changed()
            if changed:
                log.info("worker %d: %s changed; reloading", os.getpid(), changed)
                stop(True, WORKER_RELOAD)

    period = min(max(cfg.timeout / 4, 0.2), 1.0) if cfg.timeout else 1.0
    timer = Timer(hub.loop)
    timer.callback = beat
    timer.start(period, period)
    log.info("worker %d (age %d) serving", os.getpid(), worker.age)
    try:
        done.wait()
    finally:
        timer.close()
        worker.alive = False
        worker.nr = max(worker.nr, getattr(wsgi_server, "requests_served", 0))
    return outcome["code"]


class _FileWatcher:
    """mtimes of the loaded modules' source files and of --reload-extra-file
    files (for --reload); a file that appears, changes or goes is a change."""

    def __init__(self, extra: tuple[str, ...] = ()) -> None:
        self.extra = [os.path.abspath(p) for p in extra]
        self.mtimes = self._scan()

    def _scan(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        paths = []
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if not path or not path.endswith(".py") or "/site-packages/" in path or path.startswith(sys.base_prefix):
                continue
            paths.append(path)
        for path in paths + self.extra:
            try:
                out[path] = os.stat(path).st_mtime
            except OSError:
                out[path] = None
        return out

    def changed(self) -> str | None:
        for path, mtime in self.mtimes.items():
            try:
                now: float | None = os.stat(path).st_mtime
            except OSError:
                now = None
            if now != mtime:
                return path
        return None
