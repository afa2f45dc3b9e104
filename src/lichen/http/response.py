# HTTP/1.1 response heads, with no I/O.
# Strategy: build_head() validates what the application gave (status line,
# header names and values: nothing can be injected), drops hop-by-hop
# headers, decides the framing (none / Content-Length / chunked /
# close-delimited: the framers live in lichen.http.framing) and the final
# keep-alive, and returns the encoded head plus the body's Framer.
# Prepared heads, single header lines, status lines and header-name checks
# are cached by value, so a repeated response costs one dict lookup and a
# head in which one value changes each time (a cookie, an ETag) re-validates
# only that line; the caches are bounded (apps can put request data in their
# headers) and drop their oldest eighth when full, so a new head is always
# cached.
from __future__ import annotations

import re
from http import HTTPStatus
from itertools import islice
from typing import Any, NamedTuple

from .errors import LocalProtocolError
from .framing import (CLOSE_DELIMITED, FINISHED, NO_BODY, SWITCHED, ChunkedFramer, Framer, LengthFramer,  # noqa: F401
                      body_bytes)

__all__ = [
    "CONTINUE_RESPONSE",
    "Framer",
    "FINISHED",
    "SWITCHED",
    "build_head",
    "build_simple_response",
    "build_whole_response",
    "framer_after_whole",
    "body_bytes",
    "HeadCacheInfo",
    "head_cache_info",
]

#: Interim response sent before reading the body of an
#: ``Expect: 100-continue`` request.
CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

# "200 OK": three digits (100-599), one space, a reason phrase that may be
# empty but may not contain CR, LF or NUL (the only bytes that could end the
# line early or confuse a peer).
_STATUS_RE = re.compile(r"([1-5][0-9]{2}) ([^\r\n\x00]*)")
# RFC 9110 5.6.2 token.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Forbidden in field values: one search over all values joined together.
_BAD_VALUE = re.compile(r"[\r\n\x00]")

# Bounds of every cache keyed by what the application sends: entries each,
# and the longest value (head, status, name) worth an entry, so that the
# memory they can hold stays small whatever the app echoes into headers.
_CACHE_MAX = 1024
_ENTRY_MAX = 4096
# status string -> (encoded status line, status code)
_STATUS_CACHE: dict[str, tuple[bytes, int]] = {}
# header name as given -> lower-cased name (only names that validated)
_NAME_CACHE: dict[str, str] = {}

# Names that need attention in build_head.  Hop-by-hop fields (RFC 9110
# 7.6.1; PEP 3333 forbids applications to send them) are dropped: framing
# and persistence are the server's business.  "Connection: close" from the
# application is honoured before being replaced by our own Connection field.
# Proxy-Authenticate / Proxy-Authorization are kept: a 407 answer from an
# application needs the former and neither affects this hop's framing.
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "te",
                         "trailer", "transfer-encoding", "upgrade"))

_CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"
_CLOSE_LINE = b"Connection: close\r\n"
_KEEP_ALIVE_LINE = b"Connection: keep-alive\r\n"
_SERVER_LINES: dict[bytes, bytes] = {}


def _remember(cache: dict, key: Any, value: Any, size: int) -> None:
    """Store in a bounded cache. When it is full the oldest eighth goes at
    once (a dict keeps insertion order): new keys are always cached, a hit
    stays one dict lookup with no bookkeeping, and an app whose heads never
    repeat pays for eviction once per _CACHE_MAX // 8 misses, not on each
    (deleting the oldest key one at a time rescans the deleted slots at the
    front of the dict every time)."""
    if size > _ENTRY_MAX:
        return
    if len(cache) >= _CACHE_MAX:
        try:
            for old in list(islice(cache, _CACHE_MAX // 8)):
                cache.pop(old, None)
        except RuntimeError:
            pass  # another thread changed the cache meanwhile: it was evicting too
    cache[key] = value


# -- head building --------------------------------------------------------


def _parse_status(status: str) -> tuple[bytes, int]:
    if not isinstance(status, str):
        raise LocalProtocolError(f"status must be str, not {type(status)}")
    m = _STATUS_RE.fullmatch(status)
    if m is None:
        raise LocalProtocolError(f"invalid status line {status!r}")
    try:
        line = f"HTTP/1.1 {status}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(
            f"status is not latin-1: {status!r}") from None
    entry = (line, int(m.group(1)))
    _remember(_STATUS_CACHE, status, entry, len(line))
    return entry


def _check_name(name: str) -> str:
    if not isinstance(name, str) or _TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"invalid header name {name!r}")
    lname = name.lower()
    _remember(_NAME_CACHE, name, lname, len(name))
    return lname


