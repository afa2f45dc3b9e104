# lichen.listeners: listening sockets from the addresses users write.
#
# Strategy: standard library only, so the `lichen` master binds without
# loading the hub or libev; StreamServer uses the same code (lichen.server
# re-exports parse_address and make_listener). parse_address/make_listener
# take a server's listener specs: (host, port), 'host:port', ':port' and
# '*:port' (gevent's every interface), '[::1]:port', 'unix:/path' or a
# socket; rebind_spec says what to bind when a stopped server starts again.
# parse_bind/bind add the command line's spellings
# (gunicorn's: a host alone is port 8000, ':port' every interface, tcp://,
# unix://, fd://N; twistd's tcp:PORT[:interface=ADDR] and a bare port; a
# umask for unix sockets; [::]:port dual-stack as gunicorn gets it from
# Linux, unless 0.0.0.0:port is bound beside it), and
# open_listeners takes the sockets systemd (LISTEN_FDS) or a parent master on
# USR2 (LICHEN_FDS) hands over before binding anything itself. Parsing does
# no I/O, so the command line checks --bind before the master starts.
from __future__ import annotations

import errno
import os
import re
import socket
import stat
from typing import Any, Collection, Iterable, MutableMapping

__all__ = ["parse_address", "make_listener", "rebind_spec", "parse_bind", "bind", "open_listeners", "ListenError"]


class ListenError(Exception):
    """A listener could not be opened; str() names the address."""


def parse_address(address: Any) -> Any:
    """Normalise a listener spec: `(host, port)`, `'host:port'`, `':port'`,
    `'*:port'`, `'[::1]:port'`, `'unix:/path'`, or a port alone (an int or
    `'8000'`) -> (family, sockaddr). An empty host, `'*'` and a port alone
    mean every interface, as in gevent."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        host = "" if host == "*" else host
        return _family_of(host), (host, _port(port, address))
    if isinstance(address, int) and not isinstance(address, bool):
        return socket.AF_INET, ("", _port(address, address))
    if not isinstance(address, str):
        raise TypeError(f"listener must be (host, port), 'host:port', 'unix:/path' or a socket, not {address!r}")
    if address.isdigit():
        return socket.AF_INET, ("", _port(address, address))
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise ValueError("unix: listener needs a path, e.g. 'unix:/run/app.sock'")
        return socket.AF_UNIX, path
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"bad IPv6 listener {address!r}; expected '[addr]:port'")
        return socket.AF_INET6, (host, _port(rest[1:], address))
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"bad listener {address!r}; expected 'host:port'")
    if ":" in host:
        raise ValueError(f"IPv6 listener {address!r} must be written '[addr]:port'")
    host = "" if host == "*" else host
    return _family_of(host), (host, _port(port, address))


def _port(port: Any, spec: Any) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"bad port {port!r} in listener {spec!r}; expected a number") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"port out of range in listener {spec!r}")
    return value


def _family_of(host: str) -> int:
    if host and ":" in host:
        return socket.AF_INET6
    return socket.AF_INET


def make_listener(address: Any, backlog: int = 2048, reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking stdlib socket for `address`; a socket
    (or a cooperative lichen socket, through its `raw`) is used as it is."""
    raw = getattr(address, "raw", None)
    if isinstance(raw, socket.socket):
        sock = raw
    elif isinstance(address, socket.socket):
        sock = address
    else:
        sock = _listen(*parse_address(address), backlog, reuse_port)
    sock.setblocking(False)
    return sock


def rebind_spec(spec: Any, bound: Any) -> Any:
    """What to bind when a stopped server starts again (as gevent's does):
    `spec` as it was given, except that a socket (closed at stop) becomes
    the address `bound` it had, and a port 0 the port it got, so the server
    comes back where it was."""
    if isinstance(spec, socket.socket) or isinstance(getattr(spec, "raw", None), socket.socket):
        return f"unix:{bound}" if isinstance(bound, str) else (bound[0], bound[1])
    family, addr = parse_address(spec)
    if family == getattr(socket, "AF_UNIX", None) or addr[1] or not isinstance(bound, tuple):
        return spec
    return (addr[0], bound[1])


def _listen(family: int, addr: Any, backlog: int, reuse_port: bool, dualstack: bool = True) -> socket.socket:
    if family == getattr(socket, "AF_UNIX", None):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(addr) and _is_stale_unix_socket(addr):
                os.unlink(addr)
            sock.bind(addr)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock
    if addr[0] in ("", "::") and dualstack and socket.has_dualstack_ipv6():
        # '' means every interface: one dual-stack socket takes IPv4 and IPv6;
        # so does '::', as with Linux's default (and so under gunicorn).
        return socket.create_server(("", addr[1]), family=socket.AF_INET6, backlog=backlog,
                                    reuse_port=reuse_port, dualstack_ipv6=True)
    return socket.create_server(addr, family=family, backlog=backlog, reuse_port=reuse_port)


