# lichen.wsgi.server: WSGIServer, the pywsgi-compatible entry point.
#
# Strategy: a StreamServer whose connections are lichen.wsgi.Connection
# objects rather than greenlets. The server owns what connections share: the
# app, settings, the prepared base environ (and the C fast lane built on it),
# the cached Date header, the idle map swept by one timer, the queue of
# connections with bytes to read (served in turn by one worker greenlet per
# loop iteration), and free lists of worker greenlets and of request parsers
# that a connection takes when the fast lane declines a request and gives
# back when it goes idle.
from __future__ import annotations

import logging
import socket as _stdlib
import time
from collections import deque
from email.utils import formatdate
from typing import Any, Callable

from greenlet import GreenletExit, getcurrent, greenlet

from lichen import socket as lsocket
from lichen._fastpath import FastParser
from lichen.http import Request, RequestParser
from lichen.hub import get_hub, throw_if_alive
from lichen.loop import Timer
from lichen.proxy import AllowList, ProxyHeaders
from lichen.server import StreamServer
from lichen.sync import Event
from lichen.wsgi.accesslog import AccessLog
from lichen.wsgi.connection import RECV_SIZE, Connection
from lichen.wsgi.environ import base_environ
from lichen.wsgi.input import EMPTY_INPUT
from lichen.wsgi.response import FileWrapper

__all__ = ["WSGIServer"]

error_log = logging.getLogger("lichen.error")
MAX_FREE_WORKERS = 128
FRESH_GRACE = 1.0  # seconds stop() waits for the first request of a new connection


class _ErrorLog:
    """`error_log=`: a logger, a file-like object, or None (silence)."""

    def __init__(self, target: Any) -> None:
        if target == "default":
            target = error_log
        self.logger = target if isinstance(target, logging.Logger) else None
        self.stream = None if self.logger is not None else target

    def log(self, msg: str, *args: Any, level: int = logging.ERROR) -> None:
        if self.logger is not None:
            self.logger.log(level, msg, *args)
        elif self.stream is not None:
            self.stream.write((msg % args if args else msg) + "\n")

    def write(self, data: str) -> None:  # wsgi.errors
        if self.logger is not None:
            self.logger.error(data.rstrip("\n"))
        elif self.stream is not None:
            self.stream.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.stream is not None and hasattr(self.stream, "flush"):
            self.stream.flush()


