# lichen.server: StreamServer — listening sockets, the accept loop, the
# connection cap and graceful stop. It knows nothing about HTTP.
#
# Strategy: one accept greenlet per listening socket accepts until EAGAIN and
# waits on the listener's read watcher. At the connection cap it waits on an
# Event instead of accepting (no busy loop); on EMFILE/ENFILE it logs once per
# episode and backs off exponentially. Each accepted connection goes to
# `handle_connection`, which subclasses override (WSGIServer serves idle
# keep-alive connections without a greenlet); the default spawns `handle`.
from __future__ import annotations

import errno
import logging
import os
import socket as _stdlib
import ssl as _ssl
from typing import Any, Callable

from lichen import socket as lsocket
from lichen.hub import Greenlet, get_hub, sleep, spawn
from lichen.listeners import make_listener, parse_address  # re-exported: they lived here
from lichen.settings import Settings, build
from lichen.sync import Event, Pool

__all__ = ["StreamServer", "parse_address", "make_listener"]

log = logging.getLogger("lichen.error")

_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_TRANSIENT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.ENETDOWN,
                     errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH,
                     errno.EOPNOTSUPP, errno.ENETUNREACH}


class StreamServer:
    """A TCP/unix stream server: `handle(sock, address)` runs in a greenlet
    for each connection, with a cooperative `lichen.socket.socket`.

    `listener` is `(host, port)` (`''` = all interfaces, IPv4 and IPv6 where
    available), `'host:port'`, `'[::1]:port'`, `'unix:/path'`, a bound socket,
    or a list of those. `spawn` is 'default' (unbounded greenlets, capped by
    the `max_connections` setting), a `Pool`, or an int (pool size)."""

    def __init__(self, listener: Any, handle: Callable[..., Any] | None = None, backlog: int | None = None,
                 spawn: Any = "default", *, ssl_context: _ssl.SSLContext | None = None,
                 settings: Settings | None = None, **kwargs: Any) -> None:
        certfile = kwargs.pop("certfile", None)
        keyfile = kwargs.pop("keyfile", None)
        changes = dict(kwargs)
        if backlog is not None:
            changes["backlog"] = backlog
        if isinstance(spawn, Pool):
            if spawn.size is not None:
                changes.setdefault("max_connections", spawn.size)
        elif isinstance(spawn, int) and not isinstance(spawn, bool):
            changes.setdefault("max_connections", spawn)
            spawn = Pool(spawn)
        elif spawn not in ("default", None):
            raise TypeError(f"spawn must be 'default', a Pool or an int, not {spawn!r}")
        self.settings = build(settings, **changes)
        self._pool: Pool | None = spawn if isinstance(spawn, Pool) else None
        if handle is not None:
            self.handle = handle  # type: ignore[method-assign]
        if ssl_context is None and certfile:
            ssl_context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(certfile, keyfile)
        self.ssl_context = ssl_context
        self._listener_specs = listener if isinstance(listener, list) else [listener]
        self.sockets: list[_stdlib.socket] = []
        self._acceptors: list[Greenlet] = []
        self._lsocks: list[lsocket.socket] = []
        self.connections: set[Any] = set()
        self._slot_free = Event()
        self._stopped_event = Event()
        self.started = False
        self.closed = False
        self.stopping = False

    # Lifecycle ------------------------------------------------------------
    def init_socket(self) -> None:
        """Bind the listeners (done by start(); call it early to learn the port)."""
        if self.sockets:
            return
        socks = []
        try:
            for spec in self._listener_specs:
                socks.append(make_listener(spec, self.settings.backlog))
        except BaseException:
            for s in socks:
                if not any(s is spec or (isinstance(spec, lsocket.socket) and spec.raw is s)
                           for spec in self._listener_specs):
                    s.close()
            raise
        self.sockets = socks

    def start(self) -> None:
        """Bind and start accepting in the background (returns at once)."""
        if self.started:
            return
        if self.closed:
            raise RuntimeError("this server was closed; create a new one")
        self.init_socket()
        self.started = True
        self._stopped_event.clear()
        defer = getattr(_stdlib, "TCP_DEFER_ACCEPT", None)
        for sock in self.sockets:
            if defer is not None and self.settings.defer_accept and sock.family in (_stdlib.AF_INET,
                                                                                    _stdlib.AF_INET6):
                try:
                    sock.setsockopt(_stdlib.IPPROTO_TCP, defer, 1)  # seconds
                except OSError:
                    pass  # not a TCP socket after all, or not supported: accept normally
            lsock = lsocket.socket(sock=sock)
            self._lsocks.append(lsock)
            self._acceptors.append(spawn(self._accept_loop, lsock))

    def serve_forever(self, stop_timeout: float | None = None) -> None:
        """Start (if needed) and block this greenlet until stop() is called."""
        if not self.started:
            self.start()
        try:
            self._stopped_event.wait()
        finally:
            if self.started:
                self.stop(stop_timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting at once, then let connections finish for up to
        `timeout` seconds (default: the graceful_timeout setting) before they
        are closed."""
        if not self.started and self.closed:
            return
        if timeout is None:
            timeout = self.settings.graceful_timeout
        self.stopping = True
        self._close_listeners()
        self.started = False
        self.close_idle_and_drain(timeout)
        self.closed = True
        self._stopped_event.set()

    def close(self) -> None:
        """Stop accepting and close every connection now."""
        self.stop(0)

    def _close_listeners(self) -> None:
        for g in self._acceptors:
            g.kill(block=False)
        self._acceptors = []
        paths = [sock.getsockname() if sock.family == getattr(_stdlib, "AF_UNIX", None) else None
                 for sock in self.sockets]
        for lsock in self._lsocks:
            # Stops its watchers (waking the acceptor) before the fd closes.
            # Not detach(): that would leave the stdlib socket without its fd,
            # so the close below would leak a still-listening descriptor.
            lsock.close()
        self._lsocks = []
        for sock, spec, path in zip(self.sockets, self._listener_specs, paths):
            sock.close()
            if path and isinstance(spec, str) and spec.startswith("unix:"):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self.sockets = []

    def close_idle_and_drain(self, timeout: float) -> None:
        """Subclasses close idle connections at once and wait for busy ones;
        the base server waits for its handler greenlets, then kills them."""
        deadline = get_hub().loop.now() + timeout
        for conn in list(self.connections):
            if isinstance(conn, Greenlet):
                left = deadline - get_hub().loop.now()
                if left > 0:
                    conn.join(left)
        for conn in list(self.connections):
            if isinstance(conn, Greenlet):
                conn.kill(block=False)

    def __enter__(self) -> StreamServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Addresses -------------------------------------------------------------
    @property
    def address(self) -> Any:
        """The bound address of the first listener (port filled in)."""
        if not self.sockets:
            self.init_socket()
        return self.sockets[0].getsockname()

    @property
    def server_host(self) -> str:
        addr = self.address
        return addr[0] if isinstance(addr, tuple) else str(addr)

    @property
    def server_port(self) -> int | None:
        addr = self.address
        return addr[1] if isinstance(addr, tuple) else None

    # Accepting -------------------------------------------------------------
    def _accept_loop(self, lsock: lsocket.socket) -> None:
        raw = lsock.raw
        accept = raw._accept  # type: ignore[attr-defined]
        family, type_, proto = raw.family, raw.type, raw.proto
        tcp = family in (_stdlib.AF_INET, _stdlib.AF_INET6)
        backoff = 0.0
        cap = self.settings.max_connections
        while True:
            if len(self.connections) >= cap:
                self._slot_free.clear()
                self._slot_free.wait()
                continue
            try:
                fd, addr = accept()
            except BlockingIOError:
                lsock._wait_read()
                continue
            except OSError as e:
                if e.errno in _FD_EXHAUSTED:
                    if not backoff:
                        log.error("accept() failed: %s (out of file descriptors or memory); "
                                  "pausing new connections until some close", e)
                    backoff = min(backoff * 2 or self.settings.accept_backoff, 1.0)
                    sleep(backoff)
                    continue
                if e.errno in _ACCEPT_TRANSIENT:
                    continue
                raise
            if backoff:
                log.warning("accept() works again; new connections are accepted")
                backoff = 0.0
            sock = _stdlib.socket(family, type_, proto, fileno=fd)
            sock.setblocking(False)
            if tcp:
                sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)
            if family == getattr(_stdlib, "AF_UNIX", None) or not addr:
                addr = addr or ("", 0)
            try:
                self.handle_connection(sock, addr)
            except Exception:
                log.exception("failed to start handling a connection from %s", addr)
                sock.close()

    def _release_slot(self, conn: Any) -> None:
        self.connections.discard(conn)
        self._slot_free.set()

    def handle_connection(self, sock: _stdlib.socket, address: Any) -> None:
        """Default: run `handle(cooperative_socket, address)` in a greenlet."""
        csock: Any = lsocket.socket(sock=sock)
        if self.ssl_context is not None:
            from lichen.tls import wrap_socket

            csock = wrap_socket(csock, self.ssl_context, server_side=True, do_handshake_on_connect=False)
        if self._pool is not None:
            g = self._pool.spawn(self._run_handle, csock, address)
        else:
            g = spawn(self._run_handle, csock, address)
        self.connections.add(g)
        g.link(self._release_slot)

    def _run_handle(self, sock: Any, address: Any) -> None:
        try:
            self.handle(sock, address)
        finally:
            sock.close()

    def handle(self, sock: Any, address: Any) -> None:  # pragma: no cover - replaced by the user
        raise NotImplementedError("pass handle= to StreamServer or override handle()")

    def __repr__(self) -> str:
        where = self._listener_specs[0] if not self.sockets else self.address
        return f"<{type(self).__name__} {where!r} connections={len(self.connections)}>"


