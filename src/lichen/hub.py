# lichen.hub: one hub greenlet per thread that schedules every other greenlet.
#
# Strategy: the hub only schedules; it never does I/O itself. It alternates
# between running queued callbacks (spawns, wake-ups, sleep(0)) and one libev
# iteration, then drains the loop's ready items by switching into the waiting
# greenlets. ev_run never calls back into Python, so switches happen in plain
# Python frames and exceptions never cross C.
#
# Theory of operation
# -------------------
# A greenlet blocks by arming exactly one resumer and switching to the hub:
# an io watcher or timer whose callback is its `switch`, a queued `Callback`,
# or a `Waiter` registered with a sync primitive. Every blocking helper stops
# or cancels its resumer in a `finally`, so a greenlet woken by something else
# (a Timeout throw, a kill, a socket closed under it) leaves nothing armed
# behind. Whatever resumes a greenlet does so from the hub, never directly
# from another greenlet, so a greenlet that wakes always returns to the hub
# when it next blocks.
#
# Stale items: libev runs one iteration's pending watchers last-in first-out,
# so a timeout's item can precede the io item of the same iteration, and the
# greenlet it wakes may re-arm that io watcher before the hub reaches its item.
# Every arm stamps the watcher with the loop's iteration and the dispatch loop
# drops an item whose watcher was armed in the iteration being drained (or
# later): such a watcher is held by libev again, and waking its greenlet would
# be spurious and would clear its `active` flag behind libev's back. So a
# watcher's flag always equals libev's state (see lichen.loop).
#
# Signals: Python's C-level handler writes to a wake-up pipe that an unref'd io
# watcher watches, so a blocking ev_run returns at once and the Python handler
# runs. If it raises (KeyboardInterrupt, SystemExit) inside the hub, the hub
# re-raises it in the thread's main greenlet. Items already in libev's ready
# array are kept (it is only reset by the next ev_run), so the next pass
# re-dispatches them; the `active` flag and the arm stamp keep that from
# waking anyone twice.
#
# When nothing can ever happen again (no queued callbacks and no referenced
# watchers), the hub throws `LoopExit` into the main greenlet: whatever it
# waits for would block forever. `wait()` turns that into a normal return.
#
# Fork: the child gets a fresh hub; the parent's greenlets are kept referenced
# (so no GreenletExit runs their cleanup in the child) but never run.
from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from collections import deque
from typing import Any, Callable, Iterable, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

from lichen.loop import READ, WRITE, Io, Loop, Timer, Watcher

__all__ = [
    "Hub", "Greenlet", "Timeout", "LoopExit", "GreenletExit", "Waiter", "get_hub",
    "spawn", "spawn_later", "sleep", "with_timeout", "wait_read", "wait_write",
    "call_soon_threadsafe", "wait", "joinall", "killall", "getcurrent",
]

log = logging.getLogger("lichen.hub")
T = TypeVar("T")


