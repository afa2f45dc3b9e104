# lichen.wsgi.driver: HTTP/1.1 on one ready connection — the keep-alive loop.
#
# Strategy: the stream server calls serve(channel) in a worker greenlet each
# time a connection is ready; the driver serves requests until the client has
# nothing more to say, then parks the channel (it waits on its read watcher
# alone, and the driver keeps nothing for it) or closes it. Bytes are read
# into the server's shared buffer with a system call first; plain heads go
# through the C fast lane, which may only decline, never judge, and whatever
# it declines goes to the I/O-free lichen.http parser, the one judge of
# errors. Both lanes hand the same thing to one entry: an Exchange for the
# Request, which builds its environ (in C, the same for both lanes).
# Pipelined requests in one read are copied out of the shared buffer once and
# walked by offset. A head must be complete within header_timeout of its
# first byte (408); errors end as the right status and a log line, never a
# crashed server.
from __future__ import annotations

import logging
from typing import Any, Callable

from lichen._fastresponse import recv_nowait
from lichen.http import END_OF_MESSAGE, RemoteProtocolError, Request
from lichen.server import peer_text
from lichen.wsgi.exchange import Exchange, LengthBody, reject, reply_error, serve_plain
from lichen.wsgi.input import Input

__all__ = ["Driver"]

log = logging.getLogger("lichen.error")


class Driver:
    """The HTTP side of a WSGIServer: `serve(channel)` is its protocol.

    One driver per server; it keeps no per-connection state, so an idle
    keep-alive connection costs nothing here. `handler_class` subclasses it."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def serve(self, channel: Any) -> None:
        """Serve requests until the connection is idle (parked) or closed."""
        srv = self.server
        fast = srv.fast_parse
        parser = None
        head_deadline: float | None = None
        woke = True
        while True:
            idle = True
            if parser is not None:
                # The parser is taken only when the fast lane declines a
                # request: plain requests never touch it.
                try:
                    ev = parser.next_event()
                except RemoteProtocolError as e:
                    reject(srv, channel, e)
                    return
                if ev is not None:
                    if type(ev) is Request:
                        head_deadline = None
                        ex = Exchange(srv, channel, ev, parser)
                        if not self._done(channel, ex.serve(), ex.body_unread or not parser.idle):
                            return
                        woke = False
                    elif ev is not END_OF_MESSAGE:  # (END_OF_MESSAGE ends a request without body)
                        # A body piece after the app returned cannot happen:
                        # the exchange drains the body. A bug: say so, loudly.
                        log.error("unexpected parser event %r between requests from %s", ev, channel.peer)
                        channel.close()
                        return
                    continue
                idle = parser.idle
                if idle and parser.reusable:
                    srv.give_parser(parser)  # ~2.4 KiB: between requests it holds nothing
                    parser = None
            # Between requests, only a wake-up reads at once (no EAGAIN read
            # per request); else park until the watcher fires. Bytes OpenSSL
            # already decrypted will not wake the watcher.
            if idle and not woke and not (channel.encrypted and channel.sock.pending()):
                channel.park()
                return
            woke = False
            if idle:
                # (This frame never holds a view of the shared buffer, which
                # another connection may read into while an app runs.)
                data = self._fast_lane(channel, fast)
                if data is None:
                    return
                if not data:
                    continue
            else:
                if head_deadline is None:
                    head_deadline = srv.now() + srv.settings.header_timeout
                data = self._read_head(channel, head_deadline)
                if data is None:
                    return
            if parser is None:
                parser = srv.take_parser()
            if parser.idle:
                head_deadline = srv.now() + srv.settings.header_timeout
            try:
                parser.feed(data)
            except RemoteProtocolError:
                # Requests queued before the bad bytes are still answered, in
                # order: next_event() raises the error once they are drained.
                pass
            data = None  # (the parser keeps its own copy: no view of the shared buffer stays here)

    def _read_head(self, channel: Any, deadline: float) -> Any:
        """More bytes of a head that has begun (a view of the shared
        buffer); None when the channel closed or timed out (408)."""
        srv = self.server
        buf = srv.recv_buffer
        try:
            n = channel.sock.recv_into_by(buf, deadline)
        except TimeoutError:
            srv.log_error("closing %s: request header not complete within %.1f s (408)",
                          peer_text(channel.peer), srv.settings.header_timeout, level=logging.INFO)
            reply_error(srv, channel, 408, "Request Timeout: the request header took too long")
            return None
        except OSError:
            channel.close()
            return None
        if not n:
            channel.close()  # client gave up mid-request; nobody to answer
            return None
        return buf[:n]

    def _fast_lane(self, channel: Any, fast: Callable[[Any], Any]) -> Any:
        """Between requests: read what is there, and serve the requests at
        its start that the C fast lane takes (plain heads, pipelined ones
        too). Returns the bytes from the first head it declines on (b""
        when none), or None when the channel was parked (nothing had
        arrived) or closed. What is read is a view of the server's shared
        receive buffer: what is kept is copied out before the app runs,
        since another connection may read into it; the rest of a pipelined
        batch is copied once, then walked by offset."""
        srv = self.server
        sock = channel.sock
        try:
            # A plain socket is read with one system call (recv_nowait: the
            # socket's own recv_into costs more than the read); TLS through
            # its socket. (No local holds the buffer: this frame lives on
            # while an app runs.)
            n = sock.recv_into_nowait(srv.recv_buffer) if channel.encrypted or sock.raw is None \
                else recv_nowait(sock.raw, srv.recv_buffer)
        except OSError:
            channel.close()
            return None
        if n is None:  # woken without data: park again
            channel.park()
            return None
        if not n:
            channel.close()
            return None
        data = srv.recv_buffer[:n]
        first = data[0]
        if (first != 13 and first != 10) or _holds_request(data):
            # Channel.active(), inlined (once per request): empty lines alone
            # do not stop the idle clock.
            channel.fresh = False
            srv.idle.pop(channel, None)
        own = False  # whether data is our own copy (else a view of the shared buffer)
        while True:
            got = fast(data)
            if got is None:
                return data  # (the parser copies it before any app runs)
            req, used = got
            length = req.content_length
            n = len(data)
            inp = None
            if length:
                end = used + length
                if end <= n:  # the whole body came with the head
                    inp = Input.whole(bytes(data[used:end]))
                else:
                    inp = Input(LengthBody(srv, channel, end - n).next_chunk, False, None, length,
                                bytes(data[used:]))
                used = min(end, n)
            if n > used:
                data = data[used:] if own else memoryview(bytes(data[used:]))
                own = True
            else:
                data = b""
            if (serve_plain(srv, channel, req) if inp is None else Exchange(srv, channel, req).serve(inp)) \
                    and not srv.stopping and not channel.closed:
                srv.requests_served += 1  # (_done's common case, inlined: once per request)
            elif not self._done(channel, False, bool(data) or (inp is not None and not inp.finished)):
                return None
            if not data:
                return b""

    def _done(self, channel: Any, keep: bool, client_sending: bool) -> bool:
        """Count a served request; close the connection (lingering when the
        client may still be sending) unless it may serve another one."""
        srv = self.server
        srv.requests_served += 1
        if keep and not srv.stopping and not channel.closed:
            return True
        if client_sending:
            channel.linger_close()
        else:
            channel.close()
        return False


def _holds_request(data: Any) -> bool:
    """Whether bytes read between requests hold more than empty lines (which
    a server ignores before a request line, RFC 9112 2.2)."""
    return bool(bytes(data).strip(b"\r\n"))
