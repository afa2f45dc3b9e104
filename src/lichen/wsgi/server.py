# lichen.wsgi.server: WSGIServer, the pywsgi-compatible entry point.
#
# Strategy: a StreamServer whose protocol is the HTTP driver
# (lichen.wsgi.driver). The stream server owns the connections (accept, the
# PROXY preamble and TLS, parking, the idle sweep, dispatch to workers,
# graceful stop); this class owns what requests share: the app, settings,
# the C fast lane's head parser, the environ every request starts from (and
# the C environ builder made on it, which both lanes use), the cached Date
# header, the access and error logs, the trusted-proxy rules, and a free list
# of request parsers that the driver takes when the fast lane declines a
# request and gives back between requests. gevent.pywsgi's surface is kept
# as gevent has it: `application` settable later, `environ`/`base_env`/
# `get_environ()`, `handler_class` (a WSGIHandler subclass: one handler per
# request, made only when there is one), `log`/`error_log` and their targets.
from __future__ import annotations

import logging
import socket as _stdlib
from typing import Any, Callable

from lichen._fastenv import EnvironBuilder
from lichen._fastresponse import http_date
from lichen._fasthead import HeadParser
from lichen.http import Request, RequestParser
from lichen.proxy import ProxyHeaders
from lichen.server import StreamServer, peer_text
from lichen.websocket import Registry, WebSocketHandler
from lichen.wsgi.accesslog import AccessLog, ErrorLog, writer
from lichen.wsgi.driver import Driver
from lichen.wsgi.exchange import HttpChannel
from lichen.wsgi.environ import BASE_ENV, base_environ
from lichen.wsgi.handler import WSGIHandler
from lichen.wsgi.input import EMPTY_INPUT
from lichen.wsgi.response import FileWrapper

__all__ = ["WSGIServer"]

log = logging.getLogger("lichen.error")
MAX_FREE_PARSERS = 128


def _no_application(environ: dict, start_response: Callable[..., Any]) -> Any:
    raise RuntimeError("this WSGIServer has no application: pass one to WSGIServer(listener, application) "
                       "or set server.application")


