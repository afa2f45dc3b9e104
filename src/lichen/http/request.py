# Incremental HTTP/1.1 request parser for one connection, with no I/O.
# Strategy: a single httptools (llhttp) parser per connection does all the
# tokenising and framing (request line, headers, Content-Length and chunked
# bodies, pipelining); its callbacks only collect bytes and push events onto
# a deque.  The rules llhttp does not enforce (Host, Transfer-Encoding codings,
# versions, Expect, size limits) are checked once per message in
# on_headers_complete on already-tokenised data, so a plain GET costs one C
# pass plus a handful of tiny Python callbacks.
from __future__ import annotations

import ipaddress
import re
from collections import deque
from dataclasses import dataclass
from types import SimpleNamespace

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserInvalidMethodError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from .errors import RemoteProtocolError

__all__ = ["Request", "EndOfMessage", "END_OF_MESSAGE", "RequestParser"]


@dataclass(slots=True)
class Request:
    """The head of one request; always the first event of a message.

    All byte fields are raw (not percent-decoded).  ``headers`` keeps the
    order received, with names lower-cased and values stripped of
    surrounding whitespace; repeated fields stay separate entries.
    """

    method: str
    target: bytes
    path: bytes
    query: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    content_length: int | None
    chunked: bool
    expect_continue: bool
    host: bytes | None


class EndOfMessage:
    """Marks the end of a request body.  A singleton: ``EndOfMessage()`` is
    always ``END_OF_MESSAGE``, so ``ev is END_OF_MESSAGE`` works."""

    __slots__ = ()

    def __new__(cls) -> EndOfMessage:
        return END_OF_MESSAGE

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"

    def __reduce__(self) -> tuple:
        return (EndOfMessage, ())


END_OF_MESSAGE: EndOfMessage = object.__new__(EndOfMessage)

Event = Request | bytes | EndOfMessage

# Parser states (plain ints: compared on every feed()).
_IDLE = 0  # between messages (leading CRLFs may have been swallowed)
_HEAD = 1  # a message has started, its header section is not complete
_BODY = 2  # head delivered, waiting for the rest of the body

# Header names that need a look in on_headers_complete.  Connection is not
# here: keep-alive comes from llhttp itself so that our idea of "will there
# be another request on this connection" can never disagree with its own.
_SPECIAL = frozenset((b"host", b"content-length", b"transfer-encoding",
                      b"expect"))

# Transfer codings we accept before the final "chunked".  Anything else is
# 501.  x-gzip / x-compress are the aliases RFC 9112 7.2 asks us to honour.
# Note we only *remove* the chunked framing: a body that is also gzip'd is
# handed over compressed, and the Transfer-Encoding header stays in
# Request.headers so the application can tell.
_KNOWN_CODINGS = frozenset((b"gzip", b"x-gzip", b"deflate", b"compress",
                            b"x-compress", b"identity"))

# Host = uri-host [ ":" port ]  (RFC 9110 7.2, RFC 3986 3.2.2).  reg-name and
# IPv4 share one pattern; an IP-literal is checked again by ipaddress.  The
# reg-name may be empty (an empty Host field is legal), but not in front of
# a port, and a port, when present, must have 1-5 digits.
_REG_NAME_HOST = re.compile(
    rb"(?:(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+(?::[0-9]{1,5})?)?")
_IP_LITERAL_HOST = re.compile(rb"\[([0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?")

# llhttp method name (bytes) -> str.  llhttp only knows a fixed list of
# methods, so this cannot grow without bound.
_METHODS: dict[bytes, str] = {}

# Synthetic heads used to put llhttp back into "reading a body" mode after it
# took an Upgrade request for a protocol switch (see _resume_after_upgrade).
_PRIME_CHUNKED = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
_PRIME_LENGTH = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n"


def _valid_host(host: bytes) -> bool:
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


def _split_list(values: list[bytes]) -> list[bytes]:
    """Split comma-separated field values into lower-cased, stripped
    members, dropping empty list elements (RFC 9110 5.6.1)."""
    out = []
    for value in values:
        for member in value.split(b","):
            member = member.strip(b" \t")
            if member:
                out.append(member.lower())
    return out


