# lichen.preamble: what comes before the first byte of a protocol on a new
# connection: a PROXY protocol header, then a TLS handshake.
#
# Strategy: both run once per connection, before anything else reads, and
# both share one deadline counted from accept, so a client that trickles
# bytes cannot stretch either. The PROXY header is read exactly: bytes are
# peeked, and only those that certainly belong to the header are consumed,
# so the TLS hello or the request that follows stays in the socket whatever
# the packet boundaries were. (A header in its own packet, or byte by byte,
# reads the same as one glued to the request.)
from __future__ import annotations

from typing import Any

from lichen.proxy import ProxyProtocolError, parse_proxy_protocol

__all__ = ["read_proxy_header", "PROXY_HEADER_MAX"]

# v1 is at most 107 bytes; v2 is 16 bytes plus a length of up to 65535.
PROXY_HEADER_MAX = 16 + 65535


def read_proxy_header(sock: Any, deadline: float | None) -> tuple[Any, Any]:
    """Read one PROXY protocol header (v1 or v2) from a plain cooperative
    socket, consuming exactly its bytes.

    Returns (source, destination) as (host, port) tuples, or (None, None)
    for a LOCAL / UNKNOWN connection. Raises ProxyProtocolError when the
    bytes are not a valid header, TimeoutError at `deadline`, and
    ConnectionError when the peer closes first."""
    head = bytearray()
    while True:
        ahead = sock.peek(min(PROXY_HEADER_MAX - len(head), 65536))
        if not ahead:
            if sock.has_pending_input():  # readable, nothing to peek: EOF
                raise ConnectionError("connection closed before the PROXY protocol header was complete")
            sock.wait_readable(deadline)
            continue
        found = parse_proxy_protocol(bytes(head) + ahead)
        # Not complete: every byte seen is part of the header (both versions
        # say where they end), so take them all and wait for more.
        take = len(ahead) if found is None else found[0] - len(head)
        _consume(sock, take)
        if found is not None:
            return found[1], found[2]
        head += ahead
        if len(head) >= PROXY_HEADER_MAX:
            raise ProxyProtocolError("PROXY protocol header too long")


def _consume(sock: Any, n: int) -> None:
    """Drop `n` bytes already known to be readable (they were peeked)."""
    scratch = bytearray(min(n, 65536))
    while n > 0:
        got = sock.recv_into_nowait(scratch, min(n, len(scratch)))
        if not got:
            raise ConnectionError("connection closed inside the PROXY protocol header")
        n -= got
