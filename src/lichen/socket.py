# lichen.socket: a cooperative socket of lichen's own (nothing is patched).
#
# Strategy: wrap a non-blocking stdlib socket; every operation calls the
# system call first and blocks the greenlet on the hub only after EAGAIN
# (BlockingIOError), then retries. Each socket owns at most two reusable io
# watchers (one per direction, so one greenlet can read while another writes),
# created on first wait. `close()` wakes every greenlet waiting on the socket
# with an error at once, then stops the watchers before the fd is closed; a
# reused fd number gets new watchers, so it never wakes a stale waiter.
# Timeouts follow the stdlib: None blocks, 0.0 is non-blocking (BlockingIOError),
# a positive value raises TimeoutError per operation (sendall: in total).
#
# Servers use a second surface, with deadlines instead of timeouts: a
# deadline is a time.monotonic() instant shared by every wait of one phase
# (a TLS record that trickles in byte by byte must not earn a fresh timeout
# per byte), a write timeout is reset by progress only, reads can be tried
# without waiting, and an idle connection can park on its read watcher with
# a callback instead of a greenlet. The TLS socket gives the same surface,
# so server code has no TLS branches of its own.
from __future__ import annotations

import errno
import os
import socket as _stdlib
import time
from typing import Any

from lichen.hub import Hub, get_hub
from lichen.loop import READ, WRITE, Io, Timer
from lichen.resolver import getaddrinfo, gethostbyname, resolve_for
from lichen.sockfile import FileMethods

__all__ = [
    "socket", "socketpair", "create_connection", "create_server", "getaddrinfo",
    "gethostbyname", "fromfd", "AF_INET", "AF_INET6", "AF_UNIX", "SOCK_STREAM", "SOCK_DGRAM",
]

AF_INET = _stdlib.AF_INET
AF_INET6 = _stdlib.AF_INET6
AF_UNIX = getattr(_stdlib, "AF_UNIX", None)
SOCK_STREAM = _stdlib.SOCK_STREAM
SOCK_DGRAM = _stdlib.SOCK_DGRAM
_GLOBAL_DEFAULT_TIMEOUT: Any = _stdlib._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]


def _closed_error() -> OSError:
    return OSError(errno.EBADF, "socket was closed while a greenlet was waiting on it")


