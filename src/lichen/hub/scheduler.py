# lichen.hub.scheduler: the Hub, one per thread, which schedules every other
# greenlet; get_hub() and the per-thread holder; the fork handler.
#
# Strategy: the hub only schedules; it never does I/O itself. It alternates
# between running queued callbacks (spawns, wake-ups, sleep(0)) and one libev
# iteration, then hands the loop's ready items to `Loop.dispatch`, whose
# callbacks switch into the waiting greenlets. ev_run never calls back into
# Python, so switches happen in plain Python frames and exceptions never
# cross C.
#
# Theory of operation
# -------------------
# A greenlet blocks by arming exactly one resumer and switching to the hub:
# an io watcher or timer whose callback is its `switch`, a queued `Callback`,
# or a `Waiter` registered with a sync primitive. `Hub.block` is the one
# place that arms watchers, switches, and stops or closes them again in a
# `finally`, so a greenlet woken by something else (a Timeout throw, a kill,
# a socket closed under it) leaves nothing armed behind; sleep(0), whose
# resumer is a queued Callback, is its only inlined sibling. Whatever resumes
# a greenlet does so from the hub, never directly from another greenlet, so a
# greenlet that wakes always returns to the hub when it next blocks.
#
# Stale items: libev runs one iteration's pending watchers last-in first-out,
# so a timeout's item can precede the io item of the same iteration, and the
# greenlet it wakes may re-arm that io watcher before the drain reaches its
# item. The loop drops such items (see lichen.loop), so nobody is woken twice
# and a watcher's `active` flag always equals libev's state.
#
# Signals (lichen.hub.signals) make a blocking ev_run return, and the Python
# handler runs in the hub. If it raises (KeyboardInterrupt, SystemExit) there,
# the hub re-raises it in the thread's main greenlet. Items already in libev's
# ready array are kept (it is only reset by the next ev_run), so the next
# pass re-dispatches them (`Loop.last_items`); the `active` flag and the arm
# stamp keep that from waking anyone twice.
#
# When nothing can ever happen again (no queued callbacks and no referenced
# watchers), the hub throws `LoopExit` into the main greenlet: whatever it
# waits for would block forever. `wait()` turns that into a normal return.
#
# Fork: the child gets a fresh hub; the parent's greenlets are kept referenced
# (so no GreenletExit runs their cleanup in the child) but never run. The
# handler reaches into the old Hub, so it lives in this module.
from __future__ import annotations

import gc
import logging
import os
import threading
from collections import deque
from typing import Any, Callable

from greenlet import getcurrent, greenlet

from lichen.hub.signals import SignalWakeup
from lichen.loop import Io, Loop, Timer, Watcher

__all__ = [
    "Hub", "LoopExit", "Callback", "get_hub", "call_soon_threadsafe", "throw_if_alive",
    "CALLBACK_BUDGET", "TIMEOUT",
]

log = logging.getLogger("lichen.hub")

CALLBACK_BUDGET = 1000
TIMEOUT = 0  # what Hub.block returns when its timeout passed (io flags are never 0)
_IN_HUB = "a blocking call was made from inside the hub (in a callback); spawn a greenlet for it"
IO_POOL_SIZE = 64  # stopped watchers kept for wait_read/wait_write


class LoopExit(Exception):
    """Raised in the main greenlet when it waits for something that can never
    happen: no greenlet is runnable and no watcher is active."""


