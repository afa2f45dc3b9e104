# lichen.sync: cooperative Event, Lock, RLock, Semaphore, BoundedSemaphore,
# Queue and Pool for greenlets running under one thread's hub.
#
# Strategy: every blocked caller is a `_Waiter` in a FIFO deque. Releasing
# hands the resource to the first waiter directly (marks it `granted`, puts the
# item on it) and schedules its wake-up in the hub, so nobody can barge in
# between. A waiter woken by a timeout after its grant keeps what it was given;
# one hit by an exception (kill, Timeout) before resuming passes it on.
from __future__ import annotations

import sys
from collections import deque
from functools import partial
from queue import Empty, Full
from typing import Any, Callable, Generic, Iterator, TypeVar

from lichen.hub import Greenlet, GreenletExit, Hub, Waiter, get_hub, getcurrent

__all__ = [
    "Event", "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Queue", "Pool", "Empty", "Full",
]

T = TypeVar("T")


class _Waiter(Waiter):
    """A Waiter that remembers whether it was handed the resource (`granted`)
    and what (`item`), even if it is never switched to: the grant, not the
    wake-up, is what counts."""

    __slots__ = ("granted", "item")

    def __init__(self, hub: Hub) -> None:
        Waiter.__init__(self, hub)
        self.granted = False
        self.item: Any = None


def _grant(w: _Waiter, item: Any = None) -> None:
    w.granted = True
    w.item = item
    # Wake-ups go through the hub; a no-op if `w` stopped waiting meanwhile.
    w.hub.run_callback(w.switch, item)


def _wait(waiters: deque[_Waiter] | list[_Waiter], w: _Waiter, timeout: float | None,
          give_back: Callable[[_Waiter], None] | None) -> bool:
    """Block on `w` (already appended to `waiters`); return whether it was
    granted. On an exception, an ungranted `w` leaves the queue and a granted
    one passes its grant on through `give_back`, so nothing is left behind."""
    try:
        w.get(timeout)
    except BaseException:
        if not w.granted:
            waiters.remove(w)
        elif give_back is not None:
            give_back(w)
        raise
    if w.granted:
        return True
    waiters.remove(w)
    return False


# Event ----------------------------------------------------------------------
class Event:
    """A flag greenlets can wait for (like `threading.Event`)."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: list[_Waiter] = []

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._flag = True
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for w in waiters:
                _grant(w, True)

    def clear(self) -> None:
        """Reset the flag; waiters already woken by `set` still return True."""
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set; False if `timeout` passed first."""
        if self._flag:
            return True
        if timeout is not None and timeout <= 0:
            return False
        w = _Waiter(get_hub())
        self._waiters.append(w)
        return _wait(self._waiters, w, timeout, None)


# Semaphores and locks -------------------------------------------------------
class _Counter:
    """A counter of free units with FIFO hand-off to blocked acquirers.

    Invariant: `_value > 0` implies no waiter, so the fast path of `acquire`
    can never overtake one."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: int) -> None:
        self._value = value
        self._waiters: deque[_Waiter] = deque()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take one unit, waiting (FIFO) if none is free; returns whether it
        did. A `timeout` <= 0 means try once."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if self._value > 0:
            self._value -= 1
            return True
        if not blocking:
            return False
        if timeout is not None and timeout <= 0:
            return False
        w = _Waiter(get_hub())
        self._waiters.append(w)
        return _wait(self._waiters, w, timeout, self._pass_on)

    def _pass_on(self, _w: _Waiter) -> None:
        self._release()

    def _release(self) -> None:
        waiters = self._waiters
        if waiters:
            _grant(waiters.popleft(), True)
        else:
            self._value += 1

    def locked(self) -> bool:
        """True when an `acquire` would block."""
        return self._value == 0

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()  # type: ignore[attr-defined]


class Semaphore(_Counter):
    """`value` units; `acquire` takes one (waiting FIFO), `release` returns one."""

    __slots__ = ()

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        super().__init__(value)

    def release(self) -> None:
        """Return one unit: to the longest waiter if any."""
        self._release()


class BoundedSemaphore(Semaphore):
    """A Semaphore that refuses to be released above its initial value."""

    __slots__ = ("_initial",)

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial = value

    def release(self) -> None:
        """Return one unit; ValueError if none is out."""
        if self._value >= self._initial:
            raise ValueError("semaphore released too many times")
        self._release()


class Lock(_Counter):
    """A non-reentrant lock; any greenlet may release it (as threading.Lock)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(1)

    def release(self) -> None:
        """Unlock (handing it to the longest waiter); RuntimeError if unlocked."""
        if self._value:
            raise RuntimeError("release unlocked lock")
        self._release()


