# lichen.wsgi.connection: one HTTP/1.1 connection — reading, keep-alive,
# pipelining, timeouts, and the call of the WSGI application.
#
# Strategy: a connection holds a greenlet only while it has work. Between
# requests it is parked on its socket's read watcher alone; when bytes
# arrive the server queues it for a worker greenlet, which reads (system
# call first), takes plain heads through the C fast lane (lichen._fastpath)
# and anything else through the I/O-free lichen.http parser, the one judge
# of errors, runs the app and writes the response, then parks the
# connection again. Once per connection, before any of that, the preamble
# reads a PROXY protocol header and runs the TLS handshake, both by one
# deadline from accept. All socket work goes through the deadline surface
# of lichen.socket, which plain and TLS sockets share. Idle expiry is a dict
# ordered by idle time that one server timer sweeps, so an idle connection
# needs no timer of its own; empty lines from a client do not move it back
# in that order. Errors end as the right status (400, 408, 413, 414, 417,
# 431, 500, 501, 505) and a log line, never as a crashed server or a
# response passed off as complete.
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any, Callable

from lichen.http import (CONTINUE_RESPONSE, END_OF_MESSAGE, EndOfMessage, LocalProtocolError, RemoteProtocolError, Request,
                         build_simple_response)
from lichen.preamble import read_proxy_header
from lichen.proxy import ProxyHeaderError, ProxyProtocolError, apply_proxy_headers
from lichen.wsgi.environ import request_environ
from lichen.wsgi.input import EMPTY_INPUT, Input
from lichen.wsgi.response import FileWrapper, Response, close_body

__all__ = ["Connection", "ClientGone"]

log = logging.getLogger("lichen.error")
RECV_SIZE = 65536
# Lingering close: how long, how quietly, and how much we read and discard
# from a client that is still sending when we close.
LINGER_TIME = 2.0
LINGER_IDLE = 0.5
LINGER_BYTES = 64 << 20
_MSG_MORE = getattr(socket, "MSG_MORE", 0)


class ClientGone(ConnectionError):
    """The client closed the connection, reset it, or stopped reading or
    sending for longer than a timeout. Not an application error."""