CALLBACK_BUDGET = 1000
TIMEOUT = 0  # what Hub.block returns when its timeout passed (io flags are never 0)
_IN_HUB = "a blocking call was made from inside the hub (in a callback); spawn a greenlet for it"


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
        self.fn = None
        self.args = ()

    @property
    def pending(self) -> bool:
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
        self._signal_pipe: tuple[int, int] | None = None
        self._signal_io: Io | None = None
        self._old_wakeup_fd = -1
        if threading.current_thread() is threading.main_thread():
            self._install_signal_wakeup()

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
        self._refs -= 1
        self.loop.unref()

    def switch(self) -> Any:
        """Block the current greenlet until something armed resumes it."""
        if getcurrent() is self.glet:
            raise RuntimeError(_IN_HUB)
        return self.glet.switch()

    # Blocking helpers -----------------------------------------------------
    def block(self, io: Io | None = None, events: int = 0, timeout: float | None = None,
              timer: Timer | None = None, fd: int | None = None) -> Any:
        """Block the current greenlet until `io` is ready for `events`, or
        `timeout` seconds pass, or whatever else it armed resumes it (a
        Waiter); return which: io's ready flags (READ/WRITE/ERROR, never 0),
        TIMEOUT (0) when the timeout passed, or the value it was switched
        with. However the wait ends (also by a throw: a Timeout, a kill, a
        socket closed under it), io and the timer are disarmed on the way out.

        `timer` lets a caller reuse one timer across waits (sockets do);
        otherwise one is made for the wait. With `fd` and no `io`, a watcher
        is taken from the hub's pool for the wait and given back after
        (wait_read). This is the hub's one arm/switch/clean-up: wait_io,
        sleep, Waiter.get and wait_read/wait_write all go through it."""
        cur = getcurrent()
        glet = self.glet
        if cur is glet:
            raise RuntimeError(_IN_HUB)
        pool = None
        if io is None and fd is not None:
            pool = self.io_pool
            io = pool.pop() if pool else Io(self.loop, fd, events)
        own = False
        try:
            if io is not None:
                io.callback = cur.switch
                if pool is None:
                    io.start(events)
                else:
                    io.rebind_start(fd, events)  # type: ignore[arg-type]  # a fresh token
                io.waiter = cur
            if timeout is not None:
                if timer is None:
                    timer = Timer(self.loop)
                    own = True
                timer.callback = cur.switch  # a timer's item carries flags 0: TIMEOUT
                timer.start(timeout if timeout > 0.0 else 0.0, 0.0)
            return glet.switch()
        finally:
            if io is not None:
                io.waiter = None
                if io.active:
                    io.stop()
                if pool is not None:
                    # Back to the pool unregistered (rebind_start registers
                    # it again) and holding no greenlet.
                    self.loop.watchers.pop(io.token, None)
                    io.callback = None
                    if len(pool) < 64:
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

    # Signals --------------------------------------------------------------
    def _install_signal_wakeup(self) -> None:
        try:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._old_wakeup_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            return  # not the main interpreter / no signals here
        self._signal_pipe = (r, w)
        io = self.loop.io(r, READ)
        io.unref()
        io.callback = self._signal_ready
        io.start()
        self._signal_io = io

    def _signal_ready(self, _flags: int) -> None:
        # Drain the pipe; Python runs the handlers itself at the next bytecode.
        r = self._signal_pipe[0]  # type: ignore[index]
        try:
            while os.read(r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._signal_io.start()  # type: ignore[union-attr]

    def _close_signal_wakeup(self, restore: bool) -> None:
        if self._signal_pipe is None:
            return
        if self._signal_io is not None:
            self._signal_io.close()
            self._signal_io = None
        if restore:
            try:
                if signal.set_wakeup_fd(self._old_wakeup_fd) != self._signal_pipe[1]:
                    pass
            except (ValueError, OSError):
                pass
        for fd in self._signal_pipe:
            try:
                os.close(fd)
            except OSError:
                pass
        self._signal_pipe = None

    def destroy(self) -> None:
        """Free the loop and its file descriptors. The hub is unusable after."""
        if self.loop.destroyed:
            return
        self._close_signal_wakeup(restore=True)
        self._async.close()
        self.loop.destroy()


def _throw_if_still_waiting(watcher: Io, g: greenlet, exc: BaseException) -> None:
    if watcher.waiter is g and not g.dead:
        g.throw(exc)


def throw_if_alive(g: greenlet, exc: BaseException) -> None:
    """Raise `exc` in `g` unless it already finished (run it from the hub)."""
    if not g.dead:
        g.throw(exc)


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
    old._close_signal_wakeup(restore=False)
    old._async.active = False
    old.loop.abandon()  # frees the child's copies of libev's fds only
    hub = Hub()
    _local.holder = _Holder(hub)
    cur = getcurrent()
    if cur is not hub.root:
        cur.parent = hub.glet


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# Greenlets ------------------------------------------------------------------
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
        g = self.glet
        if g is not None:
            self.glet = None
            g.switch(value)

    def throw(self, exc: BaseException) -> None:
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
            value = self.hub.block(None, 0, timeout)
        finally:
            # switch/throw clear `glet` before they resume the greenlet:
            # still set, it was the timer that did (or the wait failed).
            expired = self.glet is not None
            self.glet = None
        if expired and timeout is not None:
            self.timed_out = True
            return None
        return value


_NONE = object()


class Greenlet(greenlet):
    """A spawned greenlet: a handle on a function running under the hub."""

    def __init__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        hub = get_hub()
        super().__init__(parent=hub.glet)
        self._hub = hub
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        self._kwargs = kwargs
        self.value: Any = None
        self.exception: BaseException | None = None
        self._links: list[Callable[[Greenlet], Any]] | None = None
        self._kill_pending: BaseException | None = None
        self._start_cb: Callback | None = None
        self._later: Timer | None = None
        self._done = False

    def start(self) -> None:
        """Schedule the greenlet to run (spawn() does this)."""
        if self._start_cb is None and not self._done:
            self._start_cb = self._hub.run_callback(self.switch)

    def start_later(self, seconds: float) -> None:
        hub = self._hub
        timer = Timer(hub.loop)

        def fire(_flags: int) -> None:
            timer.close()
            self._later = None
            if not self._done and not self:
                self.switch()

        timer.callback = fire
        timer.start(seconds, 0.0)
        self._later = timer

    def run(self) -> None:  # noqa: D401 - greenlet entry point
        try:
            if self._kill_pending is not None:
                raise self._kill_pending
            fn = self._fn
            self.value = fn(*self._args, **self._kwargs)  # type: ignore[misc]
        except GreenletExit as e:
            self.value = e
        except (KeyboardInterrupt, SystemExit) as e:
            self.exception = e
            hub = self._hub
            hub.run_callback(throw_if_alive, hub.root, e)
        except BaseException as e:
            self.exception = e
            log.error("greenlet %s failed", self._describe(), exc_info=e)
        finally:
            self._fn = None
            self._args = ()
            self._kwargs = {}
            self._finish()

    def _describe(self) -> str:
        fn = self._fn
        name = getattr(fn, "__qualname__", None) or repr(fn)
        return f"<Greenlet {name} at {id(self):#x}>"

    def _finish(self) -> None:
        self._done = True
        links, self._links = self._links, None
        if links:
            for fn in links:
                self._hub.run_callback(fn, self)

    # Public handle API ---------------------------------------------------
    @property
    def started(self) -> bool:
        return bool(self) or self.dead

    def ready(self) -> bool:
        """True when the greenlet finished (returned, raised, or was killed)."""
        return self._done

    def successful(self) -> bool:
        return self._done and self.exception is None

    def link(self, callback: Callable[[Greenlet], Any]) -> None:
        """Call `callback(self)` in the hub once the greenlet finishes."""
        if self._done:
            self._hub.run_callback(callback, self)
            return
        if self._links is None:
            self._links = []
        self._links.append(callback)

    def unlink(self, callback: Callable[[Greenlet], Any]) -> None:
        if self._links and callback in self._links:
            self._links.remove(callback)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until finished; returns whether it did within `timeout`."""
        if self._done:
            return True
        if getcurrent() is self:
            raise RuntimeError("a greenlet cannot join itself")
        waiter = Waiter(self._hub)
        wake = waiter.switch
        self.link(wake)  # type: ignore[arg-type]
        try:
            waiter.get(timeout)
        finally:
            self.unlink(wake)  # type: ignore[arg-type]
        return self._done

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The return value; re-raises the greenlet's exception."""
        if not self._done:
            if not block or not self.join(timeout):
                raise Timeout(timeout)
        if self.exception is not None:
            raise self.exception
        return self.value

    def kill(self, exception: type[BaseException] | BaseException = GreenletExit,
             block: bool = True, timeout: float | None = None) -> None:
        """Raise `exception` in the greenlet; with `block`, wait for it to end."""
        if self._done:
            return
        exc = exception() if isinstance(exception, type) else exception
        if getcurrent() is self:
            raise exc
        if not bool(self):  # not started yet: it dies as soon as it starts
            self._kill_pending = exc
            if self._later is not None:
                self._later.close()
                self._later = None
            if self._start_cb is None or not self._start_cb.pending:
                self._start_cb = self._hub.run_callback(self.switch)
        else:
            self._hub.run_callback(throw_if_alive, self, exc)
        if block:
            self.join(timeout)

    def __repr__(self) -> str:
        state = "dead" if self._done else ("running" if bool(self) else "pending")
        return f"{self._describe()[:-1]} {state}>"


def spawn(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Greenlet:
    """Run `fn(*args, **kwargs)` in a new greenlet; returns its handle."""
    g = Greenlet(fn, *args, **kwargs)
    g.start()
    return g


def spawn_later(seconds: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Greenlet:
    """Like spawn, after `seconds`."""
    g = Greenlet(fn, *args, **kwargs)
    g.start_later(seconds)
    return g


def sleep(seconds: float = 0) -> None:
    """Block the current greenlet; `sleep(0)` lets every other ready greenlet
    run first."""
    hub = get_hub()
    if seconds <= 0:
        hub.sleep(0)
    else:
        hub.block(None, 0, seconds)  # (Hub.sleep's other half: one call less)


def joinall(greenlets: Iterable[Greenlet], timeout: float | None = None) -> list[Greenlet]:
    """Wait for all; returns those that finished."""
    greenlets = list(greenlets)
    with Timeout(timeout, False):
        for g in greenlets:
            g.join()
    return [g for g in greenlets if g.ready()]


def killall(greenlets: Iterable[Greenlet], exception: type[BaseException] | BaseException = GreenletExit,
            block: bool = True, timeout: float | None = None) -> None:
    greenlets = list(greenlets)
    for g in greenlets:
        g.kill(exception, block=False)
    if block:
        joinall(greenlets, timeout)


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


_WAIT_DONE = object()


def call_soon_threadsafe(fn: Callable[..., Any], *args: Any, hub: Hub | None = None) -> None:
    """Schedule `fn(*args)` on `hub` (default: this thread's) from any thread."""
    (hub or get_hub()).call_soon_threadsafe(fn, *args)


# Timeouts -------------------------------------------------------------------
class Timeout(BaseException):
    """Raise an exception in the greenlet that started it, after `seconds`.

    `with Timeout(5): ...` raises this Timeout if the block takes longer;
    `with Timeout(5, False)` silently leaves the block instead; `exception`
    may also be an exception class or instance to raise in its place.
    A Timeout is a BaseException so that `except Exception` does not hide it.
    """

    def __init__(self, seconds: float | None = None, exception: Any = None) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.exception = exception
        self._timer: Timer | None = None
        self._glet: greenlet | None = None

    @property
    def pending(self) -> bool:
        return self._timer is not None and self._timer.active

    def start(self) -> Timeout:
        if self.pending:
            raise RuntimeError("this Timeout is already started")
        if self.seconds is None:
            return self
        hub = get_hub()
        self._glet = getcurrent()
        timer = self._timer or Timer(hub.loop)
        timer.callback = self._fire
        timer.start(max(self.seconds, 0.0), 0.0)
        self._timer = timer
        return self

    @classmethod
    def start_new(cls, seconds: float | None = None, exception: Any = None) -> Timeout:
        return cls(seconds, exception).start()

    def _error(self) -> BaseException:
        exc = self.exception
        if exc is None or exc is False:
            return self
        return exc() if isinstance(exc, type) else exc

    def _fire(self, _flags: int) -> None:
        g = self._glet
        self.cancel()
        if g is not None and not g.dead:
            g.throw(self._error())

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    close = cancel

    def __enter__(self) -> Timeout:
        return self.start()

    def __exit__(self, typ: Any, value: Any, tb: Any) -> bool:
        self.cancel()
        return value is self and self.exception is False

    def __str__(self) -> str:
        if self.seconds is None:
            return ""
        return f"{self.seconds} second{'s' if self.seconds != 1 else ''}"

    def __repr__(self) -> str:
        return f"<Timeout seconds={self.seconds!r} pending={self.pending}>"


def with_timeout(seconds: float, fn: Callable[..., T], *args: Any, timeout_value: Any = _NONE, **kwargs: Any) -> T:
    """Call `fn` with a Timeout; return `timeout_value` instead of raising
    when given."""
    timeout = Timeout.start_new(seconds)
    try:
        return fn(*args, **kwargs)
    except Timeout as e:
        if e is timeout and timeout_value is not _NONE:
            return timeout_value
        raise
    finally:
        timeout.cancel()


def wait_read(fd: int, timeout: float | None = None) -> None:
    """Block until `fd` is readable; TimeoutError after `timeout` seconds."""
    if not get_hub().block(None, READ, timeout, None, fd):
        raise TimeoutError(f"timed out waiting for fd {fd}")


def wait_write(fd: int, timeout: float | None = None) -> None:
    """Block until `fd` is writable; TimeoutError after `timeout` seconds."""
    if not get_hub().block(None, WRITE, timeout, None, fd):
        raise TimeoutError(f"timed out waiting for fd {fd}")



