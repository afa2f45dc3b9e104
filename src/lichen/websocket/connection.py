# lichen.websocket.connection: one websocket, as the application sees it.
#
# Strategy: WebSocket has gevent-websocket's interface (receive, send, close,
# closed, path, origin, protocol, environ) and drives wsproto's frame
# protocol, which parses and builds frames (masking, control frames, close
# payloads, UTF-8 across fragments, permessage-deflate), over the
# connection's cooperative socket; the close handshake's few states are
# kept here (wsproto's Connection would add a queue per websocket). The 101
# answer goes out when the app first touches the websocket (receive, send,
# close or accept), so an app may still answer with a plain HTTP response
# (403, say) or choose a subprotocol first. Reading goes through the server's
# shared receive buffer and straight into wsproto, so a websocket waiting in
# receive() holds no buffer of its own: what it costs then is its greenlet,
# the wsproto state and this object. Ping and idle deadlines are kept by one
# sweep over every websocket of the server (lichen.websocket.registry), not
# by a timer each. Errors end as the close code RFC 6455 asks for (1002
# protocol, 1007 UTF-8, 1009 too big) and a closed websocket, never an
# exception in the app's receive(). Called from a thread (threads=N), every
# method runs itself on the hub through a portal: sockets stay on the hub.
from __future__ import annotations

import logging
import time
from threading import get_ident
from typing import Any, Callable

from greenlet import getcurrent
from wsproto.frame_protocol import Frame, FrameProtocol, Opcode, ParseFailed

from lichen.server import peer_text
from lichen.sync import Event
from lichen.websocket.deflate import negotiate
from lichen.websocket.handshake import Handshake, switching_head

__all__ = ["WebSocket", "WebSocketError", "NEW", "OPEN", "CLOSING", "CLOSED", "RAW"]

log = logging.getLogger("lichen.error")

# States (plain ints, compared on every call).
NEW = 0      # the 101 has not gone out: the app may still answer in HTTP
OPEN = 1     # messages flow both ways
CLOSING = 2  # we sent a close frame and wait for the client's
CLOSED = 3   # the close handshake is over, or the connection is gone
RAW = 4      # the app took the socket itself (werkzeug.socket): not ours
_MORE = object()  # _drain(): no whole message yet, read more


class WebSocketError(ConnectionError):
    """The websocket is closed (or the client went away): nothing can be
    sent. gevent-websocket's exception of the same name, also an OSError."""


