# lichen.loop: the libev loop and its watchers, as small Python objects.
#
# Strategy: every watcher owns its C struct (allocated once and reused) and an
# integer token written into the struct's `data`. libev callbacks stay in C and
# only append `token << 3 | flags` to a ready array; `Loop.run_once` returns
# that array and `Loop.watchers` maps a token back to its watcher. The map is
# also the keep-alive: a started watcher's struct must outlive libev's use of
# it, or the process aborts. Tokens are never reused, so an event queued for a
# watcher that was closed in the meantime finds nothing and is dropped.
#
# Invariant: a watcher's `active` flag equals libev's own state, except for a
# one-shot watcher that libev stopped in the last iteration and whose item the
# drainer has not claimed yet. The danger is a re-arm in between: libev runs
# an iteration's pending watchers last-in first-out, so a timeout's item comes
# before the io item of the same iteration, and the greenlet it wakes may wait
# on the io again before the drainer reaches that item. Claiming the stale
# item would clear `active` while libev holds the watcher, and close() would
# then free a struct libev still references. So every arm stamps the watcher
# with the loop's iteration, and an item of an iteration not later than the
# watcher's last arm is stale and dropped (`Loop.claim`). As a second line,
# close() always issues libev's stop while the loop is alive (a no-op on a
# stopped watcher), so no struct is freed while libev holds it.
#
# Draining the ready items is the loop's job too (`Loop.dispatch`: claim each
# item, call its watcher back), so the book-keeping behind `active` never
# leaves this module; the drainer only decides what a failing callback means.
# This module knows nothing of greenlets or sockets; only the hub uses it, and
# the C loop pointer (`_ptr`) is used nowhere else.
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable

from lichen._ev import ffi, lib

READ: int = lib.EVP_READ
WRITE: int = lib.EVP_WRITE
ERROR: int = lib.EVP_ERROR

BACKENDS: dict[str, int] = {
    "select": lib.EVBACKEND_SELECT,
    "poll": lib.EVBACKEND_POLL,
    "epoll": lib.EVBACKEND_EPOLL,
    "kqueue": lib.EVBACKEND_KQUEUE,
    "devpoll": lib.EVBACKEND_DEVPOLL,
    "port": lib.EVBACKEND_PORT,
    "linuxaio": lib.EVBACKEND_LINUXAIO,
    "iouring": lib.EVBACKEND_IOURING,
}

_tokens = itertools.count(1)


def libev_version() -> tuple[int, int]:
    """The (major, minor) version of the libev library lichen is linked with."""
    return lib.ev_version_major(), lib.ev_version_minor()


def supported_backends() -> list[str]:
    """Names of the backends this libev build supports on this system."""
    mask = lib.ev_supported_backends()
    return [name for name, bit in BACKENDS.items() if mask & bit]


