# A fake transport for testing the HTTP driver without sockets.
#
# Strategy: the driver (lichen.wsgi.driver) touches a connection only through
# a Channel and the deadline surface of its socket (recv_into_nowait,
# recv_into_by, send_all_by, sendfile_by, has_pending_input, pending, park,
# linger_close, close). FakeSocket gives that surface over a script: what
# the client sends, in the pieces the server reads them, with Silent(s) (the
# client says nothing for s seconds), PAUSE (it says nothing until the
# server's deadline) and RESET (the connection is reset). Time is a Clock
# that moves only when the client is silent: a read by a deadline that comes
# first times out at it. What the client takes is kept (each send and
# sendfile call too); stop_reading() makes it take no more, so that a send
# fails as a write timeout or a reset would. A real WSGIServer provides the
# rest (settings, the fast lane, the parser pool, logs) without binding a
# port, and `serve()` calls the driver as the stream server would, as a
# plain function call: when the driver parks the channel, the client's next
# bytes wake it again. A harness arms nothing in the hub: close() is tidy,
# not needed.
from __future__ import annotations

import logging
import math
import os
import time
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from lichen.channel import Channel
from lichen.wsgi import WSGIServer
from lichen.wsgi import exchange as _exchange
from wsgi_helpers import Client, Response

PAUSE = object()   # the client is silent until the server's deadline
RESET = object()   # the client resets the connection here

__all__ = ["Clock", "FakeSocket", "Harness", "PAUSE", "RESET", "Silent", "harness", "parse", "status_of"]


@dataclass(frozen=True)
class Silent:
    """The client says nothing for `seconds`."""

    seconds: float