class socket(FileMethods):
    """A cooperative socket with the stdlib socket's interface.

    Blocking calls block only the calling greenlet. Create it like a stdlib
    socket, or wrap an existing one with `socket(sock=stdlib_socket)`.
    `raw` is the non-blocking stdlib socket underneath (an ssl.SSLSocket
    under TLS), for a caller that tries an operation before it waits; it is
    a plain attribute (read on hot paths), never to be assigned."""

    __slots__ = ("raw", "_hub", "_rio", "_wio", "_timer", "_timeout", "_io_refs", "_closed", "__weakref__")

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1,
                 fileno: int | None = None, *, sock: _stdlib.socket | None = None) -> None:
        if sock is None:
            sock = _stdlib.socket(family, type, proto, fileno)
        if sock.gettimeout() != 0.0:  # (accepted sockets already are non-blocking: spare the ioctl)
            sock.setblocking(False)
        self.raw = sock
        self._hub: Hub = get_hub()
        self._rio: Io | None = None
        self._wio: Io | None = None
        self._timer: Timer | None = None
        self._timeout: float | None = _stdlib.getdefaulttimeout()
        self._io_refs = 0
        self._closed = False

    # Waiting ----------------------------------------------------------------
    def _wait(self, events: int, timeout: float | None = _GLOBAL_DEFAULT_TIMEOUT) -> None:
        """Block until ready for `events`; raise TimeoutError or the closed error."""
        if timeout is _GLOBAL_DEFAULT_TIMEOUT:
            timeout = self._timeout
            if timeout == 0.0:
                raise BlockingIOError(errno.EAGAIN, "operation would block (non-blocking socket)")
        if self._closed and self._io_refs <= 0:
            raise _closed_error()
        if self._hub.loop.destroyed:
            self._rebind_hub()
        if events == READ:
            w = self._rio
            if w is None:
                w = self._rio = Io(self._hub.loop, self.raw.fileno(), READ)
        else:
            w = self._wio
            if w is None:
                w = self._wio = Io(self._hub.loop, self.raw.fileno(), WRITE)
        if w.active:
            raise RuntimeError(f"another greenlet is already waiting to {'read from' if events == READ else 'write to'} this socket")
        if timeout is None:
            self._hub.wait_io(w, events)
            return
        timer = self._timer
        if timer is None:
            timer = self._timer = Timer(self._hub.loop)
        if not self._hub.wait_io(w, events, timeout, timer):
            raise TimeoutError("timed out")

    def _rebind_hub(self) -> None:
        """The hub's loop is gone (this is a forked child, or its thread
        ended): forget the old watchers and use this thread's hub."""
        for w in (self._rio, self._wio, self._timer):
            if w is not None:
                w.close()  # no C call: the loop is destroyed
        self._rio = self._wio = None
        self._timer = None
        self._hub = get_hub()

    def _wait_read(self) -> None:
        self._wait(READ)

    def _wait_write(self) -> None:
        self._wait(WRITE)

    # Deadlines (the server surface) -------------------------------------------
    def wait_readable(self, deadline: float | None) -> None:
        """Block until readable; TimeoutError at `deadline` (a
        time.monotonic() instant; None: no deadline), OSError(EBADF) if the
        socket is closed meanwhile."""
        self._wait(READ, _left(deadline))

    def wait_writable(self, deadline: float | None) -> None:
        """Block until writable; TimeoutError at `deadline`."""
        self._wait(WRITE, _left(deadline))

    def recv_into_nowait(self, buffer: Any, nbytes: int = 0) -> int | None:
        """Read what is there without waiting: the count (0 at EOF or
        after a reset), or None when nothing has arrived yet."""
        try:
            return self.raw.recv_into(buffer, nbytes)
        except BlockingIOError:
            return None
        except (ConnectionResetError, ConnectionAbortedError):
            return 0

    def recv_into_by(self, buffer: Any, deadline: float | None, nbytes: int = 0) -> int:
        """Read at least one byte (0 at EOF or after a reset); every wait
        shares `deadline` (TimeoutError)."""
        while True:
            n = self.recv_into_nowait(buffer, nbytes)
            if n is not None:
                return n
            self.wait_readable(deadline)

    def has_pending_input(self) -> bool:
        """Whether bytes (or EOF) are readable right now."""
        try:
            self.raw.recv(1, _stdlib.MSG_PEEK)  # b"" at EOF: news as well
            return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # an error is news too: reading would report it

    def peek(self, size: int) -> bytes:
        """Up to `size` bytes that are already here, left unread (b"" when
        none are here yet, or at EOF: tell them apart with has_pending_input)."""
        try:
            return self.raw.recv(size, _stdlib.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return b""

    def send_all_by(self, data: Any, write_timeout: float, flags: int = 0) -> None:
        """Send all of `data`; TimeoutError when the peer takes nothing for
        `write_timeout` seconds (progress restarts the clock: a slow reader is
        served, one that stopped reading is not)."""
        sock = self.raw
        try:
            sent = sock.send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent == len(data) and type(data) is bytes:
            return
        view = memoryview(data).cast("B")
        deadline = time.monotonic() + write_timeout
        while sent < len(view):
            self.wait_writable(deadline)
            try:
                n = sock.send(view[sent:], flags)
            except BlockingIOError:
                continue
            if n:
                sent += n
                deadline = time.monotonic() + write_timeout

    def sendfile_by(self, fd: int, offset: int, count: int, write_timeout: float) -> int:
        """os.sendfile of `count` bytes of `fd` from `offset`, with the
        progress-reset write timeout of send_all_by; returns the bytes sent
        (fewer if the file is shorter)."""
        sockfd = self.raw.fileno()
        total = 0
        deadline = time.monotonic() + write_timeout
        while total < count:
            try:
                n = os.sendfile(sockfd, fd, offset + total, count - total)
            except BlockingIOError:
                self.wait_writable(deadline)
                continue
            if n == 0:
                break
            total += n
            deadline = time.monotonic() + write_timeout
        return total

    def handshake_by(self, deadline: float | None) -> None:
        """Complete the TLS handshake by `deadline` (nothing to do here)."""

    @property
    def encrypted(self) -> bool:
        """Whether bytes go through TLS (sendfile cannot be used then)."""
        return False

    def park(self, callback: Any) -> None:
        """Wait for readability without a greenlet: `callback(flags)` runs
        in the hub once the socket is readable (once: park again for more).
        An idle keep-alive connection costs just this."""
        w = self._rio
        if w is None:
            w = self._rio = Io(self._hub.loop, self.raw.fileno(), READ)
        w.callback = callback
        w.start(READ)

    def unpark(self) -> None:
        """Cancel park() (nothing happens if it already fired)."""
        w = self._rio
        if w is not None and w.waiter is None:
            w.stop()
            w.callback = None

    def linger_close(self, seconds: float, quiet: float, budget: int) -> None:
        """Close a socket whose peer may still be sending: half-close, then
        read and discard for up to `seconds` (at most `quiet` seconds of
        silence, `budget` bytes) before closing. Closing with unread input
        makes the kernel send a reset, which can destroy the response the
        peer has not read yet."""
        try:
            self._half_close()
            buf = _DISCARD
            deadline = time.monotonic() + seconds
            while budget > 0:
                now = time.monotonic()
                if now >= deadline:
                    break
                n = self.recv_into_by(buf, min(deadline, now + quiet))
                if not n:
                    break
                budget -= n
        except (OSError, TimeoutError):
            pass
        finally:
            self.close()

    def _half_close(self) -> None:
        self.raw.shutdown(_stdlib.SHUT_WR)

    # Reading ----------------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        sock = self.raw
        while True:
            try:
                return sock.recv(bufsize, flags)
            except BlockingIOError:
                self._wait_read()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        sock = self.raw
        while True:
            try:
                return sock.recv_into(buffer, nbytes, flags)
            except BlockingIOError:
                self._wait_read()

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        while True:
            try:
                return self.raw.recvfrom(bufsize, flags)
            except BlockingIOError:
                self._wait_read()

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        while True:
            try:
                return self.raw.recvfrom_into(buffer, nbytes, flags)
            except BlockingIOError:
                self._wait_read()

    # Writing ----------------------------------------------------------------
    def send(self, data: Any, flags: int = 0) -> int:
        sock = self.raw
        while True:
            try:
                return sock.send(data, flags)
            except BlockingIOError:
                self._wait_write()

    def sendto(self, data: Any, *args: Any) -> int:
        while True:
            try:
                return self.raw.sendto(data, *args)
            except BlockingIOError:
                self._wait_write()

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of `data`; a timeout bounds the whole call, as in the stdlib."""
        sock = self.raw
        try:
            sent = sock.send(data, flags)
        except BlockingIOError:
            sent = 0
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else None
        total = len(view) if view is not None else len(data)
        if sent >= total:
            return
        if view is None:
            view = memoryview(data)
        timeout = self._timeout
        deadline = None if not timeout else time.monotonic() + timeout
        while sent < total:
            if deadline is None:
                self._wait(WRITE)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out")
                self._wait(WRITE, left)
            try:
                sent += sock.send(view[sent:], flags)
            except BlockingIOError:
                pass

    # Connections ------------------------------------------------------------
    def accept(self) -> tuple[socket, Any]:
        sock = self.raw
        while True:
            try:
                conn, addr = sock.accept()
                break
            except BlockingIOError:
                self._wait_read()
        return socket(sock=conn), addr

    def connect(self, address: Any) -> None:
        err = self.connect_ex(address)
        if err:
            raise OSError(err, os.strerror(err))

    def connect_ex(self, address: Any) -> int:
        """Connect; return 0 or an errno (a timeout raises TimeoutError, as
        in the stdlib)."""
        if self._closed:
            return errno.EBADF
        address = resolve_for(self.raw, address)
        sock = self.raw
        err = sock.connect_ex(address)
        if err in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EAGAIN):
            if self._timeout == 0.0:
                return err
            self._wait(WRITE)
            err = sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_ERROR)
        return err

    def bind(self, address: Any) -> None:
        self.raw.bind(address)

    def listen(self, backlog: int = 128) -> None:
        self.raw.listen(backlog)

    def shutdown(self, how: int) -> None:
        self.raw.shutdown(how)

    # Closing ----------------------------------------------------------------
    def _cancel_waiters(self) -> None:
        hub = self._hub
        for w in (self._rio, self._wio):
            if w is not None:
                if w.active:
                    hub.cancel_wait(w, _closed_error())
                w.close()
        self._rio = self._wio = None
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def close(self) -> None:
        """Close the socket; greenlets blocked on it get OSError(EBADF) now.
        Files from makefile() keep the descriptor open until they close, as
        with the stdlib."""
        if self._closed:
            return
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        if not self._hub.loop.destroyed:
            self._cancel_waiters()
        self.raw.close()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._real_close()

    def detach(self) -> int:
        """Release the fd without closing it (waiters are woken first)."""
        self._closed = True
        if not self._hub.loop.destroyed:
            self._cancel_waiters()
        return self.raw.detach()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # A socket dropped without close(): release the watchers' hold on the loop.
        try:
            if not self._closed and not self._hub.loop.destroyed:
                for w in (self._rio, self._wio, self._timer):
                    if w is not None and not w.active:
                        w.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    # Options and plain delegation --------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def fileno(self) -> int:
        return self.raw.fileno()

    def getsockname(self) -> Any:
        return self.raw.getsockname()

    def getpeername(self) -> Any:
        return self.raw.getpeername()

    def setsockopt(self, *args: Any) -> None:
        self.raw.setsockopt(*args)

    def getsockopt(self, *args: Any) -> Any:
        return self.raw.getsockopt(*args)

    @property
    def family(self) -> int:
        return self.raw.family

    @property
    def type(self) -> int:
        return self.raw.type

    @property
    def proto(self) -> int:
        return self.raw.proto

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self.raw.fileno()}"
        return f"<lichen.socket {state} family={self.raw.family!r} timeout={self._timeout}>"


# Helpers ------------------------------------------------------------------------
# What a lingering close reads is thrown away: every socket may read into
# this one buffer (its content never matters), rather than each lingering
# connection holding 64 KiB of its own.
_DISCARD = bytearray(65536)


def _left(deadline: float | None) -> float | None:
    """Seconds until a deadline (TimeoutError once it has passed)."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def socketpair(family: int | None = None, type: int = SOCK_STREAM, proto: int = 0) -> tuple[socket, socket]:
    """A connected pair of cooperative sockets."""
    if family is None:
        a, b = _stdlib.socketpair(type=type, proto=proto)
    else:
        a, b = _stdlib.socketpair(family, type, proto)
    return socket(sock=a), socket(sock=b)


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    return socket(sock=_stdlib.fromfd(fd, family, type, proto))


def create_connection(address: tuple[str, int], timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
                      source_address: Any = None) -> socket:
    """Connect to `address`, trying each resolved address in turn."""
    host, port = address
    errors: list[BaseException] = []
    for family, type_, proto, _canon, sa in getaddrinfo(host, port, 0, SOCK_STREAM):
        sock = None
        try:
            sock = socket(family, type_, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            return sock
        except OSError as e:
            errors.append(e)
            if sock is not None:
                sock.close()
    if errors:
        raise errors[0]
    raise OSError(f"getaddrinfo returned no address for {host!r}")


def create_server(address: Any, *, family: int = AF_INET, backlog: int | None = None,
                  reuse_port: bool = False, dualstack_ipv6: bool = False) -> socket:
    """A listening cooperative socket, as stdlib socket.create_server."""
    sock = _stdlib.create_server(address, family=family, backlog=backlog,
                                 reuse_port=reuse_port, dualstack_ipv6=dualstack_ipv6)
    return socket(sock=sock)

