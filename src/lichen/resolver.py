# lichen.resolver: name resolution that never blocks the loop.
#
# Strategy: numeric addresses are answered at once by the stdlib; names go
# to lichen's thread pool (getaddrinfo blocks in the C library, with no
# non-blocking form), and the calling greenlet waits for the answer while
# the hub runs everything else.
from __future__ import annotations

import socket as _stdlib
from typing import Any

from lichen.threadpool import get_threadpool

__all__ = ["getaddrinfo", "gethostbyname", "is_numeric_host", "resolve_for"]


def is_numeric_host(host: Any) -> bool:
    """Whether `host` needs no lookup: empty, an int, or an IP literal."""
    if host is None or host == "" or isinstance(host, int):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    for fam in (_stdlib.AF_INET, _stdlib.AF_INET6):
        try:
            _stdlib.inet_pton(fam, host.split("%", 1)[0])
            return True
        except (OSError, ValueError):
            pass
    return False


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> list[Any]:
    """stdlib getaddrinfo that never blocks the loop: names are resolved in
    a worker thread; numeric addresses are answered directly."""
    if is_numeric_host(host):
        return _stdlib.getaddrinfo(host, port, family, type, proto, flags)
    return get_threadpool().apply(_stdlib.getaddrinfo, host, port, family, type, proto, flags)


def gethostbyname(host: str) -> str:
    if is_numeric_host(host):
        return _stdlib.gethostbyname(host)
    return get_threadpool().apply(_stdlib.gethostbyname, host)


def resolve_for(sock: _stdlib.socket, address: Any) -> Any:
    """Resolve a (host, port[, ...]) address without blocking the loop."""
    if sock.family not in (_stdlib.AF_INET, _stdlib.AF_INET6) or not isinstance(address, tuple):
        return address
    host = address[0]
    if is_numeric_host(host):
        return address
    infos = getaddrinfo(host, address[1], sock.family, sock.type, sock.proto)
    if not infos:
        raise OSError(f"could not resolve {host!r}")
    return infos[0][4]