class Loop:
    """One libev loop with lichen's ready-array callbacks.

    `backend` is a name from `BACKENDS` (default: libev's recommended choice,
    epoll on Linux). EVFLAG_NOENV keeps LIBEV_FLAGS from changing behaviour
    behind the program's back; EVFLAG_SIGNALFD and EVFLAG_FORKCHECK are never
    used (signalfd breaks with threads, forkcheck costs a getpid per iteration).
    """

    __slots__ = ("_ptr", "watchers", "_ready", "iteration", "destroyed", "__weakref__")

    def __init__(self, backend: str | None = None) -> None:
        flags = lib.EVFLAG_NOENV
        if backend is not None:
            try:
                bit = BACKENDS[backend]
            except KeyError:
                raise ValueError(f"unknown libev backend {backend!r}; choose from {sorted(BACKENDS)}") from None
            if not lib.ev_supported_backends() & bit:
                raise ValueError(f"libev backend {backend!r} is not supported here; supported: {supported_backends()}")
            flags |= bit
        ptr = lib.evp_loop_new(flags)
        if ptr == ffi.NULL:
            raise OSError(f"libev could not create a loop (backend={backend or 'default'})")
        self._ptr: Any = ptr
        self._ready = lib.evp_ready_of(ptr)
        self.watchers: dict[int, Watcher] = {}
        # Number of run_once calls so far: the items of the last one belong
        # to this iteration, and arms stamp it (see the module comment).
        self.iteration = 0
        # Read-only for users: True once the C loop is freed (destroy, or
        # abandon in a forked child). A slot, not a property: sockets test it
        # on every wait, and a property costs a Python call.
        self.destroyed = False

    @property
    def backend(self) -> str:
        """Name of the backend in use."""
        bit = lib.ev_backend(self._ptr)
        for name, value in BACKENDS.items():
            if value == bit:
                return name
        return f"unknown({bit})"

    def now(self) -> float:
        """libev's cached time of the current iteration."""
        return lib.ev_now(self._ptr)

    def update_now(self) -> None:
        lib.ev_now_update(self._ptr)

    def run_once(self, block: bool) -> tuple[list[int], bool]:
        """Run one iteration; return (ready items, alive).

        `block=False` polls without waiting. `alive` is False when no
        referenced watcher is active any more (the loop would exit).
        Each item is `token << 3 | flags` (flags: READ, WRITE, ERROR);
        hand them to `dispatch` (or pass each one through `claim`).
        """
        self.iteration += 1
        n = lib.evp_run(self._ptr, lib.EVRUN_ONCE if block else lib.EVRUN_NOWAIT)
        if n >= 0:
            return (ffi.unpack(self._ready.buf, n) if n else []), True
        n = -n - 1
        return (ffi.unpack(self._ready.buf, n) if n else []), False

    def claim(self, item: int) -> Watcher | None:
        """The watcher an item of the last iteration is for, its `active`
        flag brought in line (a one-shot watcher was stopped by libev); or
        None when the item is stale: the watcher was closed, stopped, or
        re-armed after the iteration that queued the item (libev holds it
        again). `dispatch` is an inlined copy of this."""
        w = self.watchers.get(item >> 3)
        if w is None or not w.active or w._armed >= self.iteration:
            return None
        if w.oneshot:
            w.active = False
            if w._unref:
                lib.ev_ref(self._ptr)  # balance the unref: libev stopped it
        return w

    def dispatch(self, items: Iterable[int], on_error: Callable[[Watcher, BaseException], Any]) -> None:
        """Claim each item of the last iteration and call its watcher back
        with the item's flags; stale items are dropped (see `claim`).

        When a callback raises, `on_error(watcher, exc)` is called: it
        returns to go on with the next item, or raises to end the drain (a
        later `dispatch(last_items(), ...)` then resumes it: the items
        already claimed are stale by then)."""
        get = self.watchers.get
        iteration = self.iteration
        for item in items:
            w = get(item >> 3)
            # `claim`, inlined: this is the server's hottest loop, and A/B
            # runs of a hello server (noisy) favoured the inline form over a
            # call by about 1 µs per request.
            if w is not None and w.active and w._armed < iteration:
                if w.oneshot:
                    w.active = False
                    if w._unref:
                        lib.ev_ref(self._ptr)  # balance the unref: libev stopped it
                try:
                    w.callback(item & 7)  # type: ignore[misc]
                except BaseException as e:
                    on_error(w, e)

    def last_items(self) -> list[int]:
        """The items of the last iteration again (they stay in the C array
        until the next run): to resume a drain that was interrupted."""
        n = self._ready.n
        return ffi.unpack(self._ready.buf, n) if n else []

    def break_(self) -> None:
        lib.ev_break(self._ptr, lib.EVBREAK_ALL)

    def ref(self) -> None:
        """Count one more reason for the loop to stay alive."""
        lib.ev_ref(self._ptr)

    def unref(self) -> None:
        lib.ev_unref(self._ptr)

    def fork(self) -> None:
        """Tell libev the process forked: the backend (epoll fd) is rebuilt."""
        lib.ev_loop_fork(self._ptr)

    def destroy(self) -> None:
        """Free the loop. Safe to call twice; watchers must not be used after."""
        if self._ptr is not None:
            lib.evp_loop_destroy(self._ptr)
            self._ptr = None
            self.destroyed = True
            self.watchers.clear()

    def abandon(self) -> None:
        """Free a forked child's copy of the loop, keeping its watchers.

        The parent's epoll set is untouched (nothing is registered or
        removed), and the watchers stay referenced, with whatever their
        callbacks reach (the parent's greenlets must never be collected in
        the child). Safe to call twice; the loop is unusable after."""
        if self._ptr is not None:
            lib.evp_loop_destroy(self._ptr)
            self._ptr = None
            self.destroyed = True

    # Watcher factories -----------------------------------------------------
    def io(self, fd: int, events: int = READ) -> Io:
        return Io(self, fd, events)

    def timer(self, after: float = 0.0, repeat: float = 0.0) -> Timer:
        return Timer(self, after, repeat)

    def async_(self) -> Async:
        return Async(self)

    def prepare(self) -> Watcher:
        return Prepare(self)

    def check(self) -> Watcher:
        return Check(self)

    def idle(self) -> Watcher:
        return Idle(self)


