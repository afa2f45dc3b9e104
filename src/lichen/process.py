# lichen.process: what the `lichen` master and its workers share as processes.
#
# Strategy: standard library only, so that the master (which never loads the
# hub) and the workers import it alike, and neither imports the other: the
# exit codes a worker reports to its master, the log files both reopen on USR1
# (for logrotate) and flush before a forked child exits, and systemd's
# readiness notification.
from __future__ import annotations

import logging
import os
import socket

__all__ = ["WORKER_BOOT_ERROR", "WORKER_RELOAD", "log_handlers", "reopen_log_files", "flush_logs", "sd_notify"]

log = logging.getLogger("lichen.error")

WORKER_BOOT_ERROR = 4   # the app could not be loaded: the master gives up
WORKER_RELOAD = 3       # a source file changed (--reload): respawn at once


def log_handlers() -> list[logging.Handler]:
    """The handlers the command line installs (root, access, error), each once."""
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in ("lichen.access", "lichen.error")]
    seen: dict[int, logging.Handler] = {}
    for logger in loggers:
        for h in logger.handlers:
            seen.setdefault(id(h), h)
    return list(seen.values())


def reopen_log_files() -> None:
    """Reopen every log file by its name (after logrotate moved it away).
    A file that cannot be opened keeps its old stream, with an error logged."""
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
