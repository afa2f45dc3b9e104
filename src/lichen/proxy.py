# lichen.proxy: what a trusted reverse proxy tells us about the client.
#
# Strategy: pure functions over the environ and over bytes, no I/O. Proxy
# headers (X-Forwarded-*, X-Real-IP, RFC 7239 Forwarded) are applied only
# when the direct peer is in the allow list (unix-socket peers are trusted),
# and are deleted from the environ otherwise, so an app never sees a spoofed
# value. Even from a trusted proxy only the client address and the scheme
# are taken by default (what nginx's usual recipe overwrites); the host,
# port and prefix headers, which nginx passes through from the client, only
# when trust_forwarded_host says the proxy sets them. Forwarded is read by
# a strict tokenizer (a quote left open is a 400, never a swallowed
# element), client addresses are reduced to the canonical text of an IP
# before they reach the environ, and headers that disagree about the client
# are a 400, not a guess. The PROXY protocol (v1 text, v2 binary) is parsed
# from the first bytes of a connection, with its own allow list.
from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

__all__ = ["AllowList", "ProxyHeaders", "ProxyHeaderError", "ProxyProtocolError", "apply_proxy_headers",
           "parse_proxy_protocol", "PROXY_V2_SIGNATURE"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ProxyHeaderError(ValueError):
    """Proxy headers from a trusted peer are malformed or disagree (400)."""

    status = 400


class ProxyProtocolError(ValueError):
    """A PROXY protocol header is malformed or missing (the connection is
    closed without an answer: the peer is not speaking HTTP to us)."""


class AllowList:
    """IP addresses and networks of trusted proxies: "127.0.0.1,::1",
    "10.0.0.0/8", or "*" for everyone (only when asked for explicitly)."""

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
        items = [s for s in items if s]
        self.everyone = "*" in items
        self.networks: list[_Network] = []
        for item in items:
            if item == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"forwarded allow list: {item!r} is not an IP address or network") from None
        self.spec = ",".join(items)

    def __contains__(self, host: Any) -> bool:
        """Whether a peer is trusted; '' (a unix-socket peer) always is."""
        if not host:
            return True
        return self.trusts(_parse_ip(host))

    def trusts(self, ip: _Address | None) -> bool:
        """Whether an address (None: not an IP) is a trusted proxy."""
        if self.everyone:
            return True
        return ip is not None and any(ip in net for net in self.networks)

    def __repr__(self) -> str:
        return f"AllowList({self.spec!r})"


@dataclass(frozen=True)
class ProxyHeaders:
    """Which headers carry what; names are configurable (e.g. X-FHost)."""

    allow: AllowList = field(default_factory=lambda: AllowList("127.0.0.1,::1"))
    for_header: str = "X-Forwarded-For"
    proto_header: str = "X-Forwarded-Proto"
    host_header: str = "X-Forwarded-Host"
    port_header: str = "X-Forwarded-Port"
    prefix_header: str = "X-Forwarded-Prefix"
    real_ip_header: str = "X-Real-IP"
    forwarded: bool = True  # RFC 7239 `Forwarded`
    # Host, port and prefix headers (and Forwarded host=) set the URL the
    # app builds links from; a proxy that does not overwrite them passes
    # the client's own, so they are off unless the deployment vouches.
    trust_forwarded_host: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> ProxyHeaders:
        """The proxy rules of a lichen.settings.Settings."""
        return cls(allow=AllowList(settings.forwarded_allow_ips), for_header=settings.forwarded_for_header,
                   proto_header=settings.forwarded_proto_header, host_header=settings.forwarded_host_header,
                   port_header=settings.forwarded_port_header, prefix_header=settings.forwarded_prefix_header,
                   real_ip_header=settings.real_ip_header, trust_forwarded_host=settings.trust_forwarded_host)

    def keys(self) -> dict[str, str]:
        """Environ key of each header role ('for', 'proto', 'host', ...),
        trusted or not: an environ holding any of them must go through
        apply_proxy_headers, which applies or removes each."""
        cached = self.__dict__.get("_keys")
        if cached is not None:
            return cached
        names = {"for": self.for_header, "proto": self.proto_header, "host": self.host_header,
                 "port": self.port_header, "prefix": self.prefix_header, "real_ip": self.real_ip_header}
        out = {role: "HTTP_" + name.upper().replace("-", "_") for role, name in names.items() if name}
        if self.forwarded:
            out["forwarded"] = "HTTP_FORWARDED"
        object.__setattr__(self, "_keys", out)  # frozen: computed once
        return out


