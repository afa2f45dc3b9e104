# lichen.channel: one accepted connection, as the stream server keeps it.
#
# Strategy: a channel is what a protocol is handed each time its connection is
# ready: the cooperative socket (plain, or TLS once the preamble has run), the
# peer's address, and where the connection stands. It is busy while a worker
# greenlet serves it, parked while only its read watcher waits for the client
# (no greenlet, no timer: the server's idle sweep finds it in an ordered
# dict), or closed. A protocol keeps no state of its own between two
# readiness calls, so a parked connection costs the channel, its socket and
# one watcher. Bytes that only fill time (empty lines before an HTTP request,
# say) do not make a channel active: the protocol says when real work starts,
# and only then does the idle clock stop.
from __future__ import annotations

import time
from typing import Any

__all__ = ["Channel", "LINGER_TIME", "LINGER_QUIET", "LINGER_BYTES"]

# Lingering close: how long, how quietly, and how much is read and thrown away
# from a client that is still sending when the server closes.
LINGER_TIME = 2.0
LINGER_QUIET = 0.5
LINGER_BYTES = 64 << 20


class Channel:
    """One client connection of a StreamServer.

    `sock` has lichen.socket's deadline surface; `peer` is the client's
    address (the PROXY protocol's, when one was sent). `fresh` stays True
    until the protocol first calls `active()`."""

    __slots__ = ("server", "sock", "peer", "opened", "busy", "closed", "worker", "fresh", "encrypted",
                 "preamble_done", "_ready", "__weakref__")

    def __init__(self, server: Any, sock: Any, peer: Any, preamble_done: bool) -> None:
        self.server = server
        self._ready = server.ready  # (bound once: a parked channel's wake-up is a hot path)
        self.sock = sock
        self.peer = peer
        self.opened = time.monotonic()
        self.busy = True
        self.closed = False
        self.worker: Any = None   # the greenlet serving it, while busy
        self.fresh = True
        self.encrypted = sock.encrypted
        self.preamble_done = preamble_done

    def park(self) -> None:
        """Wait for the client without a greenlet: the server serves the
        channel again once it is readable, or closes it when it stays idle
        for the idle timeout. An idle clock already running (the client only
        filled time since) keeps running."""
        self.busy = False
        self.worker = None
        self.sock.park(self._readable)
        self.server.idle.setdefault(self, time.monotonic())

    def _readable(self, _flags: int) -> None:
        # Runs in the hub. The channel stays in the idle map until the
        # protocol calls active(): empty lines must not restart its clock.
        self.busy = True
        self._ready(self)

    def active(self) -> None:
        """The client has started real work: stop the idle clock."""
        self.fresh = False
        self.server.idle.pop(self, None)

    def has_pending_input(self) -> bool:
        """Whether bytes (or EOF) from the client are already readable."""
        return self.sock.has_pending_input()

    def close(self) -> None:
        """Close now (a worker blocked on the socket gets an error)."""
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
        finally:
            # Even when a signal handler's KeyboardInterrupt lands in the
            # middle: a channel closed but still counted would hold its slot
            # for good, and stop() would wait its whole timeout for it.
            srv.channel_closed(self)

    def linger_close(self) -> None:
        """Close a connection whose client may still be sending: half-close,
        then read and discard for a moment. Closing with unread input makes
        the kernel answer with a reset, which can destroy the response just
        sent before the client reads it."""
        if self.closed:
            return
        try:
            self.sock.linger_close(LINGER_TIME, LINGER_QUIET, LINGER_BYTES)
        finally:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "busy" if self.busy else "parked"
        return f"<Channel {self.peer!r} {state}>"