class Connection:
    """Server side of one client connection."""

    __slots__ = ("server", "sock", "addr", "parser", "busy", "closed", "worker", "requests", "opened",
                 "encrypted", "_preamble_done", "_unread_body", "_head_deadline", "_continue_sent",
                 "_expect_continue", "_undrainable", "_response", "__weakref__")

    def __init__(self, server: Any, sock: Any, addr: Any, tls: bool = False) -> None:
        self.server = server
        self.sock = sock          # lichen.socket.socket; a lichen.tls.SSLSocket after the preamble
        self.addr = addr
        self.parser: Any = None
        self.busy = True
        self.closed = False
        self.worker: Any = None
        self.requests = 0
        self.opened = time.monotonic()
        self.encrypted = sock.encrypted
        # A PROXY header and a TLS handshake come first, once (see _preamble).
        self._preamble_done = server.proxy_allow is None and not (tls and not sock.encrypted)
        self._unread_body = False
        self._head_deadline: float | None = None
        self._continue_sent = False
        self._expect_continue = False
        self._undrainable: tuple[int, Input] | None = None
        self._response: Response | None = None

    # Idle and wake-up (these run in the hub) ---------------------------------
    def go_idle(self) -> None:
        """Park the connection: only its read watcher waits for the client."""
        self.busy = False
        self.worker = None
        parser = self.parser
        if parser is not None and parser.reusable:
            # A parser costs ~2.4 KiB; between requests it holds nothing.
            self.parser = None
            self.server.give_parser(parser)
        self.sock.park(self._readable)
        # (Still there, and left in place, when only empty lines came: its
        # clock runs on.) time.monotonic is the server's clock (StreamServer.now).
        self.server.idle.setdefault(self, time.monotonic())

    def _readable(self, _flags: int) -> None:
        # The connection stays in the idle map until a request's first byte
        # is read (_read_more): empty lines must not restart its idle time.
        self.busy = True
        self.server.dispatch(self)

    def has_pending_input(self) -> bool:
        """Whether bytes (or EOF) of a next request are already readable."""
        return self.sock.has_pending_input()

    def close(self) -> None:
        """Close now (any worker blocked on the socket gets an error)."""
        if self.closed:
            return
        self.closed = True
        srv = self.server
        try:
            srv.idle.pop(self, None)
            try:
                self.sock.close()  # (also stops a parked watcher)
            except OSError:
                pass
            self.parser = None
        finally:
            # Even when a signal handler's KeyboardInterrupt lands in the
            # middle: a connection closed but still counted would hold its
            # slot for good, and stop() would wait its whole timeout for it.
            srv.connection_closed(self)

    # I/O with deadlines --------------------------------------------------------
    def sendall(self, data: bytes) -> None:
        """Send everything or raise ClientGone (reset, closed, write timeout)."""
        try:
            self.sock.send_all_by(data, self.server.settings.write_timeout)
        except TimeoutError as e:
            raise ClientGone("client stopped reading (write timeout)") from e
        except OSError as e:
            raise ClientGone(f"send failed: {e}") from e

    def _send_head_more(self, head: bytes) -> None:
        """Send a head that file data follows at once: MSG_MORE lets the
        kernel put both in the same segments despite TCP_NODELAY."""
        try:
            self.sock.send_all_by(head, self.server.settings.write_timeout, _MSG_MORE)
        except TimeoutError as e:
            raise ClientGone("client stopped reading (write timeout)") from e
        except OSError as e:
            raise ClientGone(f"send failed: {e}") from e

    def _sendfile(self, fd: int, offset: int, count: int) -> int:
        """os.sendfile on the plain socket; returns bytes sent."""
        try:
            return self.sock.sendfile_by(fd, offset, count, self.server.settings.write_timeout)
        except TimeoutError as e:
            raise ClientGone("client stopped reading (write timeout)") from e
        except OSError as e:
            raise ClientGone(f"sendfile failed: {e}") from e

    # The request loop (runs in a worker greenlet) ----------------------------
    def serve(self) -> None:
        """Serve requests until the connection goes idle or closes."""
        if not self._preamble_done and not self._preamble():
            return
        srv = self.server
        fast = srv.fast_parse
        woke = True
        while True:
            # The parser is taken only when the fast lane declines a request:
            # plain requests never touch it.
            parser = self.parser
            idle = True
            if parser is not None:
                try:
                    ev = parser.next_event()
                except RemoteProtocolError as e:
                    self._reject(e)
                    return
                if ev is not None:
                    if type(ev) is Request:
                        self._head_deadline = None
                        if not self._request_done(self.handle_request(ev), self._unread_body or not parser.idle):
                            return
                        woke = False
                    elif ev is not END_OF_MESSAGE:  # (END_OF_MESSAGE ends a request without body)
                        # A body chunk after the app returned cannot happen:
                        # handle_request drains the body. Treat as a bug, loudly.
                        log.error("unexpected parser event %r between requests from %s", ev, self.addr)
                        self.close()
                        return
                    continue
                idle = parser.idle
            # Between requests, only a wake-up reads at once (no EAGAIN
            # read per request); else park until the watcher fires. Bytes
            # OpenSSL already decrypted will not wake the watcher.
            if idle and not woke and not (self.encrypted and self.sock.pending()):
                self.go_idle()
                return
            data = self._read_more(idle)
            if data is None:
                return
            woke = False
            if idle:  # (only then can data be a view of the shared buffer: see _read_more)
                data = self._fast_lane(fast, data)
                if data is None:
                    return
                if not data:
                    continue
            if parser is None:
                parser = self._parser()
            if parser.idle:
                self._head_deadline = srv.now() + srv.settings.header_timeout
            try:
                parser.feed(data)
            except RemoteProtocolError:
                # Requests queued before the bad bytes are still answered, in
                # order: next_event() raises the error once they are drained.
                pass

    def _preamble(self) -> bool:
        """Once per connection, by one deadline from accept: the PROXY
        protocol header (its client address replaces the peer's), then the
        TLS handshake. False (and the connection closed) when either fails."""
        srv = self.server
        deadline = self.opened + srv.settings.header_timeout
        if srv.proxy_allow is not None:
            peer = self.addr[0] if isinstance(self.addr, tuple) else ""
            if peer not in srv.proxy_allow:  # AllowList maps ::ffff:a.b.c.d itself
                return self._refuse("not allowed to send a PROXY protocol header", logging.WARNING)
            try:
                source, _dest = read_proxy_header(self.sock, deadline)
            except ProxyProtocolError as e:
                return self._refuse(str(e), logging.WARNING)
            except TimeoutError:
                return self._refuse(f"no complete PROXY protocol header within "
                                    f"{srv.settings.header_timeout:.1f} s", logging.INFO)
            except OSError:  # closed, reset, or closed under us by stop()
                self.close()
                return False
            if source is not None:
                self.addr = source
        if srv.ssl_context is not None and not self.sock.encrypted:
            from lichen.tls import wrap_socket

            self.sock = wrap_socket(self.sock, srv.ssl_context, server_side=True, do_handshake_on_connect=False)
            self.encrypted = True
            try:
                self.sock.handshake_by(deadline)
            except TimeoutError:
                return self._refuse(f"TLS handshake not complete within {srv.settings.header_timeout:.1f} s",
                                    logging.INFO)
            except OSError as e:  # (ssl.SSLError is an OSError)
                return self._refuse(f"TLS handshake failed: {e}", logging.INFO)
        self._preamble_done = True
        return True

    def _refuse(self, why: str, level: int) -> bool:
        self.server.log_error("closing %s: %s", _peer(self.addr), why, level=level)
        self.close()
        return False

    def _fast_lane(self, fast: Callable[[Any, Any], Any], data: Any) -> Any:
        """Serve the requests at the start of `data` (no partial request
        before it) that the C fast lane takes: plain heads, pipelined ones
        too. Returns the bytes from the first head it declines on (b"" when
        none), or None when the connection closed. `data` may be a view of
        the server's shared receive buffer: what is kept is copied out
        before the app runs, since another connection may read into it; the
        rest of a pipelined batch is copied once, then walked by offset."""
        own = False  # whether data is our own copy (else a view of the shared buffer)
        while True:
            got = fast(data, self.addr)
            if got is None:
                return data  # (the parser copies it before any app runs)
            env, req, used, proxied = got
            length = req.content_length
            n = len(data)
            inp = None
            if length:
                end = used + length
                if end <= n:  # the whole body came with the head
                    inp = Input.whole(bytes(data[used:end]))
                else:
                    inp = Input(_LengthBody(self, end - n).next_chunk, False, None, length, bytes(data[used:]))
                used = min(end, n)
            if n > used:
                data = data[used:] if own else memoryview(bytes(data[used:]))
                own = True
            else:
                data = b""
            keep = self.handle_request(req, env, inp, proxied)
            if not self._request_done(keep, bool(data) or self._unread_body):
                return None
            if not data:
                return b""

    def _parser(self) -> Any:
        parser = self.parser
        if parser is None:
            parser = self.parser = self.server.take_parser()
        return parser

    def _request_done(self, keep: bool, client_sending: bool) -> bool:
        """Count a served request; close the connection (lingering when the
        client may still be sending) unless it may serve another one."""
        srv = self.server
        self.requests += 1
        srv.requests_served += 1
        if keep and not srv.stopping:
            return True
        if client_sending:
            self.linger_close()
        else:
            self.close()
        return False

    def _read_more(self, idle: bool) -> Any:
        """More bytes from the client (at least one), as a view of the
        server's shared receive buffer, valid until this greenlet next
        yields; None when the connection was parked or closed instead.
        `idle`: no partial request is buffered."""
        srv = self.server
        buf = srv.recv_buffer
        if idle:
            try:
                n = self.sock.recv_into_nowait(buf)
            except OSError:
                self.close()
                return None
            if n is None:  # woken without data: park again
                self.go_idle()
                return None
            if not n:
                self.close()
                return None
            data = buf[:n]
            first = data[0]
            if (first != 13 and first != 10) or _holds_request(data):
                srv.idle.pop(self, None)
            return data
        deadline = self._head_deadline
        if deadline is None:
            deadline = self._head_deadline = srv.now() + srv.settings.header_timeout
        try:
            n = self.sock.recv_into_by(buf, deadline)
        except TimeoutError:
            srv.log_error("closing %s: request header not complete within %.1f s (408)",
                          _peer(self.addr), srv.settings.header_timeout, level=logging.INFO)
            self._reply_error(408, "Request Timeout: the request header took too long")
            return None
        except OSError:
            self.close()
            return None
        if not n:
            self.close()  # client gave up mid-request; nobody to answer
            return None
        return buf[:n]

    # Errors ------------------------------------------------------------------
    def _reject(self, err: RemoteProtocolError) -> None:
        """The client broke the protocol: answer with err's status, close."""
        self.server.log_error("bad request from %s: %s (%d)", _peer(self.addr), err, err.status,
                              level=logging.INFO)
        self._reply_error(err.status, str(err))

    def _reply_error(self, status: int, message: str) -> None:
        resp = self._response
        if resp is None or not resp.head_sent:
            try:
                self.sendall(build_simple_response(status, message, date=self.server.date(),
                                                   server=self.server.server_header_bytes))
            except ClientGone:
                self.close()
                return
        self.linger_close()

    def linger_close(self) -> None:
        """Close a connection whose client may still be sending: half-close,
        then read and discard for a moment. Closing with unread input makes
        the kernel answer with a reset, which can destroy the response we
        just sent before the client reads it."""
        if self.closed:
            return
        self.parser = None  # nothing more is parsed: its bytes can go now
        try:
            self.sock.linger_close(LINGER_TIME, LINGER_IDLE, LINGER_BYTES)
        finally:
            self.close()

    # One request -------------------------------------------------------------
    def _next_body_chunk(self) -> bytes:
        parser = self.parser
        timeout = self.server.settings.body_timeout
        while True:
            ev = parser.next_event()
            if type(ev) is bytes:
                return ev
            if ev is EndOfMessage or isinstance(ev, EndOfMessage):
                return b""
            if ev is not None:  # a next request's head: cannot happen before end of body
                return b""
            data = self.recv_body(timeout)
            try:
                parser.feed(data)
            except RemoteProtocolError:
                pass  # body bytes queued before the error come first; next_event() raises it

    def recv_body(self, timeout: float, size: int = RECV_SIZE) -> bytes:
        """Up to `size` more bytes of a request body (the client may stay
        silent for `timeout` seconds), or ClientGone."""
        buf = self.server.recv_buffer
        try:
            data = bytes(buf[:self.sock.recv_into_by(buf, time.monotonic() + timeout, size)])
        except TimeoutError as e:
            raise ClientGone(f"request body stalled for {timeout:.1f} s") from e
        except OSError as e:  # closed under us (stop() at its deadline)
            raise ClientGone(f"connection closed while reading the body: {e}") from e
        if not data:
            raise ClientGone("client closed the connection before the request body was complete")
        return data

    def _send_continue(self) -> None:
        resp = self._response
        if resp is not None and not resp.head_sent and not self._continue_sent:
            self._continue_sent = True
            self.sendall(CONTINUE_RESPONSE)

    def _will_close(self) -> bool:
        """Asked when the response head is built: close after it? (The
        server is stopping; the client still waits for a 100 Continue before
        sending a body that will then never be read; or more of the body is
        still unread than max_discard lets us drain.) Saying so in the head
        beats a close the client did not expect."""
        if self.server.stopping or (self._expect_continue and not self._continue_sent):
            return True
        big = self._undrainable
        return big is not None and big[0] - big[1].bytes_read > self.server.settings.max_discard

    def handle_request(self, req: Request, env: dict | None = None, inp: Input | None = None,
                       proxied: bool = False) -> bool:
        """Run the app for `req` and write its response; returns whether the
        connection may serve another request. From the fast lane, `env` is
        already built, `inp` is the body's wsgi.input (else the parser's body
        events feed one) and `proxied` says whether env holds proxy headers."""
        srv = self.server
        has_body = bool(req.chunked or req.content_length)
        self._continue_sent = False
        if has_body:
            self._expect_continue = req.expect_continue
            if inp is None:
                inp = Input(self._next_body_chunk, False, self._send_continue if req.expect_continue else None)
            length = req.content_length
            self._undrainable = (length, inp) if length and length > srv.settings.max_discard else None
        else:
            self._expect_continue = False
            self._unread_body = False
            inp = EMPTY_INPUT
        if env is None:
            env = request_environ(srv.base_environ, self.addr, req, inp)
            proxied = not srv.proxy_keys.isdisjoint(env)
        elif has_body:
            env["wsgi.input"] = inp
        if proxied:
            try:
                apply_proxy_headers(env, srv.proxy_headers)
            except ProxyHeaderError as e:
                self._reject(RemoteProtocolError(f"proxy headers: {e}", 400))
                return False
        keep = req.keep_alive and srv.keepalive and not srv.stopping
        resp = self._response = Response(self.sendall, req, keep, srv.date(), srv.server_header_bytes)
        resp.will_close = self._will_close
        access = srv.access if srv.access_enabled else None
        started = time.time() if access is not None else 0.0
        ok = self._run_app(env, resp)
        self._response = None
        if has_body:
            self._undrainable = None
            if ok:
                ok = self._finish_body(req, inp)
            self._unread_body = not inp.finished
        if access is not None:
            access(env, resp, time.time() - started)
        return ok and resp.keep_alive and not resp.must_close

    def _run_app(self, env: dict, resp: Response) -> bool:
        srv = self.server
        result = None
        try:
            result = srv.application(env, resp.start_response)
            if type(result) is list and not resp.head_sent and resp.status is not None:
                resp.send_all_at_once(result[0] if len(result) == 1 else b"".join(result))
            elif isinstance(result, FileWrapper) and not self.encrypted and result.fileno() is not None:
                self._send_file(resp, result)
            else:
                for data in result:
                    if data:
                        resp.write(data)
                resp.finish()
            return True
        except ClientGone as e:
            log.debug("client %s went away: %s", _peer(self.addr), e)
            return False
        except RemoteProtocolError as e:
            # The app read a body that broke the protocol (e.g. over max_body).
            if not resp.head_sent:
                resp.status_code = e.status
            self._reject(e)
            return False
        except LocalProtocolError as e:
            srv.log_error("invalid response from the application for %s %s: %s", env.get("REQUEST_METHOD"),
                          env.get("RAW_URI"), e)
            self._app_failed(resp)
            return False
        except Exception:
            log.exception("error in the WSGI application for %s %s (client %s)", env.get("REQUEST_METHOD"),
                          env.get("RAW_URI"), _peer(self.addr))
            self._app_failed(resp)
            return False
        finally:
            if not close_body(result, "the application's"):
                resp.keep_alive = False

    def _app_failed(self, resp: Response) -> None:
        if not resp.head_sent:
            resp.status_code = 500
            self._reply_error(500, "Internal Server Error")
        # After the head went out nothing can be repaired: closing tells the
        # client the response is incomplete (no last chunk / short length).

    def _send_file(self, resp: Response, wrapper: FileWrapper) -> None:
        """A regular file as the body: the head, then os.sendfile from the
        file's position, so the kernel copies and Python never reads it."""
        fd = wrapper.fileno()
        assert fd is not None
        try:
            pos = wrapper.filelike.tell()
        except (AttributeError, OSError):
            pos = 0
        size = max(os.fstat(fd).st_size - pos, 0)
        head = resp._head(size)  # the app's own Content-Length wins in build_head
        framer = resp.framer
        try:
            limit = framer.remaining
        except LocalProtocolError:  # a framing that must see the bytes
            self.sendall(head)
            for data in wrapper:
                resp.write(data)
            resp.finish()
            return
        length = size if limit is None else min(limit, size)
        if not length:
            self.sendall(head)
            resp.finish()
            return
        self._send_head_more(head)
        sent = self._sendfile(fd, pos, length)
        framer.advance(sent)
        resp.bytes_sent += sent
        resp.finish()  # a file that shrank leaves the framer short: must_close

    def _finish_body(self, req: Request, inp: Input) -> bool:
        """Drain what the app left unread so the next request parses; False
        when the connection must close instead."""
        if inp.finished or not (req.chunked or req.content_length):
            return True
        if req.expect_continue and not self._continue_sent:
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


class _LengthBody:
    """The rest of a Content-Length body after a fast-lane head: reads of
    never more than what is left, so the socket keeps any pipelined next
    request. (Bytes are only counted: there is no framing to parse in a
    Content-Length body.)"""

    __slots__ = ("conn", "left")

    def __init__(self, conn: Connection, left: int) -> None:
        self.conn = conn
        self.left = left  # still in the socket (or on its way)

    def next_chunk(self) -> bytes:
        left = self.left
        if not left:
            return b""
        data = self.conn.recv_body(self.conn.server.settings.body_timeout, min(left, RECV_SIZE))
        self.left = left - len(data)
        return data


def _holds_request(data: Any) -> bool:
    """Whether bytes read between requests hold more than empty lines (which
    a server ignores before a request line, RFC 9112 2.2)."""
    return bool(bytes(data).strip(b"\r\n"))


def _peer(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr) or "unix-socket peer"

