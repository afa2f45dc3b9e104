# A fake transport for testing the HTTP driver without sockets.
#
# Strategy: the driver (lichen.wsgi.driver) touches a connection only through
# a Channel and the deadline surface of its socket (recv_into_nowait,
# recv_into_by, send_all_by, sendfile_by, has_pending_input, pending, park,
# linger_close, close). FakeSocket gives that surface over a script: what
# the client sends, in the pieces the server reads them, with PAUSE (the
# client is silent: a try-read finds nothing, a read by a deadline times
# out) and RESET (the connection is reset). Everything the server sends is
# kept. A real WSGIServer provides the rest (settings, the fast lane, the
# parser pool, logs) without binding a port, and `serve()` calls the
# driver as the stream server would, as a plain function call: when it parks
# the channel, the next call is the client speaking again.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from lichen.channel import Channel
from lichen.wsgi import WSGIServer
from lichen.wsgi.environ import base_environ
from lichen.wsgi.response import FileWrapper

PAUSE = object()   # the client is silent here
RESET = object()   # the client resets the connection here

__all__ = ["FakeSocket", "Harness", "PAUSE", "RESET", "harness"]


class FakeSocket:
    """The deadline surface of lichen.socket over scripted input."""

    encrypted = False

    def __init__(self, script: Iterable[Any] = ()) -> None:
        self.script: list[Any] = list(script)
        self.sent = bytearray()
        self.closed = False
        self.half_closed = False
        self.parked: Callable[[int], None] | None = None
        self.lingered = False

    # The client's side --------------------------------------------------------
    def feed(self, *pieces: Any) -> None:
        """More input from the client (bytes, PAUSE or RESET), in order."""
        self.script.extend(pieces)

    def take_sent(self) -> bytes:
        out, self.sent = bytes(self.sent), bytearray()
        return out

    # Reading -------------------------------------------------------------------
    def _next(self, buffer: Any, nbytes: int) -> int | None:
        if self.closed:
            raise OSError(9, "closed")
        if not self.script:
            return None
        piece = self.script[0]
        if piece is PAUSE:
            return None
        if piece is RESET:
            self.script.pop(0)
            raise ConnectionResetError(104, "reset by the fake client")
        if piece == b"":
            self.script.pop(0)
            return 0
        limit = min(len(buffer), nbytes or len(buffer))
        take, rest = piece[:limit], piece[limit:]
        buffer[:len(take)] = take
        if rest:
            self.script[0] = rest
        else:
            self.script.pop(0)
        return len(take)

    def recv_into_nowait(self, buffer: Any, nbytes: int = 0) -> int | None:
        try:
            return self._next(buffer, nbytes)
        except ConnectionResetError:
            return 0

    def recv_into_by(self, buffer: Any, deadline: float | None, nbytes: int = 0) -> int:
        n = self.recv_into_nowait(buffer, nbytes)
        if n is None:
            if self.script and self.script[0] is PAUSE:
                self.script.pop(0)  # the silence lasts until the deadline
            raise TimeoutError("the fake client stayed silent")
        return n

    def has_pending_input(self) -> bool:
        return bool(self.script) and self.script[0] is not PAUSE

    def pending(self) -> int:
        return 0

    # Writing -------------------------------------------------------------------
    def send_all_by(self, data: Any, write_timeout: float, flags: int = 0) -> None:
        if self.closed:
            raise OSError(9, "closed")
        self.sent += data

    def sendfile_by(self, fd: int, offset: int, count: int, write_timeout: float) -> int:
        import os

        data = os.pread(fd, count, offset)
        self.sent += data
        return len(data)

    # The connection -------------------------------------------------------------
    def park(self, callback: Callable[[int], None]) -> None:
        self.parked = callback

    def unpark(self) -> None:
        self.parked = None

    def linger_close(self, seconds: float, quiet: float, budget: int) -> None:
        self.lingered = True
        self.half_closed = True
        self.script = []  # what the client still sends is read and thrown away
        self.close()

    def close(self) -> None:
        self.closed = True


@dataclass
class Harness:
    """A WSGIServer that is not listening, and one fake connection to it."""

    server: WSGIServer
    sock: FakeSocket
    channel: Channel
    ready_calls: list[Channel] = field(default_factory=list)

    def serve(self, *pieces: Any) -> bytes:
        """The client sends `pieces`; the driver runs until it parks or
        closes the connection; returns what the server sent."""
        self.sock.feed(*pieces)
        if not self.channel.closed:
            self.sock.parked = None
            self.channel.busy = True
            self.server.protocol(self.channel)
        return self.sock.take_sent()

    @property
    def parked(self) -> bool:
        return self.sock.parked is not None and not self.channel.closed

    @property
    def closed(self) -> bool:
        return self.channel.closed

    def close(self) -> None:
        self.server.close()


def harness(app: Callable[..., Any], peer: Any = ("127.0.0.1", 5555), **settings: Any) -> Harness:
    """A driver for `app` over a FakeSocket. `settings` are WSGIServer's."""
    log = settings.pop("log", None)
    server = WSGIServer(("127.0.0.1", 0), app, log=log, **settings)
    server.base_environ = base_environ("testserver", "80", "http", None, FileWrapper, None)
    sock = FakeSocket()
    channel = Channel(server, sock, peer, True)
    server.connections.add(channel)
    return Harness(server, sock, channel)