class WSGIServer(StreamServer):
    """Serve a WSGI application over HTTP/1.1 (and TLS), as gevent.pywsgi's
    WSGIServer does.

    >>> WSGIServer(('', 5000), app).serve_forever()

    `application` may be None and set later (`server.application = app`);
    until then requests are answered 500. `log` is the access log: 'default'
    (sys.stderr, gevent's line), None (off), a Logger (records at INFO) or an
    object with write(); the line is gevent's unless an `access_log_format`
    is given (as a keyword, or in `settings=`). `error_log` takes the same
    targets and receives application tracebacks; it is wsgi.errors.
    `environ` adds keys to every request's environ. `handler_class` is a
    subclass of lichen.wsgi.WSGIHandler (gevent's hook), lichen's own
    lichen.wsgi.Driver, or gevent-websocket's `WebSocketHandler` from
    lichen.websocket (websockets are on anyway: see the `websocket`
    setting). `spawn`, `backlog`, gevent's `**ssl_args` and lichen's
    settings: see StreamServer."""

    channel_class = HttpChannel

    #: gevent's: the class whose instances handle requests. WSGIHandler
    #: itself changes nothing, so lichen makes none; a subclass is made once
    #: per request.
    handler_class: type = WSGIHandler

    #: gevent's: what every server's `environ` starts from (a subclass may
    #: change it); lichen adds wsgi.url_scheme, wsgi.errors,
    #: wsgi.file_wrapper and wsgi.input_terminated, then SERVER_NAME and
    #: SERVER_PORT once bound.
    base_env: dict[str, Any] = BASE_ENV

    def __init__(self, listener: Any, application: Callable[..., Any] | None = None, backlog: int | None = None,
                 spawn: Any = "default", log: Any = "default", error_log: Any = "default",
                 handler_class: type | None = None, environ: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        if "handle" in kwargs:
            raise TypeError("WSGIServer takes an application, not handle= (that is StreamServer's)")
        # Whether lichen's own settings were given: then lichen's access line.
        lichen_format = kwargs.get("settings") is not None or "access_log_format" in kwargs
        super().__init__(listener, backlog=backlog, spawn=spawn, **kwargs)
        st = self.settings
        self._offload: Any = None  # the thread pool of threads=N
        if st.threads:
            self._new_offload()
        self.application = application
        if handler_class is WebSocketHandler:
            handler_class = None  # (gevent-websocket's name for what every WSGIServer does here)
        if handler_class is not None:
            self.handler_class = handler_class
        hc = self.handler_class
        if not isinstance(hc, type) or not issubclass(hc, (WSGIHandler, Driver)):
            raise TypeError("handler_class must subclass lichen.wsgi.WSGIHandler (gevent's hook) or "
                            "lichen.wsgi.Driver")
        self.protocol = (hc if issubclass(hc, Driver) else Driver)(self).serve
        #: Whether a subclass overrides get_environ(): then it is asked per request.
        self.get_environ_overridden = type(self).get_environ is not WSGIServer.get_environ
        # The handler made per request, or None: most servers never make one.
        self.request_handler: type[WSGIHandler] | None = None
        if isinstance(hc, type) and issubclass(hc, WSGIHandler) and hc is not WSGIHandler:
            self.request_handler = hc
        elif self.get_environ_overridden:
            self.request_handler = WSGIHandler
        self.keepalive = st.keepalive_timeout > 0
        self.server_header_bytes = st.server_header.encode("latin-1") if st.server_header else None
        self.proxy_headers = ProxyHeaders.from_settings(st)
        # The environ builder says whether an environ holds any of these.
        self.proxy_keys = frozenset(self.proxy_headers.keys().values())
        #: gevent's `log`: an object with write(), never None.
        self.log = writer(log)
        # None when log=None: then a request does not even ask whether to log.
        self.access_log = AccessLog(log, st.access_log_format if lichen_format else None) \
            if log is not None else None
        #: gevent's `error_log`: write()/writelines()/flush(); also wsgi.errors.
        self.error_log = ErrorLog(error_log)
        self._environ_update = dict(environ or {})
        self._address_known = False
        self.set_environ()
        # The C fast lane for plain request heads: parse(data) -> (Request,
        # consumed) or None, with the parser's limits.
        self.fast_parse = HeadParser(Request, st.max_request_line, st.max_header_bytes, st.max_header_count,
                                     st.max_field_size, st.max_body).parse
        self._free_parsers: list[RequestParser] = []
        self.requests_served = 0  # for max-requests worker recycling
        self._stall: Any = None
        # date(): the Date header value of this second (C, made once a second).
        self.date: Callable[[], bytes] = http_date
        # The open websockets, their pings and deadlines (None: websockets off).
        self.websockets = Registry(self) if st.websocket else None

    # The application ---------------------------------------------------------
    @property
    def application(self) -> Callable[..., Any] | None:
        """The WSGI application; may be set (or replaced) at any time."""
        return self._application

    @application.setter
    def application(self, app: Callable[..., Any] | None) -> None:
        self._application = app
        # What a request calls (a plain attribute: the hot path reads it).
        if app is None:
            self.wsgi_app: Callable[..., Any] = _no_application
        elif self._offload is not None:
            from lichen.wsgi.offload import blocking

            self.wsgi_app = blocking(app, pool=self._offload)
        else:
            self.wsgi_app = app

    # The environ ---------------------------------------------------------------
    @property
    def environ(self) -> dict[str, Any]:
        """What every request's environ starts from (gevent's name): base_env,
        the `environ` argument, wsgi.*, SERVER_NAME/PORT once bound. Assigning
        replaces it; change it before start() (the C builder reads it then)."""
        return self._environ

    @environ.setter
    def environ(self, env: dict[str, Any]) -> None:
        # The builder copies this dict per request, and works out once what
        # it holds, so it is remade with it.
        # build_environ(peer, request, wsgi_input) -> (environ, proxied).
        self._environ = env
        self.build_environ = EnvironBuilder(env, EMPTY_INPUT, self.proxy_keys).build

    # (lichen's earlier name)
    base_environ = environ

    def set_environ(self, environ: dict[str, Any] | None = None) -> None:
        """Make `environ` again from base_env, adding `environ` (gevent's)."""
        if environ is not None:
            self._environ_update = dict(environ)
        self.environ = base_environ(None, None, "https" if self.ssl_context is not None else "http", self.error_log,
                                    FileWrapper, self._environ_update, self.base_env)
        if self._address_known:
            self.update_environ()

    def get_environ(self) -> dict[str, Any]:
        """A copy of `environ` (gevent's). A subclass that overrides this is
        asked for every request, and the request's keys are added to what it
        returns."""
        return dict(self._environ)

    def update_environ(self) -> None:
        """SERVER_NAME and SERVER_PORT from the bound address, unless given."""
        addr = self.address
        if isinstance(addr, tuple):
            host, port = addr[0], str(addr[1])
            if host in ("", "0.0.0.0", "::"):
                host = _stdlib.gethostname()
        else:
            host, port = "localhost", ""
        self._address_known = True
        env = self._environ
        env.setdefault("SERVER_NAME", host)
        env.setdefault("SERVER_PORT", port)
        self.environ = env  # (remade: the builder sees what was changed in place too)

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

    def access(self, env: dict, resp: Any, elapsed: float) -> None:
        """Write one access log line (a failure is logged, never raised)."""
        try:
            self.access_log.log(env, resp, elapsed)  # type: ignore[union-attr]
        except Exception:
            log.exception("access log failed")

    def log_error(self, msg: str, *args: Any, level: int = logging.ERROR) -> None:
        self.error_log.log(msg, *args, level=level)

    def app_error(self, env: dict, peer: Any, exc_info: Any = None) -> None:
        """The traceback of an exception from the application, to the error log."""
        self.error_log.exception("error in the WSGI application for %s %s (client %s)", env.get("REQUEST_METHOD"),
                                 env.get("RAW_URI"), peer_text(peer), exc_info=exc_info)

    # Lifecycle ----------------------------------------------------------------
    def init_socket(self) -> None:
        super().init_socket()
        if not self._address_known:
            self.update_environ()

    def start(self) -> None:
        if self.started:
            return
        if self.settings.threads and self._offload is None:  # (started again after stop)
            self._new_offload()
            self.application = self._application
        super().start()
        self.environ = self._environ  # (changes made in place since: the builder reads them now)
        if self.settings.stall_threshold:
            from lichen.stall import StallDetector

            self._stall = StallDetector(self._hub, self.settings.stall_threshold).start()

    def _new_offload(self) -> None:
        from lichen.threadpool import ThreadPool

        self._offload = ThreadPool(self.settings.threads, name="lichen-app")

    def stop(self, timeout: float | None = None) -> None:
        if self._stopped:
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
        if self._offload is not None:
            self._offload.close()  # the pool made for threads=N
            self._offload = None
            self.application = self._application