class Watcher:
    """Base of all watchers: a token, its C struct, a callback, an active flag.

    `callback(flags)` is called when the hub hands the loop's ready items to
    `Loop.dispatch`; libev never calls Python itself. `active` mirrors
    libev's state: one-shot watchers are stopped by libev itself, and each
    item is claimed (`Loop.claim`) to bring the flag (and the ref count) in
    line.
    `libev_active` reads libev's own state, for tests and diagnostics.
    """

    __slots__ = ("loop", "token", "_w", "callback", "active", "_unref", "oneshot", "_armed", "__weakref__")
    _ctype = ""
    # libev's stop function for this kind of watcher, for close().
    _cstop: Callable[[Any, Any], None]
    # oneshot: libev stops the watcher itself when it fires (io: our C
    # callback does; timers without repeat: libev does). The claim then
    # only clears `active` (and re-refs an unref'd watcher).

    def __init__(self, loop: Loop, init: Callable[[Any, int], None]) -> None:
        self.loop = loop
        self.token = next(_tokens)
        self._w = ffi.new(self._ctype)
        init(self._w, self.token)
        self.callback: Callable[[int], Any] | None = None
        self.active = False
        self._unref = False
        self.oneshot = False
        # The loop iteration of the last arm: items of that iteration or an
        # earlier one predate the arm and are stale.
        self._armed = -1

    def _started(self) -> None:
        # The caller stamps `_armed`, in its own code: a line shared by all
        # watcher types would see several types and run unspecialized.
        self.active = True
        # Registered until close(): the map keeps the C struct alive while
        # libev may still write to it or have its token queued.
        self.loop.watchers[self.token] = self
        if self._unref:
            lib.ev_unref(self.loop._ptr)

    def _stopping(self) -> bool:
        """Book-keeping before a stop; returns whether a C stop is needed."""
        if not self.active:
            return False
        self.active = False
        if self._unref:
            # libev's stop un-counts the watcher: balance our earlier unref.
            lib.ev_ref(self.loop._ptr)
        return True

    @property
    def libev_active(self) -> bool:
        """Whether libev itself holds the watcher (read from its struct)."""
        return bool(self._w.active)

    def unref(self) -> None:
        """Don't let this watcher keep the loop alive (call before start)."""
        self._unref = True

    def stop(self) -> None:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def close(self) -> None:
        """Stop and forget the watcher; its token will never fire again."""
        ptr = self.loop._ptr
        if ptr is not None:
            self._stopping()
            # Always, whatever the flag says: libev's stop is a no-op on a
            # stopped watcher (and drops a pending event), and the struct
            # may be freed as soon as the caller lets go of this object.
            self._cstop(ptr, self._w)
        self.active = False
        self.loop.watchers.pop(self.token, None)
        self.callback = None