class WSGIServer(StreamServer):
    """Serve a WSGI application over HTTP/1.1 (and TLS).

    >>> WSGIServer(('', 5000), app).serve_forever()

    `log` is the access log ('default' = logger `lichen.access`, None = off,
    a Logger, or a file-like object); `error_log` likewise (`lichen.error`).
    `environ` adds keys to every request's environ. Settings (timeouts,
    limits, formats) are keyword arguments; see `lichen.settings.Settings`."""

    def __init__(self, listener: Any, application: Callable[..., Any], backlog: int | None = None,
                 spawn: Any = "default", log: Any = "default", error_log: Any = "default",
                 handler_class: type[Connection] | None = None, environ: dict[str, Any] | None = None,
                 ssl_context: Any = None, certfile: str | None = None, keyfile: str | None = None,
                 **settings: Any) -> None:
        super().__init__(listener, backlog=backlog, spawn=spawn, ssl_context=ssl_context,
                         certfile=certfile, keyfile=keyfile, **settings)
        if self.settings.threads:
            from lichen.offload import blocking

            application = blocking(application, threads=self.settings.threads)
        self.application = application
        self.connection_class = handler_class or Connection
        if not issubclass(self.connection_class, Connection):
            raise TypeError("handler_class must subclass lichen.wsgi.Connection")
        st = self.settings
        self.keepalive = st.keepalive_timeout > 0
        self.server_header_bytes = st.server_header.encode("latin-1") if st.server_header else None
        self.proxy_headers = ProxyHeaders.from_settings(st)
        self.proxy_keys = frozenset(self.proxy_headers.keys().values())  # a cheap "any present?" test
        self.proxy_allow = AllowList(st.proxy_allow_ips) if st.proxy_protocol else None
        self._access = AccessLog(log, st.access_log_format) if log is not None else None
        self._errors = _ErrorLog(error_log)
        self._extra_environ = dict(environ or {})
        # The setter also builds fast_parse, the C fast lane for plain request
        # heads, on this dict; init_socket sets the real one.
        self.base_environ = {}
        self.idle: dict[Connection, float] = {}
        self._free: list[greenlet] = []
        self._ready: deque[Connection] = deque()  # connections waiting for a worker
        self._drain_pending = False
        self._free_parsers: list[RequestParser] = []
        # Plain-socket reads land here and only the bytes read are copied out (no 64 KiB
        # allocation per read, which fragments the heap). Used by this server's hub thread only.
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        self.requests_served = 0  # for max-requests worker recycling
        self._hub = get_hub()
        self._reaper: Timer | None = None
        self._stall: Any = None
        self._date_next = 0.0
        self._date = b""
        self._drained = Event()

    @property
    def base_environ(self) -> dict[str, Any]:
        """What every request's environ starts from (wsgi.*, SERVER_*)."""
        return self._base_environ

    @base_environ.setter
    def base_environ(self, env: dict[str, Any]) -> None:
        # The fast lane copies the same dict, so it is rebuilt with it.
        self._base_environ = env
        st = self.settings
        self.fast_parse = FastParser(env, EMPTY_INPUT, Request, st.max_request_line, st.max_header_bytes,
                                     st.max_header_count, st.max_field_size, st.max_body, self.proxy_keys).parse

    # Shared per-request helpers -------------------------------------------
    def take_parser(self) -> RequestParser:
        """A parser for a connection that has bytes to read: a parked one
        from the free list, else a new one."""
        if self._free_parsers:
            return self._free_parsers.pop()
        st = self.settings
        return RequestParser(max_request_line=st.max_request_line, max_header_bytes=st.max_header_bytes,
                             max_header_count=st.max_header_count, max_field_size=st.max_field_size,
                             max_body=st.max_body)

    def give_parser(self, parser: RequestParser) -> None:
        """Take back the parser of a connection going idle (parser.reusable)."""
        if len(self._free_parsers) < MAX_FREE_WORKERS:
            self._free_parsers.append(parser)

    def now(self) -> float:
        return time.monotonic()

    def date(self) -> bytes:
        """The Date header value, formatted once per second."""
        now = time.time()
        if now >= self._date_next:
            second = int(now)
            self._date_next = second + 1
            self._date = formatdate(second, usegmt=True).encode("ascii")
        return self._date

    @property
    def access_enabled(self) -> bool:
        a = self._access
        return a is not None and a.enabled

    def access(self, env: dict, resp: Any, elapsed: float) -> None:
        try:
            self._access.log(env, resp, elapsed)  # type: ignore[union-attr]
        except Exception:
            error_log.exception("access log failed")

    def log_error(self, msg: str, *args: Any, level: int = logging.ERROR) -> None:
        self._errors.log(msg, *args, level=level)

    # Lifecycle ----------------------------------------------------------------
    def init_socket(self) -> None:
        super().init_socket()
        if self.base_environ:
            return
        addr = self.sockets[0].getsockname()
        if isinstance(addr, tuple):
            host, port = addr[0], str(addr[1])
            if host in ("", "0.0.0.0", "::"):
                host = _stdlib.gethostname()
        else:
            host, port = "localhost", ""
        self.base_environ = base_environ(host, port, "https" if self.ssl_context else "http",
                                         self._errors, FileWrapper, self._extra_environ)

    def start(self) -> None:
        if self.started:
            return
        super().start()
        period = min(1.0, max(self.settings.keepalive_timeout / 4, 0.05))
        self._reaper = Timer(self._hub.loop)
        self._reaper.unref()  # the sweep alone must not keep the loop alive
        self._reaper.callback = self._sweep_idle
        self._reaper.start(period, period)
        if self.settings.stall_threshold:
            from lichen.stall import StallDetector

            self._stall = StallDetector(self._hub, self.settings.stall_threshold).start()

    def _sweep_idle(self, _flags: int) -> None:
        if not self.idle:
            return
        limit = self.now() - self.settings.keepalive_timeout
        expired = []
        for conn, since in self.idle.items():  # oldest first (insertion order)
            if since > limit:
                break
            if not conn.busy:  # (woken and queued: its bytes decide)
                expired.append(conn)
        for conn in expired:
            conn.close()

    def close_idle_and_drain(self, timeout: float) -> None:
        if self._stall is not None:
            self._stall.stop()
            self._stall = None
        if self._reaper is not None:
            self._reaper.close()
            self._reaper = None
        deadline = self.now() + timeout
        # A connection accepted just before stop() usually sends its request
        # within microseconds; wait briefly for it rather than cut it.
        fresh_until = self.now() + min(timeout, FRESH_GRACE)
        self._close_idle(keep_fresh=True)
        while self.connections:
            left = deadline - self.now()
            if left <= 0:
                break
            self._drained.clear()
            self._drained.wait(min(left, 0.05))
            self._close_idle(keep_fresh=self.now() < fresh_until)
        cur = getcurrent()
        for conn in list(self.connections):
            worker = conn.worker
            conn.close()
            if worker is not None and worker is not cur and not worker.dead:
                self._hub.run_callback(throw_if_alive, worker, GreenletExit())
        free, self._free = self._free, []
        for g in free:
            self._hub.run_callback(g.switch, None)
        if self.settings.threads:
            self.application.pool.close()  # the pool made for threads=N

    def _close_idle(self, keep_fresh: bool) -> None:
        """Close idle keep-alive connections, except those with a request
        on its way: one whose next request already sits in the socket, and
        (while `keep_fresh`) one that has not sent its first request yet.
        Those are served (with Connection: close) like requests in flight."""
        for conn in list(self.idle):
            if (keep_fresh and conn.requests == 0) or conn.has_pending_input():
                continue
            conn.close()

    # Connections --------------------------------------------------------------
    def handle_connection(self, sock: _stdlib.socket, address: Any) -> None:
        # TLS is set up by the connection's preamble, after a PROXY header.
        conn = self.connection_class(self, lsocket.socket(sock=sock), address, self.ssl_context is not None)
        self.connections.add(conn)
        # Data usually follows the connect at once: read first, in a worker.
        self.dispatch(conn)

    def connection_closed(self, conn: Connection) -> None:
        self._release_slot(conn)
        if not self.connections:
            self._drained.set()
        elif self.stopping:
            self._drained.set()

    def dispatch(self, conn: Connection) -> None:
        """Queue `conn`, which has bytes to read, for a worker greenlet.

        Connections that become readable in one loop iteration are served by
        one worker in turn (one switch there and back for the lot, not one
        per request); when that worker blocks in an app, _drain hands the
        rest to another worker."""
        self._ready.append(conn)
        if not self._drain_pending:
            self._drain_pending = True
            self._hub.run_callback(self._drain)

    def _drain(self) -> None:
        # Runs in the hub: a switch into a worker comes back here when the
        # worker parks (queue empty) or blocks (then the next one goes on).
        self._drain_pending = False
        ready = self._ready
        try:
            while ready:
                free = self._free
                if free:
                    g = free.pop()
                else:
                    g = greenlet(self._worker, parent=self._hub.glet)
                g.switch()
        finally:
            # A worker that died of KeyboardInterrupt/SystemExit raises it
            # here, on its way to the main greenlet: the rest of the queue
            # must still be served (stop() waits for those connections).
            if ready and not self._drain_pending:
                self._drain_pending = True
                self._hub.run_callback(self._drain)

    def _worker(self) -> None:
        ready = self._ready
        me = getcurrent()
        hub_switch = self._hub.glet.switch
        while True:
            while ready:
                conn = ready.popleft()
                if conn.closed:
                    continue
                conn.worker = me
                try:
                    conn.serve()
                except GreenletExit:
                    conn.close()
                    return
                except (KeyboardInterrupt, SystemExit):
                    conn.close()
                    raise
                except BaseException:
                    error_log.exception("connection handler failed for %s", conn.addr)
                    conn.close()
                if conn.worker is me:
                    conn.worker = None
                conn = None  # a parked worker must not keep its last connection alive
            free = self._free  # (stop() replaces the list)
            if len(free) >= MAX_FREE_WORKERS or self.closed or self.stopping:
                return
            free.append(me)
            hub_switch()




