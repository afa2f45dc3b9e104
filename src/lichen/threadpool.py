# lichen.threadpool: OS threads for calls that would block the hub.
#
# Strategy: a greenlet hands a call to a worker thread and blocks on a Waiter;
# the worker sends the outcome back with the hub's call_soon_threadsafe (an
# ev_async wake-up), and the hub resumes the greenlet. While a job is out the
# hub holds a loop reference, so the loop does not think it ran dry. Threads
# start lazily, up to `maxthreads`, and one pool serves every hub (results go
# back to the hub that asked). Used for name resolution and blocking apps.
# The other way round, a Portal lets a foreign thread run a call in a
# greenlet of a hub and wait for it (a blocking app's socket work).
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
from typing import Any, Callable, TypeVar

from lichen.hub import Hub, Waiter, get_hub, spawn

T = TypeVar("T")
log = logging.getLogger("lichen.error")
_STOP = object()


class ThreadPool:
    """A small pool of daemon threads whose results come back to the hub."""

    def __init__(self, maxthreads: int = 10, name: str = "lichen-pool") -> None:
        if maxthreads < 1:
            raise ValueError("maxthreads must be at least 1")
        self.maxthreads = maxthreads
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._idle > 0 or len(self._threads) >= self.maxthreads:
                return
            t = threading.Thread(target=self._worker, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            self._idle += 1
        t.start()

    def _worker(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            with self._lock:
                self._idle -= 1
            fn, args, kwargs, hub, waiter = job
            try:
                outcome = (True, fn(*args, **kwargs))
            except BaseException as e:  # delivered to the caller, never lost
                outcome = (False, e)
            with self._lock:
                self._idle += 1
            hub.call_soon_threadsafe(_deliver, hub, waiter, outcome)
            del job, fn, args, kwargs, hub, waiter, outcome

    def apply(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` in a worker thread; block this greenlet
        (not the hub) until it returns, then return its value or raise."""
        hub = get_hub()
        waiter = Waiter(hub)
        hub.ref()
        self._jobs.put((fn, args, kwargs, hub, waiter))
        self._ensure_thread()
        ok, value = waiter.get()
        if ok:
            return value
        raise value

    def submit(self, fn: Callable[..., Any], hub: Hub | None = None, *args: Any) -> None:
        """Run `fn(*args)` in a worker thread without waiting for it; the
        hub stays alive until it finished. Exceptions are logged."""
        hub = hub or get_hub()
        hub.ref()
        self._jobs.put((fn, args, {}, hub, None))
        self._ensure_thread()

    def close(self) -> None:
        """Stop the threads once queued jobs are done."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(_STOP)

    def _reset_after_fork(self) -> None:
        self._jobs = queue.SimpleQueue()
        self._threads = []
        self._idle = 0
        self._lock = threading.Lock()


def _deliver(hub: Hub, waiter: Waiter | None, outcome: tuple[bool, Any]) -> None:
    hub.unref()
    if waiter is None:  # submit(): nobody waits for the outcome
        if not outcome[0]:
            log.error("job in the thread pool failed", exc_info=outcome[1])
        return
    if waiter.glet is not None:
        waiter.switch(outcome)


_default: ThreadPool | None = None


def get_threadpool() -> ThreadPool:
    """The process-wide pool used for name resolution."""
    global _default
    if _default is None:
        _default = ThreadPool()
    return _default


def _after_fork_in_child() -> None:
    if _default is not None:
        _default._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Portal:
    """Run a callable in a greenlet of `hub` from a foreign thread and wait
    for its outcome (its result, or its exception raised again here)."""

    __slots__ = ("hub",)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # re-raised in the calling thread
                fut.set_exception(e)

        self.hub.call_soon_threadsafe(spawn, run)
        return fut.result()