class Callback:
    """A queued call; `cancel()` makes it a no-op if it has not run yet."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn: Callable[..., Any] | None = fn
        self.args = args

    def cancel(self) -> None:
        """Make the call a no-op (nothing happens if it already ran)."""
        self.fn = None
        self.args = ()

    @property
    def pending(self) -> bool:
        """True until the call runs or is cancelled."""
        return self.fn is not None


def _root_of(g: greenlet) -> greenlet:
    while g.parent is not None:
        g = g.parent
    return g


class Hub:
    """The scheduler of one thread. Get it with `get_hub()`."""

    def __init__(self, backend: str | None = None) -> None:
        self.loop = Loop(backend)
        self.thread_ident = threading.get_ident()
        self.root = _root_of(getcurrent())
        self.glet = greenlet(self._run, parent=self.root)
        self._queue: deque[Callback] = deque()
        self._threadsafe: deque[tuple[Callable[..., Any], tuple]] = deque()
        self._recover = False
        self._refs = 0
        self.io_pool: list[Io] = []  # stopped watchers reused by wait_read/wait_write
        # True while ev_run blocks: with `ticks`, the progress marks of the
        # stall detector (lichen.stall).
        self.polling = False
        self._async = self.loop.async_()
        self._async.callback = self._drain_threadsafe
        self._async.unref()
        self._async.start()
        self._signals: SignalWakeup | None = None
        if threading.current_thread() is threading.main_thread():
            self._signals = SignalWakeup(self.loop)

    @property
    def ticks(self) -> int:
        """Progress mark for the stall detector (lichen.stall): moves on every
        pass of the loop. It is the loop's iteration count, which the loop
        keeps anyway (for the arm stamps), so the hot loop counts only once."""
        return self.loop.iteration

    # Scheduling -------------------------------------------------------------
    def run_callback(self, fn: Callable[..., Any], *args: Any) -> Callback:
        """Run `fn(*args)` in the hub soon (before the next poll)."""
        cb = Callback(fn, args)
        self._queue.append(cb)
        return cb

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Like run_callback, from any thread; wakes the loop."""
        self._threadsafe.append((fn, args))
        if not self.loop.destroyed:
            self._async.send()

    def _drain_threadsafe(self, _flags: int) -> None:
        ts = self._threadsafe
        while ts:
            fn, args = ts.popleft()
            self._queue.append(Callback(fn, args))

    def ref(self) -> None:
        """Keep the loop alive while work is outstanding elsewhere (a thread
        pool job whose result will arrive through call_soon_threadsafe)."""
        self._refs += 1
        self.loop.ref()

    def unref(self) -> None:
        """Release a `ref()`."""
        self._refs -= 1
        self.loop.unref()

    def switch(self) -> Any:
        """Block the current greenlet until something armed resumes it."""
        if getcurrent() is self.glet:
            raise RuntimeError(_IN_HUB)
        return self.glet.switch()

    # Blocking ---------------------------------------------------------------
    def block(self, io: Io | None = None, events: int = 0, timeout: float | None = None,
              timer: Timer | None = None, fd: int | None = None) -> Any:
        """Block the current greenlet until `io` is ready for `events`, or
        `timeout` seconds pass, or whatever else it armed resumes it (a
        Waiter); return which: io's ready flags (READ/WRITE/ERROR, never 0),
        TIMEOUT (0) when the timeout passed, or the value it was switched
        with. However the wait ends (also by a throw: a Timeout, a kill, a
        socket closed under it), io and the timer are disarmed on the way out.

        `timer` lets a caller reuse one timer across waits (sockets do);
        otherwise one is made for the wait. `fd`, instead of `io`: wait on
        that descriptor with a watcher taken from the hub's pool, rebound
        under a fresh token and given back after (wait_read, wait_write).
        This is the hub's one arm/switch/clean-up: wait_io, sleep, a timed
        Waiter.get and wait_read/wait_write all go through it."""
        cur = getcurrent()
        glet = self.glet
        if cur is glet:
            raise RuntimeError(_IN_HUB)
        if io is None:
            if fd is not None:
                pool = self.io_pool
                io = pool.pop() if pool else Io(self.loop, fd, events)
            elif timeout is None:
                return glet.switch()  # nothing to arm: a Waiter's resumer is its own
        own = timer is None  # (only looked at when a timeout armed one)
        try:
            if io is not None:
                io.callback = cur.switch
                if fd is None:
                    io.start(events)
                else:
                    io.rebind_start(fd, events)  # a pooled watcher: a fresh token
                io.waiter = cur
            if timeout is not None:
                if own:
                    timer = Timer(self.loop)
                timer.callback = cur.switch  # type: ignore[union-attr]  # flags 0: TIMEOUT
                timer.start(timeout if timeout > 0.0 else 0.0, 0.0)  # type: ignore[union-attr]
            return glet.switch()
        finally:
            if io is not None:
                io.waiter = None
                if io.active:
                    io.stop()
                if fd is not None:
                    # Back to the pool, unregistered (rebind_start registers
                    # it again) and holding no greenlet.
                    self.loop.watchers.pop(io.token, None)
                    io.callback = None
                    pool = self.io_pool
                    if len(pool) < IO_POOL_SIZE:
                        pool.append(io)
            if timer is not None:
                if own:
                    timer.close()
                elif timer.active:
                    timer.stop()

    def wait_io(self, watcher: Io, events: int, timeout: float | None = None, timer: Timer | None = None) -> int:
        """Block until `watcher`'s fd is ready for `events`; return the ready
        flags (READ/WRITE/ERROR), or 0 if `timeout` expired first.

        `timer` lets a caller reuse one timer across waits (sockets do)."""
        return self.block(watcher, events, timeout, timer)

    def cancel_wait(self, watcher: Io, exc: BaseException) -> None:
        """Wake the greenlet blocked in `wait_io` on `watcher` (if any) with
        `exc`. The throw is queued, and dropped if that wait ended some
        other way first, so it can never hit a later, unrelated wait."""
        g = watcher.waiter
        if watcher.active:
            watcher.stop()
        if g is not None and not g.dead:
            self.run_callback(_throw_if_still_waiting, watcher, g, exc)

    def sleep(self, seconds: float) -> None:
        """Block the current greenlet for `seconds`; with 0 (or less), only
        let every other ready greenlet run first."""
        if seconds <= 0:
            # A queued callback as the resumer, inlined (run_callback,
            # switch, cancel): sleep(0) is a hot path, and no watcher.
            cur = getcurrent()
            glet = self.glet
            if cur is glet:
                raise RuntimeError(_IN_HUB)
            cb = Callback(cur.switch, ())
            self._queue.append(cb)
            try:
                glet.switch()
            finally:
                cb.fn = None
            return
        self.block(None, 0, seconds)

    # The loop -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                self._run_until_dry()
            except (KeyboardInterrupt, SystemExit) as e:
                self._recover = True
                self._throw_root(e)
                continue
            self._throw_root(LoopExit("the hub has nothing left to run: this would block forever"))

    def _throw_root(self, exc: BaseException) -> None:
        if self.root.dead:  # the thread is finishing; nobody to tell
            return
        self.root.throw(exc)

    def _run_until_dry(self) -> None:
        queue = self._queue
        loop = self.loop
        failed = self._watcher_failed
        if self._recover:
            self._recover = False
            loop.dispatch(loop.last_items(), failed)
        while True:
            # Callbacks queued by callbacks run in the same pass, up to a
            # budget: polling after every short batch costs an epoll_wait
            # each, while the budget keeps I/O from being starved.
            n = CALLBACK_BUDGET
            while queue and n:
                n -= 1
                cb = queue.popleft()
                fn = cb.fn
                if fn is not None:
                    cb.fn = None
                    try:
                        fn(*cb.args)
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException:
                        log.exception("callback %r raised", fn)
            if queue:
                items, alive = loop.run_once(False)
            else:
                self.polling = True
                items, alive = loop.run_once(True)
                self.polling = False
            if items:
                loop.dispatch(items, failed)
            elif not alive and not queue:
                return

    @staticmethod
    def _watcher_failed(w: Watcher, exc: BaseException) -> None:
        # Loop.dispatch's error policy: KeyboardInterrupt and SystemExit end
        # the drain (the next pass resumes it); anything else is logged.
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc
        log.error("watcher callback %r raised", w.callback, exc_info=exc)

    def destroy(self) -> None:
        """Free the loop and its file descriptors. The hub is unusable after."""
        if self.loop.destroyed:
            return
        if self._signals is not None:
            self._signals.close(restore=True)
        self._async.close()
        self.loop.destroy()