def _parse_ip(host: Any) -> _Address | None:
    """An IP address from text (or packed bytes / an int), None if it is not
    one. A zone id ('%' and whatever follows) is dropped: it names one of
    the sender's interfaces and is free text. IPv4-mapped IPv6 becomes IPv4."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0] if isinstance(host, str) else host)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _port(text: str | None) -> str | None:
    """A TCP port as canonical digits; None for '', '0', '99999', '_obf',
    and non-ASCII digits ('²'.isdigit() is true, int('²') fails)."""
    if text and text.isascii() and text.isdigit() and 0 < int(text) < 65536:
        return str(int(text))
    return None


def _strip_port(hop: str) -> tuple[str, str | None]:
    """'1.2.3.4:80' / '[::1]:80' / '::1' / 'name' -> (host, port); a bracket
    that is not closed, or is followed by anything but ':port', is kept."""
    hop = hop.strip()
    if hop.startswith("["):
        host, bracket, rest = hop[1:].partition("]")
        if bracket and (not rest or rest.startswith(":")):
            return host, rest[1:] or None
        return hop, None
    if hop.count(":") == 1:
        host, _, port = hop.partition(":")
        return host, port
    return hop, None


class _Hop(NamedTuple):
    """One hop of a forwarded-for chain. Only `addr` of a hop with an `ip`
    (its canonical text) and `port` (digits or '') may reach the environ."""

    ip: _Address | None
    addr: str  # str(ip), or the host as sent ('unknown', '_obf', garbage)
    port: str


def _hop(text: str) -> _Hop:
    host, port = _strip_port(text)
    ip = _parse_ip(host)
    return _Hop(ip, host if ip is None else str(ip), _port(port) or "")


# RFC 7239 section 4 with RFC 9110's list and quoted-string rules.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_TOKEN_RE = re.compile(_TOKEN)
# What lies between two separators: OWS, maybe a forwarded-pair (no OWS
# around its "="), OWS. Everything is optional, so it always matches.
_ITEM_RE = re.compile(rf"[ \t]*(?:({_TOKEN})=({_TOKEN}|{_QUOTED})[ \t]*)?")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)


def _parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 `Forwarded`: comma-separated elements of `;`-separated
    name=value pairs, as dicts with lower-case names and unquoted values.
    Empty elements are left out. Anything else is a ProxyHeaderError: a
    quote left open (a client's `for="_x` would swallow the element its
    proxy appends after ", "), a bad character, a pair without "=", or a
    parameter repeated in one element."""
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    pos, end = 0, len(value)
    while True:
        item = _ITEM_RE.match(value, pos)
        name, val = item[1], item[2]
        if name is not None:
            name = name.lower()
            if name in pairs:
                raise ProxyHeaderError(f"Forwarded parameter {name!r} repeated in one element")
            pairs[name] = _QUOTED_PAIR_RE.sub(r"\1", val[1:-1]) if val[0] == '"' else val
        pos = item.end()
        if pos == end or value[pos] == ",":
            if pairs:
                elements.append(pairs)
                pairs = {}
            if pos == end:
                return elements
        elif value[pos] != ";":
            raise _forwarded_error(value, pos, after_pair=name is not None)
        pos += 1


def _forwarded_error(value: str, pos: int, after_pair: bool) -> ProxyHeaderError:
    """Say why the Forwarded value cannot go on at `pos`."""
    name = None if after_pair else _TOKEN_RE.match(value, pos)
    rest = value[name.end():] if name else ""
    eq = rest.lstrip(" \t")
    if name is None:
        why = "a character out of place"
    elif not eq.startswith("="):
        why = "a parameter without '='"
    elif len(eq) < len(rest) or eq[1:2] in (" ", "\t"):
        why = "whitespace around '='"
    elif eq[1:2] == '"':
        why = "a quoted-string left open or holding a bad character"
    else:
        why = "a value that is neither a token nor a quoted-string"
    return ProxyHeaderError(f"malformed Forwarded header: {why} at {value[pos:pos + 40]!r}")


