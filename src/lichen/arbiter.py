# lichen.arbiter: the prefork master process of the `lichen` command.
#
# Strategy: the master binds the listening sockets, forks the workers and then
# only supervises: a plain select() on a signal self-pipe, no hub, no app.
# Workers (lichen.worker) load the app after fork, so HUP reloads code by
# starting a new generation and gracefully retiring the old one once the new
# one is up: the shared listeners never close, so no request fails. Each
# worker touches a heartbeat file from a hub timer; a worker whose loop stays
# blocked longer than --timeout is killed and replaced. Signals follow
# gunicorn: TERM graceful, INT/QUIT fast, HUP reload, USR1 reopen logs, USR2
# re-exec a new master on the same sockets, TTIN/TTOU add/remove a worker.
# gunicorn's server hooks are called where gunicorn calls them, with this
# object as `server` (pid, cfg, settings, log, num_workers, LISTENERS,
# WORKERS). A start that fails (the app under --preload, a port, the pid
# file, on_starting/when_ready, a worker that cannot boot) leaves its one-
# line reason in `failure` and run() returns 1: the command prints it.
# The master never loads the hub or libev: its imports (lichen.config,
# lichen.listeners, lichen.process, lichen.hooks, lichen.apploader) need only
# the standard library, and lichen.worker is imported in the forked child
# alone.
from __future__ import annotations

import logging
import os
import random
import select
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from lichen.apploader import AppLoadError, load_configured
from lichen.config import Config, ConfigError
from lichen.fdlimit import raise_nofile_limit
from lichen.hooks import HookError
from lichen.listeners import ListenError, open_listeners
from lichen.process import (SIGNALS, WORKER_BOOT_ERROR, WORKER_RELOAD, Detached, Worker, apply_env, boot_state,
                            flush_logs, reopen_log_files, sd_notify, set_process_name)
from lichen.settings import CommandSettings

__all__ = ["Arbiter"]

log = logging.getLogger("lichen.error")


class StartError(Exception):
    """The master cannot start; str() is the one-line reason."""


