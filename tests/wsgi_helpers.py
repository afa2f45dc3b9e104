# Shared helpers for the WSGI server tests.
#
# - ServerThread: a WSGIServer running in a background thread with its own
#   hub; the test thread talks to it with plain blocking stdlib sockets.
#   `call(fn)` runs fn inside the server's hub (in a greenlet) and returns its
#   result; `stop(timeout)` runs the graceful stop there and joins the thread.
# - Client: a blocking socket with a read buffer that sends raw bytes and
#   reads back exactly one response at a time (status line, headers, body by
#   Content-Length / chunked / close), leaving what follows in the buffer so
#   pipelined responses can be checked for exact boundaries.
# - a handful of tiny WSGI apps used by several test modules, among them
#   http_app, which routes by path to enough behaviours for a whole module,
#   and LIMITS, small size limits to serve it with; Body, endless_app,
#   file_app and the data_file fixture for the application-side tests.
# - errlog / logs / strict_log: caplog fixtures at INFO for lichen's loggers
#   (import them into a test module; strict_log fails a test that logged an
#   error); error_lines() and records() read them.
from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pytest

from lichen import hub as lhub
from lichen.sync import Event
from lichen.wsgi import WSGIServer

TIMEOUT = 5.0  # every blocking client operation is bounded by this