class RequestParser:
    """Incremental parser for the requests arriving on one connection.

    Feed it whatever the socket produced with :meth:`feed`, then drain
    :meth:`next_event` until it returns ``None``.  Each message yields one
    :class:`Request`, zero or more ``bytes`` body chunks (de-chunked) and
    :data:`END_OF_MESSAGE`.  Pipelined requests come out in order.

    Errors are :class:`RemoteProtocolError` with the status to answer.  Once
    one has been raised the parser is broken: ``feed()`` and ``feed_eof()``
    raise it again.  Events queued *before* the error stay available (a
    server may still answer earlier pipelined requests); when they are
    drained ``next_event()`` raises the error too, instead of returning None.
    """

    __slots__ = (
        "_max_request_line", "_max_target", "_max_header_bytes",
        "_max_header_count", "_max_head_raw", "_max_body",
        "_hp", "_events", "_push", "_error", "_state", "_completed",
        "_head_raw", "_stall", "_priming", "_body_budget", "_last_host", "_current",
        "_url", "_headers", "_hbytes", "_host", "_extra",
    )

    def __init__(self, *, max_request_line: int = 8190,
                 max_header_bytes: int = 65536, max_header_count: int = 100,
                 max_body: int | None = None) -> None:
        """
        Args:
            max_request_line: longest request line accepted (method, target
                and version, without the CRLF); longer is 414.
            max_header_bytes: largest header section (sum over fields of
                ``name: value`` plus CRLF); larger is 431.  Trailers of a
                chunked body get the same allowance separately.
            max_header_count: most header fields accepted; more is 431.
            max_body: largest body accepted (declared Content-Length, or
                the running total of a chunked body); larger is 413.
                ``None`` means unlimited.
        """
        self._max_request_line = max_request_line
        # The shortest method is 3 bytes and the fixed overhead of the line
        # is 10 ("  HTTP/1.1"): a target longer than this can never fit.
        self._max_target = max_request_line - 13
        self._max_header_bytes = max_header_bytes
        self._max_header_count = max_header_count
        # Back-stop for a header section that never ends (httptools buffers
        # a field internally until it is complete, so we only see raw
        # sizes): request line + header bytes + the CRLFs.
        self._max_head_raw = max_request_line + max_header_bytes + 4
        self._max_body = max_body
        self._events: deque[Event] = deque()
        self._push = self._events.append
        self._error: RemoteProtocolError | None = None
        self._state = _IDLE
        self._completed = 0  # messages completed so far (see feed())
        self._head_raw = 0
        self._stall = 0
        self._priming = False
        self._body_budget: int | None = None
        self._last_host: bytes | None = None  # last Host that validated
        self._current: Request | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._hbytes = 0
        self._host: bytes | None = None
        self._extra: dict[bytes, object] | None = None
        self._hp = self._new_llhttp()

    # -- public API -----------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data`` (any amount, any split) and queue its events.

        Raises:
            RemoteProtocolError: the peer sent an invalid request.
        """
        if self._error is not None:
            raise self._error
        state = self._state
        completed = self._completed
        nevents = len(self._events)
        try:
            self._hp.feed_data(data)
        except HttpParserUpgrade as exc:
            self._resume_after_upgrade(data, exc.args[0])
            return
        except HttpParserCallbackError as exc:
            if self._error is None:
                # Not one of ours: a bug in a callback.  Surface it as is,
                # but the llhttp state is unusable from now on.
                self._error = RemoteProtocolError(
                    "internal parser error", 500)
                raise (exc.__context__ or exc) from None
            raise self._error from None
        except HttpParserError as exc:
            raise self._fail(self._map_llhttp_error(exc)) from None
        if self._state != _IDLE:
            if self._state == _HEAD:
                self._check_partial_head(len(data), state, completed)
            elif len(self._events) == nevents:
                self._check_stall(len(data))
            else:
                self._stall = 0

    def next_event(self) -> Request | bytes | EndOfMessage | None:
        """Return the next queued event, or ``None`` if more data is needed.

        Raises:
            RemoteProtocolError: the parser is broken and all events queued
                before the error have been returned.
        """
        if self._events:
            return self._events.popleft()
        if self._error is not None:
            raise self._error
        return None

    def feed_eof(self) -> None:
        """Tell the parser the peer closed its side.

        Raises:
            RemoteProtocolError: (400) a message was partly received.
        """
        if self._error is not None:
            raise self._error
        if self._state != _IDLE:
            raise self._fail(RemoteProtocolError(
                "connection closed in the middle of a request", 400))

    @property
    def reusable(self) -> bool:
        """True when the parser may go on with another connection: between
        messages, nothing queued, no error, and the last message allowed a
        next one (llhttp stays closed after ``Connection: close``)."""
        cur = self._current
        return (self._state == _IDLE and not self._events and self._error is None
                and (cur is None or cur.keep_alive))

    @property
    def idle(self) -> bool:
        """True when no partial message is buffered (between messages).

        Complete messages whose events have not been drained yet do not
        count: they are not partial.
        """
        return self._state == _IDLE

    # -- llhttp plumbing ------------------------------------------------

    def _new_llhttp(self) -> HttpRequestParser:
        # httptools looks the callbacks up by name once, at construction;
        # a namespace keeps the on_* names out of our public API.
        hp = HttpRequestParser(SimpleNamespace(
            on_message_begin=self._on_message_begin,
            on_url=self._on_url,
            on_header=self._on_header,
            on_headers_complete=self._on_headers_complete,
            on_body=self._on_body,
            on_message_complete=self._on_message_complete,
        ))
        # lenient_version: llhttp rejects HTTP/1.2..1.9 outright, but we
        # want to accept them as 1.1 and to answer 2.x/0.x/3.x with 505, so
        # we check the version ourselves in on_headers_complete.
        # lenient_data_after_close: llhttp errors on bytes pipelined after
        # a "Connection: close" request; they are not the client's crime,
        # we just never read them (the connection closes after the reply),
        # so let llhttp discard them instead of failing the good request.
        hp.set_dangerous_leniencies(lenient_version=True,
                                    lenient_data_after_close=True)
        return hp

    def _fail(self, err: RemoteProtocolError) -> RemoteProtocolError:
        if self._error is None:
            self._error = err
        return self._error

    def _reject(self, status: int, message: str) -> RemoteProtocolError:
        """Record an error found inside a callback and return it for raising;
        feed() re-raises the recorded error instead of httptools' wrapper."""
        return self._fail(RemoteProtocolError(message, status))

    @staticmethod
    def _map_llhttp_error(exc: HttpParserError) -> RemoteProtocolError:
        reason = str(exc)
        if "PRI" in reason or "HTTP version" in reason:
            # "PRI * HTTP/2.0": an HTTP/2 prior-knowledge preface.
            return RemoteProtocolError(
                f"HTTP version not supported ({reason})", 505)
        if isinstance(exc, HttpParserInvalidMethodError):
            return RemoteProtocolError(f"invalid request method ({reason})")
        return RemoteProtocolError(f"malformed request ({reason})", 400)

    def _check_partial_head(self, n: int, state: int, completed: int) -> None:
        """Bound the bytes of a header section that is still incomplete.

        Complete fields are counted exactly in _on_header; this catches a
        field (or request line) that never ends.  We only know how many
        bytes we fed, not where the message began, so: if a message began
        before this feed all ``n`` bytes are head; if it began in this feed
        with no message completed first it started at (almost) offset 0;
        otherwise the start is unknown and counting resumes with the next
        feed (bounding memory at the limit plus one feed).
        """
        if self._completed != completed:
            self._head_raw = 0
            return
        if state == _HEAD:
            self._head_raw += n
        else:
            self._head_raw = n
        if self._head_raw > self._max_head_raw:
            raise self._fail(RemoteProtocolError(
                "request header section too large", 431))

    def _check_stall(self, n: int) -> None:
        """Bound the bytes of a chunked body that produce no data.

        Chunk-size lines, extensions and trailer fields yield no event, and
        httptools buffers a trailer field internally until it is complete:
        a peer could grow that forever.  Any feed that produces an event
        resets the count.
        """
        self._stall += n
        if self._stall > self._max_head_raw:
            raise self._fail(RemoteProtocolError(
                "chunk metadata or trailer section too large", 431))

    def _resume_after_upgrade(self, data: bytes, offset: int) -> None:
        """llhttp stopped at an Upgrade request (CONNECT never gets here:
        _on_headers_complete refuses it first).

        WSGI cannot switch protocols, so an Upgrade request is treated as
        an ordinary request.  httptools makes llhttp skip the body of such a
        request and report message-complete right after the head; if the
        request does declare a body we take back that EndOfMessage and feed
        llhttp a synthetic head with the same framing, so the real body
        bytes that follow are parsed (and de-chunked) as usual.  Without a
        body, httptools has already resumed llhttp at the start of the next
        message (or in its closed state after "Connection: close").
        """
        req = self._current
        if req is not None and (req.chunked or req.content_length):
            events = self._events
            if events and events[-1] is END_OF_MESSAGE:
                events.pop()
            self._completed -= 1
            prime = (_PRIME_CHUNKED if req.chunked
                     else _PRIME_LENGTH % req.content_length)
            if not req.keep_alive:
                prime += b"Connection: close\r\n"
            # A fresh llhttp: the resumed one may sit in its "closed" state
            # (Connection: close) and would swallow the body.
            self._hp = self._new_llhttp()
            self._priming = True
            try:
                self._hp.feed_data(prime + b"\r\n")
            finally:
                self._priming = False
        rest = data[offset:]
        if rest:
            self.feed(rest)

    # -- callbacks (hot path: keep them tiny) ---------------------------

    def _on_message_begin(self) -> None:
        self._state = _HEAD
        self._stall = 0
        self._url = b""
        self._headers = []
        self._hbytes = 0
        self._host = None
        self._extra = None

    def _on_url(self, url: bytes) -> None:
        # Called once per piece when the target is split across feeds.
        if self._url:
            url = self._url + url
        self._url = url
        if len(url) > self._max_target:
            raise self._reject(414, "request line too long")

    def _on_header(self, name: bytes, value: bytes) -> None:
        # llhttp strips leading OWS of a value but not trailing OWS;
        # rstrip returns the same object when there is nothing to strip.
        value = value.rstrip(b" \t")
        lname = name.lower()
        self._headers.append((lname, value))
        # Sizes are only compared in _on_headers_complete: memory is
        # already bounded per feed by _check_partial_head / _check_stall.
        self._hbytes += len(lname) + len(value)
        if lname in _SPECIAL:
            if lname == b"host":
                if self._host is not None:
                    self._extra_list(b"dup-host").append(value)
                self._host = value
            else:
                # content-length: llhttp already rejected duplicates and
                # anything but digits, so a list is only for TE / Expect.
                self._extra_list(lname).append(value)

    def _extra_list(self, key: bytes) -> list[bytes]:
        extra = self._extra
        if extra is None:
            extra = self._extra = {}
        lst = extra.get(key)
        if lst is None:
            lst = extra[key] = []
        return lst  # type: ignore[return-value]

    def _on_headers_complete(self) -> None:
        if self._priming:
            self._end_of_priming()
            return
        hp = self._hp
        version = hp.get_http_version()
        if version != "1.1" and version != "1.0":
            if version[:2] != "1.":
                raise self._reject(
                    505, f"HTTP version {version} not supported")
            version = "1.1"  # HTTP/1.2+ : a later 1.x speaks 1.1 to us
        raw_method = hp.get_method()  # bytes, from llhttp's fixed table
        method = _METHODS.get(raw_method)
        if method is None:
            method = _METHODS[raw_method] = raw_method.decode("ascii")
        url = self._url
        if len(method) + len(url) + 10 > self._max_request_line:
            raise self._reject(414, "request line too long")
        headers = self._headers
        # "name: value\r\n" is the field plus 4 bytes of syntax.
        if (self._hbytes + 4 * len(headers) > self._max_header_bytes
                or len(headers) > self._max_header_count):
            raise self._reject(431, "request header fields too large")

        if url[:1] == b"/":  # origin-form: the common case
            if b"#" in url:
                url_nofrag = url[:url.index(b"#")]
            else:
                url_nofrag = url
            path, _, query = url_nofrag.partition(b"?")
            host = self._host
        else:
            path, query, host = self._other_form(url, method)

        if self._host is None and version == "1.1":
            raise self._reject(400, "missing Host header")
        content_length = None
        chunked = False
        expect_continue = False
        extra = self._extra
        if extra is not None:
            if b"dup-host" in extra:
                raise self._reject(400, "more than one Host header")
            cl = extra.get(b"content-length")
            if cl is not None:
                content_length = int(cl[0])  # digits only: llhttp checked
                if (self._max_body is not None
                        and content_length > self._max_body):
                    raise self._reject(413, "request body too large")
            te = extra.get(b"transfer-encoding")
            if te is not None:
                chunked = self._check_transfer_encoding(te, version)
            expect = extra.get(b"expect")
            if expect is not None:
                expect_continue = self._check_expect(expect, version) and (
                    chunked or bool(content_length))
        if host is not None and host != self._last_host:
            if not _valid_host(host):
                raise self._reject(400, "invalid Host header")
            self._last_host = host

        req = Request(method, url, path, query, version, headers,
                      hp.should_keep_alive(), content_length, chunked,
                      expect_continue, host)
        self._current = req
        self._push(req)
        self._state = _BODY
        # Trailer fields of a chunked body arrive through _on_header too:
        # give them a scratch list (discarded) and their own size budget.
        self._headers = []
        self._hbytes = 0
        if chunked and self._max_body is not None:
            self._body_budget = self._max_body
        else:
            self._body_budget = None

    def _end_of_priming(self) -> None:
        # The synthetic head of _resume_after_upgrade went through: restore
        # the state the real request left us in.  Its max_body check was
        # done on the real head; a chunked body starts a fresh budget.
        req = self._current
        assert req is not None
        self._state = _BODY
        self._headers = []
        self._hbytes = 0
        if req.chunked and self._max_body is not None:
            self._body_budget = self._max_body
        else:
            self._body_budget = None

    def _on_body(self, chunk: bytes) -> None:
        if self._body_budget is not None:
            # Only chunked bodies: a Content-Length was checked up front.
            self._body_budget -= len(chunk)
            if self._body_budget < 0:
                raise self._reject(413, "request body too large")
        self._push(chunk)

    def _on_message_complete(self) -> None:
        self._push(END_OF_MESSAGE)
        self._state = _IDLE
        self._completed += 1

    # -- rarely used checks ---------------------------------------------

    def _other_form(self, url: bytes,
                    method: str) -> tuple[bytes, bytes, bytes | None]:
        """Split an asterisk-form or absolute-form target.

        Returns (path, query, effective host).  CONNECT (authority-form) is
        refused with 400: a WSGI server is not a tunnelling proxy, and
        llhttp would hand us the tunnel bytes as if they were HTTP.
        """
        if method == "CONNECT":
            raise self._reject(400, "CONNECT is not supported")
        if url == b"*":
            if method != "OPTIONS":
                raise self._reject(400, "asterisk-form target is only "
                                        "allowed with OPTIONS")
            return b"*", b"", self._host
        # absolute-form: scheme "://" authority path-abempty [ "?" query ]
        sep = url.find(b"://")
        scheme = url[:sep].lower() if sep > 0 else b""
        if scheme not in (b"http", b"https"):
            raise self._reject(400, "invalid request target")
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
            raise self._reject(400, "userinfo in request target")
        if not authority or authority[:1] == b":":
            raise self._reject(400, "empty host in request target")
        i = rest.find(b"#")
        if i != -1:
            rest = rest[:i]
        path, _, query = rest.partition(b"?")
        # RFC 9112 3.2.2: the target's authority replaces the Host field
        # (which must still be present for HTTP/1.1).  An empty path in an
        # http URI is equivalent to "/".
        return path or b"/", query, authority

    def _check_transfer_encoding(self, values: list[bytes],
                                 version: str) -> bool:
        if version == "1.0":
            raise self._reject(400, "Transfer-Encoding in an HTTP/1.0 request")
        codings = _split_list(values)
        # RFC 9112 6.3: if chunked is not the final coding the length of the
        # body cannot be determined: that MUST be 400, so it is checked
        # before the SHOULD-501 for codings we do not know.  Comparing whole
        # members means "chunked;x=1" or "xchunked" are not "chunked".
        if not codings or codings[-1] != b"chunked":
            raise self._reject(
                400, "Transfer-Encoding does not end with chunked")
        for coding in codings[:-1]:
            name = coding.split(b";", 1)[0].rstrip(b" \t")
            if name == b"chunked":
                raise self._reject(400, "chunked applied more than once")
            if name not in _KNOWN_CODINGS:
                raise self._reject(501, "unsupported transfer coding")
        return True

    def _check_expect(self, values: list[bytes], version: str) -> bool:
        members = _split_list(values)
        for member in members:
            if member != b"100-continue":
                raise self._reject(417, "unsupported expectation")
        # RFC 9110 10.1.1: a 100-continue in an HTTP/1.0 request is ignored.
        return bool(members) and version == "1.1"
