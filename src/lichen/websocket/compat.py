# lichen.websocket.compat: the raw socket for libraries that speak WebSocket
# themselves (simple-websocket, and so Flask-Sock and python-engineio).
#
# Strategy: those libraries look for the connection's socket in the environ
# under the key their known servers use; simple-websocket takes
# `werkzeug.socket` first, and with it answers the handshake itself and
# returns an ordinary (ignored) response afterwards. So a websocket request
# carries a RawSocket there: recv/send/close like a socket, each run on the
# hub (cooperative), sends always whole. Its first use takes the connection
# from lichen's own WebSocket (no 101 from us; whatever the app returns
# afterwards is dropped). The library's reader runs in a thread_class and
# waits on an event_class: by default OS threads and threading.Event. With
# threads=N that works as it is (the app's thread and the reader's hand their
# socket calls to the hub through a portal). On the hub, a threading.Event
# would stop every greenlet, so there the socket refuses calls from other
# threads with a clear error, and simple_websocket_options() gives the
# cooperative thread, event and selector classes to pass instead.
from __future__ import annotations

import errno
import itertools
import logging
import selectors
import time
from threading import get_ident
from typing import Any, Callable

from lichen.hub import Greenlet, spawn
from lichen.sync import Event

__all__ = ["RawSocket", "GreenThread", "CooperativeSelector", "simple_websocket_options"]

log = logging.getLogger("lichen.error")

ON_THE_HUB = ("simple-websocket (Flask-Sock) used the socket from an OS thread while the app runs on "
              "lichen's hub, where its threading.Event would stop every connection: give it "
              "lichen.websocket.simple_websocket_options() (Flask-Sock: app.config['SOCK_SERVER_OPTIONS']), "
              "or run the app with threads=N")


class RawSocket:
    """`environ["werkzeug.socket"]` of a websocket request: the
    connection's socket, for a library that does the WebSocket protocol
    itself. Blocking calls wait cooperatively on the hub."""

    __slots__ = ("_ws", "_channel", "_owner", "_threaded")

    def __init__(self, ws: Any, channel: Any, owner: Any) -> None:
        self._ws = ws
        self._channel = channel
        self._owner = owner
        self._threaded: bool | None = None  # whether the app runs in a thread (known at first use)

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        owner = self._owner
        here = get_ident() == owner.hub_ident
        if self._threaded is None:
            self._threaded = not here
            if here:
                self._ws.take_raw()
            else:
                owner.portal.call(self._ws.take_raw)
        if here:
            return fn(*args)
        if not self._threaded:
            log.error(ON_THE_HUB)
            raise OSError(errno.EDEADLK, ON_THE_HUB)
        return owner.portal.call(fn, *args)

    # The socket interface simple-websocket uses -------------------------------------
    def recv(self, bufsize: int) -> bytes:
        return self._run(self._recv, bufsize)

    def _recv(self, bufsize: int) -> bytes:
        return self._channel.sock.recv(min(bufsize, 1 << 20))

    def send(self, data: bytes, flags: int = 0) -> int:
        """Send all of `data` (never part: frames must not be cut)."""
        self._run(self._send, data)
        return len(data)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._run(self._send, data)

    def _send(self, data: bytes) -> None:
        try:
            self._channel.sock.send_all_by(data, self._owner.write_timeout)
        except TimeoutError as e:
            self._channel.close()
            raise OSError(errno.ETIMEDOUT, "the client stopped reading (write timeout)") from e

    def close(self) -> None:
        if get_ident() == self._owner.hub_ident:
            self._channel.close()
        else:  # (from the library's reader thread, as it ends)
            self._owner.hub.call_soon_threadsafe(self._channel.close)

    def shutdown(self, how: int) -> None:
        self.close()

    def fileno(self) -> int:
        return self._channel.sock.fileno()

    def getpeername(self) -> Any:
        return self._channel.peer

    def settimeout(self, value: float | None) -> None:
        pass  # (every wait here is bounded by the server's own deadlines)

    def gettimeout(self) -> float | None:
        return None

    def setblocking(self, flag: bool) -> None:
        pass

    def wait_readable(self, timeout: float | None) -> bool:
        """Whether the socket became readable within `timeout` seconds
        (None: no limit); for CooperativeSelector."""
        return bool(self._run(self._wait_readable, timeout))

    def _wait_readable(self, timeout: float | None) -> bool:
        sock = self._channel.sock
        if self._channel.encrypted and sock.pending():
            return True  # decrypted already: the fd will not say so
        try:
            sock.wait_readable(None if timeout is None else time.monotonic() + timeout)
        except TimeoutError:
            return False
        return True


class GreenThread:
    """The part of threading.Thread that simple-websocket uses, as a
    greenlet of the hub."""

    _count = itertools.count(1)

    def __init__(self, target: Callable[..., Any] | None = None, args: tuple = (),
                 kwargs: dict[str, Any] | None = None, name: str | None = None, daemon: bool | None = None) -> None:
        self._target = target
        self._args = args
        self._kwargs = kwargs or {}
        self.name = name or f"GreenThread-{next(self._count)} (_thread)"
        self.daemon = daemon
        self._glet: Greenlet | None = None

    def start(self) -> None:
        if self._target is not None:
            self._glet = spawn(self._target, *self._args, **self._kwargs)

    def join(self, timeout: float | None = None) -> None:
        if self._glet is not None:
            self._glet.join(timeout)

    def is_alive(self) -> bool:
        return self._glet is not None and not self._glet.dead


class CooperativeSelector:
    """A selector over one RawSocket, waiting on the hub."""

    def __init__(self) -> None:
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not isinstance(fileobj, RawSocket) or events != selectors.EVENT_READ:
            raise ValueError("CooperativeSelector waits to read from lichen's werkzeug.socket only")
        key = selectors.SelectorKey(fileobj, fileobj.fileno(), events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        for sock, key in self._keys.items():
            if sock.wait_readable(timeout):
                return [(key, selectors.EVENT_READ)]
        return []

    def close(self) -> None:
        self._keys.clear()


def simple_websocket_options() -> dict[str, Any]:
    """Keyword arguments for simple_websocket.Server that keep it on the
    hub: its reader becomes a greenlet. Flask-Sock:
    `app.config["SOCK_SERVER_OPTIONS"] = simple_websocket_options()`."""
    return {"thread_class": GreenThread, "event_class": Event, "selector_class": CooperativeSelector}