def _client_from_hops(hops: list[str], allow: AllowList) -> _Hop:
    """The right-most hop that is not a trusted proxy (the left-most if all
    are trusted): everything left of it was written by the client."""
    parsed = [_hop(h) for h in hops if h.strip()]
    if not parsed:
        raise ProxyHeaderError("empty forwarded-for list")
    for hop in reversed(parsed):
        if not allow.trusts(hop.ip):
            return hop
    return parsed[0]


def _last(value: str) -> str:
    """The value set by the nearest proxy in a comma-separated chain."""
    return value.rsplit(",", 1)[-1].strip()


# What a proxy says about the URL rather than the client: trusted only when
# the settings say the proxies overwrite these headers.
_HOST_ROLES = ("host", "port", "prefix")


def apply_proxy_headers(environ: dict[str, Any], config: ProxyHeaders) -> None:
    """Rewrite the environ from a trusted proxy's headers, or drop them.

    Sets REMOTE_ADDR (and REMOTE_PORT when the hop carries a port) and
    wsgi.url_scheme; with config.trust_forwarded_host also HTTP_HOST,
    SERVER_NAME/SERVER_PORT and SCRIPT_NAME, whose headers are otherwise
    removed. Raises ProxyHeaderError (answer 400) when the headers are
    malformed or disagree."""
    keys = config.keys()
    present = {role: environ[key] for role, key in keys.items() if key in environ}
    if not present:
        return
    if environ.get("REMOTE_ADDR", "") not in config.allow:
        for key in keys.values():
            environ.pop(key, None)
        return
    if not config.trust_forwarded_host:
        for role in _HOST_ROLES:
            if present.pop(role, None) is not None:
                del environ[keys[role]]
    client: _Hop | None = None
    proto = host = None
    if "forwarded" in present:
        elements = _parse_forwarded(present["forwarded"])
        hops = [e["for"] for e in elements if "for" in e]
        if hops:
            client = _client_from_hops(hops, config.allow)
        last = elements[-1] if elements else {}
        proto = last.get("proto")
        if config.trust_forwarded_host:
            host = last.get("host")
    if "for" in present:
        xff = _client_from_hops(present["for"].split(","), config.allow)
        if client is not None and client.addr != xff.addr:
            raise ProxyHeaderError(f"Forwarded for={client.addr!r} disagrees with {config.for_header} {xff.addr!r}")
        client = xff
    if "real_ip" in present:
        real = _hop(present["real_ip"])._replace(port="")
        if client is not None and client.addr != real.addr:
            raise ProxyHeaderError(f"{config.real_ip_header} {real.addr!r} disagrees with the forwarded client "
                                   f"{client.addr!r}")
        client = client or real
    if "proto" in present:
        xproto = _last(present["proto"]).lower()
        if proto is not None and proto.lower() != xproto:
            raise ProxyHeaderError(f"Forwarded proto={proto!r} disagrees with {config.proto_header} {xproto!r}")
        proto = xproto
    if "host" in present:
        xhost = _last(present["host"])
        if host is not None and host != xhost:
            raise ProxyHeaderError(f"Forwarded host={host!r} disagrees with {config.host_header} {xhost!r}")
        host = xhost

    if client is not None:
        if client.ip is not None:
            environ["REMOTE_ADDR"] = client.addr
            environ["REMOTE_PORT"] = client.port
        elif client.addr.lower() != "unknown" and not client.addr.startswith("_"):
            raise ProxyHeaderError(f"forwarded client address {client.addr!r} is not an IP address")
    if proto is not None:
        if proto not in ("http", "https"):
            raise ProxyHeaderError(f"forwarded proto {proto!r} is neither http nor https")
        environ["wsgi.url_scheme"] = proto
        if proto == "https":
            environ["HTTPS"] = "on"
        else:
            environ.pop("HTTPS", None)
    if host is not None:
        if not host or any(c in host for c in " /\\@\r\n\t"):
            raise ProxyHeaderError(f"forwarded host {host!r} is invalid")
        environ["HTTP_HOST"] = host
        name, hport = _strip_port(host)
        environ["SERVER_NAME"] = name
        if hport:
            environ["SERVER_PORT"] = hport
        elif proto is not None:
            environ["SERVER_PORT"] = "443" if proto == "https" else "80"
    if "port" in present:
        sent = _last(present["port"])
        xport = _port(sent)
        if xport is None:
            raise ProxyHeaderError(f"{config.port_header} {sent!r} is not a port")
        environ["SERVER_PORT"] = xport
        if host is not None and ":" not in host.rsplit("]", 1)[-1]:
            default = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
            if xport != default:
                environ["HTTP_HOST"] = f"{host}:{xport}"
    if "prefix" in present:
        prefix = _last(present["prefix"]).rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ProxyHeaderError(f"{config.prefix_header} {prefix!r} must start with /")
        environ["SCRIPT_NAME"] = prefix + environ.get("SCRIPT_NAME", "")