def _parse_content_length(value: str) -> int:
    v = value.strip(" \t")
    if not (v.isascii() and v.isdigit()):
        raise LocalProtocolError(f"invalid Content-Length {value!r}")
    return int(v)


# (status, *headers) -> what _prepare() made of them
_PREPARED: dict[tuple, tuple[bytes, int, int | None, bool, bool, bool]] = {}
_misses = 0  # heads prepared from scratch: see head_cache_info()


# (name, value) as the app gave them -> (kind, payload), for _prepare: a
# header line is validated and encoded once, so a head in which one value
# changes from response to response (a cookie, an ETag) costs only that line.
_LINES: dict[tuple[str, str], tuple[int, Any]] = {}
_PLAIN, _LENGTH, _DATE, _SERVER, _HOP = range(5)


def _header_line(name: str, value: str) -> tuple[int, Any]:
    """Validate one header field; (kind, payload): the encoded line for
    _PLAIN, _DATE and _SERVER, (length, line) for _LENGTH, whether it asks
    for Connection: close for _HOP (dropped)."""
    lname = _NAME_CACHE.get(name)
    if lname is None:
        lname = _check_name(name)
    if _BAD_VALUE.search(value) is not None:
        raise LocalProtocolError("CR, LF or NUL in a header value")
    if lname in _HOP_BY_HOP:
        return _HOP, lname == "connection" and "close" in [t.strip(" \t").lower() for t in value.split(",")]
    try:
        line = f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError("header is not latin-1 encodable") from None
    if lname == "content-length":
        return _LENGTH, (_parse_content_length(value), line)
    if lname == "date":
        return _DATE, line
    if lname == "server":
        return _SERVER, line
    return _PLAIN, line


def _prepare(status: str, headers: list[tuple[str, str]]
             ) -> tuple[bytes, int, int | None, bool, bool, bool]:
    """Validate and encode what the app decided: the status line plus its
    header lines. Returns (block, status code, app Content-Length, has
    Date, has Server, app asked for Connection: close)."""
    entry = _STATUS_CACHE.get(status)  # type: ignore[arg-type]
    if entry is None:
        entry = _parse_status(status)
    status_line, code = entry
    parts: list[bytes] = [status_line]
    content_length: int | None = None
    has_date = has_server = close = False
    lines = _LINES
    try:
        for pair in headers:
            try:
                known = lines.get(pair)
                cacheable = type(pair) is tuple
            except TypeError:  # unhashable (a list, not a tuple): judged, never cached
                known, cacheable = None, False
            if known is None:
                name, value = pair
                known = _header_line(name, value)
                if cacheable:
                    _remember(lines, pair, known, len(name) + len(value))
            kind, payload = known
            if kind == _PLAIN:
                parts.append(payload)
            elif kind == _LENGTH:
                n, line = payload
                if content_length is not None:
                    if n != content_length:
                        raise LocalProtocolError("conflicting Content-Length headers")
                    continue  # identical duplicate: send it once
                content_length = n
                if code < 200 or code == 204:
                    continue  # RFC 9110 8.6: MUST NOT send it there
                parts.append(line)
            elif kind == _HOP:
                close = close or payload  # hop-by-hop: dropped
            else:
                if kind == _DATE:
                    has_date = True
                else:
                    has_server = True
                parts.append(payload)
    except LocalProtocolError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise LocalProtocolError(
            "headers must be a list of (str, str) tuples") from None
    return b"".join(parts), code, content_length, has_date, has_server, close


