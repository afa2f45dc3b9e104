# lichen.server: StreamServer, the owner of every connection below the
# protocol: listening sockets, the accept loop, the connection cap, the
# PROXY preamble and the TLS handshake, idle connections parked on their read
# watchers and swept when they stay idle, dispatch of ready connections to
# worker greenlets, lingering close and graceful stop. It knows nothing of
# HTTP: a protocol is one callable, `protocol(channel)`, run in a worker each
# time a connection is ready, which returns after parking or closing it.
#
# Strategy: one accept greenlet per listening socket accepts until EAGAIN and
# waits on the listener's read watcher. At the connection cap it waits on an
# Event instead of accepting (no busy loop); on EMFILE/ENFILE it logs once per
# episode and backs off exponentially. Connections that become ready in one
# loop iteration go to one worker greenlet in turn (lichen.hub's work queue),
# so a busy server switches once per iteration, not once per request. The
# idle sweep is one timer over a dict kept in idle order. gevent's style,
# `handle(sock, address)` run to the end in a greenlet, is a protocol too,
# and so is the rest of gevent's server surface: **ssl_args, spawn as an int
# or a pool (its size is the cap), stop_timeout, start_accepting/
# stop_accepting (the accept loop waits at a gate; the listeners stay open),
# and start() again after stop() (on the same address).
from __future__ import annotations

import errno
import logging
import os
import socket as _stdlib
import ssl as _ssl
import time
from typing import Any, Callable

from lichen import socket as lsocket
from lichen.channel import Channel
from lichen.fdlimit import connection_cap, nofile_limit, raise_nofile_limit
from lichen.hub import Greenlet, GreenletExit, WorkQueue, getcurrent, get_hub, sleep, spawn, throw_if_alive
from lichen.listeners import make_listener, parse_address, rebind_spec  # (the first two re-exported: they lived here)
from lichen.loop import Timer
from lichen.preamble import read_proxy_header
from lichen.proxy import AllowList, ProxyProtocolError
from lichen.settings import Settings, build
from lichen.sync import Event
from lichen.tls import SSL_ARGS, context_from_ssl_args

__all__ = ["StreamServer", "Channel", "parse_address", "make_listener", "RECV_SIZE"]

log = logging.getLogger("lichen.error")
RECV_SIZE = 65536
# stop(): a connection accepted just before it usually sends its first bytes
# within microseconds; it gets this long before it is cut.
FRESH_GRACE = 1.0

_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_TRANSIENT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.ENETDOWN,
                     errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH,
                     errno.EOPNOTSUPP, errno.ENETUNREACH}