def _throw_if_still_waiting(watcher: Io, g: greenlet, exc: BaseException) -> None:
    if watcher.waiter is g and not g.dead:
        g.throw(exc)


def throw_if_alive(g: greenlet, exc: BaseException) -> None:
    """Raise `exc` in `g` unless it already finished (run it from the hub)."""
    if not g.dead:
        g.throw(exc)


def call_soon_threadsafe(fn: Callable[..., Any], *args: Any, hub: Hub | None = None) -> None:
    """Schedule `fn(*args)` on `hub` (default: this thread's) from any thread."""
    (hub or get_hub()).call_soon_threadsafe(fn, *args)


# Per-thread hubs ------------------------------------------------------------
class _Holder:
    """Thread-local owner of a hub: destroys it when its thread ends."""

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def __del__(self) -> None:
        hub = self.hub
        if hub is not None and hub.thread_ident != threading.main_thread().ident:
            try:
                hub.destroy()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


_local = threading.local()
_orphans: list[Any] = []


def get_hub() -> Hub:
    """The current thread's hub, created on first use."""
    try:
        return _local.holder.hub
    except AttributeError:
        hub = Hub()
        _local.holder = _Holder(hub)
        return hub


def _after_fork_in_child() -> None:
    holder = getattr(_local, "holder", None)
    if holder is None:
        return
    old = holder.hub
    holder.hub = None
    # Keep every greenlet of the parent referenced: if one were collected, its
    # GreenletExit cleanup would run in the child.
    _orphans.append(old)
    _orphans.extend(o for o in gc.get_objects() if isinstance(o, greenlet) and o)
    if old._signals is not None:
        old._signals.close(restore=False)  # the parent still owns the wake-up fd
    old._async.active = False
    old.loop.abandon()  # frees the child's copies of libev's fds only
    hub = Hub()
    _local.holder = _Holder(hub)
    cur = getcurrent()
    if cur is not hub.root:
        cur.parent = hub.glet


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
