# lichen.hub.greenlets: Greenlet, the handle on a function running under the
# hub, and spawn, spawn_later, joinall, killall.
#
# Strategy: a Greenlet's parent is the hub, so when it finishes (or dies)
# control goes back to the scheduler. It is started by a queued callback,
# never switched into from another greenlet, and it catches everything its
# function raises: a failure is logged and kept on the handle (`exception`);
# KeyboardInterrupt and SystemExit are passed on to the thread's main
# greenlet, through the hub. Link callbacks run in the hub when it finishes;
# join() waits for one with a Waiter. A kill is a throw scheduled in the hub,
# or, for a greenlet not yet started, an exception it raises as it starts.
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from greenlet import GreenletExit, getcurrent, greenlet

from lichen.hub.scheduler import Callback, get_hub, throw_if_alive
from lichen.hub.timeouts import Timeout
from lichen.hub.waiting import Waiter
from lichen.loop import Timer

__all__ = ["Greenlet", "spawn", "spawn_later", "joinall", "killall"]

log = logging.getLogger("lichen.hub")


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
        """Schedule the greenlet to run after `seconds` (spawn_later)."""
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
        """True once the greenlet ran (it may have finished)."""
        return bool(self) or self.dead

    def ready(self) -> bool:
        """True when the greenlet finished (returned, raised, or was killed)."""
        return self._done

    def successful(self) -> bool:
        """True when the greenlet finished without an exception."""
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
        """Forget a `link` callback that has not run yet."""
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


def joinall(greenlets: Iterable[Greenlet], timeout: float | None = None) -> list[Greenlet]:
    """Wait for all; returns those that finished."""
    greenlets = list(greenlets)
    with Timeout(timeout, False):
        for g in greenlets:
            g.join()
    return [g for g in greenlets if g.ready()]


def killall(greenlets: Iterable[Greenlet], exception: type[BaseException] | BaseException = GreenletExit,
            block: bool = True, timeout: float | None = None) -> None:
    """Kill every greenlet (see Greenlet.kill); with `block`, wait until
    they all finished or `timeout` passed."""
    greenlets = list(greenlets)
    for g in greenlets:
        g.kill(exception, block=False)
    if block:
        joinall(greenlets, timeout)
