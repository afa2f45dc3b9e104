# lichen.hub.signals: Python signal handlers that run while the loop blocks.
#
# Strategy: CPython's C-level handler only sets a flag; the Python handler
# runs at the next bytecode, which never comes while ev_run blocks without
# the GIL. So the hub points signal.set_wakeup_fd at a non-blocking pipe and
# watches its read end with an unref'd io watcher (a pipe alone must not keep
# the loop alive): a signal makes ev_run return at once, and the handler then
# runs in the hub. libev's own ev_signal is never used (it replaces Python's
# handlers), nor signalfd (it breaks with threads). Main thread only: Python
# accepts set_wakeup_fd nowhere else.
from __future__ import annotations

import os
import signal

from lichen.loop import READ, Io, Loop

__all__ = ["SignalWakeup"]


class SignalWakeup:
    """The wake-up pipe and its watcher, installed on `loop` at once (a
    no-op where Python refuses: not the main interpreter)."""

    def __init__(self, loop: Loop) -> None:
        self._pipe: tuple[int, int] | None = None
        self._io: Io | None = None
        self._old_fd = -1
        try:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            return  # not the main interpreter / no signals here
        self._pipe = (r, w)
        io = loop.io(r, READ)
        io.unref()
        io.callback = self._ready
        io.start()
        self._io = io

    def _ready(self, _flags: int) -> None:
        # Drain the pipe; Python runs the handlers itself at the next bytecode.
        r = self._pipe[0]  # type: ignore[index]
        try:
            while os.read(r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._io.start()  # type: ignore[union-attr]

    def close(self, restore: bool) -> None:
        """Stop watching and close the pipe; with `restore`, give the
        wake-up fd back to whoever had it before (not in a forked child,
        whose parent still uses it)."""
        if self._pipe is None:
            return
        if self._io is not None:
            self._io.close()
            self._io = None
        if restore:
            try:
                signal.set_wakeup_fd(self._old_fd)
            except (ValueError, OSError):
                pass
        for fd in self._pipe:
            try:
                os.close(fd)
            except OSError:
                pass
        self._pipe = None
