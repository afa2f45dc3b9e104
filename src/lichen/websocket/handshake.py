# lichen.websocket.handshake: the RFC 6455 opening handshake, with no I/O.
#
# Strategy: a pure function over a parsed request head (lichen.http's
# Request) says one of three things: not a websocket request at all (no
# `websocket` in Upgrade: the app sees a plain request), a Rejection (the
# status and fields to answer with: 400, or 426 with Sec-WebSocket-Version:
# 13 for a version we do not speak), or a Handshake holding what the answer
# needs (the key, the subprotocols and extensions offered). The 101 head is
# built from a Handshake once the application has chosen its subprotocol,
# so the choice can be made late, when the app first touches the websocket.
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Iterable

from lichen.http import Request

__all__ = ["Handshake", "Rejection", "check_request", "accept_key", "switching_head", "VERSION_FIELD"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
VERSION_FIELD = b"Sec-WebSocket-Version: 13\r\n"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


class Handshake:
    """A valid websocket opening handshake: what the 101 answer needs."""

    __slots__ = ("key", "protocols", "extensions")

    def __init__(self, key: bytes, protocols: tuple[str, ...], extensions: tuple[str, ...]) -> None:
        self.key = key                  # Sec-WebSocket-Key, as sent (base64 of 16 bytes)
        self.protocols = protocols      # Sec-WebSocket-Protocol offers, in the client's order
        self.extensions = extensions    # Sec-WebSocket-Extensions offers, each "name; params"


class Rejection:
    """A request that asked for a websocket the wrong way: answer `status`
    with `message`, plus `fields` (CRLF-ended field lines)."""

    __slots__ = ("status", "message", "fields")

    def __init__(self, status: int, message: str, fields: bytes = b"") -> None:
        self.status = status
        self.message = message
        self.fields = fields

    def __repr__(self) -> str:
        return f"<Rejection {self.status} {self.message!r}>"


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def _tokens(values: Iterable[bytes]) -> list[str]:
    """The comma-separated items of every value of a field, stripped, in
    order, empty items dropped (RFC 9110 5.6.1)."""
    return [item.strip().decode("latin-1") for v in values for item in v.split(b",") if item.strip()]


def check_request(req: Request) -> Handshake | Rejection | None:
    """Judge a request head as a websocket opening handshake (RFC 6455
    4.2.1). None when it does not ask for a websocket (no `websocket` token
    in Upgrade); otherwise a Handshake, or the Rejection to answer with."""
    headers = req.headers
    upgrade = _values(headers, b"upgrade")
    if not upgrade or "websocket" not in (t.lower() for t in _tokens(upgrade)):
        return None
    if req.method != "GET":
        return Rejection(400, f"a websocket handshake is a GET request, not {req.method}")
    if req.http_version == "1.0":
        return Rejection(400, "a websocket handshake needs HTTP/1.1")
    if "upgrade" not in (t.lower() for t in _tokens(_values(headers, b"connection"))):
        return Rejection(400, "a websocket handshake needs Connection: Upgrade")
    if req.content_length or req.chunked:
        return Rejection(400, "a websocket handshake has no request body")
    if _tokens(_values(headers, b"sec-websocket-version")) != ["13"]:
        return Rejection(426, "this server speaks WebSocket version 13 (RFC 6455)", VERSION_FIELD)
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1 or not _valid_key(keys[0]):
        return Rejection(400, "a websocket handshake needs one Sec-WebSocket-Key: the base64 of 16 bytes")
    protocols = _tokens(_values(headers, b"sec-websocket-protocol"))
    if not all(_TOKEN.match(p) for p in protocols):
        return Rejection(400, "Sec-WebSocket-Protocol must list tokens")
    extensions = _tokens(_values(headers, b"sec-websocket-extensions"))
    return Handshake(keys[0], tuple(protocols), tuple(extensions))


def _valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def switching_head(hs: Handshake, protocol: str | None, extensions: str | None, *, date: bytes,
                   server: bytes | None) -> bytes:
    """The 101 Switching Protocols head that accepts `hs`, with the
    subprotocol the app chose (one the client offered, or None) and the
    negotiated Sec-WebSocket-Extensions value (or None)."""
    if protocol is not None and protocol not in hs.protocols:
        raise ValueError(f"subprotocol {protocol!r} was not offered by the client (offered: {list(hs.protocols)})")
    head = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: ", accept_key(hs.key), b"\r\nDate: ", date, b"\r\n"]
    if server is not None:
        head += [b"Server: ", server, b"\r\n"]
    if protocol is not None:
        head += [b"Sec-WebSocket-Protocol: ", protocol.encode("ascii"), b"\r\n"]
    if extensions:
        head += [b"Sec-WebSocket-Extensions: ", extensions.encode("latin-1"), b"\r\n"]
    head.append(b"\r\n")
    return b"".join(head)