class WebSocket:
    """`environ["wsgi.websocket"]`: a websocket in gevent-websocket's shape.

    `receive()` gives the next message (str for text, bytes for binary),
    None once the websocket is closed; `send(message, binary=None)`;
    `close(code=1000, message=b"")`. `accept(protocol=None)` sends the 101
    answer now, with a subprotocol the client offered; the first receive,
    send or close does it otherwise. After a close, `close_code` and
    `close_reason` tell what the client said (1006: it just went away)."""

    __slots__ = ("environ", "protocol", "close_code", "close_reason", "bytes_sent", "last_seen", "pinged",
                 "closing_since", "_owner", "_channel", "_handshake", "_on_switch", "_proto", "_state",
                 "_trailing", "_reader", "_writing", "_write_done", "_pieces", "_size", "_fed", "__weakref__")

    def __init__(self, owner: Any, channel: Any, handshake: Handshake, environ: dict[str, Any],
                 trailing: bytes, on_switch: Callable[[int], None]) -> None:
        self.environ = environ
        self.protocol: str | None = None      # the subprotocol chosen
        self.close_code: int | None = None    # the client's close code (1005: none given; 1006: gone)
        self.close_reason = ""
        self.bytes_sent = 0                   # after the 101 head
        self.last_seen = time.monotonic()     # when the client last sent anything
        self.pinged = False                   # a ping went out since then
        self.closing_since = 0.0              # when we sent our close frame
        self._owner = owner                   # the server's Registry: settings, buffer, sweep
        self._channel = channel
        self._handshake: Handshake | None = handshake
        self._on_switch: Callable[[int], None] | None = on_switch
        self._proto: FrameProtocol | None = None
        # Whether wsproto may hold bytes not yet parsed into frames: receive()
        # reads the socket at once otherwise (an empty parse per message
        # was a fifth of the echo path).
        self._fed = False
        self._state = NEW
        self._trailing = trailing             # bytes that came right after the handshake
        self._reader: Any = None              # the greenlet in receive()
        self._writing = False
        self._write_done: Event | None = None  # made when two greenlets write at once
        self._pieces: list | None = None      # fragments of the message being received
        self._size = 0

    # What apps read -----------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once a close frame went either way or the connection is gone."""
        return self._state >= CLOSING

    @property
    def path(self) -> str | None:
        return self.environ.get("PATH_INFO")

    @property
    def origin(self) -> str | None:
        return self.environ.get("HTTP_ORIGIN")

    @property
    def requested_protocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered, in its order."""
        hs = self._handshake
        return hs.protocols if hs is not None else ()

    @property
    def state(self) -> int:
        """NEW, OPEN, CLOSING, CLOSED or RAW."""
        return self._state

    # The handshake ------------------------------------------------------------
    def accept(self, protocol: str | None = None) -> None:
        """Send the 101 answer now, choosing `protocol` (one the client
        offered, else ValueError). Nothing happens once accepted."""
        if get_ident() != self._owner.hub_ident:
            return self._owner.portal.call(self.accept, protocol)
        if self._state != NEW:
            if self._state == RAW:
                raise WebSocketError("the application took this connection's socket (werkzeug.socket)")
            return None
        hs = self._handshake
        assert hs is not None and self._on_switch is not None
        owner = self._owner
        ext, answer = negotiate(hs.extensions, owner.max_message) if owner.compression else (None, None)
        head = switching_head(hs, protocol, answer, date=owner.date(), server=owner.server_header)
        self._on_switch(len(head))  # (raises if the app already began an HTTP response)
        self._on_switch = None
        self._proto = FrameProtocol(False, [ext] if ext is not None else [])
        self.protocol = protocol
        self._state = OPEN
        self._write(head, count=False)
        if self._trailing:
            self._proto.receive_bytes(self._trailing)
            self._trailing = b""
            self._fed = True
        return None

    def take_raw(self) -> None:
        """The app speaks WebSocket itself over the raw socket: the 101 and
        everything after are its own (state RAW)."""
        if self._state == RAW:
            return
        if self._state != NEW:
            raise WebSocketError("environ['wsgi.websocket'] is in use: the raw socket is not the app's")
        assert self._on_switch is not None
        self._on_switch(0)
        self._on_switch = None
        self._state = RAW

    # Receiving -----------------------------------------------------------------
    def receive(self) -> str | bytes | None:
        """The next message: str (text) or bytes (binary); None once the
        websocket is closed (by either side, or the client went away)."""
        if get_ident() != self._owner.hub_ident:
            return self._owner.portal.call(self.receive)
        if self._state == NEW:
            try:
                self.accept()
            except WebSocketError:  # gone before the 101 got out: closed, as for any vanished client
                return None
        elif self._state == RAW:
            raise WebSocketError("the application took this connection's socket (werkzeug.socket)")
        if self._reader is not None:
            raise RuntimeError("another greenlet is already receiving on this websocket")
        self._reader = getcurrent()
        try:
            while self._state < CLOSED:
                if self._fed:
                    msg = self._drain()
                    if msg is not _MORE:
                        return msg  # type: ignore[return-value]
                if self._state >= CLOSED or not self._read():
                    break
            return None
        finally:
            self._reader = None

    def input_waiting(self) -> bool:
        """Whether the client sent bytes that nobody reads yet (the app is
        not in receive()): then it is alive, only not listened to."""
        return self._reader is None and self._channel.has_pending_input()

    def _read(self) -> bool:
        """Feed wsproto what the client sent (waiting for it); False when the
        connection is gone or our close went unanswered in time."""
        owner = self._owner
        buf = owner.buffer
        deadline = self.closing_since + owner.close_timeout if self._state == CLOSING else None
        try:
            n = self._channel.sock.recv_into_by(buf, deadline)
        except (OSError, TimeoutError):
            n = 0
        if not n:
            self._gone()
            return False
        self.last_seen = time.monotonic()
        self.pinged = False
        # (wsproto copies into its own buffer before anything can yield: the
        # shared buffer is free again for the next reader.)
        self._proto.receive_bytes(buf[:n])  # type: ignore[union-attr, arg-type]
        self._fed = True
        return True

    def _drain(self) -> Any:
        """Act on the frames wsproto parsed: answer pings and the close
        handshake, assemble fragments. A whole message, None once closed,
        or _MORE."""
        proto = self._proto
        assert proto is not None
        try:
            for frame in proto.received_frames():
                op = frame.opcode
                if op is Opcode.TEXT or op is Opcode.BINARY:
                    if self._state != OPEN:
                        continue  # after our close frame, messages are dropped (RFC 6455 1.4)
                    msg = self._piece(frame)
                    if msg is not _MORE:
                        return msg
                elif op is Opcode.PING:
                    if self._state == OPEN:
                        try:
                            self._write(proto.pong(frame.payload))  # type: ignore[arg-type]
                        except WebSocketError:
                            return None
                elif op is Opcode.CLOSE:
                    return self._closed_by(*frame.payload)  # type: ignore[misc]
        except ParseFailed as e:  # bad input: 1002, 1007 (UTF-8), 1009 (inflated too big)
            self._fail(int(e.code), str(e))
            return None
        self._fed = False
        return _MORE

    def _piece(self, frame: Frame) -> Any:
        data: Any = frame.payload
        size = self._size + (len(data) if type(data) is not str or data.isascii()
                             else len(data.encode("utf-8", "surrogatepass")))
        if size > self._owner.max_message:
            self._fail(1009, f"message over {self._owner.max_message} bytes")
            return None
        pieces = self._pieces
        if not frame.message_finished:
            if pieces is None:
                pieces = self._pieces = []
            pieces.append(data)
            self._size = size
            return _MORE
        self._size = 0
        if pieces is not None:
            pieces.append(data)
            self._pieces = None
            data = "".join(pieces) if type(data) is str else b"".join(pieces)
        return data

    def _closed_by(self, code: int, reason: str) -> None:
        """A close frame from the client: the answer to ours, or its own,
        which is answered with its code (RFC 6455 5.5.1: 1000 echoed as
        1000; none given, none echoed)."""
        self.close_code, self.close_reason = int(code), reason or ""
        if self._state == OPEN:
            try:
                self._write(self._proto.close(code, reason or None))  # type: ignore[union-attr]
            except WebSocketError:
                pass
        self._state = CLOSED
        self._channel_done()
        return None

    # Sending ---------------------------------------------------------------------
    def send(self, message: str | bytes | bytearray | memoryview, binary: bool | None = None) -> None:
        """Send one message: text for a str, binary for bytes-like (or as
        `binary` says). WebSocketError once the websocket is closed."""
        if get_ident() != self._owner.hub_ident:
            return self._owner.portal.call(self.send, message, binary)
        if self._state == NEW:
            self.accept()
        if self._state != OPEN:
            raise WebSocketError("the websocket is closed")
        if binary is None:
            binary = not isinstance(message, str)
        if binary:
            data: Any = (message.encode("utf-8") if isinstance(message, str) else message
                         if isinstance(message, (bytes, bytearray, memoryview)) else bytes(message))
        else:
            data = message if isinstance(message, str) else bytes(message).decode("utf-8")
        self._write(self._proto.send_data(data))  # type: ignore[union-attr]
        return None

    def close(self, code: int = 1000, message: str | bytes = b"") -> None:
        """Start the close handshake with `code` and a reason (at most 123
        bytes of UTF-8). The client's answer is read by a receive() in
        progress or after the app returns; `closed` is True at once."""
        if get_ident() != self._owner.hub_ident:
            return self._owner.portal.call(self.close, code, message)
        if self._state == NEW:
            self.accept()
        if self._state != OPEN:
            return None
        reason = message.decode("utf-8", "replace") if isinstance(message, (bytes, bytearray)) else message
        frame = self._proto.close(code, reason or None)  # type: ignore[union-attr]
        self._state = CLOSING
        self.closing_since = time.monotonic()
        try:
            self._write(frame)
        except WebSocketError:
            pass
        return None

    def ping(self) -> None:
        """Send a ping (the registry's sweep does; a write in progress means
        the connection is busy anyway, so then nothing is sent)."""
        if self._state == OPEN and not self._writing:
            self.pinged = True
            try:
                self._write(self._proto.ping())  # type: ignore[union-attr]
            except WebSocketError:
                pass

    def _write(self, data: Any, count: bool = True, timeout: float | None = None) -> None:
        """Send all of `data`, one writer at a time (frames never
        interleave); WebSocketError when the client stopped reading for the
        write timeout (or `timeout`) or went away (the connection is then
        closed)."""
        while self._writing:
            done = self._write_done
            if done is None:
                done = self._write_done = Event()
            done.clear()
            done.wait()
        self._writing = True
        try:
            self._channel.sock.send_all_by(data, timeout or self._owner.write_timeout)
        except (OSError, TimeoutError) as e:
            self._gone()
            raise WebSocketError(f"the client went away: {e}") from None
        finally:
            self._writing = False
            if self._write_done is not None:
                self._write_done.set()
        if count:
            self.bytes_sent += len(data)

    # Ending ------------------------------------------------------------------------
    def _fail(self, code: int, why: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): our close frame with
        `code`, then the connection closes; nothing more is read."""
        self._owner.log_error("websocket from %s failed with %d: %s", peer_text(self._channel.peer), code, why,
                              level=logging.INFO)
        self.close_code, self.close_reason = code, why
        sendable = self._state == OPEN
        self._state = CLOSED
        if sendable:
            try:
                self._write(self._proto.close(code, why[:100]), count=False)  # type: ignore[union-attr]
            except WebSocketError:
                pass
        self._channel.linger_close()  # the client may be sending still: no reset over our close frame

    def _gone(self) -> None:
        """The connection is gone (EOF, reset, cut): 1006, closed."""
        if self.close_code is None:
            self.close_code = 1006
        self._state = CLOSED
        self._channel.close()

    def _channel_done(self) -> None:
        # The close handshake is over: the server closes the TCP connection
        # first (RFC 6455 7.1.1). Not while another greenlet reads or writes:
        # the one that finishes the websocket closes it.
        if self._reader is None or self._reader is getcurrent():
            self._channel.close()

    def expire(self, code: int, why: str) -> None:
        """End a websocket the client abandoned (idle timeout, close
        unanswered): a close frame if it can go out at once, then the
        connection is cut, which ends a receive() in progress."""
        self._owner.log_error("closing websocket from %s: %s", peer_text(self._channel.peer), why,
                              level=logging.INFO)
        if self._state == OPEN and not self._writing:
            try:
                self._write(self._proto.close(code, why[:100]), timeout=0.05)  # type: ignore[union-attr]
            except WebSocketError:
                pass
        if self.close_code is None:
            self.close_code = 1006
        self._state = CLOSED
        self._channel.close()

    def finish(self, failed: bool) -> bool:
        """After the application returned: whether it used the websocket (or
        the raw socket); then the close handshake is completed (1000, or
        1011 when the app failed), within the close timeout, and the
        connection is closed. False: the app answered in plain HTTP."""
        self._owner.forget(self)
        state = self._state
        if state == NEW:
            self._state = CLOSED  # unused: too late to open it now
            self._on_switch = None
            return False
        if state == RAW:
            self._channel.linger_close()
            return True
        if state == OPEN:
            self.close(1011 if failed else 1000)
        if self._state == CLOSING and self._reader is None:
            self._reader = getcurrent()
            try:
                while self._state == CLOSING:
                    if self._drain() is _MORE and self._state == CLOSING and not self._read():
                        break
            finally:
                self._reader = None
        self._state = CLOSED
        self._channel.close()
        return True

    def __repr__(self) -> str:
        names = {NEW: "new", OPEN: "open", CLOSING: "closing", CLOSED: "closed", RAW: "raw"}
        return f"<WebSocket {self.path!r} {names[self._state]}>"