class StreamServer:
    """A TCP/unix stream server; what to do with a ready connection is the
    `protocol`.

    `listener` is `(host, port)` (`''` = all interfaces, IPv4 and IPv6 where
    available), `'host:port'`, `'[::1]:port'`, `'unix:/path'`, a bound socket,
    or a list of those. Without a protocol of its own the server runs
    `handle(sock, address)` (pass `handle=` or override it) to the end for
    each connection, in a greenlet, with a cooperative socket, as gevent's
    StreamServer does.

    `spawn` caps the connections served at once: an int; an object with a
    `spawn` method (a gevent-style pool such as lichen.sync.Pool: its `size`
    is the cap, and `pool` is that object; connections are not run in it);
    'default', None or a spawning function: the `max_connections` setting.
    gevent's `**ssl_args` (ssl_context, or certfile with keyfile, ca_certs,
    cert_reqs, ssl_version, ciphers; see lichen.tls.context_from_ssl_args)
    make it a TLS server; every other keyword is a setting
    (`lichen.settings.Settings`), or `settings=` gives them all."""

    #: gevent's: how long stop() without a timeout lets connections finish.
    #: A server given lichen's graceful_timeout (as a keyword, or in
    #: `settings=` as the lichen command gives it) uses that instead.
    stop_timeout: float = 1.0
    #: What each accepted connection becomes (a protocol may extend Channel).
    channel_class: type[Channel] = Channel

    def __init__(self, listener: Any, handle: Callable[..., Any] | None = None, backlog: int | None = None,
                 spawn: Any = "default", *, settings: Settings | None = None, **kwargs: Any) -> None:
        # gevent's TLS keywords are taken out first: never mistaken for settings.
        ssl_args = {k: kwargs.pop(k) for k in SSL_ARGS & kwargs.keys()}
        changes = dict(kwargs)
        if backlog is not None:
            changes["backlog"] = backlog
        cap, self.pool = _spawn_cap(spawn, self)
        if cap is not None:
            changes.setdefault("max_connections", cap)
        self.settings = build(settings, **changes)
        if settings is not None or "graceful_timeout" in kwargs:
            self.stop_timeout = self.settings.graceful_timeout
        if handle is not None:
            self.handle = handle  # type: ignore[method-assign]
        self.ssl_context: _ssl.SSLContext | None = context_from_ssl_args(ssl_args)
        st = self.settings
        self.proxy_allow = AllowList(st.proxy_allow_ips) if st.proxy_protocol else None
        self.protocol: Callable[[Channel], None] = self._run_handle
        self._listener_specs = listener if isinstance(listener, list) else [listener]
        self._last_address: Any = None  # where the first listener was, once stopped
        self.sockets: list[_stdlib.socket] = []
        self._acceptors: list[Greenlet] = []
        self._lsocks: list[lsocket.socket] = []
        self.connections: set[Channel] = set()
        self.idle: dict[Channel, float] = {}  # parked channels, oldest first
        # Protocols read into this buffer and copy out only what they keep
        # (no 64 KiB allocation per read); used by this server's hub thread.
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        self._hub = get_hub()
        self._queue = WorkQueue(self._serve)
        # ready(channel): queue a channel whose client has sent something (a
        # parked channel's watcher calls it) for a worker greenlet.
        self.ready: Callable[[Channel], None] = self._queue.put
        self._sweeper: Timer | None = None
        self._slot_free = Event()
        self._accepting = Event()  # the gate of the accept loops (stop_accepting clears it)
        self._drained = Event()
        self._stopped_event = Event()  # set by close(): serve_forever() returns
        self._stop_done = Event()
        self._draining = False  # a stop() is waiting for connections
        self._stopped = False  # stop() has finished (start() may start again)
        self.started = False
        self.stopping = False
        # Connections served at once: max_connections, or what the file
        # descriptor limit allows (decided when the server starts).
        self.connection_cap = self.settings.max_connections or connection_cap(nofile_limit())

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
        """Bind and start accepting in the background (returns at once). A
        stopped server starts again on the address it had."""
        if self.started:
            return
        if self._draining:  # (a stop() in progress ends first)
            self._stop_done.wait()
        if self._stopped:  # a fresh work queue: stop() closed the old one
            self._queue = WorkQueue(self._serve)
            self.ready = self._queue.put
            self._stopped = False
        self.stopping = False  # (after close() alone, the connections and the queue are still ours)
        self.init_socket()
        self.connection_cap = self._connection_cap()
        self.started = True
        self._stopped_event.clear()
        self._accepting.set()
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
        period = min(1.0, max(self.settings.keepalive_timeout / 4, 0.05))
        if self._sweeper is not None:  # (still sweeping since a close())
            self._sweeper.close()
        self._sweeper = Timer(self._hub.loop)
        self._sweeper.unref()  # the sweep alone must not keep the loop alive
        self._sweeper.callback = self._sweep_idle
        self._sweeper.start(period, period)

    def _connection_cap(self) -> int:
        # The file-descriptor limit decides how many connections can be open
        # at all: raise it first (once per process), then fit the cap to it.
        st = self.settings
        limit = raise_nofile_limit() if st.raise_fd_limit else nofile_limit()
        fits = connection_cap(limit)
        if st.max_connections is None:
            return fits
        if st.max_connections > fits:
            log.warning("max_connections=%d is more than the file-descriptor limit %s allows (about %d); "
                        "accept() will fail with EMFILE before the cap is reached", st.max_connections,
                        limit, fits)
        return st.max_connections

    def serve_forever(self, stop_timeout: float | None = None) -> None:
        """Start (if needed) and block this greenlet until close() or stop()
        is called (or an exception such as KeyboardInterrupt arrives), then
        stop, letting requests in flight finish for up to `stop_timeout`
        seconds (default: the `stop_timeout` attribute)."""
        if not self.started:
            self.start()
        try:
            self._stopped_event.wait()
        finally:
            self.stop(stop_timeout)

    def stop(self, timeout: float | None = None) -> None:
        """close(), then let busy connections finish for up to `timeout`
        seconds (default: `stop_timeout`), then close the rest. Returns when
        the server is stopped (a second caller waits for the first). Called
        from a request (the application's greenlet), that request is not
        waited for: it finishes after stop() returns, and its connection
        closes."""
        if self._stopped:
            return
        if self._draining:
            self._stop_done.wait()
            return
        if timeout is None:
            timeout = self.stop_timeout
        self._draining = True
        self._stop_done.clear()
        try:
            self.close()
            self._drain_connections(timeout)
        finally:
            self._draining = False
            self._stopped = True
            self._stop_done.set()

    def close(self) -> None:
        """Close the listeners and stop accepting, at once (gevent's
        close()); serve_forever() wakes and stops. Idle keep-alive
        connections are closed; requests in flight finish, and their
        connections close after the response (stop() waits for them, up to
        its timeout)."""
        self.stopping = True
        self._close_listeners()
        self.started = False
        self._close_idle(keep_fresh=True)
        self._stopped_event.set()

    @property
    def closed(self) -> bool:
        """No listener is open: not started yet (nor bound by init_socket or
        `address`), or stopped (as gevent's `closed`)."""
        return not self.sockets

    def stop_accepting(self) -> None:
        """Accept no more connections until start_accepting(); the listeners
        stay open, so clients that connect meanwhile wait in the listen
        backlog. Connections already accepted are served as before."""
        self._accepting.clear()

    def start_accepting(self) -> None:
        """Accept again after stop_accepting() (or start() the server)."""
        if not self.started:
            self.start()
        else:
            self._accepting.set()

    def full(self) -> bool:
        """Whether the connection cap is reached (accepting waits)."""
        return len(self.connections) >= self.connection_cap

    def __enter__(self) -> StreamServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def now(self) -> float:
        """The clock of deadlines and idle times (time.monotonic)."""
        return time.monotonic()

    def log_error(self, msg: str, *args: Any, level: int = logging.ERROR) -> None:
        """Log a line about a connection (subclasses send it elsewhere)."""
        log.log(level, msg, *args)

    def _close_listeners(self) -> None:
        for g in self._acceptors:
            g.kill(block=False)
        self._acceptors = []
        paths = [sock.getsockname() if sock.family == getattr(_stdlib, "AF_UNIX", None) else None
                 for sock in self.sockets]
        specs = self._listener_specs
        if self.sockets:  # what start() binds if it is called again, and `address` meanwhile
            bound = [sock.getsockname() for sock in self.sockets]
            self._last_address = bound[0]
            self._listener_specs = [rebind_spec(spec, name) for spec, name in zip(specs, bound)]
        for lsock in self._lsocks:
            # Stops its watchers (waking the acceptor) before the fd closes.
            # Not detach(): that would leave the stdlib socket without its fd,
            # so the close below would leak a still-listening descriptor.
            lsock.close()
        self._lsocks = []
        for sock, spec, path in zip(self.sockets, specs, paths):
            sock.close()
            if path and isinstance(spec, str) and spec.startswith("unix:"):
                try:
                    os.unlink(path)
                except OSError:
                    pass
        self.sockets = []

    def _drain_connections(self, timeout: float) -> None:
        if self._sweeper is not None:
            self._sweeper.close()
            self._sweeper = None
        deadline = self.now() + timeout
        fresh_until = self.now() + min(timeout, FRESH_GRACE)
        self._close_idle(keep_fresh=True)
        cur = getcurrent()
        # stop() called from a request: that one is not waited for (it is
        # waiting for us), nor closed under its feet; the driver closes its
        # connection after the response, as the server is stopping.
        mine = sum(1 for channel in self.connections if channel.worker is cur)
        while len(self.connections) > mine:
            left = deadline - self.now()
            if left <= 0:
                break
            self._drained.clear()
            self._drained.wait(min(left, 0.05))
            self._close_idle(keep_fresh=self.now() < fresh_until)
        for channel in list(self.connections):
            worker = channel.worker
            if worker is cur:
                continue
            channel.close()
            if worker is not None and not worker.dead:
                self._hub.run_callback(throw_if_alive, worker, GreenletExit())
        for channel in self._queue.close():  # (queued, never served: closed above already)
            channel.close()

    def _close_idle(self, keep_fresh: bool) -> None:
        """Close parked connections, except those with work on its way: one
        whose client already sent more, and (while `keep_fresh`) one that has
        not started anything yet. Those are served like work in flight."""
        for channel in list(self.idle):
            if channel.busy or (keep_fresh and channel.fresh) or channel.has_pending_input():
                continue
            channel.close()

    # Addresses -------------------------------------------------------------
    @property
    def address(self) -> Any:
        """The bound address of the first listener (port filled in); bound
        now if need be. A stopped server's is the address it had."""
        if not self.sockets:
            if self._last_address is not None:
                return self._last_address
            self.init_socket()
        return self.sockets[0].getsockname()

    @property
    def ssl_enabled(self) -> bool:
        """Whether connections are TLS (gevent's name)."""
        return self.ssl_context is not None

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
        tcp = raw.family in (_stdlib.AF_INET, _stdlib.AF_INET6)
        backoff = 0.0
        cap = self.connection_cap
        accepting = self._accepting
        while True:
            if not accepting.is_set():  # stop_accepting(): wait at the gate, the listener stays open
                accepting.wait()
                continue
            if len(self.connections) >= cap:
                self._slot_free.clear()
                self._slot_free.wait()
                continue
            try:
                sock, addr = raw.accept()
            except BlockingIOError:
                lsock.wait_readable(None)
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
            sock.setblocking(False)
            if tcp:
                sock.setsockopt(_stdlib.IPPROTO_TCP, _stdlib.TCP_NODELAY, 1)
            elif not addr:
                addr = ("", 0)  # a unix-socket peer has no address
            try:
                self._open(sock, addr)
            except Exception:
                log.exception("failed to start handling a connection from %s", addr)
                sock.close()

    def _open(self, sock: _stdlib.socket, peer: Any) -> None:
        # TLS is set up by the preamble, after a PROXY header if one comes.
        preamble = self.proxy_allow is not None or self.ssl_context is not None
        channel = self.channel_class(self, lsocket.socket(sock=sock), peer, not preamble)
        self.connections.add(channel)
        # Data usually follows the connect at once: read first, in a worker.
        self._queue.put(channel)

    @property
    def idle_workers(self) -> int:
        """Worker greenlets parked, waiting for connections to serve."""
        return self._queue.idle_workers

    def channel_closed(self, channel: Channel) -> None:
        """Take a closed channel off the books (Channel.close calls it)."""
        self.connections.discard(channel)
        self._slot_free.set()
        if not self.connections or self.stopping:
            self._drained.set()

    # Serving ---------------------------------------------------------------
    def _serve(self, channel: Channel) -> None:
        # Runs in a worker greenlet of the work queue.
        if channel.closed:
            return
        me = getcurrent()
        channel.worker = me
        try:
            if channel.preamble_done or self._preamble(channel):
                self.protocol(channel)
        except GreenletExit:
            channel.close()
            raise
        except (KeyboardInterrupt, SystemExit):
            channel.close()
            raise
        except BaseException:
            log.exception("connection handler failed for %s", channel.peer)
            channel.close()
        finally:
            if channel.worker is me:
                channel.worker = None

    def _preamble(self, channel: Channel) -> bool:
        """Once per connection, by one deadline from accept: the PROXY
        protocol header (its client address replaces the peer's), then the
        TLS handshake. False (and the channel closed) when either fails."""
        st = self.settings
        deadline = channel.opened + st.header_timeout
        if self.proxy_allow is not None:
            peer = channel.peer[0] if isinstance(channel.peer, tuple) else ""
            if peer not in self.proxy_allow:  # AllowList maps ::ffff:a.b.c.d itself
                return self._refuse(channel, "not allowed to send a PROXY protocol header", logging.WARNING)
            try:
                source, _dest = read_proxy_header(channel.sock, deadline)
            except ProxyProtocolError as e:
                return self._refuse(channel, str(e), logging.WARNING)
            except TimeoutError:
                return self._refuse(channel, f"no complete PROXY protocol header within {st.header_timeout:.1f} s",
                                    logging.INFO)
            except OSError:  # closed, reset, or closed under us by stop()
                channel.close()
                return False
            if source is not None:
                channel.peer = source
        if self.ssl_context is not None:
            from lichen.tls import wrap_socket

            channel.sock = wrap_socket(channel.sock, self.ssl_context, server_side=True,
                                       do_handshake_on_connect=False)
            channel.encrypted = True
            try:
                channel.sock.handshake_by(deadline)
            except TimeoutError:
                return self._refuse(channel, f"TLS handshake not complete within {st.header_timeout:.1f} s",
                                    logging.INFO)
            except OSError as e:  # (ssl.SSLError is an OSError)
                return self._refuse(channel, f"TLS handshake failed: {e}", logging.INFO)
        channel.preamble_done = True
        return True

    def _refuse(self, channel: Channel, why: str, level: int) -> bool:
        self.log_error("closing %s: %s", peer_text(channel.peer), why, level=level)
        channel.close()
        return False

    def _sweep_idle(self, _flags: int) -> None:
        idle = self.idle
        if not idle:
            return
        limit = self.now() - self.settings.keepalive_timeout
        expired = []
        for channel, since in idle.items():  # oldest first (insertion order)
            if since > limit:
                break
            if not channel.busy:  # (woken and queued: what it sent decides)
                expired.append(channel)
        for channel in expired:
            channel.close()

    def _run_handle(self, channel: Channel) -> None:
        """The protocol of a server without one: `handle(sock, address)`
        runs to its end, then the connection closes."""
        try:
            self.handle(channel.sock, channel.peer)
        finally:
            channel.close()

    def handle(self, sock: Any, address: Any) -> None:  # pragma: no cover - replaced by the user
        raise NotImplementedError("pass handle= to StreamServer or override handle()")

    def __repr__(self) -> str:
        where = self._listener_specs[0] if not self.sockets else self.address
        return f"<{type(self).__name__} {where!r} connections={len(self.connections)}>"