# PROXY protocol ------------------------------------------------------------------
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_MAX = 107


def parse_proxy_protocol(data: bytes) -> tuple[int, Any, Any] | None:
    """Parse a PROXY protocol header at the start of `data`.

    Returns None if more bytes are needed, else (bytes consumed, source
    address, destination address); the addresses are (host, port) tuples,
    or None for a LOCAL/UNKNOWN connection (use the socket's own peer).
    Raises ProxyProtocolError when `data` is not a valid header."""
    if data[:12] == PROXY_V2_SIGNATURE[:len(data[:12])] and data[:1] == b"\r":
        return _parse_v2(data)
    if data[:6] == b"PROXY "[:len(data[:6])]:
        return _parse_v1(data)
    raise ProxyProtocolError("connection does not start with a PROXY protocol header")


def _parse_v1(data: bytes) -> tuple[int, Any, Any] | None:
    end = data.find(b"\r\n", 0, _V1_MAX + 1)
    if end < 0:
        if len(data) > _V1_MAX:
            raise ProxyProtocolError("PROXY v1 header longer than 107 bytes")
        return None
    parts = data[:end].decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return end + 2, None, None
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"malformed PROXY v1 header {data[:end]!r}")
    _, fam, src, dst, sport, dport = parts
    try:
        for addr in (src, dst):
            ip = ipaddress.ip_address(addr)
            if (fam == "TCP4") != (ip.version == 4):
                raise ValueError
        ports = [int(p) for p in (sport, dport)]
        if any(not 0 <= p <= 65535 or str(p) != s for p, s in zip(ports, (sport, dport))):
            raise ValueError
    except ValueError:
        raise ProxyProtocolError(f"malformed PROXY v1 addresses {data[:end]!r}") from None
    return end + 2, (src, ports[0]), (dst, ports[1])


def _parse_v2(data: bytes) -> tuple[int, Any, Any] | None:
    if len(data) < 16:
        if not PROXY_V2_SIGNATURE.startswith(data[:12]):
            raise ProxyProtocolError("bad PROXY v2 signature")
        return None
    if data[:12] != PROXY_V2_SIGNATURE:
        raise ProxyProtocolError("bad PROXY v2 signature")
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ProxyProtocolError(f"unsupported PROXY protocol version {ver_cmd >> 4}")
    total = 16 + length
    if len(data) < total:
        return None
    cmd = ver_cmd & 0x0F
    if cmd == 0:  # LOCAL: health check from the proxy itself
        return total, None, None
    if cmd != 1:
        raise ProxyProtocolError(f"unknown PROXY v2 command {cmd}")
    body = data[16:total]
    family, proto = fam >> 4, fam & 0x0F
    if proto not in (0, 1):  # UNSPEC or STREAM
        raise ProxyProtocolError("PROXY v2 header for a datagram connection")
    if family == 1 and len(body) >= 12:
        src = str(ipaddress.IPv4Address(body[0:4]))
        dst = str(ipaddress.IPv4Address(body[4:8]))
        sport, dport = struct.unpack("!HH", body[8:12])
        return total, (src, sport), (dst, dport)
    if family == 2 and len(body) >= 36:
        src = str(ipaddress.IPv6Address(body[0:16]))
        dst = str(ipaddress.IPv6Address(body[16:32]))
        sport, dport = struct.unpack("!HH", body[32:36])
        return total, (src, sport), (dst, dport)
    if family in (0, 3):  # UNSPEC or UNIX: no usable client address
        return total, None, None
    raise ProxyProtocolError("PROXY v2 address block too short for its family")
