# lichen.hub.workqueue: WorkQueue, items served in turn by worker greenlets
# that the hub creates, switches into and parks.
#
# Strategy: a server has many small jobs that become ready in the same loop
# iteration (connections with bytes to read). A greenlet per job would cost
# a spawn and two switches each; here, put() only appends to a queue and
# schedules one drain callback per hub pass. The drain (in the hub) switches
# into one worker greenlet, which serves the queued items one after another
# and parks itself when the queue is empty: one switch there and back for
# the whole batch. Only when a worker blocks inside `serve` (it switches to
# the hub) does the drain go on with a second worker, and so on.
#
# Parked workers wait in a free list (LIFO: the warmest stack first), at
# most `max_idle` of them; one beyond that ends. A worker's parent is the
# hub, so a worker that ends or dies returns to the hub. KeyboardInterrupt
# and SystemExit from `serve` kill the worker and propagate through the hub
# to the main greenlet, as anywhere else; the drain reschedules itself in a
# `finally` so the rest of the queue is still served. Invariant: while items
# are queued, a drain is scheduled or running.
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Generic, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

from lichen.hub.scheduler import get_hub

__all__ = ["WorkQueue"]

log = logging.getLogger("lichen.hub")
T = TypeVar("T")


class WorkQueue(Generic[T]):
    """Serve items with `serve(item)` in worker greenlets of this thread's hub.

    `put(item)` may be called from hub callbacks or from greenlets. Items
    are served in order; a worker serves items until the queue is empty,
    so a batch costs one switch. `serve` finds its worker with
    `getcurrent()` (to throw into it later, with `throw_if_alive`, from the
    hub). A GreenletExit out of `serve` ends that worker quietly; any other
    exception but KeyboardInterrupt and SystemExit is logged (logger `lichen.hub`) and the worker goes on with
    the next item, a safety net: `serve` should handle its own errors.
    """

    __slots__ = ("_serve", "_max_idle", "_hub", "_to_hub", "_items", "_idle", "_drain_pending", "_closed", "_run")

    def __init__(self, serve: Callable[[T], Any], max_idle: int = 128) -> None:
        if max_idle < 0:
            raise ValueError(f"max_idle must be 0 or more, not {max_idle!r}")
        self._serve = serve
        self._max_idle = max_idle
        self._hub = get_hub()
        # One bound method for every worker: a worker parked in a request
        # (long-poll, a stream) holds no copy of its own.
        self._to_hub = self._hub.glet.switch
        self._items: deque[T] = deque()
        self._idle: list[greenlet] = []  # parked workers, the last parked on top
        self._drain_pending = False
        self._closed = False
        # A worker's run is a plain function, not the bound method: greenlet
        # calls run from C, and through a bound method that call takes C
        # frames (about 140 bytes) that every worker waiting inside `serve`
        # (a long-poll request) keeps in its saved stack.
        work = self._work

        def run() -> None:
            work()

        self._run = run

    @property
    def idle_workers(self) -> int:
        """How many workers are parked, waiting for items."""
        return len(self._idle)

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def put(self, item: T) -> None:
        """Queue `item`; a worker serves it soon (after the current greenlet
        or callback lets the hub run). RuntimeError once closed."""
        if self._closed:
            raise RuntimeError("this WorkQueue is closed")
        self._items.append(item)
        if not self._drain_pending:
            self._drain_pending = True
            self._hub.run_callback(self._drain)

    def close(self) -> list[T]:
        """Stop: queued items are dropped and returned (the caller owns
        them: a server has closed its connections by then); parked workers
        are ended from the hub, soon, so their frames unwind; no worker is
        created any more; a worker still inside `serve` ends when it
        returns. Later put() calls raise. Idempotent."""
        self._closed = True
        dropped = list(self._items)
        self._items.clear()
        idle, self._idle = self._idle, []
        for g in idle:
            # Back from its park, it finds the queue closed and returns.
            self._hub.run_callback(g.switch)
        return dropped

    def _drain(self) -> None:
        # Runs in the hub. A switch into a worker comes back here when the
        # worker parks (queue empty), ends, or blocks in `serve`: then the
        # next worker takes the rest.
        self._drain_pending = False
        items = self._items
        try:
            while items:
                idle = self._idle
                g = idle.pop() if idle else greenlet(self._run, parent=self._hub.glet)
                g.switch()
        finally:
            # A worker that died of KeyboardInterrupt/SystemExit raises it
            # here, on its way to the main greenlet: the rest is still served.
            if items and not self._drain_pending:
                self._drain_pending = True
                self._hub.run_callback(self._drain)

    def _work(self) -> None:
        items = self._items
        serve = self._serve
        me = getcurrent()
        to_hub = self._to_hub
        while True:
            while items:
                item = items.popleft()
                try:
                    serve(item)
                except GreenletExit:
                    return
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException:
                    log.exception("WorkQueue: %r failed on %r", serve, item)
                item = None  # a parked worker must not keep its last item alive
            idle = self._idle  # (close() replaces the list)
            if self._closed or len(idle) >= self._max_idle:
                return
            idle.append(me)
            try:
                to_hub()
            except GreenletExit:
                # Thrown in while parked (a late kill, or the queue being
                # collected): leave the free list, then end.
                if me in self._idle:
                    self._idle.remove(me)
                return
