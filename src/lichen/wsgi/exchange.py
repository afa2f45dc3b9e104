# lichen.wsgi.exchange: one request and its response.
#
# Strategy: the driver makes an Exchange when it has a request head and drops
# it when the response is done, so nothing of one request can leak into the
# next. The common request (the fast lane's, without a body, on a server
# without a handler class) takes serve_plain instead: the same steps in one
# frame, with no Exchange (it has nothing to keep between them), since it
# is most requests and a long-poll parks what its frames hold. Both write
# through run_app. The exchange builds the environ (the one place it is
# made, for a request from either lane: the server's C builder), gives the
# app a wsgi.input over the body (read from the parser's body events, or by
# counting a Content-Length body straight from the socket), sends 100
# Continue only when the app first reads, runs the app, writes its response
# (one send for a whole list body, os.sendfile for a file), drains what the
# app left unread, and says whether the connection may serve another request.
# Every write goes through the channel's send_all (HttpChannel, the server's
# channel class), with the write timeout; a client that went away is
# ClientGone, never an application error. A server
# with a handler class (gevent's hook, lichen.wsgi.handler) gets one handler
# per request, which gives the environ, hears of application errors and logs
# the request; without one, nothing of it costs a request more than a test.
# A websocket handshake (only the parser lane sees one: the fast lane
# declines Upgrade) is judged by lichen.websocket; a valid one puts a
# WebSocket in the environ, and once the app has used it the connection is
# the websocket's: no HTTP response is written, and it closes when the
# websocket is done.
from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any

from lichen.http import (CONTINUE_RESPONSE, LocalProtocolError, RemoteProtocolError, Request,
                         build_simple_response)
from lichen.proxy import ProxyHeaderError, apply_proxy_headers
from lichen.server import RECV_SIZE, Channel, peer_text
from lichen.websocket import Rejection, WebSocketError, check_request
from lichen.wsgi.input import EMPTY_INPUT, Input
from lichen.wsgi.response import FileWrapper, Response, close_body

__all__ = ["Exchange", "ClientGone", "HttpChannel", "LengthBody", "serve_plain", "run_app", "reply_error", "reject",
           "recv_body"]

log = logging.getLogger("lichen.error")
_MSG_MORE = getattr(socket, "MSG_MORE", 0)
# What a request's head keeps of itself once the environ holds it:
# (headers, target, path, query, host). A request waiting in the app (a
# long-poll, a stream) then holds only what its response reads (method,
# version, keep-alive) and no second copy of a long URL or of its fields.
# (The list is shared by every such request, and never appended to.)
_HEAD_LET_GO: tuple = ([], b"", b"", b"", None)


class ClientGone(ConnectionError):
    """The client closed the connection, reset it, or stopped reading or
    sending for longer than a timeout. Not an application error."""


class HttpChannel(Channel):
    """A connection of a WSGIServer: a Channel with the send that every
    response byte takes."""

    __slots__ = ()

    def send_all(self, data: bytes, flags: int = 0) -> None:
        """Send everything or raise ClientGone (reset, closed, write
        timeout: the client took nothing for the server's write_timeout).
        (A bound method of the channel is a response's send: cheaper per
        request than any object made for it.)"""
        try:
            self.sock.send_all_by(data, self.server.settings.write_timeout, flags)
        except TimeoutError as e:
            raise ClientGone("client stopped reading (write timeout)") from e
        except OSError as e:
            raise ClientGone(f"send failed: {e}") from e

    def sendfile_all(self, fd: int, offset: int, count: int) -> int:
        """os.sendfile up to `count` bytes of the file `fd` from `offset`
        (fewer when the file is shorter); the bytes sent, or ClientGone as
        for send_all."""
        try:
            return self.sock.sendfile_by(fd, offset, count, self.server.settings.write_timeout)
        except TimeoutError as e:
            raise ClientGone("client stopped reading (write timeout)") from e
        except OSError as e:
            raise ClientGone(f"sendfile failed: {e}") from e


def reply_error(server: Any, channel: Any, status: int, message: str, head_sent: bool = False,
                fields: bytes = b"") -> int:
    """Answer with a short error response (unless a head went out already),
    with more header `fields` if given, and close, lingering: the client may
    still be sending. Returns the bytes sent."""
    data = b""
    if not head_sent:
        data = build_simple_response(status, message, date=server.date(), server=server.server_header_bytes,
                                     fields=fields)
        try:
            channel.send_all(data)
        except ClientGone:
            channel.close()
            return 0
    channel.linger_close()
    return len(data)


