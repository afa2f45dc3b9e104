# lichen.websocket.registry: the websockets of one server, and their chores.
#
# Strategy: a server that accepts websockets has one Registry. It holds what
# every websocket shares (the settings, the server's receive buffer, the
# Date and Server fields, the portal for apps in threads) and the set of open
# websockets. One timer sweeps that set a few times per ping interval and
# finds the websockets that are due a ping, silent past the idle timeout, or
# whose close went unanswered past the close timeout; a work queue sends the
# pings and closes from worker greenlets, so a websocket costs no timer and
# no greenlet of its own for these deadlines, and a client that reads slowly
# holds up only its own chore. On a graceful stop every open websocket is
# sent 1001 (going away); the apps see the client's answer as receive() ->
# None and return, and the server's stop waits for them as for any request.
from __future__ import annotations

import time
from typing import Any, Callable

from lichen.hub import WorkQueue, get_hub
from lichen.loop import Timer
from lichen.server import peer_text
from lichen.threadpool import Portal
from lichen.websocket.compat import RawSocket
from lichen.websocket.connection import CLOSING, OPEN, WebSocket
from lichen.websocket.handshake import Handshake

__all__ = ["Registry"]

_PING, _IDLE, _UNANSWERED, _AWAY = range(4)


class Registry:
    """The open websockets of one server (`server` gives the settings, the
    shared receive buffer, date(), server_header_bytes and log_error)."""

    def __init__(self, server: Any) -> None:
        st = server.settings
        self.max_message: int = st.websocket_max_message
        self.ping_interval: float = st.websocket_ping_interval
        self.idle_timeout: float = st.websocket_idle_timeout
        self.close_timeout: float = st.websocket_close_timeout
        self.compression: bool = st.websocket_compression
        self.write_timeout: float = st.write_timeout
        self.buffer = server.recv_buffer
        self.date: Callable[[], bytes] = server.date
        self.server_header: bytes | None = server.server_header_bytes
        self.log_error: Callable[..., None] = server.log_error
        self.hub = get_hub()
        self.hub_ident = self.hub.thread_ident
        self.portal = Portal(self.hub)
        self.open: dict[WebSocket, None] = {}
        self._chores: WorkQueue[tuple[int, WebSocket]] = WorkQueue(self._chore, max_idle=4)
        self._sweeper: Timer | None = None

    def open_websocket(self, channel: Any, handshake: Handshake, environ: dict[str, Any], trailing: bytes,
                       on_switch: Callable[[int], None]) -> WebSocket:
        """A websocket for a valid handshake, put in `environ` for the app
        (with the raw socket as werkzeug.socket, for libraries that speak
        WebSocket themselves)."""
        ws = WebSocket(self, channel, handshake, environ, trailing, on_switch)
        environ["wsgi.websocket"] = ws
        environ["werkzeug.socket"] = RawSocket(ws, channel, self)
        self.open[ws] = None
        if self._sweeper is None:
            self._start_sweep()
        return ws

    def forget(self, ws: WebSocket) -> None:
        """`ws` is finished (WebSocket.finish)."""
        self.open.pop(ws, None)

    # The sweep ---------------------------------------------------------------------
    def _start_sweep(self) -> None:
        deadlines = [t for t in (self.ping_interval, self.idle_timeout, self.close_timeout) if t > 0]
        period = min(max(min(deadlines) / 4, 0.05), 1.0)
        timer = self._sweeper = Timer(self.hub.loop)
        timer.unref()  # the sweep alone must not keep the loop alive
        timer.callback = self._sweep
        timer.start(period, period)

    def _sweep(self, _flags: int) -> None:
        # Runs in the hub: decides only; the chores do the writing.
        now = time.monotonic()
        ping, idle, close = self.ping_interval, self.idle_timeout, self.close_timeout
        put = self._chores.put
        for ws in self.open:
            state = ws.state
            if state == OPEN:
                silent = now - ws.last_seen
                if idle and silent >= idle:
                    if ws.input_waiting():
                        ws.last_seen = now  # the client spoke; the app just has not read it yet
                        continue
                    ws.last_seen = float("inf")  # (queued once)
                    put((_IDLE, ws))
                elif ping and silent >= ping and not ws.pinged:
                    ws.pinged = True
                    put((_PING, ws))
            elif state == CLOSING and now - ws.closing_since >= close and ws.closing_since:
                ws.closing_since = 0.0  # (queued once)
                put((_UNANSWERED, ws))

    def _chore(self, item: tuple[int, WebSocket]) -> None:
        kind, ws = item
        if kind == _PING:
            ws.ping()
        elif kind == _AWAY:
            ws.close(1001, "the server is shutting down")
        elif kind == _IDLE:
            ws.expire(1011, f"no frame from the client for {self.idle_timeout:g} s")
        else:
            ws.expire(1011, f"the client did not answer the close within {self.close_timeout:g} s")

    # Stopping ------------------------------------------------------------------------
    def going_away(self) -> None:
        """The server is stopping: 1001 to every open websocket."""
        for ws in list(self.open):
            if ws.state == OPEN:
                self._chores.put((_AWAY, ws))

    def close(self) -> None:
        """The server stopped: no more sweeps or chores."""
        if self._sweeper is not None:
            self._sweeper.close()
            self._sweeper = None
        self._chores.close()