class Arbiter:
    """Supervise `cfg.workers` worker processes serving `cfg.app`. To hooks
    this is gunicorn's `server`: pid, cfg, settings, log, num_workers
    (setting it calls nworkers_changed), LISTENERS, WORKERS."""

    def __init__(self, cfg: Config, detached: Detached | None = None) -> None:
        self.cfg = cfg
        self.workers: dict[int, Worker] = {}
        self.sockets: list[socket.socket] = []
        self.generation = 0
        self.age = 0
        self.target = cfg.settings.workers
        self._num_workers_told: int | None = None
        self._signals: list[int] = []
        self._pipe: tuple[int, int] | None = None
        self._fail_times: list[float] = []
        self._stopping = False
        self.exit_code = 0
        self.reexec_pid = 0
        self.preloaded: Any = None  # the app, when --preload loaded it here
        self.failure: str | None = None
        self.detached = detached
        self._announced = False
        self.log = log
        self.pid = os.getpid()  # the master's, in its workers too (hooks' server.pid)

    @property
    def settings(self) -> CommandSettings:
        """The settings in force (HUP may read new ones)."""
        return self.cfg.settings

    @property
    def num_workers(self) -> int:
        """How many workers the master keeps (TTIN/TTOU and HUP change it)."""
        return self.target

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        old, self.target = self._num_workers_told, value
        if old != value:
            self._num_workers_told = value
            self.cfg.hooks.run("nworkers_changed", self, value, old)

    @property
    def LISTENERS(self) -> list[socket.socket]:  # noqa: N802 - gunicorn's name
        """The listening sockets."""
        return self.sockets

    @property
    def WORKERS(self) -> dict[int, Worker]:  # noqa: N802 - gunicorn's name
        """The running workers by PID."""
        return self.workers

    # Setup ----------------------------------------------------------------
    def run(self) -> int:
        """Start, supervise until told to stop; the exit status (1 with
        `failure` set when the start failed)."""
        # Signals first: a TERM that arrives as soon as the port answers must
        # be a graceful stop, not the default action.
        self._install_signals()
        try:
            try:
                self._start()
            except StartError as e:
                self._fail(str(e))
            else:
                self.spawn_missing()
                sd_notify("READY=1\nSTATUS=serving")
                self._loop()
        finally:
            self._cleanup()
            self.cfg.hooks.run("on_exit", self)
        return self.exit_code

    def _start(self) -> None:
        """Everything before the first workers, in gunicorn's order; raises StartError."""
        st = self.settings
        set_process_name(st.proc_name)
        apply_env(st.raw_env)
        self.num_workers = st.workers  # nworkers_changed(server, N, None), as gunicorn's first call
        if st.raise_fd_limit:
            raise_nofile_limit()  # once here, so the workers inherit it and log nothing
        try:
            if st.preload_app:
                self.preloaded = self._preload()
            self._write_pidfile()
            self.cfg.hooks.run("on_starting", self, fatal=True)
            try:
                self.sockets = open_listeners(st.bind, st.backlog, st.reuse_port, st.umask)
            except ListenError as e:
                raise StartError(str(e)) from None
            self.cfg.hooks.run("when_ready", self, fatal=True)
        except HookError as e:
            if e.__cause__ is not None:
                log.debug("hook traceback", exc_info=e.__cause__)
            raise StartError(str(e)) from None

    def _preload(self) -> Any:
        try:
            return load_configured(self.settings)
        except AppLoadError as e:
            if e.__cause__ is not None:
                log.debug("the application failed to load", exc_info=e.__cause__)
            raise StartError(f"cannot load the application: {e}") from None

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.exit_code = 1

    def _write_pidfile(self) -> None:
        path = self.settings.pidfile
        if path:
            try:
                with open(path, "w") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError as e:
                raise StartError(f"--pid: cannot write {path!r}: {e.strerror or e}") from None

    def check(self) -> int:
        """--check-config: boot one worker that does not serve (no hooks run,
        nothing is bound); 0 when it could, else 1 with `failure` set."""
        apply_env(self.settings.raw_env)
        try:
            if self.settings.preload_app:
                self.preloaded = self._preload()
        except StartError as e:
            self._fail(str(e))
            return 1
        worker = Worker(0, 0, tempfile.TemporaryFile(prefix="lichen-check-"), self.cfg)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                from lichen.worker import check_worker

                worker.pid = os.getpid()
                code = check_worker(self, worker)
            except BaseException:
                log.exception("the check crashed")
            finally:
                flush_logs()
                os._exit(code)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        reason = boot_state(worker.tmp)[1]
        worker.tmp.close()
        if code != 0:
            self._fail(reason or f"the check failed (exit status {code})")
            return 1
        return 0

    def _install_signals(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._pipe = (r, w)
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum != signal.SIGCHLD and len(self._signals) < 20:
            self._signals.append(signum)

    # The loop -------------------------------------------------------------
    def _loop(self) -> None:
        assert self._pipe is not None
        while True:
            try:
                # Quicker while the first workers boot, to announce them soon.
                select.select([self._pipe[0]], [], [], 1.0 if self._announced else 0.1)
            except InterruptedError:
                pass
            try:
                while os.read(self._pipe[0], 4096):
                    pass
            except BlockingIOError:
                pass
            while self._signals:
                sig = self._signals.pop(0)
                if self._handle_signal(sig):
                    return
            self.reap()
            if self._stopping:
                return
            self.check_heartbeats()
            self.retire_old_generation()
            self.spawn_missing()
            self._report_ready()

    def _report_ready(self) -> None:
        """Once the first workers serve: say where we listen (not before, so
        that a start whose workers cannot boot prints only why) and let the
        command that started a daemon exit."""
        if self._announced:
            return
        current = [w for w in self.workers.values() if w.generation == self.generation and not w.retiring]
        if len(current) < self.target or not all(w.booted for w in current):
            return
        self._announced = True
        for sock in self.sockets:
            addr = sock.getsockname()
            if isinstance(addr, tuple):
                where = f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
            else:
                where = f"unix:{addr}"
            log.info("lichen master %d listening on %s", os.getpid(), where)
        if self.detached is not None:
            self.detached.ready()

    def _handle_signal(self, sig: int) -> bool:
        """Returns True when the master must stop."""
        name = signal.Signals(sig).name
        if sig == signal.SIGTERM:
            log.info("SIGTERM: graceful stop (up to %.0f s)", self.settings.graceful_timeout)
            self.stop(graceful=True)
            return True
        if sig in (signal.SIGINT, signal.SIGQUIT):
            log.info("%s: fast stop", name)
            self.stop(graceful=False)
            return True
        if sig == signal.SIGHUP:
            self.reload()
        elif sig == signal.SIGUSR1:
            log.info("SIGUSR1: reopening log files")
            reopen_log_files()
            self._kill_all(signal.SIGUSR1)
        elif sig == signal.SIGUSR2:
            self.reexec()
        elif sig == signal.SIGTTIN:
            self.num_workers += 1
            log.info("SIGTTIN: workers -> %d", self.target)
        elif sig == signal.SIGTTOU:
            if self.target > 1:
                self.num_workers -= 1
                log.info("SIGTTOU: workers -> %d", self.target)
                self._retire_extra()
        return False

    # Workers --------------------------------------------------------------
    def spawn_missing(self) -> None:
        current = [w for w in self.workers.values() if w.generation == self.generation and not w.retiring]
        missing = self.target - len(current)
        if missing <= 0:
            return
        now = time.monotonic()
        self._fail_times = [t for t in self._fail_times if now - t < 10]
        if len(self._fail_times) >= 5:
            # Workers keep dying young: back off instead of fork-looping.
            if now - self._fail_times[-1] < min(2 ** (len(self._fail_times) - 5), 30):
                return
        for _ in range(missing):
            self.spawn_worker()

    def spawn_worker(self) -> None:
        self.age += 1
        hb = tempfile.TemporaryFile(prefix="lichen-hb-")
        max_requests = self.settings.max_requests
        if max_requests and self.settings.max_requests_jitter:
            max_requests += random.randint(0, self.settings.max_requests_jitter)
        worker = Worker(self.age, self.generation, hb, self.cfg, max_requests)
        self.cfg.hooks.run("pre_fork", self, worker)
        # Signals stay blocked across fork: in the child, until its handlers
        # are reset, the master's handler would swallow a TERM meant for it;
        # the worker unblocks them once it has handlers of its own.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            worker.pid = pid
            self.workers[pid] = worker
            return
        # Child: never return into the master's code.
        code = 1
        try:
            from lichen.worker import run_worker

            worker.pid = os.getpid()
            for sig in SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            assert self._pipe is not None
            for fd in self._pipe:
                os.close(fd)
            if self.detached is not None:
                self.detached.close()
            code = run_worker(self, worker)
        except SystemExit as e:
            # The exit codes a worker returns mean something to the master:
            # an app's sys.exit(3) must not read as one of them.
            code = 0 if e.code in (None, 0) else 1
        except BaseException:
            log.exception("worker %d crashed", os.getpid())
        finally:
            worker.alive = False
            self.cfg.hooks.run("worker_exit", self, worker)
            flush_logs()
            os._exit(code)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid == self.reexec_pid:
                self.reexec_pid = 0
                continue
            info = self.workers.pop(pid, None)
            if info is None:
                continue
            info.alive = False
            reason = boot_state(info.tmp)[1]
            info.tmp.close()
            self.cfg.hooks.run("child_exit", self, info)
            code = os.waitstatus_to_exitcode(status)
            if code == WORKER_BOOT_ERROR and not self._stopping:
                self._fail(reason or f"worker {pid} could not boot")
                self.stop(graceful=False)
                return
            if code == WORKER_RELOAD:
                log.info("worker %d exited to reload changed code", pid)
                continue
            if info.retiring or self._stopping:
                continue
            if code != 0:
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                log.error("worker %d died (%s); starting a new one", pid, how)
                self._fail_times.append(time.monotonic())
            else:
                log.info("worker %d exited; starting a new one", pid)

    def check_heartbeats(self) -> None:
        timeout = self.settings.timeout
        now = time.time()
        for info in list(self.workers.values()):
            try:
                mtime = os.fstat(info.tmp.fileno()).st_mtime
            except (OSError, ValueError):
                continue
            if not info.booted and boot_state(info.tmp)[0]:
                info.booted = True
            if info.aborted and now - info.aborted > 2.0:
                self._kill(info.pid, signal.SIGKILL)  # worker_abort had its chance
                continue
            if not timeout or not info.booted or info.aborted:
                continue
            if now - mtime > timeout:
                log.error("worker %d: event loop blocked for more than %.0f s; killing it", info.pid, timeout)
                info.retiring = False  # replace it
                if "worker_abort" in self.cfg.hooks:
                    info.aborted = now
                    self._kill(info.pid, signal.SIGABRT)
                else:
                    self._kill(info.pid, signal.SIGKILL)

    def retire_old_generation(self) -> None:
        new = [w for w in self.workers.values() if w.generation == self.generation]
        old = [w for w in self.workers.values() if w.generation < self.generation and not w.retiring]
        if not old:
            return
        if all(w.booted for w in new) and len(new) >= self.target:
            for w in old:
                w.retiring = True
                self._kill(w.pid, signal.SIGTERM)

    def _retire_extra(self) -> None:
        current = sorted((w for w in self.workers.values() if w.generation == self.generation and not w.retiring),
                         key=lambda w: w.age)
        for w in current[:max(len(current) - self.target, 0)]:
            w.retiring = True
            self._kill(w.pid, signal.SIGTERM)

    def reload(self) -> None:
        log.info("SIGHUP: reloading (new workers first, then the old ones retire)")
        self.cfg.hooks.run("on_reload", self)
        if self.cfg.config_file:
            # Read every source again, so the command line still wins over the file.
            try:
                cfg = self.cfg.reread()
            except ConfigError as e:
                log.error("config reload failed, keeping the old configuration: %s", e)
            else:
                for level, message in cfg.notes:
                    log.log(level, message)
                if cfg.settings.bind != self.settings.bind:
                    log.warning("SIGHUP: bind changed; the listeners stay as they are until a restart or USR2")
                self.cfg = cfg
                apply_env(cfg.settings.raw_env)
                self.num_workers = cfg.settings.workers
        self.generation += 1
        self.spawn_missing()

    def reexec(self) -> None:
        """USR2: start a new master from the current code on our sockets."""
        if self.reexec_pid:
            log.warning("SIGUSR2 ignored: a new master (%d) is already running", self.reexec_pid)
            return
        fds = []
        for s in self.sockets:
            os.set_inheritable(s.fileno(), True)
            fds.append(str(s.fileno()))
        pid = os.fork()
        if pid == 0:
            self.cfg.hooks.run("pre_exec", self)
            env = dict(os.environ, LICHEN_FDS=",".join(fds))
            env.pop("LISTEN_FDS", None)
            try:
                os.execvpe(sys.executable, [sys.executable, "-m", "lichen"] + sys.argv[1:], env)
            finally:
                os._exit(1)
        self.reexec_pid = pid
        if self.settings.pidfile:
            try:
                os.rename(self.settings.pidfile, self.settings.pidfile + ".oldbin")
            except OSError:
                pass
        log.info("SIGUSR2: started new master %d; send this master (%d) TERM when it is up", pid, os.getpid())

    # Stopping -------------------------------------------------------------
    def _kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _kill_all(self, sig: int) -> None:
        for pid in list(self.workers):
            self._kill(pid, sig)

    def stop(self, graceful: bool) -> None:
        self._stopping = True
        for s in self.sockets:  # no new connections reach any worker's backlog
            try:
                s.close()
            except OSError:
                pass
        self._kill_all(signal.SIGTERM if graceful else signal.SIGQUIT)
        limit = time.monotonic() + (self.settings.graceful_timeout + 2 if graceful else 2.0)
        while self.workers and time.monotonic() < limit:
            self.reap()
            time.sleep(0.05)
        if self.workers:
            log.warning("killing %d worker(s) still running after the grace period", len(self.workers))
            self._kill_all(signal.SIGKILL)
            while self.workers:
                try:
                    pid, _ = os.waitpid(-1, 0)
                except ChildProcessError:
                    break
                info = self.workers.pop(pid, None)
                if info is not None:
                    info.tmp.close()
                    self.cfg.hooks.run("child_exit", self, info)

    def _cleanup(self) -> None:
        signal.set_wakeup_fd(-1)
        if self._pipe:
            for fd in self._pipe:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for s in self.sockets:
            try:
                addr = s.getsockname()
                s.close()
                if isinstance(addr, str) and addr and os.path.exists(addr) and not os.environ.get("LICHEN_FDS"):
                    os.unlink(addr)
            except OSError:
                pass
        if self.settings.pidfile:
            try:
                with open(self.settings.pidfile) as f:
                    if f.read().strip() == str(os.getpid()):
                        os.unlink(self.settings.pidfile)
            except OSError:
                pass