class Io(Watcher):
    """Readiness of one file descriptor. One-shot: after it fires it is
    stopped, and `start` re-arms it (cheaply: no epoll_ctl when fd and events
    are unchanged)."""

    __slots__ = ("fd", "events", "waiter")
    _ctype = "ev_io *"
    _cstop = lib.ev_io_stop

    def __init__(self, loop: Loop, fd: int, events: int = READ) -> None:
        super().__init__(loop, lib.evp_io_init)
        self.oneshot = True
        self.fd = fd
        self.events = events
        self.waiter: Any = None  # the greenlet blocked on it, set by the hub

    def start(self, events: int | None = None) -> None:
        if events is not None:
            self.events = events
        loop = self.loop
        lib.evp_io_arm(loop._ptr, self._w, self.fd, self.events)
        # On every arm, even with `active` already set: libev may have
        # stopped the watcher in this batch, whose item for it is now stale.
        self._armed = loop.iteration
        if not self.active:
            self._started()

    def stop(self) -> None:
        if self._stopping():
            lib.ev_io_stop(self.loop._ptr, self._w)

    def rebind_start(self, fd: int, events: int) -> None:
        """Reuse this stopped watcher for a wait on `fd` and start it. It
        gets a new token, so an event still queued under the old one can
        never reach its new user."""
        watchers = self.loop.watchers
        watchers.pop(self.token, None)
        token = self.token = next(_tokens)
        lib.evp_io_rebind(self.loop._ptr, self._w, token, fd, events)
        self.fd = fd
        self.events = events
        self.active = True
        self._armed = self.loop.iteration
        watchers[token] = self


class Timer(Watcher):
    """A timer; `start` refreshes libev's cached time before arming."""

    __slots__ = ("after", "repeat")
    _ctype = "ev_timer *"
    _cstop = lib.ev_timer_stop

    def __init__(self, loop: Loop, after: float = 0.0, repeat: float = 0.0) -> None:
        super().__init__(loop, lib.evp_timer_init)
        self.after = after
        self.repeat = repeat

    def start(self, after: float | None = None, repeat: float | None = None) -> None:
        if after is not None:
            self.after = after
        if repeat is not None:
            self.repeat = repeat
        self.oneshot = not self.repeat
        loop = self.loop
        lib.evp_timer_arm(loop._ptr, self._w, self.after, self.repeat)
        self._armed = loop.iteration  # as in Io.start
        if not self.active:
            self._started()

    def again(self, repeat: float | None = None) -> None:
        """libev's ev_timer_again: restart a repeating timer from now (the
        cheap way to push back an idle timeout); a repeat of 0 stops it."""
        if repeat is not None:
            self.repeat = repeat
        self.oneshot = not self.repeat
        loop = self.loop
        lib.evp_timer_again(loop._ptr, self._w, self.repeat)
        if self.repeat:
            self._armed = loop.iteration  # as in Io.start
            if not self.active:
                self._started()
        else:
            self._stopping()

    def remaining(self) -> float:
        return lib.ev_timer_remaining(self.loop._ptr, self._w)

    def stop(self) -> None:
        if self._stopping():
            lib.ev_timer_stop(self.loop._ptr, self._w)


class Async(Watcher):
    """Cross-thread wake-up: `send` may be called from any thread."""

    __slots__ = ()
    _ctype = "ev_async *"
    _cstop = lib.ev_async_stop

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop, lib.evp_async_init)

    def start(self) -> None:
        if not self.active:
            lib.ev_async_start(self.loop._ptr, self._w)
            self._armed = self.loop.iteration
            self._started()

    def send(self) -> None:
        lib.ev_async_send(self.loop._ptr, self._w)

    def stop(self) -> None:
        if self._stopping():
            lib.ev_async_stop(self.loop._ptr, self._w)


def _simple(name: str, init: Any, start: Any, stop: Any) -> type[Watcher]:
    """prepare, check and idle watchers differ only in their libev calls."""

    def __init__(self: Watcher, loop: Loop) -> None:
        Watcher.__init__(self, loop, init)

    def start_(self: Watcher) -> None:
        if not self.active:
            start(self.loop._ptr, self._w)
            self._armed = self.loop.iteration
            self._started()

    def stop_(self: Watcher) -> None:
        if self._stopping():
            stop(self.loop._ptr, self._w)

    return type(name, (Watcher,), {
        "__slots__": (), "_ctype": f"ev_{name.lower()} *", "_cstop": stop, "__init__": __init__,
        "start": start_, "stop": stop_, "__doc__": f"libev ev_{name.lower()} watcher.",
    })


Prepare = _simple("Prepare", lib.evp_prepare_init, lib.ev_prepare_start, lib.ev_prepare_stop)
Check = _simple("Check", lib.evp_check_init, lib.ev_check_start, lib.ev_check_stop)
Idle = _simple("Idle", lib.evp_idle_init, lib.ev_idle_start, lib.ev_idle_stop)
