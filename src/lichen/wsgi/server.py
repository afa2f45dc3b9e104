# lichen.wsgi.server: WSGIServer, the pywsgi-compatible entry point.
#
# Strategy: a StreamServer whose protocol is the HTTP driver
# (lichen.wsgi.driver). The stream server owns the connections (accept, the
# PROXY preamble and TLS, parking, the idle sweep, dispatch to workers,
# graceful stop); this class owns what requests share: the app, settings,
# the C fast lane's head parser, the prepared base environ (and the C
# environ builder made on it, which both lanes use), the cached Date header,
# the access and error logs, the trusted-proxy rules, and a free list of
# request parsers that the driver takes when the fast lane declines a
# request and gives back between requests.
from __future__ import annotations

import logging
import socket as _stdlib
import time
from email.utils import formatdate
from typing import Any, Callable

from lichen._fastenv import EnvironBuilder
from lichen._fasthead import HeadParser
from lichen.http import Request, RequestParser
from lichen.proxy import ProxyHeaders
from lichen.server import StreamServer
from lichen.websocket import Registry, WebSocketHandler
from lichen.wsgi.accesslog import AccessLog
from lichen.wsgi.driver import Driver
from lichen.wsgi.environ import base_environ
from lichen.wsgi.input import EMPTY_INPUT
from lichen.wsgi.response import FileWrapper

__all__ = ["WSGIServer"]

error_log = logging.getLogger("lichen.error")
MAX_FREE_PARSERS = 128


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
    `environ` adds keys to every request's environ. `handler_class` is a
    subclass of lichen.wsgi.driver.Driver, or gevent-websocket's
    `WebSocketHandler` from lichen.websocket (websockets are on anyway:
    see the `websocket` setting). Settings (timeouts, limits, formats) are
    keyword arguments; see `lichen.settings.Settings`."""

    def __init__(self, listener: Any, application: Callable[..., Any], backlog: int | None = None,
                 spawn: Any = "default", log: Any = "default", error_log: Any = "default",
                 handler_class: type[Driver] | None = None, environ: dict[str, Any] | None = None,
                 ssl_context: Any = None, certfile: str | None = None, keyfile: str | None = None,
                 **settings: Any) -> None:
        super().__init__(listener, backlog=backlog, spawn=spawn, ssl_context=ssl_context,
                         certfile=certfile, keyfile=keyfile, **settings)
        if self.settings.threads:
            from lichen.wsgi.offload import blocking

            application = blocking(application, threads=self.settings.threads)
        self.application = application
        if handler_class is WebSocketHandler:
            handler_class = None  # (gevent-websocket's name for what every WSGIServer does here)
        driver_class = handler_class or Driver
        if not (isinstance(driver_class, type) and issubclass(driver_class, Driver)):
            raise TypeError("handler_class must subclass lichen.wsgi.driver.Driver")
        self.protocol = driver_class(self).serve
        st = self.settings
        self.keepalive = st.keepalive_timeout > 0
        self.server_header_bytes = st.server_header.encode("latin-1") if st.server_header else None
        self.proxy_headers = ProxyHeaders.from_settings(st)
        # The environ builder says whether an environ holds any of these.
        self.proxy_keys = frozenset(self.proxy_headers.keys().values())
        # None when log=None: then a request does not even ask whether to log.
        self.access_log = AccessLog(log, st.access_log_format) if log is not None else None
        self._errors = _ErrorLog(error_log)
        self._extra_environ = dict(environ or {})
        # The C fast lane for plain request heads: parse(data) -> (Request,
        # consumed) or None, with the parser's limits.
        self.fast_parse = HeadParser(Request, st.max_request_line, st.max_header_bytes, st.max_header_count,
                                     st.max_field_size, st.max_body).parse
        # The setter also makes build_environ, the C environ builder of both
        # lanes, on this dict; init_socket sets the real one.
        self.base_environ = {}
        self._free_parsers: list[RequestParser] = []
        self.requests_served = 0  # for max-requests worker recycling
        self._stall: Any = None
        self._date_next = 0.0
        self._date = b""
        # The open websockets, their pings and deadlines (None: websockets off).
        self.websockets = Registry(self) if st.websocket else None

    @property
    def base_environ(self) -> dict[str, Any]:
        """What every request's environ starts from (wsgi.*, SERVER_*)."""
        return self._base_environ

    @base_environ.setter
    def base_environ(self, env: dict[str, Any]) -> None:
        # The builder copies the same dict, so it is remade with it.
        # build_environ(peer, request, wsgi_input) -> (environ, proxied).
        self._base_environ = env
        self.build_environ = EnvironBuilder(env, EMPTY_INPUT, self.proxy_keys).build

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
        """Take back a parser between requests (parser.reusable)."""
        if len(self._free_parsers) < MAX_FREE_PARSERS:
            self._free_parsers.append(parser)

    def date(self) -> bytes:
        """The Date header value, formatted once per second."""
        now = time.time()
        if now >= self._date_next:
            second = int(now)
            self._date_next = second + 1
            self._date = formatdate(second, usegmt=True).encode("ascii")
        return self._date

    def access(self, env: dict, resp: Any, elapsed: float) -> None:
        """Write one access log line (a failure is logged, never raised)."""
        try:
            self.access_log.log(env, resp, elapsed)  # type: ignore[union-attr]
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
        if self.settings.stall_threshold:
            from lichen.stall import StallDetector

            self._stall = StallDetector(self._hub, self.settings.stall_threshold).start()

    def stop(self, timeout: float | None = None) -> None:
        if not self.started and self.closed:
            return
        if self._stall is not None:
            self._stall.stop()
            self._stall = None
        if self.websockets is not None:
            self.stopping = True  # (no new websocket from here on)
            self.websockets.going_away()
        super().stop(timeout)
        if self.websockets is not None:
            self.websockets.close()
        if self.settings.threads:
            self.application.pool.close()  # the pool made for threads=N