def build_head(status: str, headers: list[tuple[str, str]], *,
               http_version: str, method: str, keep_alive: bool,
               date: bytes, server: bytes | None, length: int | None = None
               ) -> tuple[bytes, Framer, bool]:
    """Encode a response head and choose its body framing.

    Args:
        status: WSGI status string, e.g. ``"200 OK"``.
        headers: WSGI header list (str names and values, latin-1).
        http_version: version of the request (``"1.0"`` or ``"1.1"``); the
            response always says ``HTTP/1.1``, as RFC 9110 2.5 allows.
        method: request method (``"HEAD"`` responses carry no body).
        keep_alive: whether the request allows reusing the connection.
        date: pre-formatted IMF-fixdate (trusted, added unless the
            application set Date).
        server: Server field value (trusted) or None for none; the
            application's own Server header wins.
        length: the body's length when the server knows it in advance (a
            list body); sent as Content-Length if the app gave none, except
            for 1xx/204/304 and for an empty HEAD body (the app may just
            have skipped it).

    Returns:
        ``(head, framer, keep_alive)``: the bytes up to and including the
        blank line, the :class:`Framer` for the body, and the final
        keep-alive decision (False when the app asked for
        ``Connection: close``, for an HTTP/1.0 body of unknown length, or
        for a 1xx final status).

    Raises:
        LocalProtocolError: (500) invalid status, header name or value.
    """
    global _misses
    # Apps send the same status and headers again and again: validation and
    # encoding are cached by value (strings are immutable, so it is safe).
    try:
        key: tuple | None = (status, *headers)
        prepared = _PREPARED.get(key)  # type: ignore[arg-type]
    except TypeError:  # unhashable items: validated (and rejected) below
        key = prepared = None
    if prepared is None:
        _misses += 1
        prepared = _prepare(status, headers)
        if key is not None:
            _remember(_PREPARED, key, prepared, len(prepared[0]))
    block, code, content_length, has_date, has_server, app_close = prepared
    if app_close:
        keep_alive = False
    # 1xx, 204 and 304 never have a body (RFC 9112 6.3), nor does HEAD.
    head_only = method == "HEAD"
    no_body = code < 200 or code == 204 or code == 304 or head_only

    out = [block]
    if content_length is None and length is not None and 200 <= code and code != 204 and code != 304 \
            and (length or not head_only):
        content_length = length
        out.append(b"Content-Length: %d\r\n" % length)
    if no_body:
        framer: Framer = NO_BODY
        if code < 200:
            # A 1xx as the *final* answer leaves the client waiting for
            # another response: do not reuse such a connection.
            keep_alive = False
    elif content_length is not None:
        framer = LengthFramer(content_length)
    elif http_version == "1.0":
        # HTTP/1.0 has no chunked coding: end the body by closing.
        framer = CLOSE_DELIMITED
        keep_alive = False
    else:
        framer = ChunkedFramer()
        out.append(_CHUNKED_LINE)
    if not has_date:
        out.append(b"Date: %s\r\n" % date)
    if server is not None and not has_server:
        line = _SERVER_LINES.get(server)
        if line is None:
            line = _SERVER_LINES[server] = b"Server: %s\r\n" % server
        out.append(line)
    if http_version == "1.0":
        if keep_alive:
            out.append(_KEEP_ALIVE_LINE)
    elif not keep_alive:
        out.append(_CLOSE_LINE)
    out.append(b"\r\n")
    return b"".join(out), framer, keep_alive


# Whole responses by (date, status, version, HEAD?, keep-alive, length,
# server, *headers) -> (head, status code, keep-alive) or None when the
# framing does not carry the body as is.  The date is part of the key, so
# entries go stale each second; being the oldest, they go first.
_WHOLE: dict[tuple, tuple[bytes, int, bool] | None] = {}


