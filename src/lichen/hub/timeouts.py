# lichen.hub.timeouts: Timeout (raise in a greenlet after a delay) and
# with_timeout.
#
# Strategy: a Timeout is a timer whose callback throws into the greenlet
# that started it; it arms nothing else and never switches by itself, so it
# composes with whatever that greenlet blocks on (the wait's own clean-up
# runs as the exception unwinds it). It is a BaseException so that
# `except Exception` in application code does not swallow it.
from __future__ import annotations

from typing import Any, Callable, TypeVar

from greenlet import getcurrent, greenlet

from lichen.hub.scheduler import get_hub
from lichen.loop import Timer

__all__ = ["Timeout", "with_timeout"]

T = TypeVar("T")
_NONE = object()


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
        """True while started and not yet fired or cancelled."""
        return self._timer is not None and self._timer.active

    def start(self) -> Timeout:
        """Arm the timer for the current greenlet (a no-op for seconds=None);
        returns self."""
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
        """A new Timeout, started."""
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
        """Disarm; the Timeout can be started again."""
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
