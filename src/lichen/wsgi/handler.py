# lichen.wsgi.handler: WSGIHandler, gevent's handler_class hook.
#
# Strategy: gevent runs one WSGIHandler per connection, and a subclass
# overrides how the environ is made (get_environ) and how a request is logged
# (log_request, format_request) or an application error handled
# (handle_error). lichen keeps no object per connection (an idle keep-alive
# connection costs nothing above its socket), so a handler here lives for one
# request: the exchange makes one only when the server has a handler class
# of its own (or a WSGIServer.get_environ override), once the environ is
# built; it asks the handler for the environ the application gets, tells it
# of an application error, and has it log the request when the response is
# done. A server without one never makes a handler. The attributes carry
# gevent's names for the request and the response (command, path,
# requestline, status, code, response_length, time_start...), so a subclass
# ports by changing its base class. run_application() calls the application;
# a subclass that switches protocols (WebSocket) detach()es the connection
# there and speaks its protocol on `socket` until it returns.
from __future__ import annotations

import time
from http import HTTPStatus
from http.client import HTTPMessage
from typing import Any

from lichen.wsgi.accesslog import gevent_line

__all__ = ["WSGIHandler"]


class WSGIHandler:
    """One request, for a subclass to change what gevent's WSGIHandler lets
    it change: `get_environ()` (call super() and add keys),
    `run_application()` (around the application call; where a protocol
    switch detach()es the connection), `log_request()` and
    `format_request()` (the access line), `handle_error(t, v, tb)` (an
    exception from the application; lichen answers 500 afterwards when no
    response head went out) and `log_error(msg, *args)`.

    lichen makes the instance, one per request (not per connection: keep
    nothing in it for the next request). Attributes: `server`, `socket`,
    `client_address`, `environ`, `application`, `command`, `path`,
    `request_version`, `requestline`, `headers`, `content_length`,
    `wsgi_input`, `start_response`, `time_start`, `time_finish`; of the
    response: `result`, `status`
    (bytes, as gevent's), `code`, `response_headers`, `response_length`
    (bytes sent, head included), `headers_sent`, `close_connection`."""

    protocol_version = "HTTP/1.1"

    def __init__(self, exchange: Any, environ: dict, response: Any) -> None:
        self.exchange = exchange  # lichen's Exchange of this request
        self.response = response  # lichen's Response (start_response, what was sent)
        server = self.server = exchange.server
        self.socket = exchange.channel.sock
        self.client_address = exchange.channel.peer
        self.environ = environ
        self.application = server.application
        self.start_response = response.start_response
        self.time_start = time.time()
        self.time_finish = 0.0
        self.command = environ["REQUEST_METHOD"]
        self.path = environ["RAW_URI"]
        self.request_version = environ["SERVER_PROTOCOL"]
        self.requestline = f"{self.command} {self.path} {self.request_version}"

    #: Whether detach() was called: the connection is the handler's.
    detached = False
    #: The application's response iterable, once run_application() has it.
    result: Any = None

    # What a subclass overrides -----------------------------------------------
    def run_application(self) -> Any:
        """Call the application with `environ` and `start_response`; its
        response iterable (returned, and kept as `result`, as gevent keeps
        it) is what lichen then sends. A subclass may call this and return
        nothing (gevent's way: `result` is sent), or answer on its own
        (start_response(), then return an iterable of bytes).

        This is where a subclass takes the connection over, for a protocol
        switch such as WebSocket: call detach(), write the 101 answer and
        then the new protocol on `socket` (lichen sends nothing of its own
        after detach(), and its response filter would drop the Upgrade
        header anyway), read from `socket` after the bytes detach()
        returned; lichen closes the connection when this returns."""
        self.result = self.server.wsgi_app(self.environ, self.start_response)
        return self.result

    def detach(self) -> bytes:
        """Take the connection over (see run_application()): lichen writes
        and reads nothing more on it and closes it once run_application()
        returns (or raises: handle_error() is still told, and no 500 goes
        out). Returns the bytes the client sent after this request that
        lichen had read already. Call it after the request body, if any,
        was read from wsgi.input."""
        self.detached = True
        return self.exchange.detach()

    def get_environ(self) -> dict:
        """The environ the application gets: lichen's, built from the
        server's (`WSGIServer.get_environ()` when a subclass overrides it,
        the request's keys added on top). A subclass calls this and adds."""
        env = self.environ
        server = self.server
        if not server.get_environ_overridden:
            return env
        merged = server.get_environ()
        base = server.environ
        for key, value in env.items():
            if key not in base or base[key] is not value:  # the request's own keys
                merged[key] = value
        return merged

    def handle_error(self, t: type[BaseException], v: BaseException, tb: Any) -> None:
        """An exception from the application: by default its traceback goes
        to the error log. lichen answers 500 afterwards if no head went out."""
        self.server.app_error(self.environ, self.client_address, (t, v, tb))

    def log_error(self, msg: str, *args: Any) -> None:
        """A line to the server's error log."""
        self.server.log_error(msg, *args)

    def format_request(self) -> str:
        """The access line: the server's (gevent's, or its access_log_format)."""
        elapsed = self.time_finish - self.time_start if self.time_finish else None
        access = self.server.access_log
        if access is None:
            return gevent_line(self.environ, self.response, elapsed)
        return access.line(self.environ, self.response, elapsed)

    def log_request(self) -> None:
        """Write format_request() to the server's access log (none: nothing)."""
        access = self.server.access_log
        if access is not None:
            access.emit(self.format_request())

    # The request -----------------------------------------------------------------
    @property
    def headers(self) -> HTTPMessage:
        """The request's header fields, as gevent's (an email Message: .get(name))."""
        msg = HTTPMessage()
        for name, value in self.exchange.request.headers:
            msg[name.decode("latin-1")] = value.decode("latin-1")
        return msg

    @property
    def content_length(self) -> int:
        return self.exchange.request.content_length or 0

    @property
    def wsgi_input(self) -> Any:
        return self.environ.get("wsgi.input")

    # The response ----------------------------------------------------------------
    @property
    def code(self) -> int | None:
        """The status code sent (or the application's, before the head goes)."""
        resp = self.response
        if resp.status_code:
            return resp.status_code
        try:
            return int(resp.status[:3]) if resp.status else None
        except ValueError:
            return None

    @property
    def status(self) -> bytes | None:
        """The status line's text as bytes, b'200 OK' (gevent's type)."""
        code = self.code
        text = self.response.status
        if code is not None and not (text and text.startswith(str(code))):
            try:
                text = f"{code} {HTTPStatus(code).phrase}"  # lichen's own answer (500 after an error)
            except ValueError:
                text = str(code)
        return text.encode("latin-1") if text else None

    @property
    def response_headers(self) -> list[tuple[str, str]] | None:
        return self.response.headers

    @property
    def response_length(self) -> int:
        return self.response.head_bytes + self.response.bytes_sent

    @property
    def headers_sent(self) -> bool:
        return self.response.head_sent

    @property
    def close_connection(self) -> bool:
        return not self.response.keep_alive
