# lichen.settings: every server setting, declared once, typed and validated.
#
# Strategy: one frozen dataclass whose fields carry their type, default, a
# validator and a help line. `Settings(**kwargs)` validates everything up
# front and names the offending setting; building it does no I/O. Servers,
# the command line and the docs all read the declarations in SETTINGS.
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Settings", "SETTINGS", "SettingError"]


class SettingError(ValueError):
    """A setting has an invalid value; the message names the setting."""


def _positive(name: str, v: Any) -> None:
    if v <= 0:
        raise SettingError(f"{name} must be > 0, got {v!r}")


def _non_negative(name: str, v: Any) -> None:
    if v < 0:
        raise SettingError(f"{name} must be >= 0, got {v!r}")


def _optional_positive(name: str, v: Any) -> None:
    if v is not None and v <= 0:
        raise SettingError(f"{name} must be > 0 or None, got {v!r}")


def _server_header(name: str, v: Any) -> None:
    if v is not None and any(c in v for c in "\r\n\0"):
        raise SettingError(f"{name} must not contain CR, LF or NUL")


def _allow_list(name: str, v: Any) -> None:
    import ipaddress

    for item in (x.strip() for x in v.split(",")):
        if item and item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingError(f"{name}: {item!r} is not an IP address or network") from None


def _header_name(name: str, v: Any) -> None:
    if v and not all(c.isalnum() or c == "-" for c in v):
        raise SettingError(f"{name} must be a header name like X-Forwarded-Host, got {v!r}")


def _setting(default: Any, help: str, check: Callable[[str, Any], None] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "check": check})


@dataclass(frozen=True)
class Settings:
    """All tunables of lichen's servers. Defaults are documented here only."""

    backlog: int = _setting(2048, "listen() backlog of each listening socket", _positive)
    max_connections: int = _setting(
        10000, "connections served at once; accepting pauses at the cap until one closes", _positive)
    keepalive_timeout: float = _setting(
        75.0, "seconds an idle keep-alive connection is kept (longer than common proxy idle timeouts); "
              "0 disables keep-alive", _non_negative)
    header_timeout: float = _setting(
        20.0, "seconds from the first byte of a request until its header section must be complete "
              "(slowloris guard); answered with 408", _positive)
    body_timeout: float = _setting(30.0, "seconds the request body may stay silent between reads", _positive)
    write_timeout: float = _setting(60.0, "seconds a client may block our writes before it is cut off", _positive)
    max_request_line: int = _setting(8190, "longest request line in bytes, without its CRLF (414 beyond)",
                                     _positive)
    max_header_bytes: int = _setting(
        65536, "largest header section in bytes: the field lines with their CRLFs (431 beyond); a "
               "chunked body's trailers get as much again", _positive)
    max_header_count: int = _setting(100, "most header fields in a request (431 beyond)", _positive)
    max_field_size: int = _setting(
        8190, "longest header field line in bytes, with its CRLF (431 beyond); chunk-size lines are held "
              "to it too", _positive)
    max_body: int | None = _setting(
        1 << 30, "largest request body in bytes (413 beyond); None for no limit", _optional_positive)
    max_discard: int = _setting(
        1 << 20, "unread request body drained before the next keep-alive request; beyond it the "
                 "connection closes", _non_negative)
    graceful_timeout: float = _setting(
        30.0, "default seconds stop() lets in-flight requests finish", _non_negative)
    server_header: str | None = _setting("lichen", "value of the Server header; None to leave it out",
                                         _server_header)
    access_log_format: str = _setting(
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        "access log line, with gunicorn's atoms (h, l, u, t, r, m, U, q, H, s, B, b, f, a, T, M, D, L, p, "
        "{header}i, {header}o, {var}e)")
    forwarded_allow_ips: str = _setting(
        "127.0.0.1,::1", "proxies (IPs, CIDR networks, or '*') whose client address (X-Forwarded-For, X-Real-IP, "
                         "Forwarded for=) and scheme (X-Forwarded-Proto, Forwarded proto=) headers are trusted; "
                         "unix-socket peers always are. From other peers these headers are removed from the environ",
        _allow_list)
    trust_forwarded_host: bool = _setting(
        False, "also trust X-Forwarded-Host, X-Forwarded-Port, X-Forwarded-Prefix and Forwarded host= from "
               "trusted proxies (they set HTTP_HOST, SERVER_NAME, SERVER_PORT, SCRIPT_NAME). Turn on only when "
               "every such proxy sets or overwrites all three headers (nginx passes a client's own through "
               "unchanged); off, they are removed from the environ")
    forwarded_for_header: str = _setting("X-Forwarded-For", "header with the client address chain", _header_name)
    forwarded_proto_header: str = _setting("X-Forwarded-Proto", "header with the original scheme", _header_name)
    forwarded_host_header: str = _setting("X-Forwarded-Host", "header with the original Host", _header_name)
    forwarded_port_header: str = _setting("X-Forwarded-Port", "header with the original port", _header_name)
    forwarded_prefix_header: str = _setting("X-Forwarded-Prefix", "header with the mount path (SCRIPT_NAME)",
                                            _header_name)
    real_ip_header: str = _setting("X-Real-IP", "header with the client address (nginx's common recipe)",
                                   _header_name)
    proxy_protocol: bool = _setting(False, "expect a PROXY protocol v1/v2 header at the start of every connection")
    proxy_allow_ips: str = _setting("127.0.0.1,::1", "peers allowed to send a PROXY protocol header", _allow_list)
    defer_accept: bool = _setting(
        True, "TCP_DEFER_ACCEPT on TCP listeners (Linux): a connection is accepted once its first bytes "
              "arrive, which saves a wasted read and a wake-up for each new connection")
    threads: int = _setting(
        0, "run the WSGI app in a pool of this many OS threads (for blocking apps); socket I/O, parsing "
           "and idle connections stay on the hub. 0 runs the app on greenlets", _non_negative)
    stall_threshold: float | None = _setting(
        None, "log the stack of a greenlet that keeps the hub from running for longer than this many "
              "seconds (logger lichen.stall); None turns the detector off", _optional_positive)
    accept_backoff: float = _setting(
        0.05, "first pause in seconds after accept() fails for lack of file descriptors "
              "(doubles up to 1 s)", _positive)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(f.name, f.type, value)
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, value)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated)."""
        return build(self, **changes)

    def describe(self) -> str:
        """One line per setting: name = value  # help."""
        return "\n".join(f"{f.name} = {getattr(self, f.name)!r}  # {f.metadata['help']}"
                         for f in dataclasses.fields(self))


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,),
    "int | None": (int, type(None)), "float | None": (int, float, type(None)),
    "str | None": (str, type(None)), "bool": (bool,),
}


def _check_type(name: str, annotation: Any, value: Any) -> None:
    allowed = _TYPES[str(annotation)]
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise SettingError(f"{name} must be {annotation}, got {type(value).__name__} {value!r}")


SETTINGS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}


def build(base: Settings | None = None, **changes: Any) -> Settings:
    """Settings from `base` (or the defaults) with `changes`; unknown names
    are rejected with the list of known ones."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise SettingError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    if base is None:
        return Settings(**changes)
    return dataclasses.replace(base, **changes)