def reject(server: Any, channel: Any, err: RemoteProtocolError, head_sent: bool = False) -> None:
    """The client broke the protocol: a log line, err's status, close."""
    server.log_error("bad request from %s: %s (%d)", peer_text(channel.peer), err, err.status,
                     level=logging.INFO)
    reply_error(server, channel, err.status, str(err), head_sent)


def proxy_applied(server: Any, channel: Any, env: dict) -> bool:
    """Apply the trusted proxy's X-Forwarded-* headers to `env`; False (the
    client answered 400 and the connection closed) when they are malformed."""
    try:
        apply_proxy_headers(env, server.proxy_headers)
    except ProxyHeaderError as e:
        reject(server, channel, RemoteProtocolError(f"proxy headers: {e}", 400))
        return False
    return True


def serve_plain(server: Any, channel: Any, request: Request) -> bool:
    """Serve a request the fast lane took that has no body, and say whether
    the connection may serve another one: what Exchange.serve does, for the
    common case, without an Exchange (a request waiting in the app holds one
    object less). A server with a handler class, or a request that expects
    100 Continue, goes to an Exchange."""
    if server.request_handler is not None or request.expect_continue:
        return Exchange(server, channel, request).serve()
    env, proxied = server.build_environ(channel.peer, request, None)
    if proxied and not proxy_applied(server, channel, env):
        return False
    resp = Response(channel.send_all, request,
                    request.keep_alive and server.keepalive and not server.stopping, server.date(),
                    server.server_header_bytes, server, None if channel.encrypted else channel.sock.raw)
    request.headers, request.target, request.path, request.query, request.host = _HEAD_LET_GO
    access = server.access_log
    if access is None or not access.enabled:
        return run_app(server, channel, env, resp) and resp.keep_alive and not resp.must_close
    started = time.time()
    ok = run_app(server, channel, env, resp)
    server.access(env, resp, time.time() - started)
    return ok and resp.keep_alive and not resp.must_close


