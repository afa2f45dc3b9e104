# lichen.http.rules: the RFC 9110/9112 rules a request head must meet that
# llhttp does not check for us.
#
# Strategy: pure functions over the already tokenised head (field values as
# bytes), each raising RemoteProtocolError with the status to answer: the
# framing fields (Content-Length, Transfer-Encoding: a coding before chunked
# is 501, a length that cannot be known is 400), Expect (417), the request
# target's forms (absolute, asterisk, CONNECT refused), Host syntax, and the
# field sets the parser consults (singletons, fields forbidden in trailers).
# No state: the parser decides when to call them and makes the error sticky.
from __future__ import annotations

import ipaddress
import re

from .errors import RemoteProtocolError

__all__ = ["SINGLETON_FIELDS", "FORBIDDEN_TRAILERS", "valid_host", "split_list", "content_length",
           "transfer_encoding_is_chunked", "expects_continue", "split_target"]

#: Fields whose repetition would change their meaning when joined into one
#: comma-separated value (RFC 9110 5.3): a second one is 400.  Host and
#: Content-Length are singletons too and have their own checks.
SINGLETON_FIELDS = frozenset((
    b"content-type", b"authorization", b"proxy-authorization", b"range", b"if-range",
    b"if-modified-since", b"if-unmodified-since", b"max-forwards",
))

#: Fields a sender must not put in a trailer section (RFC 9110 6.5.1): they
#: frame or route the message, modify the request, authenticate it, or say
#: how to process the content.  A trailer carrying one is 400.
FORBIDDEN_TRAILERS = frozenset((
    b"transfer-encoding", b"content-length", b"host", b"trailer", b"te", b"connection",
    b"keep-alive", b"upgrade", b"proxy-connection", b"content-type", b"content-encoding",
    b"content-range", b"content-location", b"expect", b"cache-control", b"max-forwards",
    b"pragma", b"range", b"if-match", b"if-none-match", b"if-modified-since",
    b"if-unmodified-since", b"if-range", b"authorization", b"proxy-authorization",
    b"www-authenticate", b"proxy-authenticate", b"cookie", b"set-cookie", b"age", b"date",
    b"expires", b"location", b"retry-after", b"vary", b"warning",
))

# Host = uri-host [ ":" port ]  (RFC 9110 7.2, RFC 3986 3.2.2).  reg-name and
# IPv4 share one pattern; an IP-literal is checked again by ipaddress.  The
# reg-name may be empty (an empty Host field is legal), but not in front of
# a port, and a port, when present, must have 1-5 digits.
_REG_NAME_HOST = re.compile(
    rb"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+(?::[0-9]{1,5})?)?")
_IP_LITERAL_HOST = re.compile(rb"\[([0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?")


def valid_host(host: bytes) -> bool:
    """True if ``host`` is a syntactically valid ``host[:port]``."""
    if host[:1] == b"[":
        m = _IP_LITERAL_HOST.fullmatch(host)
        if m is None:
            return False
        try:
            ipaddress.IPv6Address(m.group(1).decode("ascii"))
        except ValueError:
            return False
        return True
    return _REG_NAME_HOST.fullmatch(host) is not None


def split_list(values: list[bytes]) -> list[bytes]:
    """Split comma-separated field values into lower-cased members with
    their OWS stripped, dropping empty list elements (RFC 9110 5.6.1)."""
    out = []
    for value in values:
        for member in value.split(b","):
            member = member.strip(b" \t")
            if member:
                out.append(member.lower())
    return out


def content_length(values: list[bytes], max_body: int | None) -> int:
    """The body length the Content-Length field(s) declare."""
    if len(values) > 1:
        raise RemoteProtocolError("more than one Content-Length header", 400)
    value = values[0]
    if not (value.isdigit() and value.isascii()):
        raise RemoteProtocolError(f"invalid Content-Length {value[:20]!r}", 400)
    if len(value) > 18:
        raise RemoteProtocolError("Content-Length too large", 400 if max_body is None else 413)
    length = int(value)
    if max_body is not None and length > max_body:
        raise RemoteProtocolError("request body too large", 413)
    return length


def transfer_encoding_is_chunked(values: list[bytes], version: str, has_length: bool) -> bool:
    """Check the Transfer-Encoding field(s): True (the body is chunked),
    or an error."""
    if version == "1.0":
        raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400)
    if has_length:
        raise RemoteProtocolError("both Content-Length and Transfer-Encoding", 400)
    codings = split_list(values)
    if not codings:
        raise RemoteProtocolError("empty Transfer-Encoding", 400)
    # RFC 9112 6.3: if chunked is not the final coding the length of the
    # body cannot be determined: that MUST be 400, so it is checked before
    # the 501 for codings not implemented.  Whole members are compared, so
    # "chunked;x=1" or "xchunked" are not "chunked".
    if codings[-1] != b"chunked":
        raise RemoteProtocolError("Transfer-Encoding does not end with chunked", 400)
    for coding in codings[:-1]:
        if coding.split(b";", 1)[0].rstrip(b" \t") == b"chunked":
            raise RemoteProtocolError("chunked applied more than once", 400)
    if len(codings) > 1:
        # Decoding gzip & co. is not a server's job, and handing the app a
        # body still coded while saying nothing would be worse.
        raise RemoteProtocolError("unsupported transfer coding", 501)
    return True


def expects_continue(values: list[bytes], version: str) -> bool:
    """Whether an Expect field asks for 100 Continue (any other
    expectation is 417)."""
    members = split_list(values)
    for member in members:
        if member != b"100-continue":
            raise RemoteProtocolError("unsupported expectation", 417)
    # RFC 9110 10.1.1: a 100-continue in an HTTP/1.0 request is ignored.
    return bool(members) and version == "1.1"


def split_target(url: bytes, method: str, host_field: bytes | None) -> tuple[bytes, bytes, bytes | None]:
    """(path, query, effective host) of an asterisk-form or absolute-form
    target. CONNECT (authority-form) is 400: a WSGI server is not a
    tunnelling proxy."""
    if method == "CONNECT":
        raise RemoteProtocolError("CONNECT is not supported", 400)
    if url == b"*":
        if method != "OPTIONS":
            raise RemoteProtocolError("asterisk-form target is only allowed with OPTIONS", 400)
        return b"*", b"", host_field
    # absolute-form: scheme "://" authority path-abempty [ "?" query ]
    sep = url.find(b"://")
    scheme = url[:sep].lower() if sep > 0 else b""
    if scheme not in (b"http", b"https"):
        raise RemoteProtocolError("invalid request target", 400)
    rest = url[sep + 3:]
    end = len(rest)
    for delim in (b"/", b"?", b"#"):
        i = rest.find(delim, 0, end)
        if i != -1:
            end = i
    authority = rest[:end]
    rest = rest[end:]
    if b"@" in authority:
        # RFC 9110 4.2.4: userinfo in an http(s) URI is an error.
        raise RemoteProtocolError("userinfo in request target", 400)
    if not authority or authority[:1] == b":":
        raise RemoteProtocolError("empty host in request target", 400)
    i = rest.find(b"#")
    if i != -1:
        rest = rest[:i]
    path, _, query = rest.partition(b"?")
    # RFC 9112 3.2.2: the target's authority replaces the Host field (which
    # must still be present for HTTP/1.1).  An empty path in an http URI is
    # equivalent to "/".
    return path or b"/", query, authority