class ConnectionSlots:
    """`pool` of a server given `spawn=<int>`: gevent's pool, as a view of
    the connection cap (lichen runs no greenlet per connection)."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server

    @property
    def size(self) -> int:
        return self.server.connection_cap

    def __len__(self) -> int:
        return len(self.server.connections)

    def free_count(self) -> int:
        return max(self.size - len(self), 0)

    def full(self) -> bool:
        return self.server.full()


def _spawn_cap(spawn: Any, server: StreamServer) -> tuple[int | None, Any]:
    """(the connection cap, the `pool` attribute) for gevent's `spawn=`."""
    if isinstance(spawn, str):
        if spawn != "default":
            raise TypeError(f"spawn must be 'default', None, an int or a pool, not {spawn!r}")
        return None, None
    if spawn is None:
        return None, None
    if isinstance(spawn, int) and not isinstance(spawn, bool):
        if spawn < 1:
            raise ValueError(f"spawn: a connection cap must be >= 1, got {spawn}")
        return spawn, ConnectionSlots(server)
    if hasattr(spawn, "spawn"):  # a pool: its size caps, it runs nothing of ours
        size = getattr(spawn, "size", None)
        return (size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None), spawn
    if callable(spawn):  # gevent.spawn, spawn_raw: a greenlet per connection, no cap of its own
        return None, None
    raise TypeError(f"spawn must be 'default', None, an int or a pool, not {spawn!r}")


def peer_text(addr: Any) -> str:
    """A peer address for log lines: 'host:port', or what a unix peer has."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr) or "unix-socket peer"

