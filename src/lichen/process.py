# lichen.process: what the `lichen` master and its workers share as processes.
#
# Strategy: standard library only, so that the master (which never loads the
# hub) and the workers import it alike, and neither imports the other: the
# record of one worker (which hooks see as gunicorn's worker object), the
# signals the master handles, the exit codes a worker reports to its master
# and the one-line reason it writes into its heartbeat file when it cannot
# boot, the log files both
# reopen on USR1 (for logrotate) and flush before a forked child exits, the
# app's output captured into the error log, systemd's readiness
# notification, detaching as a daemon, and switching to another user.
from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import socket
import sys
import time
from typing import Any, Iterable

__all__ = ["WORKER_BOOT_ERROR", "WORKER_RELOAD", "SIGNALS", "Worker", "mark_booted", "report_boot_error", "boot_state",
           "log_handlers", "reopen_log_files", "flush_logs", "capture_output", "sd_notify", "Detached",
           "daemonize", "resolve_user", "switch_user", "set_process_name", "apply_env"]

log = logging.getLogger("lichen.error")

WORKER_BOOT_ERROR = 4   # the app could not be loaded: the master gives up
WORKER_RELOAD = 3       # a source file changed (--reload): respawn at once

# The signals the master handles. They stay blocked in a new worker until it
# has its own handlers: a QUIT while the app loads then still runs worker_int,
# a TERM stops the worker gracefully once it has booted.
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)


class Worker:
    """One worker process as its master tracks it and as hooks see it, with
    the attributes of gunicorn's worker object that hook code uses: pid
    (None before fork), ppid, age, alive, booted, aborted, nr (requests
    served, counted when request hooks are defined), max_requests, timeout,
    tmp (the heartbeat file), cfg, log; in the worker also sockets and wsgi
    (the app, once loaded)."""

    def __init__(self, age: int, generation: int, tmp: Any, cfg: Any, max_requests: int = 0) -> None:
        self.pid: int | None = None
        self.ppid = os.getpid()
        self.age = age
        self.generation = generation
        self.tmp = tmp
        self.cfg = cfg
        self.max_requests = max_requests
        self.log = log
        self.born = time.monotonic()
        self.booted = False
        self.retiring = False
        self.aborted = 0.0  # when the master sent SIGABRT (a blocked worker), else 0
        self.alive = True
        self.nr = 0
        self.sockets: list[Any] = []
        self.wsgi: Any = None

    @property
    def timeout(self) -> float:
        """The blocked-loop timeout it is held to."""
        return self.cfg.timeout

    def __repr__(self) -> str:
        return f"<lichen worker {self.pid} age {self.age}>"


# A worker's heartbeat file starts with one byte: 1 once it serves, or ! and
# the reason it could not boot. pwrite at offset 0 leaves the shared offset alone.
def mark_booted(tmp: Any) -> None:
    """The worker serves."""
    os.pwrite(tmp.fileno(), b"1", 0)


def report_boot_error(tmp: Any, message: str) -> None:
    """The worker cannot boot, for `message` (one line)."""
    os.pwrite(tmp.fileno(), b"!" + message.encode("utf-8", "replace")[:4000], 0)


def boot_state(tmp: Any) -> tuple[bool, str | None]:
    """(booted, the reason it could not boot or None), as the worker wrote them."""
    try:
        data = os.pread(tmp.fileno(), 4096, 0)
    except (OSError, ValueError):
        return False, None
    if data.startswith(b"!"):
        return False, data[1:].decode("utf-8", "replace")
    return data.startswith(b"1"), None


def log_handlers() -> list[logging.Handler]:
    """The handlers the command line installs (root, access, error), each once."""
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in ("lichen.access", "lichen.error")]
    seen: dict[int, logging.Handler] = {}
    for logger in loggers:
        for h in logger.handlers:
            seen.setdefault(id(h), h)
    return list(seen.values())


def reopen_log_files() -> None:
    """Reopen every log file by its name (after logrotate moved it away),
    and the one the app's output is captured into. A file that cannot be
    opened keeps its old stream, with an error logged."""
    if _captured is not None:
        try:
            capture_output(_captured)
        except OSError as e:
            log.error("cannot reopen %s for the app's output: %s", _captured, e)
    for h in log_handlers():
        if not isinstance(h, logging.FileHandler) or h.stream is None:
            continue  # a delayed FileHandler opens its file on first use anyway
        try:
            # Append: reopening must never truncate what was written since.
            stream = open(h.baseFilename, "a", encoding=h.encoding, errors=h.errors)
        except OSError as e:
            log.error("cannot reopen log file %s: %s", h.baseFilename, e)
            continue
        old = h.setStream(stream)  # flushes the old stream under the handler's lock
        if old is not None:
            old.close()


def flush_logs() -> None:
    """Flush every handler (a forked child leaves with os._exit)."""
    for h in log_handlers():
        try:
            h.flush()
        except Exception:
            pass


_captured: str | None = None


def capture_output(path: str) -> None:
    """Send everything written to stdout and stderr (fds 1 and 2, so child
    processes too) to the file `path`, appended to; stdout becomes line
    buffered so that the app's prints arrive in order."""
    global _captured
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    _captured = path
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state, if it asked."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(message.encode())
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", path, e)


class Detached:
    """A daemon's end of the pipe to the command that started it: the
    command exits 0 at ready(), or prints the line given to failed() and
    exits 1 (also if the daemon dies first)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def _send(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, data)
        except OSError:
            pass
        self.close()

    def ready(self) -> None:
        """Started: the command that started us may exit 0."""
        self._send(b"ok\n")

    def failed(self, line: str) -> None:
        """Could not start, for the reason `line`."""
        self._send(line.rstrip("\n").encode("utf-8", "replace") + b"\n")

    def close(self) -> None:
        """Forget the pipe (in forked workers, so only the master holds it)."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def daemonize() -> Detached:
    """Detach from the terminal: fork, setsid, fork again; stdin, stdout and
    stderr become /dev/null. The command's own process waits until the
    daemon reports (Detached) and exits with its status; the working
    directory is kept (the app is imported from it)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
        os.waitpid(pid, 0)
        if data == b"ok\n":
            os._exit(0)
        os.write(2, data or b"lichen: the daemon stopped before it was ready\n")
        os._exit(1)
    os.close(r)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return Detached(w)


def resolve_user(user: str | None, group: str | None) -> tuple[int | None, int | None]:
    """(uid, gid) for --user and --group (names or numbers); the group
    defaults to the user's own. None where nothing is to change. Raises
    ValueError naming what does not exist."""
    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            if not user.isdigit():
                raise ValueError(f"no user named {user!r}") from None
            uid = int(user)
        else:
            uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"no group named {group!r}") from None
    return uid, gid


def switch_user(uid: int | None, gid: int | None, keep_owned: Iterable[Any] = ()) -> None:
    """Become `gid` and `uid` (root drops its supplementary groups first);
    the files in `keep_owned` (the heartbeat) change owner first so that the
    new user can still touch them. Raises OSError."""
    if uid is None and gid is None:
        return
    for f in keep_owned:
        os.fchown(f.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
    if os.geteuid() == 0:
        os.setgroups([])
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def set_process_name(name: str | None) -> None:
    """The name ps and top show (Linux keeps 15 bytes of it)."""
    if not name:
        return
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def apply_env(items: Iterable[str]) -> None:
    """Set each KEY=VALUE in os.environ (children inherit it)."""
    for item in items:
        key, _, value = item.partition("=")
        os.environ[key.strip()] = value