class RLock:
    """A reentrant lock owned by the greenlet that acquired it."""

    __slots__ = ("_lock", "_owner", "_count")

    def __init__(self) -> None:
        self._lock = Lock()
        self._owner: Any = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire, or re-enter if the current greenlet owns it already."""
        me = getcurrent()
        if self._owner is me:
            self._count += 1
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        """Undo one acquire; RuntimeError if the current greenlet is not the owner."""
        if self._owner is not getcurrent():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None
            self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# Queue ----------------------------------------------------------------------
class Queue(Generic[T]):
    """A FIFO queue (like `queue.Queue`); `maxsize <= 0` means unbounded.

    Raises the stdlib's `queue.Empty` / `queue.Full`. Invariants: getters wait
    only while the queue is empty and putters only while it is full, so a put
    with a waiting getter hands the item over directly and a get admits the
    longest putter's item at once."""

    __slots__ = ("maxsize", "_items", "_getters", "_putters", "_unfinished", "_all_done")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._getters: deque[_Waiter] = deque()
        self._putters: deque[_Waiter] = deque()
        self._unfinished = 0
        self._all_done = Event()
        self._all_done.set()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def _added(self) -> None:
        if not self._unfinished:
            self._all_done.clear()
        self._unfinished += 1

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Add `item`, waiting (FIFO) while the queue is full; `queue.Full` if
        not `block` or on timeout. If the putter is hit by an exception after
        its item was admitted, the item stays queued."""
        getters = self._getters
        if getters:
            self._added()
            _grant(getters.popleft(), item)
            return
        maxsize = self.maxsize
        if maxsize <= 0 or len(self._items) < maxsize:
            self._items.append(item)
            self._added()
            return
        if not block or (timeout is not None and timeout <= 0):
            raise Full
        w = _Waiter(get_hub())
        w.item = item
        self._putters.append(w)
        if not _wait(self._putters, w, timeout, None):
            raise Full

    def put_nowait(self, item: T) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the oldest item, waiting (FIFO) while empty;
        `queue.Empty` if not `block` or on timeout."""
        items = self._items
        if items:
            item = items.popleft()
            if self._putters:
                self._admit()
            return item
        if not block or (timeout is not None and timeout <= 0):
            raise Empty
        w = _Waiter(get_hub())
        self._getters.append(w)
        if not _wait(self._getters, w, timeout, self._give_back):
            raise Empty
        return w.item

    def get_nowait(self) -> T:
        return self.get(False)

    def _admit(self) -> None:
        putters, items = self._putters, self._items
        # `<` rather than one-for-one: a given-back item may have overfilled it.
        while putters and len(items) < self.maxsize:
            w = putters.popleft()
            items.append(w.item)
            self._added()
            _grant(w)

    def _give_back(self, w: _Waiter) -> None:
        # A getter handed an item was killed before it resumed: the item goes
        # to the next getter, else back to the head (possibly one over maxsize).
        item, w.item = w.item, None
        if self._getters:
            _grant(self._getters.popleft(), item)
        else:
            self._items.appendleft(item)

    def task_done(self) -> None:
        """Mark one gotten item as processed; ValueError if called too often."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if not self._unfinished:
            self._all_done.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put has been marked `task_done`; False on timeout."""
        if not self._unfinished:
            return True
        return self._all_done.wait(timeout)


# Pool -----------------------------------------------------------------------
class Pool:
    """A group of at most `size` running greenlets (None: unbounded).

    `spawn` waits while the pool is full, which is how servers cap their
    connections; a greenlet leaves the pool when it finishes."""

    __slots__ = ("size", "_sem", "_greenlets", "_empty")

    def __init__(self, size: int | None = None) -> None:
        if size is not None and size < 1:
            raise ValueError("pool size must be >= 1 or None")
        self.size = size
        self._sem = Semaphore(size) if size is not None else None
        # A dict, not a set: O(1) removal and iteration in spawn order.
        self._greenlets: dict[Greenlet, None] = {}
        self._empty = Event()
        self._empty.set()

    def spawn(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Greenlet:
        """Start `fn(*args, **kwargs)` in a new pooled greenlet, first waiting
        (FIFO) for a free slot."""
        sem = self._sem
        if sem is not None:
            sem.acquire()
        try:
            if kwargs and "fn" in kwargs:  # Greenlet's own `fn` parameter would clash
                g = Greenlet(partial(fn, *args, **kwargs))
            else:
                g = Greenlet(fn, *args, **kwargs)
            g.link(self._discard)
        except BaseException:
            if sem is not None:
                sem.release()
            raise
        greenlets = self._greenlets
        if not greenlets:
            self._empty.clear()
        greenlets[g] = None
        g.start()
        return g

    def _discard(self, g: Greenlet) -> None:
        greenlets = self._greenlets
        try:
            del greenlets[g]
        except KeyError:
            return
        if self._sem is not None:
            self._sem.release()
        if not greenlets:
            self._empty.set()

    def free_count(self) -> int:
        """How many more greenlets could be spawned without waiting
        (`sys.maxsize` when unbounded)."""
        sem = self._sem
        return sys.maxsize if sem is None else sem._value

    def full(self) -> bool:
        sem = self._sem
        return sem is not None and sem._value == 0

    def wait_available(self, timeout: float | None = None) -> bool:
        """Wait (in FIFO turn with blocked `spawn` calls) until a slot is free;
        False on timeout. The slot is not reserved for the caller."""
        sem = self._sem
        if sem is None or sem._value > 0:
            return True
        if not sem.acquire(timeout=timeout):
            return False
        sem.release()
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the pool is empty; False on timeout."""
        if not self._greenlets:
            return True
        return self._empty.wait(timeout)

    def kill(self, block: bool = True, timeout: float | None = None,
             exception: type[BaseException] | BaseException = GreenletExit) -> None:
        """Kill every pooled greenlet (but the calling one); with `block`, wait
        up to `timeout` for the pool to empty."""
        me = getcurrent()
        for g in list(self._greenlets):
            if g is not me:
                g.kill(exception, block=False)
        if block and me not in self._greenlets:
            self.join(timeout)

    def __len__(self) -> int:
        return len(self._greenlets)

    def __iter__(self) -> Iterator[Greenlet]:
        return iter(list(self._greenlets))

    def __contains__(self, g: object) -> bool:
        return g in self._greenlets