def build_whole_response(status: str, headers: list[tuple[str, str]], body: bytes, *,
                         http_version: str, method: str, keep_alive: bool,
                         date: bytes, server: bytes | None,
                         declared: bool = False) -> tuple[bytes, int, bool, int] | None:
    """The wire bytes of a response whose body is known whole.

    Same rules as :func:`build_head` with ``length`` the body's size in
    bytes (``body`` may be any bytes-like object); for the
    common case (the body goes out as is: Content-Length framing that
    matches, or no body at all) the result is cached per second, so a
    repeated response costs one dict lookup.

    With ``declared``, ``body`` is the first piece of a body of unknown
    size (an iterable's first item): the result is the whole response only
    if the application's own Content-Length says this piece is all of it,
    else None.

    Returns:
        ``(data, status_code, keep_alive, head_length)``, the body's framer
        being :data:`FINISHED`; or ``None`` when the framing must see the
        body (an app Content-Length that disagrees with it, HTTP/1.0
        close-delimited...): use :func:`build_head` then.

    Raises:
        LocalProtocolError: (500) invalid status, header name or value.
    """
    if type(body) is not bytes:
        body = body_bytes(body)
    n = len(body)
    try:
        key: tuple = (date, status, http_version, method == "HEAD", keep_alive, n, server, declared, *headers)
        hit = _WHOLE.get(key, False)
    except TypeError:  # unhashable items (build_head judges them): not cached
        key, hit = (), False
    if hit is False:
        seen = _misses
        head, framer, keep = build_head(status, headers, http_version=http_version, method=method,
                                        keep_alive=keep_alive, date=date, server=server,
                                        length=None if declared else n)
        if framer is NO_BODY or (type(framer) is LengthFramer and framer.remaining == n):
            hit = (head, int(status[:3]), keep)
        else:
            hit = None
        # A head never prepared before is cached by build_head; here only
        # once it comes again, so heads that never repeat (a cookie, an
        # ETag in each) do not churn this cache too.
        if key and seen == _misses:
            _remember(_WHOLE, key, hit, len(head))
    if hit is None:
        return None
    head, code, keep = hit
    if method == "HEAD" or code < 200 or code == 204 or code == 304:
        return head, code, keep, len(head)
    return head + body, code, keep, len(head)


def framer_after_whole(code: int, method: str) -> Framer:
    """The framer for what an application writes after a response that
    build_whole_response(declared=True) completed: nothing more may go out;
    a body beyond the declared length marks the connection must_close, as
    it does on the piecewise path."""
    if method == "HEAD" or code < 200 or code == 204 or code == 304:
        return NO_BODY
    return LengthFramer(0)


class HeadCacheInfo(NamedTuple):
    """What the response-head caches hold (see :func:`head_cache_info`)."""

    maxsize: int  #: the bound on the entries of each cache
    heads: int  #: prepared heads: status line and application headers
    whole: int  #: whole-response heads (of this second and a few before)
    statuses: int  #: status lines
    names: int  #: validated header names
    lines: int  #: validated header lines
    misses: int  #: heads prepared from scratch since the process started


def head_cache_info() -> HeadCacheInfo:
    """Sizes of the caches of :func:`build_head` and
    :func:`build_whole_response`, for monitoring and tests; ``misses``
    grows by one each time a head is not found in the cache."""
    return HeadCacheInfo(_CACHE_MAX, len(_PREPARED), len(_WHOLE), len(_STATUS_CACHE), len(_NAME_CACHE), len(_LINES), _misses)


# -- canned responses -----------------------------------------------------

_SIMPLE_HEAD = (b"HTTP/1.1 %d %s\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\n"
                b"Date: %s\r\n")


# RFC 9110 phrases for the statuses the server produces itself; Python's
# table still has the older "Request-URI Too Long" etc. on some versions.
_REASONS = {
    400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
    417: "Expectation Failed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


def _reason(status: int) -> str:
    reason = _REASONS.get(status)
    if reason is not None:
        return reason
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def build_simple_response(status: int, message: str, *,
                          keep_alive: bool = False, date: bytes,
                          server: bytes | None = None, fields: bytes = b"") -> bytes:
    """A complete short text/plain response, for error pages (400, 408,
    413, 414, 417, 426, 431, 500, 501, 505...).

    The body is ``message`` (or the reason phrase when empty) plus a
    newline; ``Connection: close`` is added unless ``keep_alive``;
    ``server`` (trusted) is the Server field value, None for none;
    ``fields`` (trusted) are more field lines, each ending in CRLF (the
    ``Sec-WebSocket-Version`` of a 426).
    """
    if not 100 <= status <= 599:
        raise ValueError(f"invalid status code {status}")
    reason = _reason(status)
    body = ((message or reason) + "\n").encode("utf-8", "replace")
    head = _SIMPLE_HEAD % (status, reason.encode("ascii"), len(body), date)
    if server is not None:
        head += b"Server: %s\r\n" % server
    if not keep_alive:
        head += _CLOSE_LINE
    return head + fields + b"\r\n" + body