class Exchange:
    """One request on a channel, from its head to the end of its response."""

    __slots__ = ("server", "channel", "request", "parser", "input", "response", "continue_sent",
                 "undrainable", "body_unread")

    def __init__(self, server: Any, channel: Any, request: Request, parser: Any = None) -> None:
        self.server = server
        self.channel = channel
        self.request = request
        self.parser = parser      # the source of body events (None: fast lane)
        self.input: Input = EMPTY_INPUT
        self.response: Response | None = None
        self.continue_sent = False
        self.undrainable: int | None = None  # a declared length over max_discard
        # After serve(): whether some of the request body is still in flight
        # (the client may be sending: close by lingering).
        self.body_unread = False

    def serve(self, inp: Input | None = None) -> bool:
        """Build the environ, run the app and write its response; returns
        whether the connection may serve another request. From the fast
        lane, `inp` is the body's wsgi.input (else the parser's body events
        feed one)."""
        srv = self.server
        req = self.request
        has_body = bool(req.chunked or req.content_length)
        if has_body:
            if inp is None:
                inp = Input(self._next_body_chunk, False, self._send_continue if req.expect_continue else None)
            length = req.content_length
            if length and length > srv.settings.max_discard:
                self.undrainable = length
            self.input = inp
        # (No body: inp is None, and the builder gives wsgi.input EMPTY_INPUT.)
        env, proxied = srv.build_environ(self.channel.peer, req, inp)
        if proxied and not proxy_applied(srv, self.channel, env):
            return False
        keep = req.keep_alive and srv.keepalive and not srv.stopping
        ws = None
        if self.parser is not None and srv.websockets is not None and "HTTP_UPGRADE" in env:
            ws = self._websocket(env)
            if ws is False:
                return False  # refused: answered and closed
            keep = keep and ws is None
        channel = self.channel
        resp = self.response = Response(channel.send_all, req, keep, srv.date(), srv.server_header_bytes, srv,
                                        None if channel.encrypted else channel.sock.raw)
        if has_body or req.expect_continue:
            resp.will_close = self._will_close  # (that the server is stopping, the response asks itself)
        handler = srv.request_handler
        if handler is not None:
            handler = handler(self, env, resp)
            access = None  # (the handler's log_request() logs)
        else:
            # The head lives on in the environ: a request the app keeps
            # waiting (long-poll, a stream, a websocket) need not hold it
            # twice. (A handler reads it: gevent's `headers`.)
            req.headers, req.target, req.path, req.query, req.host = _HEAD_LET_GO
            access = srv.access_log
            if access is not None and not access.enabled:
                access = None
        started = time.time() if access is not None else 0.0
        try:
            ok = run_app(srv, channel, env, resp, handler)
            if has_body:
                if ok:
                    ok = self._finish_body()
                self.body_unread = not self.input.finished
            if ws is not None and ws.finish(not ok):
                resp.bytes_sent = ws.bytes_sent  # (the frames after the 101)
        finally:
            # The response and the input call back into this exchange: left
            # in place, each request would leave a cycle for the collector.
            self.response = None
            self.input = EMPTY_INPUT
            if ws is not None:
                srv.websockets.forget(ws)
        if access is not None:
            srv.access(env, resp, time.time() - started)
        elif handler is not None:
            handler.time_finish = time.time()
            try:
                handler.log_request()
            except Exception:
                log.exception("log_request() of %s failed", type(handler).__name__)
        return ok and resp.keep_alive and not resp.must_close

    def _websocket(self, env: dict) -> Any:
        """Judge a request that asks to upgrade: None when it is no
        websocket handshake (a plain request then); False when it was
        refused (answered with its status, closed); else the WebSocket now
        in `env`, with the bytes that came after the handshake."""
        srv = self.server
        hs = check_request(self.request)
        if hs is None:
            return None
        if srv.stopping:
            hs = Rejection(503, "the server is shutting down")
        if isinstance(hs, Rejection):
            srv.log_error("websocket handshake from %s refused: %s (%d)", peer_text(self.channel.peer), hs.message,
                          hs.status, level=logging.INFO)
            reply_error(srv, self.channel, hs.status, hs.message, fields=hs.fields)
            return False
        parser = self.parser
        rest = parser.detach()  # (the connection never goes back to HTTP)
        srv.give_parser(parser)
        self.parser = None
        return srv.websockets.open_websocket(self.channel, hs, env, rest, self._switched)

    def _switched(self, head_bytes: int) -> None:
        resp = self.response
        if resp is None:
            raise WebSocketError("the request is over: its websocket can no longer be opened")
        resp.switched(head_bytes)

    # Writing ---------------------------------------------------------------
    def _send_continue(self) -> None:
        resp = self.response
        if resp is not None and not resp.head_sent and not self.continue_sent:
            self.continue_sent = True
            self.channel.send_all(CONTINUE_RESPONSE)

    def _will_close(self) -> bool:
        """Asked when the head of a response to a request with a body (or
        Expect) is built: close after it? (The client still waits for a 100
        Continue before sending a body that will then never be read; or more
        of the body is still unread than max_discard lets us drain.) Saying
        so in the head beats a close the client did not expect. (Whether the
        server is stopping, the response asks its owner itself.)"""
        if self.request.expect_continue and not self.continue_sent:
            return True
        length = self.undrainable
        return length is not None and length - self.input.bytes_read > self.server.settings.max_discard

    def detach(self) -> bytes:
        """The handler takes the connection over: the bytes the client sent
        after this request that lichen read already. (Those are the
        parser's. An Upgrade request always goes to the parser; behind a
        plain head that the fast lane took, bytes pipelined in the same read
        are not handed over.)"""
        parser = self.parser
        return parser.detach() if parser is not None else b""

    # Reading the body --------------------------------------------------------
    def _next_body_chunk(self) -> bytes:
        parser = self.parser
        timeout = self.server.settings.body_timeout
        while True:
            ev = parser.next_event()
            if type(ev) is bytes:
                return ev
            if ev is not None:  # EndOfMessage (a next request's head cannot come before it)
                return b""
            data = recv_body(self.server, self.channel, timeout)
            try:
                parser.feed(data)
            except RemoteProtocolError:
                pass  # body bytes queued before the error come first; next_event() raises it

    def _finish_body(self) -> bool:
        """Drain what the app left unread so the next request parses; False
        when the connection must close instead."""
        inp = self.input
        if inp.finished:
            return True
        if self.request.expect_continue and not self.continue_sent:
            return False  # the client is still waiting for 100; don't invite the body
        cap = self.server.settings.max_discard
        drained = 0
        try:
            while True:
                chunk = inp.read1(65536)
                if not chunk:
                    return True
                drained += len(chunk)
                if drained > cap:
                    return False
        except (ClientGone, RemoteProtocolError, OSError):
            return False


