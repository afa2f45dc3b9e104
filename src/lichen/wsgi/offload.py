# lichen.wsgi.offload: run blocking WSGI apps in OS threads, without patching.
#
# Strategy: `blocking(app)` wraps an app so that each call runs in a worker
# thread of a ThreadPool, while the socket I/O, parsing, keep-alive and idle
# waiting stay on the hub. What the app does that touches the connection —
# reading wsgi.input, write(), yielding body chunks — is handed back to the
# hub through a portal (call_soon_threadsafe + a Future), so sockets are only
# ever used by greenlets. A list or tuple body comes back whole, so the server
# still sends it with a Content-Length in one send; any other iterable is
# streamed one chunk at a time, the thread waiting until the hub took each
# chunk (backpressure). `WSGIServer(threads=N)` wraps the whole app this way;
# wrapping only a mounted sub-app keeps the rest on greenlets.
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from lichen.hub import get_hub, spawn
from lichen.sync import Queue
from lichen.threadpool import Portal, ThreadPool
from lichen.wsgi.response import close_body

__all__ = ["blocking", "BlockingApp"]


_END = object()


class _Raised:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _ThreadInput:
    """`wsgi.input` as seen from the app's thread: every read runs on the hub."""

    __slots__ = ("_inp", "_portal")

    def __init__(self, inp: Any, portal: Portal) -> None:
        self._inp = inp
        self._portal = portal

    def read(self, size: int | None = -1) -> bytes:
        return self._portal.call(self._inp.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._portal.call(self._inp.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._portal.call(self._inp.readlines, hint)

    def read1(self, size: int = -1) -> bytes:
        return self._portal.call(self._inp.read1, size)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def close(self) -> None:
        pass


class BlockingApp:
    """A WSGI app that runs in a thread pool; see `blocking`."""

    def __init__(self, app: Callable[..., Any], pool: ThreadPool) -> None:
        self.app = app
        self.pool = pool
        self.__wrapped__ = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        hub = get_hub()
        portal = Portal(hub)
        environ["wsgi.input"] = _ThreadInput(environ["wsgi.input"], portal)
        environ["wsgi.multithread"] = True
        chunks: Queue = Queue(maxsize=1)
        state = {"cancelled": False}

        def write(data: bytes) -> None:
            writer = state.get("write")
            portal.call(writer, data)  # type: ignore[arg-type]

        def start_response_in_thread(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            # Only records status and headers: safe to call from the thread
            # while the greenlet that owns the response waits.
            state["write"] = start_response(status, headers, exc_info)
            return write

        def run() -> None:
            # Every hand-over goes through the queue, so the greenlet sees one
            # ordered stream: ("whole", list) | ("error", exc) | ("stream",
            # None) followed by chunks and _END or _Raised.
            try:
                result = self.app(environ, start_response_in_thread)
            except BaseException as e:
                portal.call(chunks.put, ("error", e))
                return
            if isinstance(result, (list, tuple)):
                portal.call(chunks.put, ("whole", result))
                return
            try:
                portal.call(chunks.put, ("stream", None))
                for chunk in result:
                    if state["cancelled"]:
                        break
                    if chunk:
                        portal.call(chunks.put, chunk)
                portal.call(chunks.put, _END)
            except BaseException as e:
                portal.call(chunks.put, _Raised(e))
            finally:
                close_body(result, "a blocking app's")

        self.pool.submit(run, hub)
        try:
            kind, value = chunks.get()
        except BaseException:
            _cancel(chunks, state)
            raise
        if kind == "whole":
            return value
        if kind == "error":
            raise value
        return self._stream(chunks, state)

    @staticmethod
    def _stream(chunks: Queue, state: dict) -> Iterator[bytes]:
        try:
            while True:
                item = chunks.get()
                if item is _END:
                    return
                if isinstance(item, _Raised):
                    raise item.exc
                yield item
        finally:
            _cancel(chunks, state)


def _cancel(chunks: Queue, state: dict) -> None:
    """The consumer is gone: tell the thread to stop, and keep taking what
    it hands over until it finishes, so it never blocks on a full queue."""
    if state["cancelled"]:
        return
    state["cancelled"] = True

    def drain() -> None:
        while True:
            item = chunks.get()
            if item is _END or isinstance(item, _Raised) or (type(item) is tuple and item[0] != "stream"):
                return

    spawn(drain)


def blocking(app: Callable[..., Any] | None = None, *, threads: int = 10,
             pool: ThreadPool | None = None) -> Any:
    """Mark a WSGI app as blocking: it runs in a pool of OS threads while
    lichen keeps its I/O on the hub. Use as `blocking(app)`,
    `@blocking`, or `@blocking(threads=20)`."""
    def wrap(inner: Callable[..., Any]) -> BlockingApp:
        return BlockingApp(inner, pool or ThreadPool(threads, name="lichen-app"))

    if app is None:
        return wrap
    return wrap(app)
