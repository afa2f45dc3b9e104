# lichen.tls: TLS over lichen's cooperative socket.
#
# Strategy: the stdlib's ssl.SSLSocket does the TLS work over a non-blocking
# socket; each operation is tried first and, on SSLWantReadError or
# SSLWantWriteError, the greenlet waits for the direction OpenSSL asked for
# (a read may need to write during renegotiation, and the other way round),
# then retries. The handshake runs the same way, on connect/accept or lazily.
# The server surface of lichen.socket (deadlines shared by every wait of a
# phase, progress-reset write timeouts, reads tried without waiting, a
# lingering close) is given here too, so server code never asks which
# kind of socket it holds. Servers make their context from gevent's
# **ssl_args (context_from_ssl_args) or the command's options
# (server_context).
from __future__ import annotations

import select
import socket as _stdlib
import ssl
import time
from typing import Any, Callable

from lichen.loop import READ, WRITE
from lichen.socket import socket

__all__ = ["SSLSocket", "wrap_socket", "server_context", "context_from_ssl_args", "SSL_ARGS", "CERT_REQS"]


class SSLSocket(socket):
    """A cooperative TLS socket. Create it with `wrap_socket`."""

    __slots__ = ("_handshake_done", "server_side", "context")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_done = False
        self.server_side = bool(getattr(self.raw, "server_side", False))
        self.context = getattr(self.raw, "context", None)

    def _retry(self, fn: Callable[..., Any], *args: Any) -> Any:
        while True:
            try:
                return fn(*args)
            except ssl.SSLWantReadError:
                self._wait(READ)
            except ssl.SSLWantWriteError:
                self._wait(WRITE)
            except BlockingIOError:
                # Raw-socket EAGAIN outside OpenSSL (e.g. during unwrap).
                self._wait(READ)

    def do_handshake(self) -> None:
        """Run the TLS handshake (once)."""
        self._retry(self.raw.do_handshake)  # type: ignore[attr-defined]
        self._handshake_done = True

    def _ensure_handshake(self) -> None:
        if not self._handshake_done:
            self.do_handshake()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:
            raise ValueError("non-zero flags not allowed on a TLS socket")
        self._ensure_handshake()
        return self._retry(self.raw.recv, bufsize)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            raise ValueError("non-zero flags not allowed on a TLS socket")
        self._ensure_handshake()
        return self._retry(self.raw.recv_into, buffer, nbytes)

    def send(self, data: Any, flags: int = 0) -> int:
        if flags:
            raise ValueError("non-zero flags not allowed on a TLS socket")
        self._ensure_handshake()
        return self._retry(self.raw.send, data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        sent, total = 0, len(view)
        while sent < total:
            sent += self.send(view[sent:sent + 262144])

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        # The kernel cannot encrypt: always read and send.
        return self._sendfile_fallback(file, offset, count)

    def pending(self) -> int:
        return self.raw.pending()  # type: ignore[attr-defined]

    # Deadlines (the server surface of lichen.socket) -------------------------
    def handshake_by(self, deadline: float | None) -> None:
        """Run the handshake; all its waits share `deadline` (TimeoutError),
        so a client trickling its hello cannot stretch it."""
        if self._handshake_done:
            return
        self._retry_by(self.raw.do_handshake, deadline)  # type: ignore[attr-defined]
        self._handshake_done = True

    def _retry_by(self, fn: Callable[..., Any], deadline: float | None, *args: Any) -> Any:
        while True:
            try:
                return fn(*args)
            except (ssl.SSLWantReadError, BlockingIOError):
                self.wait_readable(deadline)
            except ssl.SSLWantWriteError:
                self.wait_writable(deadline)

    def recv_into_nowait(self, buffer: Any, nbytes: int = 0) -> int | None:
        """Decrypted bytes that are there: the count (0 at EOF, after a
        reset or a TLS close), or None when a whole record has not arrived."""
        try:
            return self.raw.recv_into(buffer, nbytes)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None
        except (ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return 0

    def recv_into_by(self, buffer: Any, deadline: float | None, nbytes: int = 0) -> int:
        """Read at least one decrypted byte (0 at EOF); every wait, for
        however many partial records, shares `deadline`."""
        try:
            return self._retry_by(self.raw.recv_into, deadline, buffer, nbytes)
        except (ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return 0

    def has_pending_input(self) -> bool:
        """Whether decrypted bytes wait in OpenSSL, or the socket is
        readable (a record, or EOF). MSG_PEEK cannot see through TLS."""
        if self.raw.pending():  # type: ignore[attr-defined]
            return True
        poller = select.poll()
        poller.register(self.raw.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def peek(self, size: int) -> bytes:
        raise ValueError("cannot peek through TLS: read the PROXY header before wrapping")

    def send_all_by(self, data: Any, write_timeout: float, flags: int = 0) -> None:
        """Encrypt and send all of `data`; TimeoutError when the peer takes
        nothing for `write_timeout` seconds (progress restarts the clock)."""
        if flags:
            raise ValueError("non-zero flags not allowed on a TLS socket")
        view = memoryview(data).cast("B")
        sent, total = 0, len(view)
        send = self.raw.send
        while sent < total:
            sent += self._retry_by(send, time.monotonic() + write_timeout, view[sent:sent + 262144])

    def sendfile_by(self, fd: int, offset: int, count: int, write_timeout: float) -> int:
        raise ValueError("os.sendfile cannot encrypt: send the file's bytes through send_all_by")

    @property
    def encrypted(self) -> bool:
        return True

    def _half_close(self) -> None:
        # close_notify first, so the client can tell a complete response
        # from a cut one; a non-blocking unwrap sends it, then wants the
        # peer's, which is not waited for.
        try:
            self.raw.unwrap()  # type: ignore[attr-defined]
        except (ssl.SSLError, OSError, ValueError):
            pass
        # ssl.SSLSocket.shutdown drops the TLS layer: what follows reads the
        # raw bytes still arriving, to discard them.
        self.raw.shutdown(_stdlib.SHUT_WR)

    def unwrap(self) -> socket:
        """Send the TLS close_notify and return the plain cooperative socket."""
        raw = self._retry(self.raw.unwrap)  # type: ignore[attr-defined]
        self._closed = True
        self._cancel_waiters()
        return socket(sock=raw)

    def accept(self) -> tuple[socket, Any]:
        """Accept a client of a wrapped listening socket: the connection is
        wrapped with the listener's context; its handshake runs on first use
        so a slow client never holds up accepting."""
        conn, addr = socket.accept(self)
        assert self.context is not None
        return wrap_socket(conn, self.context, server_side=True, do_handshake_on_connect=False), addr

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self.raw.getpeercert(binary_form)  # type: ignore[attr-defined]

    def cipher(self) -> Any:
        return self.raw.cipher()  # type: ignore[attr-defined]

    def version(self) -> str | None:
        return self.raw.version()  # type: ignore[attr-defined]

    def selected_alpn_protocol(self) -> str | None:
        return self.raw.selected_alpn_protocol()  # type: ignore[attr-defined]

    @property
    def server_hostname(self) -> str | None:
        return self.raw.server_hostname  # type: ignore[attr-defined]


def wrap_socket(sock: socket | _stdlib.socket, context: ssl.SSLContext, *, server_side: bool = False,
                server_hostname: str | None = None, do_handshake_on_connect: bool = True) -> SSLSocket:
    """Wrap a connected (or listening) socket in TLS.

    With `do_handshake_on_connect` the handshake runs now for a connected
    socket; otherwise on the first read or write, or an explicit
    `do_handshake()`."""
    timeout = None
    if isinstance(sock, socket):
        timeout = sock.gettimeout()
        raw = sock.detach()
        plain = _stdlib.socket(fileno=raw)
    else:
        plain = sock
    plain.setblocking(False)
    tls = context.wrap_socket(plain, server_side=server_side, server_hostname=server_hostname,
                              do_handshake_on_connect=False)
    out = SSLSocket(sock=tls)
    out.settimeout(timeout)
    connected = True
    try:
        tls.getpeername()
    except OSError:
        connected = False
    if do_handshake_on_connect and connected:
        out.do_handshake()
    return out


#: cert_reqs by name, as command lines and config files spell them (gunicorn
#: also takes the numbers 0, 1, 2).
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_context(certfile: str, keyfile: str | None = None, *, ca_certs: str | None = None,
                   cert_reqs: int | str | None = None, ciphers: str | None = None,
                   ssl_version: Any = None) -> ssl.SSLContext:
    """A server-side SSLContext from the options gevent's `**ssl_args`,
    gunicorn and the lichen command share: the certificate chain and key;
    `ca_certs` (PEM) to verify client certificates with; `cert_reqs`
    (ssl.CERT_NONE/OPTIONAL/REQUIRED, or their names or numbers: client
    certificates optional or required); `ciphers` (an OpenSSL cipher list);
    `ssl_version` (an ssl.PROTOCOL_* constant or its name; the modern
    default negotiates the best version both sides have). Raises ValueError
    naming the option that is wrong, OSError / ssl.SSLError for files."""
    context = _context_for(ssl_version)
    context.load_cert_chain(certfile, keyfile)
    reqs = _cert_reqs(cert_reqs)
    if ca_certs:
        context.load_verify_locations(ca_certs)
    elif reqs != ssl.CERT_NONE:
        raise ValueError("cert_reqs: verifying client certificates needs ca_certs")
    context.verify_mode = reqs
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise ValueError(f"ciphers: no cipher matches {ciphers!r}") from None
    return context


# A protocol that names one TLS version is that version pinned on a modern
# server context (the version-specific protocols are deprecated); gevent's
# default, PROTOCOL_SSLv23 (= PROTOCOL_TLS), is the modern default.
_PINNED = {getattr(ssl, f"PROTOCOL_{name}"): getattr(ssl.TLSVersion, name)
           for name in ("TLSv1", "TLSv1_1", "TLSv1_2") if hasattr(ssl, f"PROTOCOL_{name}")}


def _context_for(ssl_version: Any) -> ssl.SSLContext:
    if isinstance(ssl_version, str) and ssl_version not in ("", "TLS", "TLS_SERVER"):
        protocol = getattr(ssl, ssl_version if ssl_version.startswith("PROTOCOL_") else f"PROTOCOL_{ssl_version}",
                           None)
        if protocol is None:
            raise ValueError(f"ssl_version: unknown protocol {ssl_version!r}")
        ssl_version = protocol
    if ssl_version in (None, "", "TLS", "TLS_SERVER", ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLS_SERVER):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ssl_version in _PINNED:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = context.maximum_version = _PINNED[ssl_version]
        return context
    try:
        return ssl.SSLContext(ssl_version)
    except (ValueError, TypeError):
        raise ValueError(f"ssl_version: {ssl_version!r} is not a server protocol") from None


#: gevent's `**ssl_args`: the keyword arguments a StreamServer or WSGIServer
#: takes for TLS (never settings).
SSL_ARGS = frozenset({"ssl_context", "certfile", "keyfile", "ca_certs", "cert_reqs", "ssl_version", "ciphers",
                      "server_side", "do_handshake_on_connect", "suppress_ragged_eofs", "server_hostname"})


def context_from_ssl_args(ssl_args: dict[str, Any]) -> ssl.SSLContext | None:
    """The server SSLContext of gevent's `**ssl_args` (keys of SSL_ARGS; a
    None value counts as not given), or None for a plain server.

    `ssl_context` is used as it is; otherwise `certfile` (with `keyfile`,
    `ca_certs`, `cert_reqs`, `ssl_version`, `ciphers`) makes one with
    server_context(). Of the per-connection options, `server_side` must be
    true, and `do_handshake_on_connect` and `suppress_ragged_eofs` are
    accepted and have nothing to change: lichen always completes the
    handshake before the protocol sees the connection (by the header
    deadline) and reads a ragged EOF as the end of the stream.
    `server_hostname` is a client's option. Raises ValueError naming the
    argument that cannot work."""
    args = {k: v for k, v in ssl_args.items() if v is not None}
    given = sorted(args)
    unknown = sorted(set(args) - SSL_ARGS)
    if unknown:
        raise TypeError(f"unknown TLS argument{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    if not args.pop("server_side", True):
        raise ValueError("server_side: a server's TLS is server-side; leave server_side out or True")
    if "server_hostname" in args:
        raise ValueError("server_hostname: an option of TLS clients, not of servers")
    args.pop("do_handshake_on_connect", None)
    args.pop("suppress_ragged_eofs", None)
    context = args.pop("ssl_context", None)
    if context is not None:
        if args:
            raise ValueError(f"{', '.join(sorted(args))}: set on the ssl_context instead, or leave ssl_context out")
        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext, not {type(context).__name__}")
        return context
    if not given:
        return None
    if "certfile" not in args:
        raise ValueError(f"certfile: TLS needs a certificate ({', '.join(given)} given without certfile "
                         "or ssl_context)")
    return server_context(args.pop("certfile"), **args)


def _cert_reqs(value: int | str | None) -> ssl.VerifyMode:
    if value is None or value == "":
        return ssl.CERT_NONE
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("cert_")
        if text.isdigit():
            value = int(text)
        elif text in CERT_REQS:
            return CERT_REQS[text]
        else:
            raise ValueError(f"cert_reqs: {value!r} is none of none, optional, required")
    try:
        return ssl.VerifyMode(int(value))
    except ValueError:
        raise ValueError(f"cert_reqs: {value!r} is none of 0, 1, 2") from None