# The server ------------------------------------------------------------------
class ServerThread:
    """`with ServerThread(app, **settings) as srv:` — srv.address, srv.port."""

    def __init__(self, app: Callable[..., Any], listener: Any = ("127.0.0.1", 0),
                 stop_timeout: float = 0.0, **kwargs: Any) -> None:
        self.app = app
        self.listener = listener
        self.kwargs = kwargs
        self.stop_timeout = stop_timeout
        self.server: WSGIServer | None = None
        self.hub: lhub.Hub | None = None
        self.address: Any = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stop_request: Event | None = None
        self._stop_timeout_now = stop_timeout
        self.stop_returned_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="wsgi-server", daemon=True)

    @property
    def port(self) -> int:
        return self.address[1]

    def _run(self) -> None:
        try:
            self.hub = lhub.get_hub()
            self._stop_request = Event()
            # The logs are lichen's loggers (caplog sees them), not the
            # library's default sys.stderr, unless a test says otherwise.
            kwargs = {"log": logging.getLogger("lichen.access"), "error_log": logging.getLogger("lichen.error"),
                      **self.kwargs}
            self.server = WSGIServer(self.listener, self.app, **kwargs)
            self.server.start()
            self.address = self.server.address
        except BaseException as e:  # reported to the test thread
            self.error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self._stop_request.wait()
            self.server.stop(self._stop_timeout_now)
            self.stop_returned_at = time.monotonic()
            # Let killed workers and queued callbacks finish.
            lhub.wait(1.0)
        except BaseException as e:  # pragma: no cover - shows up in stop()
            self.error = e

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10) or self.error is not None:
            raise RuntimeError(f"server thread failed to start: {self.error!r}")
        return self

    def stop(self, timeout: float | None = None, join: float = 15.0) -> None:
        if not self._thread.is_alive():
            return
        if timeout is not None:
            self._stop_timeout_now = timeout
        self.hub.call_soon_threadsafe(self._stop_request.set)  # type: ignore[union-attr]
        self._thread.join(join)
        if self._thread.is_alive():  # pragma: no cover
            raise RuntimeError("server thread did not stop")
        if self.error is not None:
            raise self.error

    def stop_async(self, timeout: float) -> None:
        """Ask for stop(timeout) without waiting for it (see join())."""
        self._stop_timeout_now = timeout
        self.hub.call_soon_threadsafe(self._stop_request.set)  # type: ignore[union-attr]

    def join(self, timeout: float = 15.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "server thread did not stop"

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = TIMEOUT) -> Any:
        """Run fn(*args) in a greenlet of the server's hub; return its result."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as e:
                fut.set_exception(e)

        self.hub.call_soon_threadsafe(lhub.spawn, run)  # type: ignore[union-attr]
        return fut.result(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def connect(self, timeout: float = TIMEOUT) -> Client:
        return Client.connect(self.address, timeout)

    def request(self, data: bytes, method: str = "GET") -> Response:
        """One request on a fresh connection; returns its response."""
        with self.connect() as c:
            c.send(data)
            return c.read_response(method)


def wait_until(cond: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# The client ------------------------------------------------------------------
@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_head: bytes = b""
    chunked: bool = False
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def header_names(self) -> list[str]:
        return [k.lower() for k, _ in self.headers]


class ClosedError(ConnectionError):
    """The server closed the connection before a complete response."""


class Client:
    """A blocking client connection with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False

    @classmethod
    def connect(cls, address: Any, timeout: float = TIMEOUT) -> Client:
        if isinstance(address, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        elif len(address) == 4:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(address)
        except BaseException:
            s.close()
            raise
        return cls(s)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take_until(self, sep: bytes) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            if not self._more():
                raise ClosedError(f"connection closed before {sep!r}; got {self.buf[:200]!r}")

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise ClosedError(f"connection closed after {len(self.buf)} of {n} body bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self) -> Response:
        head = self._take_until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, f"malformed header line {line!r}"
            headers.append((name, value.strip(" \t")))
        return Response(version, int(code), reason, headers, raw_head=head + b"\r\n\r\n")

    def read_response(self, method: str = "GET", interim: bool = False) -> Response:
        """Read one response. 1xx interim responses are skipped unless
        `interim` (then the first one is returned)."""
        while True:
            r = self.read_head()
            if 100 <= r.status < 200 and not interim and r.status != 101:
                continue
            break
        if method == "HEAD" or r.status < 200 or r.status in (204, 304):
            return r
        te = r.header("transfer-encoding")
        if te is not None:
            assert te.lower() == "chunked", te
            r.chunked = True
            parts = []
            while True:
                size_line = self._take_until(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while True:
                        t = self._take_until(b"\r\n")
                        if not t:
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        r.trailers.append((k, v.strip()))
                    break
                parts.append(self._take(size))
                assert self._take(2) == b"\r\n", "chunk not followed by CRLF"
            r.body = b"".join(parts)
        elif r.header("content-length") is not None:
            r.body = self._take(int(r.header("content-length")))  # type: ignore[arg-type]
        else:
            while self._more():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def read_until_close(self, timeout: float = TIMEOUT) -> bytes:
        """Everything until the server closes (raises socket.timeout if not)."""
        self.sock.settimeout(timeout)
        while self._more():
            pass
        out, self.buf = self.buf, b""
        return out

    def is_closed(self, timeout: float = 2.0) -> bool:
        """True if the server closed the connection within `timeout` with
        nothing more to read; False if still open at the deadline."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLEOFError):
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        if data:
            self.buf += data
            return False
        self.eof = True
        return True


def get(path: str = "/", host: str = "x", extra: str = "", version: str = "1.1", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


def post(body: bytes, path: str = "/") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)


def post_chunked(*chunks: bytes) -> bytes:
    out = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    for ch in chunks:
        out += b"%x\r\n%s\r\n" % (len(ch), ch)
    return out + b"0\r\n\r\n"


# Apps ------------------------------------------------------------------------
def hello_app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b"hello " + environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def echo_app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Echoes the request body (read whole)."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def streaming_app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """No Content-Length: chunked on 1.1, close-delimited on 1.0."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen() -> Iterable[bytes]:
        yield b"one,"
        yield b""
        yield b"two,"
        yield b"three"
    return gen()


LIMITS = dict(max_request_line=1024, max_header_bytes=4096, max_header_count=20, max_field_size=1024, max_body=10000)


def http_app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Routes by path: /echo, /stream, /noread (answers without reading the
    body), /close (answers with Connection: close), /status/<code> (with a
    Content-Length when the query is `cl`), /host (echoes HTTP_HOST), and
    hello_app for any other path."""
    path = environ["PATH_INFO"]
    if path == "/echo":
        return echo_app(environ, start_response)
    if path == "/stream":
        return streaming_app(environ, start_response)
    if path == "/noread":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/close":
        start_response("200 OK", [("Content-Length", "2"), ("Connection", "close")])
        return [b"ok"]
    if path.startswith("/status/"):
        code = path.rsplit("/", 1)[1]
        headers = [("Content-Type", "text/plain")]
        if environ["QUERY_STRING"] == "cl":
            headers.append(("Content-Length", "4"))
        start_response(f"{code} Whatever", headers)
        return [b"body"]
    if path == "/host":
        body = environ.get("HTTP_HOST", "<none>").encode("latin-1")
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    return hello_app(environ, start_response)



class Body:
    """A response iterable that records close() and may raise."""

    def __init__(self, chunks: Iterable[bytes], fail_at: int | None = None, log: list | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.log = log if log is not None else []

    def __iter__(self) -> Any:
        for i, ch in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("mid-iteration failure")
            yield ch

    def close(self) -> None:
        self.log.append("closed")


def endless_app(log: list) -> Callable[..., Any]:
    """Streams 64 KiB chunks until the client goes; close() is logged in `log`."""
    def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])

        class Endless(Body):
            def __iter__(self) -> Any:
                while True:
                    yield b"x" * 65536
        return Endless([], log=log)
    return app


def file_app(path: Any, headers: Iterable[tuple[str, str]] = (), seek: int = 0, status: str = "200 OK",
             opened: list | None = None) -> Callable[..., Any]:
    """Answers with wsgi.file_wrapper over the file at `path`, opened anew
    for each request (kept in `opened`) and positioned at `seek`."""
    def app(environ: dict, start_response: Callable[..., Any]) -> Any:
        f = open(path, "rb")
        if opened is not None:
            opened.append(f)
        f.seek(seek)
        start_response(status, [("Content-Type", "application/octet-stream"), *headers])
        return environ["wsgi.file_wrapper"](f, 8192)
    return app


@pytest.fixture
def data_file(tmp_path):
    """(path, data): 300 kB of random bytes in a file."""
    data = os.urandom(300_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data

# Logs ------------------------------------------------------------------------
@pytest.fixture
def errlog(caplog):
    """caplog, with lichen.error recorded from INFO up."""
    caplog.set_level(logging.INFO, logger="lichen.error")
    return caplog


@pytest.fixture
def logs(caplog):
    """caplog, with every lichen logger recorded from INFO up."""
    caplog.set_level(logging.INFO, logger="lichen")
    return caplog


@pytest.fixture
def strict_log(caplog):
    """Fails the test if lichen logged an error (e.g. a validator assertion)."""
    caplog.set_level(logging.INFO, logger="lichen")
    yield caplog
    errors = [r.getMessage() for r in caplog.records if r.name.startswith("lichen") and r.levelno >= logging.ERROR]
    assert not errors, errors


def error_lines(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "lichen.error")


def records(caplog, name: str = "lichen.error", level: int = logging.ERROR) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name and r.levelno >= level]