class Clock:
    """The harness's monotonic clock: it moves only when the client is silent."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSocket:
    """The deadline surface of lichen.socket over scripted input."""

    encrypted = False
    raw = None  # (no stdlib socket to try first: every byte goes through send_all_by, recorded)

    def __init__(self, script: Iterable[Any] = (), clock: Clock | None = None) -> None:
        self.script: list[Any] = list(script)
        self.clock = clock or Clock()
        self.sent = bytearray()
        self.sends: list[tuple[bytes, int]] = []            # each send_all_by: (data, flags)
        self.sendfiles: list[tuple[int, int, int]] = []     # each sendfile_by: (offset, count, sent)
        self.takes: int | None = None                       # bytes the client still takes (None: all)
        self.write_error: OSError = TimeoutError()
        self.closed = False
        self.half_closed = False
        self.parked: Callable[[int], None] | None = None
        self.lingered = False

    # The client's side --------------------------------------------------------
    def feed(self, *pieces: Any) -> None:
        """More input from the client (bytes, Silent, PAUSE or RESET), in order."""
        self.script.extend(pieces)

    def take_sent(self) -> bytes:
        out, self.sent = bytes(self.sent), bytearray()
        return out

    def stop_reading(self, after: int = 0, error: OSError | None = None) -> None:
        """The client takes `after` more bytes, then nothing: the send that
        would go past them raises `error`, by default TimeoutError (what
        lichen.socket raises once the write timeout passed without
        progress); a ConnectionResetError is a client that went away."""
        self.takes = after
        self.write_error = error if error is not None else TimeoutError("the fake client stopped reading")

    def silent(self) -> bool:
        return not self.script or self.script[0] is PAUSE or isinstance(self.script[0], Silent)

    # Reading -------------------------------------------------------------------
    def recv_into_nowait(self, buffer: Any, nbytes: int = 0) -> int | None:
        if self.closed:
            raise OSError(9, "closed")
        if self.silent():
            return None
        piece = self.script[0]
        if piece is RESET:
            self.script.pop(0)
            return 0  # (as lichen.socket reports a reset)
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

    def recv_into_by(self, buffer: Any, deadline: float | None, nbytes: int = 0) -> int:
        while True:
            n = self.recv_into_nowait(buffer, nbytes)
            if n is not None:
                return n
            piece = self.script[0] if self.script else PAUSE
            quiet = piece.seconds if isinstance(piece, Silent) else math.inf
            left = math.inf if deadline is None else deadline - self.clock()
            if quiet >= left:  # the deadline comes first: the silence ends there
                self.clock.advance(max(left, 0.0))
                if self.script:
                    self.script.pop(0)
                raise TimeoutError("the fake client stayed silent")
            self.clock.advance(quiet)
            self.script.pop(0)

    def has_pending_input(self) -> bool:
        return not self.silent()

    def pending(self) -> int:
        return 0

    # Writing -------------------------------------------------------------------
    def _take(self, data: bytes) -> None:
        """What the client takes of `data`; the write error when not all."""
        if self.takes is not None:
            if len(data) > self.takes:
                self.sent += data[:self.takes]
                self.takes = 0
                raise self.write_error
            self.takes -= len(data)
        self.sent += data

    def send_all_by(self, data: Any, write_timeout: float, flags: int = 0) -> None:
        if self.closed:
            raise OSError(9, "closed")
        data = bytes(data)
        self.sends.append((data, flags))
        self._take(data)

    def sendfile_by(self, fd: int, offset: int, count: int, write_timeout: float) -> int:
        data = os.pread(fd, count, offset)
        self.sendfiles.append((offset, count, len(data)))
        self._take(data)
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
    clock: Clock = field(default_factory=Clock)

    def serve(self, *pieces: Any) -> bytes:
        """The client sends `pieces`; the driver runs until the client has
        nothing more to say (the driver parked the channel with the script
        silent) or the connection is closed; returns what the server sent.
        A silence while the channel is parked passes on the clock."""
        sock = self.sock
        sock.feed(*pieces)
        # lichen.wsgi.exchange times body reads with time.monotonic: for the
        # call, that module's `time` reads this clock (the driver's deadlines
        # come from server.now, which is the clock already).
        saved, _exchange.time = _exchange.time, types.SimpleNamespace(monotonic=self.clock, time=time.time)
        try:
            while not self.channel.closed:
                sock.parked = None
                self.channel.busy = True
                self.server.protocol(self.channel)
                while self.parked and sock.script and sock.silent():
                    piece = sock.script.pop(0)
                    if isinstance(piece, Silent):
                        self.clock.advance(piece.seconds)
                if not (self.parked and sock.has_pending_input()):
                    break
        finally:
            _exchange.time = saved
        return sock.take_sent()

    def responses(self, *pieces: Any, methods: Iterable[str] = ()) -> list[Response]:
        """serve(*pieces), parsed: see parse()."""
        return parse(self.serve(*pieces), *methods)

    @property
    def parked(self) -> bool:
        return self.sock.parked is not None and not self.channel.closed

    @property
    def closed(self) -> bool:
        return self.channel.closed

    def close(self) -> None:
        self.server.stop(0)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def harness(app: Callable[..., Any], peer: Any = ("127.0.0.1", 5555), server_class: type = WSGIServer,
            **settings: Any) -> Harness:
    """A driver for `app` over a FakeSocket. `settings` are WSGIServer's
    (`server_class`'s); the access log is off unless `log` is given, and the
    error log is the `lichen.error` logger unless `error_log` is. The
    server's environ is that of one bound to 127.0.0.1:80."""
    settings.setdefault("log", None)
    settings.setdefault("error_log", logging.getLogger("lichen.error"))
    server = server_class(("127.0.0.1", 0), app, **settings)
    server.sockets = [_Bound()]
    server.init_socket()  # builds the base environ (and the fast lane on it), and binds nothing
    server.sockets = []
    clock = Clock()
    server.now = clock  # type: ignore[method-assign]
    sock = FakeSocket(clock=clock)
    channel = server.channel_class(server, sock, peer, True)
    server.connections.add(channel)
    return Harness(server, sock, channel, clock)


class _Bound:
    """What WSGIServer.init_socket asks of a bound listener: its address."""

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 80)


class _Replay:
    """A socket that has received `data` and then EOF (for Client)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, size: int) -> bytes:
        out, self.data = self.data[:size], self.data[size:]
        return out


def parse(data: bytes, *methods: str) -> list[Response]:
    """The responses in `data`, as a client reads them: 1xx interim ones
    included, each final one read as the answer to the next of `methods`
    (GET when they run out: HEAD matters, its response has no body)."""
    client = Client(_Replay(data))  # type: ignore[arg-type]
    out: list[Response] = []
    left = list(methods)
    while client.buf or client._more():
        r = client.read_response(left[0] if left else "GET", interim=True)
        if r.status >= 200 and left:
            left.pop(0)
        out.append(r)
    return out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
