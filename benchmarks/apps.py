# benchmarks/apps.py: the one WSGI application every server runs in the HTTP benchmark.
#
# Strategy: endpoints routed on PATH_INFO with no framework, so the numbers
# measure the servers and not the app: `/` answers "Hello, World!", `/64k` a
# 64 KiB body, `/post` reads the whole request body and answers its length.
# Bodies are prebuilt bytes and every response carries Content-Length, so each
# server can keep connections alive. After those (so they cost the plain paths
# nothing):
# - `/flask/...` goes to a small Flask app (hello at `/flask/`, `/flask/post`
#   answers the body's length), the same for every server: the flask-*
#   scenarios measure a server under a real framework's per-request cost;
# - `/park`, `/events` and `/broadcast` need cooperative primitives: a greenlet
#   server's launcher (servers.py) calls `cooperate("lichen")` or
#   `cooperate("gevent")` to pick that library's sleep and Event. `/park` sleeps
#   PARK_SECONDS, or `/park?seconds=N` N of them (a long-poll request parked in
#   the app); `/events` is a
#   text/event-stream that sends ": subscribed" and then one `data:` event per
#   `/broadcast`, whose payload is the server's time.monotonic() at the
#   broadcast (clients on the same machine subtract it from their own reading).
#   `/parked` and `/subscribers` answer how many are waiting right now, so the
#   driver can check that they really are. Elsewhere these answer 501.
# `app` and `application` are the same callable (servers look for either name).
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

HELLO = b"Hello, World!"
BIG = b"x" * 65536
_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_BIG_HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))]
PARK_SECONDS = 60.0  # a parked /park request answers after this long
STREAM_SECONDS = 120.0  # an /events stream ends after this long
StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _read_body(environ: dict[str, Any]) -> int:
    """Read the whole request body in chunks; return its length."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    total = 0
    if length:  # read exactly the declared length
        remaining = int(length)
        while remaining > 0:
            chunk = stream.read(min(remaining, 65536))
            if not chunk:
                break
            total += len(chunk)
            remaining -= len(chunk)
    else:  # chunked or unknown length: read to the end
        while chunk := stream.read(65536):
            total += len(chunk)
    return total


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO") or "/"
    if path == "/":
        start_response("200 OK", _HELLO_HEADERS)
        return [HELLO]
    if path == "/64k":
        start_response("200 OK", _BIG_HEADERS)
        return [BIG]
    if path == "/post":
        return _reply(start_response, str(_read_body(environ)).encode())
    if path.startswith("/flask/") and flask_app is not None:
        return flask_app(environ, start_response)
    handler = _COOPERATIVE.get(path)
    if handler is not None:
        if _primitives is None:
            return _reply(start_response, b"needs a greenlet server (apps.cooperate)", "501 Not Implemented")
        return handler(environ, start_response)
    return _reply(start_response, b"not found", "404 Not Found")


application = app


# --------------------------------------------------------------------------- Flask
def _make_flask_app() -> Any:
    try:
        import flask
    except ImportError:  # the flask-* scenarios are then skipped (the driver checks)
        return None
    fapp = flask.Flask("bench")

    @fapp.get("/flask/")
    def hello() -> Any:
        return HELLO, 200, {"Content-Type": "text/plain"}

    @fapp.post("/flask/post")
    def post() -> Any:
        return str(len(flask.request.get_data())), 200, {"Content-Type": "text/plain"}

    return fapp


flask_app = _make_flask_app()


# --------------------------------------------------------------------------- long-poll and SSE
class _Primitives:
    """The cooperative sleep and Event of the library the server runs on."""

    def __init__(self, sleep: Callable[[float], None], event: Callable[[], Any]) -> None:
        self.sleep = sleep
        self.Event = event


_primitives: _Primitives | None = None
_parked = 0
_subscribers = 0


class _Broadcast:
    """One broadcast to come: its Event and, once set, its message."""

    def __init__(self) -> None:
        assert _primitives is not None
        self.event = _primitives.Event()
        self.message = b""


_next: _Broadcast | None = None


def cooperate(library: str) -> None:
    """Serve /park, /events and /broadcast with `library`'s primitives ("lichen" or "gevent")."""
    global _primitives, _next
    if library == "lichen":
        from lichen import sleep
        from lichen.sync import Event
    elif library == "gevent":
        from gevent import sleep
        from gevent.event import Event
    else:
        raise ValueError(library)
    _primitives = _Primitives(sleep, Event)
    _next = _Broadcast()


def _park(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    global _parked
    query = environ.get("QUERY_STRING", "")
    seconds = PARK_SECONDS
    if query.startswith("seconds="):
        seconds = min(float(query[8:]), PARK_SECONDS)
    _parked += 1
    try:
        _primitives.sleep(seconds)
    finally:
        _parked -= 1
    return _reply(start_response, b"parked")


def _events(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
    return _stream()


def _stream() -> Iterator[bytes]:
    global _subscribers
    _subscribers += 1
    try:
        yield b": subscribed\n\n"  # sends the header: the client knows it is in
        deadline = time.monotonic() + STREAM_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            b = _next
            if not b.event.wait(left):
                break
            yield b.message
    finally:
        _subscribers -= 1


def _broadcast(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Wake every subscriber with one event; answer how many were waiting."""
    global _next
    b, _next = _next, _Broadcast()
    waiting = _subscribers
    b.message = b"data: %.6f\n\n" % time.monotonic()
    b.event.set()
    return _reply(start_response, str(waiting).encode())


_COOPERATIVE: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "/park": _park,
    "/events": _events,
    "/broadcast": _broadcast,
    "/parked": lambda environ, start_response: _reply(start_response, str(_parked).encode()),
    "/subscribers": lambda environ, start_response: _reply(start_response, str(_subscribers).encode()),
}