def _is_stale_unix_socket(path: str) -> bool:
    """True for a socket file nobody listens on (left by a crash); raises
    for a file that is not a socket or one another server is listening on."""
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        raise OSError(errno.EADDRINUSE, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return True
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another server is listening on {path}")


DEFAULT_PORT = 8000  # gunicorn's, for a bind that names a host alone


def parse_bind(spec: str) -> tuple[int | None, Any]:
    """A --bind spelling -> (family, sockaddr) as parse_address gives, or
    (None, fd) for fd://N. As gunicorn reads them: `host` alone is port
    8000, `:port` (host '') every interface, `tcp://` is dropped, `unix:`
    may be `unix://`; a bare number is a port on every interface (twistd's
    --port 8080). twistd's tcp:PORT[:interface=ADDR] takes its other options
    (backlog=...) without using them: the backlog setting rules. Raises
    ValueError; does no I/O."""
    if spec.startswith("fd://"):
        try:
            fd = int(spec[5:])
        except ValueError:
            raise ValueError(f"bad listener {spec!r}; expected fd://N with a file descriptor number") from None
        if fd < 0:
            raise ValueError(f"bad listener {spec!r}; a file descriptor is >= 0")
        return None, fd
    if spec.startswith("unix:"):
        return parse_address("unix:" + spec[5:].removeprefix("//"))
    if spec.startswith("tcp:") and not spec.startswith("tcp://"):
        # Options are split on colons; an IPv6 interface escapes its own, as in twistd: interface=\:\:1
        port, *options = (part.replace("\\:", ":") for part in re.split(r"(?<!\\):", spec[4:]))
        host = ""
        for option in options:
            key, _, value = option.partition("=")
            if key == "interface":
                host = value
        return _family_of(host), (host, _port(port, spec))
    rest = spec.removeprefix("tcp://")
    if rest.isdigit():
        return _family_of(""), ("", _port(rest, spec))
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise ValueError(f"bad IPv6 listener {spec!r}; expected '[addr]:port'")
        return socket.AF_INET6, (host, _port(tail[1:], spec) if tail else DEFAULT_PORT)
    if rest.count(":") > 1:
        raise ValueError(f"IPv6 listener {spec!r} must be written '[addr]:port'")
    host, sep, port = rest.partition(":")
    if "/" in host or any(c.isspace() for c in host):
        raise ValueError(f"bad listener {spec!r}; expected host:port, unix:/path or fd://N")
    return _family_of(host), (host, _port(port, spec) if sep else DEFAULT_PORT)


def bind(spec: str, backlog: int, reuse_port: bool = False, umask: int | None = None,
         ipv4_taken: Collection[int] = ()) -> socket.socket:
    """A listening non-blocking socket for one --bind spelling; `umask`
    applies while a unix socket file is created. `[::]:port` takes IPv4 too
    unless `port` is in `ipv4_taken` (also bound as 0.0.0.0:port)."""
    family, addr = parse_bind(spec)
    if family is None:
        sock = socket.socket(fileno=addr)
    elif family == getattr(socket, "AF_UNIX", None) and umask is not None:
        old = os.umask(umask)
        try:
            sock = _listen(family, addr, backlog, False)
        finally:
            os.umask(old)
    else:
        sock = _listen(family, addr, backlog, reuse_port, dualstack=addr[1] not in ipv4_taken)
    sock.setblocking(False)
    return sock


def _ipv4_wildcard_ports(binds: Iterable[str]) -> set[int]:
    ports = set()
    for spec in binds:
        try:
            family, addr = parse_bind(spec)
        except ValueError:
            continue  # bind() reports it
        if family == socket.AF_INET and addr[0] == "0.0.0.0":
            ports.add(addr[1])
    return ports


def inherited(environ: MutableMapping[str, str]) -> list[socket.socket] | None:
    """The listeners systemd (LISTEN_FDS, for this PID) or a parent master
    (LICHEN_FDS) passed on, or None. The variables are removed so that
    children do not take them again."""
    if environ.get("LISTEN_PID") == str(os.getpid()) and environ.get("LISTEN_FDS"):
        n = int(environ["LISTEN_FDS"])
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            environ.pop(key, None)
        return [socket.socket(fileno=fd) for fd in range(3, 3 + n)]
    if environ.get("LICHEN_FDS"):
        return [socket.socket(fileno=int(fd)) for fd in environ.pop("LICHEN_FDS").split(",") if fd]
    return None


def open_listeners(binds: Iterable[str], backlog: int, reuse_port: bool = False, umask: int | None = None,
                   environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The sockets handed over to us if any, else one bound per spelling in
    `binds`; non-blocking. Raises ListenError naming the address that failed
    (the ones already bound are closed)."""
    socks = inherited(os.environ if environ is None else environ)
    if socks is None:
        socks = []
        binds = list(binds)
        ipv4_taken = _ipv4_wildcard_ports(binds)
        for spec in binds:
            try:
                socks.append(bind(spec, backlog, reuse_port, umask, ipv4_taken))
            except (OSError, ValueError) as e:
                for s in socks:
                    s.close()
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                # socket.create_server appends the address it tried, which the message has already.
                reason = reason.split(" (while attempting to bind")[0]
                raise ListenError(f"cannot listen on {spec}: {reason}") from None
    for s in socks:
        s.setblocking(False)
    return socks