def run_app(srv: Any, channel: Any, env: dict, resp: Response, handler: Any = None) -> bool:
    """Run the app on `env` with `resp` as its start_response (through the
    `handler` of a handler class, if any) and write its response; returns
    whether it all went out. Every failure ends here as the right answer
    and a log line: a client gone, a protocol error, an app that raised."""
    result = None
    try:
        if handler is None:
            result = srv.wsgi_app(env, resp)  # (the response is the start_response callable)
        else:
            env = handler.environ = handler.get_environ()
            result = handler.run_application()
            if result is None:  # (an override in gevent's way: the result is kept, not returned)
                result = handler.result
            if handler.detached:  # the connection is the handler's: nothing more goes out on it
                channel.close()
                return False
        if type(result) is list and not resp.head_sent and resp.status is not None:
            body = result[0] if len(result) == 1 else b"".join(result)
            if not resp.whole(body):
                resp.send_all_at_once(body)
        elif (isinstance(result, FileWrapper) and not resp.head_sent and not channel.encrypted
              and result.fileno() is not None):
            send_file(channel, resp, result)
        else:
            for data in result:
                if data:
                    resp.write(data)
            resp.finish()
        return True
    except (ClientGone, WebSocketError) as e:
        log.debug("client %s went away: %s", peer_text(channel.peer), e)
        return False
    except RemoteProtocolError as e:
        # The app read a body that broke the protocol (e.g. over max_body).
        if not resp.head_sent:
            resp.status_code = e.status
        reject(srv, channel, e, resp.head_sent)
        return False
    except LocalProtocolError as e:
        srv.log_error("invalid response from the application for %s %s: %s", env.get("REQUEST_METHOD"),
                      env.get("RAW_URI"), e)
        app_failed(srv, channel, resp)
        return False
    except Exception:
        if handler is None:
            srv.app_error(env, channel.peer)
        else:
            try:
                handler.handle_error(*sys.exc_info())
            except Exception:
                log.exception("handle_error() of %s failed", type(handler).__name__)
            if handler.detached:
                channel.close()
                return False
        app_failed(srv, channel, resp)
        return False
    finally:
        if type(result) is not list and not close_body(result, "the application's"):
            resp.keep_alive = False


def app_failed(srv: Any, channel: Any, resp: Response) -> None:
    """An app failed before or after its head went out: a 500 if it can
    still be said."""
    if not resp.head_sent:
        resp.status_code = 500
        resp.head_bytes = reply_error(srv, channel, 500, "Internal Server Error")
    # After the head went out nothing can be repaired: the driver closes,
    # which tells the client the response is incomplete.


def send_file(channel: Any, resp: Response, wrapper: FileWrapper) -> None:
    """A regular file as the body: the head, then os.sendfile from the
    file's position, so the kernel copies and Python never reads it."""
    fd = wrapper.fileno()
    assert fd is not None
    try:
        pos = wrapper.filelike.tell()
    except (AttributeError, OSError):
        pos = 0
    size = max(os.fstat(fd).st_size - pos, 0)
    head = resp.head(size)  # the app's own Content-Length wins in build_head
    framer = resp.framer
    try:
        limit = framer.remaining
    except LocalProtocolError:  # a framing that must see the bytes
        channel.send_all(head)
        for data in wrapper:
            resp.write(data)
        resp.finish()
        return
    length = size if limit is None else min(limit, size)
    if not length:
        channel.send_all(head)
        resp.finish()
        return
    # MSG_MORE: head and file data share segments despite TCP_NODELAY.
    channel.send_all(head, _MSG_MORE)
    sent = channel.sendfile_all(fd, pos, length)
    framer.advance(sent)
    resp.bytes_sent += sent
    resp.finish()  # a file that shrank leaves the framer short: must_close


def recv_body(server: Any, channel: Any, timeout: float, size: int = RECV_SIZE) -> bytes:
    """Up to `size` more bytes of a request body (the client may stay
    silent for `timeout` seconds), or ClientGone."""
    buf = server.recv_buffer
    try:
        data = bytes(buf[:channel.sock.recv_into_by(buf, time.monotonic() + timeout, size)])
    except TimeoutError as e:
        raise ClientGone(f"request body stalled for {timeout:.1f} s") from e
    except OSError as e:  # closed under us (stop() at its deadline)
        raise ClientGone(f"connection closed while reading the body: {e}") from e
    if not data:
        raise ClientGone("client closed the connection before the request body was complete")
    return data


class LengthBody:
    """The rest of a Content-Length body after a fast-lane head: reads of
    never more than what is left, so the socket keeps any pipelined next
    request. (Bytes are only counted: there is no framing to parse in a
    Content-Length body.)"""

    __slots__ = ("server", "channel", "left")

    def __init__(self, server: Any, channel: Any, left: int) -> None:
        self.server = server
        self.channel = channel
        self.left = left  # still in the socket (or on its way)

    def next_chunk(self) -> bytes:
        left = self.left
        if not left:
            return b""
        data = recv_body(self.server, self.channel, self.server.settings.body_timeout, min(left, RECV_SIZE))
        self.left = left - len(data)
        return data
