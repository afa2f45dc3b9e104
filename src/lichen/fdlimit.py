# lichen.fdlimit: the process's file-descriptor limit, raised once at start.
#
# Strategy: every connection is a file descriptor, and many systems still
# start processes with a soft RLIMIT_NOFILE of 1,024 while the hard limit
# allows far more; a server that keeps the soft limit stops accepting near a
# thousand connections whatever its connection cap says. Like nginx and Go's
# runtime, lichen raises the soft limit to the hard one (an unprivileged
# process may) the first time a server starts, logs what it did, and derives
# its default connection cap from the limit it got, keeping some descriptors
# free for listeners, log files and the application's own files. Only the
# soft limit moves, only upwards, and only once per process; a system that
# refuses is logged and the old limit stays. lichen's loop never uses
# select(), so descriptors above 1,024 are safe for lichen itself; a child
# process started by the application inherits the raised limit (`ulimit -Sn`
# in the unit file or shell lowers it again if an old program needs that).
# Standard library only: the master imports this module too.
from __future__ import annotations

import logging
import threading

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

__all__ = ["raise_nofile_limit", "nofile_limit", "connection_cap", "FD_CEILING"]

log = logging.getLogger("lichen.error")

# Where the hard limit is "unlimited" (macOS), the soft limit still needs a
# number; the kernel refuses more than its own per-process ceiling anyway.
FD_CEILING = 1 << 20
_lock = threading.Lock()
_raised = False


def nofile_limit() -> int | None:
    """The soft RLIMIT_NOFILE now (None where the platform has none)."""
    if resource is None:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_nofile_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE toward the hard limit, once per process,
    and log it; returns the soft limit in force afterwards (None where there
    is no such limit). Safe to call from several servers and threads."""
    global _raised
    if resource is None:
        return None
    with _lock:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if _raised:
            return None if soft == resource.RLIM_INFINITY else soft
        _raised = True
        unlimited = hard == resource.RLIM_INFINITY
        # With no hard limit, macOS still refuses more than OPEN_MAX (10,240).
        wants = (FD_CEILING, 10240) if unlimited else (hard,)
        if soft != resource.RLIM_INFINITY and soft < wants[0]:
            problem: Exception | None = None
            for want in wants:
                if want <= soft:
                    break
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                except (ValueError, OSError) as e:
                    problem = e
                    continue
                log.info("file descriptor limit raised from %d to %d (hard limit %s)", soft, want,
                         "unlimited" if unlimited else hard)
                soft = want
                problem = None
                break
            if problem is not None:
                log.warning("file descriptor limit stays at %d: raising it failed: %s", soft, problem)
        return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(limit: int | None, default: int = 10000) -> int:
    """The connection cap that `limit` descriptors allow: all but a reserve
    (1/16 of them, at least 32) for listeners, logs and the application's own
    files; `default` where there is no limit."""
    if limit is None:
        return default
    return max(1, limit - max(32, limit // 16))
