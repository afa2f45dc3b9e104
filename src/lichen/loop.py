# lichen.loop: the libev loop and its watchers, as small Python objects.
#
# Strategy: every watcher owns its C struct (allocated once and reused) and an
# integer token written into the struct's `data`. libev callbacks stay in C and
# only append `token << 3 | flags` to a ready array; `Loop.run_once` returns
# that array and `Loop.watchers` maps a token back to its watcher. The map is
# also the keep-alive: a started watcher's struct must outlive libev's use of
# it, or the process aborts. Tokens are never reused, so an event queued for a
# watcher that was closed in the meantime finds nothing and is dropped.
# This module knows nothing of greenlets or sockets; only the hub uses it.
from __future__ import annotations

import itertools
from typing import Any, Callable

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

    __slots__ = ("_ptr", "watchers", "_ready", "__weakref__")

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
        Each item is `token << 3 | flags` (flags: READ, WRITE, ERROR).
        """
        n = lib.evp_run(self._ptr, lib.EVRUN_ONCE if block else lib.EVRUN_NOWAIT)
        if n >= 0:
            return (ffi.unpack(self._ready.buf, n) if n else []), True
        n = -n - 1
        return (ffi.unpack(self._ready.buf, n) if n else []), False

    def _ready_items(self) -> list[int]:
        """The items of the last iteration again (they stay in the C array
        until the next run): used to resume a drain that was interrupted."""
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
            self.watchers.clear()

    @property
    def destroyed(self) -> bool:
        return self._ptr is None

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

    `callback(flags)` is called by whoever drains the loop's ready items (the
    hub); the loop never calls Python itself. `active` mirrors libev's state:
    one-shot watchers are stopped by libev itself, and the drainer calls
    `fired()` for each event to bring the flag (and the ref count) in line.
    """

    __slots__ = ("loop", "token", "_w", "callback", "active", "_unref", "oneshot", "__weakref__")
    _ctype = ""
    # oneshot: libev stops the watcher itself when it fires (io: our C
    # callback does; timers without repeat: libev does). The drainer then
    # only clears `active` (and re-refs an unref'd watcher), inline.

    def __init__(self, loop: Loop, init: Callable[[Any, int], None]) -> None:
        self.loop = loop
        self.token = next(_tokens)
        self._w = ffi.new(self._ctype)
        init(self._w, self.token)
        self.callback: Callable[[int], Any] | None = None
        self.active = False
        self._unref = False
        self.oneshot = False

    def _started(self) -> None:
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

    def fired(self) -> None:
        """Called by the drainer for each event: a one-shot watcher was
        already stopped by libev."""
        if self.oneshot:
            self._stopping()

    def unref(self) -> None:
        """Don't let this watcher keep the loop alive (call before start)."""
        self._unref = True

    def stop(self) -> None:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def close(self) -> None:
        """Stop and forget the watcher; its token will never fire again."""
        if self.loop._ptr is not None:
            self.stop()
        self.active = False
        self.loop.watchers.pop(self.token, None)
        self.callback = None


class Io(Watcher):
    """Readiness of one file descriptor. One-shot: after it fires it is
    stopped, and `start` re-arms it (cheaply: no epoll_ctl when fd and events
    are unchanged)."""

    __slots__ = ("fd", "events", "waiter")
    _ctype = "ev_io *"

    def __init__(self, loop: Loop, fd: int, events: int = READ) -> None:
        super().__init__(loop, lib.evp_io_init)
        self.oneshot = True
        self.fd = fd
        self.events = events
        self.waiter: Any = None  # the greenlet blocked on it, set by the hub

    def start(self, events: int | None = None) -> None:
        if events is not None:
            self.events = events
        lib.evp_io_arm(self.loop._ptr, self._w, self.fd, self.events)
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
        watchers[token] = self


class Timer(Watcher):
    """A timer; `start` refreshes libev's cached time before arming."""

    __slots__ = ("after", "repeat")
    _ctype = "ev_timer *"

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
        lib.evp_timer_arm(self.loop._ptr, self._w, self.after, self.repeat)
        if not self.active:
            self._started()

    def again(self, repeat: float | None = None) -> None:
        """libev's ev_timer_again: restart a repeating timer from now (the
        cheap way to push back an idle timeout); a repeat of 0 stops it."""
        if repeat is not None:
            self.repeat = repeat
        self.oneshot = not self.repeat
        lib.evp_timer_again(self.loop._ptr, self._w, self.repeat)
        if self.repeat:
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

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop, lib.evp_async_init)

    def start(self) -> None:
        if not self.active:
            lib.ev_async_start(self.loop._ptr, self._w)
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
            self._started()

    def stop_(self: Watcher) -> None:
        if self._stopping():
            stop(self.loop._ptr, self._w)

    return type(name, (Watcher,), {
        "__slots__": (), "_ctype": f"ev_{name.lower()} *", "__init__": __init__,
        "start": start_, "stop": stop_, "__doc__": f"libev ev_{name.lower()} watcher.",
    })


Prepare = _simple("Prepare", lib.evp_prepare_init, lib.ev_prepare_start, lib.ev_prepare_stop)
Check = _simple("Check", lib.evp_check_init, lib.ev_check_start, lib.ev_check_stop)
Idle = _simple("Idle", lib.evp_idle_init, lib.ev_idle_start, lib.ev_idle_stop)
