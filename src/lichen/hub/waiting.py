# lichen.hub.waiting: blocking as functions: Waiter, sleep, wait_read and
# wait_write, and wait() (run the hub until idle).
#
# Strategy: every wait here that arms a watcher goes through `Hub.block`,
# which arms it, switches to the hub and disarms it however the wait ends
# (see lichen.hub.scheduler). A Waiter is the resumer for code outside the hub:
# a sync primitive or a thread pool registers it and schedules its
# switch/throw through the hub, and both clear `glet` before they resume the
# greenlet, which is how a timed `get` tells a wake-up from its timeout.
# wait() is the exception: it runs in the main greenlet until the hub has
# nothing left to do, so its deadline must not keep the loop alive.
from __future__ import annotations

from typing import Any

from greenlet import getcurrent, greenlet

from lichen.hub.scheduler import Hub, LoopExit, get_hub
from lichen.loop import READ, WRITE, Timer

__all__ = ["Waiter", "sleep", "wait", "wait_read", "wait_write"]


class Waiter:
    """One-time rendezvous between a blocked greenlet and whoever wakes it.

    `switch`/`throw` are meant to run in the hub (schedule them with
    `run_callback`); they do nothing if the greenlet stopped waiting."""

    __slots__ = ("hub", "glet", "timed_out")

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub or get_hub()
        self.glet: greenlet | None = None
        self.timed_out = False

    def switch(self, value: Any = None) -> None:
        """Resume the waiting greenlet with `value` (its `get` returns it)."""
        g = self.glet
        if g is not None:
            self.glet = None
            g.switch(value)

    def throw(self, exc: BaseException) -> None:
        """Raise `exc` in the waiting greenlet."""
        g = self.glet
        if g is not None:
            self.glet = None
            g.throw(exc)

    def get(self, timeout: float | None = None) -> Any:
        """Block until switched; returns the value (None on timeout, and
        `timed_out` is then True)."""
        self.glet = getcurrent()
        self.timed_out = False
        try:
            if timeout is None:
                return self.hub.switch()  # (block would arm nothing)
            value = self.hub.block(None, 0, timeout)
            # switch/throw clear `glet` before they resume the greenlet:
            # still set, it was the timer that did.
            if self.glet is None:
                return value
            self.timed_out = True
            return None
        finally:
            self.glet = None


_WAIT_DONE = object()


def sleep(seconds: float = 0) -> None:
    """Block the current greenlet; `sleep(0)` lets every other ready greenlet
    run first."""
    if seconds <= 0:
        get_hub().sleep(0)
    else:
        get_hub().block(None, 0, seconds)  # (Hub.sleep's other half: one call less)


def wait(timeout: float | None = None) -> None:
    """Run the hub until nothing is left to do (or `timeout` passes)."""
    hub = get_hub()
    if getcurrent() is not hub.root:
        raise RuntimeError("wait() runs the hub until it is idle; call it from the main greenlet")
    timer = None
    if timeout is not None:
        # Unref'd: the deadline alone must not keep an idle loop alive.
        timer = Timer(hub.loop)
        timer.unref()
        timer.callback = lambda _flags: hub.root.switch(_WAIT_DONE)
        timer.start(max(timeout, 0.0), 0.0)
    try:
        while hub.switch() is not _WAIT_DONE:
            pass  # a stray wake-up of the main greenlet: keep waiting
    except LoopExit as e:
        # The hub stays suspended in the throw that raised this, holding it:
        # its traceback must not keep this greenlet's frames (and all they
        # reference) alive for as long as the hub lives.
        e.__traceback__ = None
    finally:
        if timer is not None:
            timer.close()


def wait_read(fd: int, timeout: float | None = None) -> None:
    """Block until `fd` is readable; TimeoutError after `timeout` seconds."""
    if not get_hub().block(None, READ, timeout, None, fd):
        raise TimeoutError(f"timed out waiting for fd {fd}")


def wait_write(fd: int, timeout: float | None = None) -> None:
    """Block until `fd` is writable; TimeoutError after `timeout` seconds."""
    if not get_hub().block(None, WRITE, timeout, None, fd):
        raise TimeoutError(f"timed out waiting for fd {fd}")
