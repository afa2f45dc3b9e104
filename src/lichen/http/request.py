# lichen.http.request: incremental HTTP/1.1 request parsing, with no I/O.
#
# Strategy: lichen frames messages itself and uses llhttp (httptools) only to
# tokenise a complete head. Bytes are kept raw and cut into lines as they
# arrive, so every limit (request line, field size, field count, header
# section) is checked before more than the limit is held, and what a client
# can make us keep is its own bytes, never an amplification of them. When the
# blank line ends the head, the request line and the ordinary field lines go
# through llhttp, which judges their syntax; the framing fields
# (Content-Length, Transfer-Encoding) are read here by RFC 9112's rules, and
# the body (counted, or chunked with extensions and trailers) is decoded here
# too, so no leniency of llhttp is ever needed for framing. Parsing is
# pulled: feed() stops once one whole message is queued and next_event()
# resumes it, so pipelined requests wait as raw bytes, not as objects.
from __future__ import annotations

import re
from collections import deque
from types import SimpleNamespace

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserInvalidMethodError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from .errors import RemoteProtocolError
from .events import END_OF_MESSAGE, EndOfMessage, Event, Request
from .rules import (FORBIDDEN_TRAILERS, SINGLETON_FIELDS, content_length, expects_continue, split_target,
                    transfer_encoding_is_chunked, valid_host)

__all__ = ["Request", "EndOfMessage", "END_OF_MESSAGE", "RequestParser", "SINGLETON_FIELDS",
           "FORBIDDEN_TRAILERS"]  # (the field sets live in lichen.http.rules)

# Parser states (plain ints: compared on every step).
_IDLE = 0         # between messages (leading empty lines are skipped here)
_HEAD = 1         # collecting the lines of a head
_LENGTH = 2       # a Content-Length body
_CHUNK_SIZE = 3   # expecting a chunk-size line
_CHUNK_DATA = 4   # inside a chunk's data
_CHUNK_END = 5    # expecting the CRLF after a chunk's data
_TRAILERS = 6     # the trailer section of a chunked body
_CLOSED = 7       # after a message that does not keep the connection

_FRAMING = frozenset((b"content-length", b"transfer-encoding"))

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A field value after its OWS is stripped: no CTL but HTAB (obs-text is
# allowed, RFC 9110 5.5).
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# chunk = chunk-size [ chunk-ext ] CRLF, where chunk-ext is
# *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) and a value
# is a token or a quoted-string (RFC 9112 7.1.1; BWS is SP / HTAB).
_TCHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*" + _TCHARS
    + rb"(?:[ \t]*=[ \t]*(?:" + _TCHARS + rb"|" + _QUOTED + rb"))?)*")

# The longest method llhttp knows is 16 bytes (BASELINE-CONTROL).
_MAX_METHOD = 24

# llhttp method name (bytes) -> str.  llhttp only knows a fixed list of
# methods, so this cannot grow without bound.
_METHODS: dict[bytes, str] = {}


class RequestParser:
    """Incremental parser for the requests arriving on one connection.

    Feed it whatever the socket produced with :meth:`feed`, then drain
    :meth:`next_event` until it returns ``None``.  Each message yields one
    :class:`Request`, zero or more ``bytes`` body pieces (de-chunked) and
    :data:`END_OF_MESSAGE`.  Pipelined requests come out in order.

    Errors are :class:`RemoteProtocolError` with the status to answer.  Once
    one has been raised the parser is broken: ``feed()`` and ``feed_eof()``
    raise it again.  Events queued *before* the error stay available (a
    server may still answer earlier pipelined requests); when they are
    drained ``next_event()`` raises the error too, instead of returning None.
    """

    __slots__ = (
        "_max_request_line", "_max_header_bytes", "_max_header_count", "_max_field_size",
        "_max_body", "_hp", "_events", "_error", "_state", "_buf", "_pos", "_scan",
        "_lines", "_hbytes", "_remaining", "_body_budget", "_last_host", "_current",
        "_url", "_method", "_version", "_keep_alive",
    )

    def __init__(self, *, max_request_line: int = 8190, max_header_bytes: int = 65536,
                 max_header_count: int = 100, max_field_size: int = 8190,
                 max_body: int | None = None) -> None:
        """
        Args:
            max_request_line: longest request line accepted, in bytes
                without its CRLF; longer is 414.
            max_header_bytes: largest header section: the field lines with
                their CRLFs; larger is 431.  A chunked body's trailer
                section gets the same allowance separately.
            max_header_count: most field lines accepted; more is 431
                (trailers likewise).
            max_field_size: longest field line with its CRLF; longer is
                431.  Chunk-size lines are held to it too (400 beyond).
            max_body: largest body accepted (declared Content-Length, or
                the running total of a chunked body); larger is 413.
                ``None`` means unlimited.
        """
        self._max_request_line = max_request_line
        self._max_header_bytes = max_header_bytes
        self._max_header_count = max_header_count
        self._max_field_size = max_field_size
        self._max_body = max_body
        self._events: deque[Event] = deque()
        self._error: RemoteProtocolError | None = None
        self._state = _IDLE
        self._buf = bytearray()
        self._pos = 0            # where unparsed bytes start in _buf
        self._scan = 0           # bytes after _pos already searched for a line end
        self._lines: list[bytes] = []
        self._hbytes = 0
        self._remaining = 0      # of a Content-Length body, or of a chunk
        self._body_budget: int | None = None
        self._last_host: bytes | None = None  # last Host that validated
        self._current: Request | None = None
        self._url = b""
        self._method = b""
        self._version = ""
        self._keep_alive = True
        self._hp = self._new_llhttp()

    # -- public API -----------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Take ``data`` (any amount, any split) and parse up to the end of
        the next whole message.

        Raises:
            RemoteProtocolError: the peer sent an invalid request.
        """
        if self._error is not None:
            raise self._error
        if self._state == _CLOSED:
            return  # the connection ends after the current message
        if data:
            self._buf += data
        if not self._events or self._events[-1] is not END_OF_MESSAGE:
            self._parse()

    def next_event(self) -> Request | bytes | EndOfMessage | None:
        """Return the next event, or ``None`` if more data is needed.

        Raises:
            RemoteProtocolError: the request is invalid and every event
                before the error has been returned.
        """
        events = self._events
        if events:
            return events.popleft()
        if self._error is not None:
            raise self._error
        if self._pos < len(self._buf) and self._state != _CLOSED:
            try:
                self._parse()
            except RemoteProtocolError:
                pass  # events parsed before the error still come first
            if events:
                return events.popleft()
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
        if self._state not in (_IDLE, _CLOSED):
            raise self._fail(RemoteProtocolError(
                "connection closed in the middle of a request", 400))

    @property
    def queued_events(self) -> int:
        """How many events are parsed and waiting (pipelined requests
        beyond the next whole message are not parsed yet)."""
        return len(self._events)

    @property
    def reusable(self) -> bool:
        """True when the parser may go on with another connection: between
        messages, nothing buffered or queued, no error, and the last message
        allowed a next one."""
        return self._state == _IDLE and not self._events and self._error is None and self._pos >= len(self._buf)

    @property
    def idle(self) -> bool:
        """True when no byte of a partial message is buffered (between
        messages; a lone CR of an empty line counts as a byte).

        Complete messages whose events have not been drained yet do not
        count: they are not partial.
        """
        state = self._state
        return (state == _IDLE and self._pos >= len(self._buf)) or state == _CLOSED

    def detach(self) -> bytes:
        """Parse nothing more (the connection switched protocols); returns
        the bytes received after the last message, unparsed."""
        rest = bytes(self._buf[self._pos:])
        self._buf = bytearray()
        self._pos = self._scan = 0
        self._events.clear()
        self._state = _CLOSED
        return rest

    # -- errors ---------------------------------------------------------

    def _fail(self, err: RemoteProtocolError) -> RemoteProtocolError:
        if self._error is None:
            self._error = err
            # Nothing more will be parsed: let the bytes go now, not when
            # the connection is done answering and lingering.
            self._buf = bytearray()
            self._pos = self._scan = 0
            self._lines = []
        return self._error

    def _reject(self, status: int, message: str) -> RemoteProtocolError:
        """Record an error and return it for raising."""
        return self._fail(RemoteProtocolError(message, status))

    # -- the state machine ------------------------------------------------

    def _parse(self) -> None:
        """Advance over the buffered bytes until they run out or one whole
        message is queued."""
        buf = self._buf
        pos = self._pos
        if pos:
            # Drop consumed bytes, but only when that frees at least half of
            # the buffer: a memmove per pipelined request would be quadratic.
            if pos >= len(buf):
                buf.clear()
                self._pos = 0
            elif pos > 4096 and 2 * pos > len(buf):
                del buf[:pos]
                self._pos = 0
        pending: list[bytes] = []  # body bytes of this pass, queued as one piece
        try:
            while True:
                state = self._state
                if state == _IDLE:
                    if not self._skip_empty_lines():
                        return
                    self._state = _HEAD
                    self._lines = []
                    self._hbytes = 0
                elif state == _HEAD:
                    if not self._read_head():
                        return
                    if self._start_body():
                        return  # a message without body is complete
                elif state == _LENGTH:
                    if not self._read_length_body(pending):
                        return
                    self._end_message(pending)
                    return
                elif state == _CHUNK_SIZE:
                    if not self._read_chunk_size():
                        return
                elif state == _CHUNK_DATA:
                    if not self._read_chunk_data(pending):
                        return
                elif state == _CHUNK_END:
                    if not self._read_chunk_end():
                        return
                elif state == _TRAILERS:
                    if not self._read_trailers():
                        return
                    self._end_message(pending)
                    return
                else:  # _CLOSED: what follows is never parsed
                    self._pos = len(self._buf)
                    return
        finally:
            if pending:
                self._events.append(pending[0] if len(pending) == 1 else b"".join(pending))

    def _end_message(self, pending: list[bytes]) -> None:
        if pending:
            self._events.append(pending[0] if len(pending) == 1 else b"".join(pending))
            pending.clear()
        self._events.append(END_OF_MESSAGE)
        cur = self._current
        self._state = _IDLE if cur is None or cur.keep_alive else _CLOSED

    def _skip_empty_lines(self) -> bool:
        """RFC 9112 2.2: empty lines before a request line are ignored.
        True when a request's first byte is next."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        while pos < end and buf[pos] == 13:
            if pos + 1 == end:
                break  # a lone CR: wait for its LF
            if buf[pos + 1] != 10:
                self._pos = pos
                return True  # a bare CR: the head scan rejects it
            pos += 2
        self._pos = pos
        return pos < end and buf[pos] != 13

    def _take_line(self, limit: int, status: int, what: str) -> bytes | None:
        """The next CRLF-terminated line (without the CRLF), or None when it
        is not complete yet.  A line longer than ``limit`` is ``status``
        as soon as that is certain; a bare LF or CR is 400."""
        buf = self._buf
        pos = self._pos
        nl = buf.find(b"\n", pos + self._scan)
        if nl < 0:
            have = len(buf) - pos
            if have > limit + 1:  # (the last byte may be the line's CR)
                raise self._reject(status, f"{what} too long")
            self._scan = have
            return None
        if nl == pos or buf[nl - 1] != 13:
            raise self._reject(400, "bare LF line ending")
        if nl - 1 - pos > limit:
            raise self._reject(status, f"{what} too long")
        line = bytes(buf[pos:nl - 1])
        self._pos = nl + 1
        self._scan = 0
        if b"\r" in line:
            raise self._reject(400, "bare CR in a line")
        return line

    def _read_head(self) -> bool:
        """Collect head lines up to the blank line; True when it came."""
        lines = self._lines
        while True:
            if not lines:
                line = self._take_line(self._max_request_line, 414, "request line")
            else:
                budget = min(self._max_field_size, self._max_header_bytes - self._hbytes) - 2
                line = self._take_line(max(budget, 0), 431, "request header field")
            if line is None:
                if not lines:
                    self._check_method_so_far()
                return False
            if not line and lines:
                return True
            if lines:
                self._hbytes += len(line) + 2
                if len(lines) > self._max_header_count:
                    raise self._reject(431, "too many request header fields")
            lines.append(line)

    def _check_method_so_far(self) -> None:
        """Reject a request line that cannot become one as soon as its
        method shows it (a TLS hello or other binary on a plain port),
        instead of holding its bytes until the line limit."""
        buf = self._buf
        pos = self._pos
        end = min(len(buf), pos + _MAX_METHOD + 1)
        m = _TOKEN.match(buf, pos, end)
        stop = m.end() if m is not None else pos
        if stop < end and (stop == pos or buf[stop] != 32) or stop - pos > _MAX_METHOD:
            raise self._reject(400, "invalid request method")

    # -- the head -------------------------------------------------------

    def _start_body(self) -> bool:
        """Build the Request from the collected head and pick the body's
        framing.  True when the message is already complete (no body)."""
        lines = self._lines
        self._lines = []
        if lines[0] == b"PRI * HTTP/2.0":
            raise self._reject(505, "HTTP/2 is not supported (connection preface)")
        headers: list[tuple[bytes, bytes]] = []
        ordinary = [lines[0]]
        lengths: list[bytes] = []
        codings: list[bytes] = []
        for line in lines[1:]:
            colon = line.find(b":")
            lname = line[:colon].lower() if colon > 0 else b""
            value = line[colon + 1:].strip(b" \t")
            if lname in _FRAMING:
                # Read here, never by llhttp: the body's framing is ours.
                if _BAD_VALUE_BYTE.search(value) is not None:
                    raise self._reject(400, "invalid character in a framing header field")
                (lengths if lname == b"content-length" else codings).append(value)
            else:
                ordinary.append(line)
            headers.append((lname, value))
        self._tokenise(b"\r\n".join(ordinary) + b"\r\n\r\n")
        req = self._build_request(headers, lengths, codings)
        self._current = req
        self._events.append(req)
        if req.chunked:
            self._state = _CHUNK_SIZE
            self._body_budget = self._max_body
            return False
        if req.content_length:
            self._state = _LENGTH
            self._remaining = req.content_length
            return False
        self._end_message([])
        return True

    def _new_llhttp(self) -> HttpRequestParser:
        # httptools looks the callbacks up by name once, at construction;
        # a namespace keeps the on_* names out of our public API.
        hp = HttpRequestParser(SimpleNamespace(
            on_url=self._on_url,
            on_headers_complete=self._on_headers_complete,
        ))
        # lenient_version: llhttp rejects HTTP/1.2..1.9 outright, but they
        # are answered as 1.1 and 2.x/0.x/3.x get 505, checked below.
        hp.set_dangerous_leniencies(lenient_version=True)
        return hp

    def _tokenise(self, head: bytes) -> None:
        """Let llhttp judge the request line and the ordinary fields of a
        complete head (which, without its framing fields, has no body)."""
        self._url = b""
        self._method = b""
        try:
            self._hp.feed_data(head)
        except HttpParserUpgrade:
            # llhttp pauses after an Upgrade or CONNECT head; WSGI cannot
            # switch protocols, so this is an ordinary request, and the next
            # head gets a fresh llhttp.
            self._hp = self._new_llhttp()
        except HttpParserCallbackError as exc:  # a bug in a callback: surface it
            self._error = RemoteProtocolError("internal parser error", 500)
            raise (exc.__context__ or exc) from None
        except HttpParserError as exc:
            raise self._fail(self._map_llhttp_error(exc)) from None
        if not self._method:
            raise self._reject(400, "malformed request head")
        if not self._keep_alive:
            self._hp = self._new_llhttp()  # llhttp stays closed after Connection: close

    def _on_url(self, url: bytes) -> None:
        self._url += url

    def _on_headers_complete(self) -> None:
        hp = self._hp
        self._version = hp.get_http_version()
        self._method = hp.get_method()  # bytes, from llhttp's fixed table
        self._keep_alive = hp.should_keep_alive()

    @staticmethod
    def _map_llhttp_error(exc: HttpParserError) -> RemoteProtocolError:
        reason = str(exc)
        if "PRI" in reason or "HTTP version" in reason:
            # "PRI * HTTP/2.0": an HTTP/2 prior-knowledge preface.
            return RemoteProtocolError(f"HTTP version not supported ({reason})", 505)
        if isinstance(exc, HttpParserInvalidMethodError):
            return RemoteProtocolError(f"invalid request method ({reason})")
        return RemoteProtocolError(f"malformed request ({reason})", 400)

    def _build_request(self, headers: list[tuple[bytes, bytes]], lengths: list[bytes],
                       codings: list[bytes]) -> Request:
        version = self._version
        if version != "1.1" and version != "1.0":
            if version[:2] != "1.":
                raise self._reject(505, f"HTTP version {version} not supported")
            version = "1.1"  # HTTP/1.2+ : a later 1.x speaks 1.1 to us
        raw_method = self._method
        method = _METHODS.get(raw_method)
        if method is None:
            method = _METHODS[raw_method] = raw_method.decode("ascii")
        url = self._url

        hosts: list[bytes] = []
        expect: list[bytes] = []
        seen: set[bytes] = set()
        for lname, value in headers:
            if lname == b"host":
                hosts.append(value)
            elif lname == b"expect":
                expect.append(value)
            elif lname in SINGLETON_FIELDS:
                if lname in seen:
                    raise self._reject(400, f"more than one {lname.decode('ascii').title()} header")
                seen.add(lname)
        if len(hosts) > 1:
            raise self._reject(400, "more than one Host header")
        host_field = hosts[0] if hosts else None
        if host_field is None and version == "1.1":
            raise self._reject(400, "missing Host header")

        try:
            if url[:1] == b"/":  # origin-form: the common case
                if b"#" in url:
                    url = url[:url.index(b"#")]
                path, _, query = url.partition(b"?")
                host = host_field
            else:
                path, query, host = split_target(url, method, host_field)
            length = content_length(lengths, self._max_body) if lengths else None
            chunked = transfer_encoding_is_chunked(codings, version, bool(lengths)) if codings else False
            expect_continue = bool(expect) and expects_continue(expect, version) and (chunked or bool(length))
        except RemoteProtocolError as e:
            raise self._fail(e) from None
        if host is not None and host != self._last_host:
            if not valid_host(host):
                raise self._reject(400, "invalid Host header")
            self._last_host = host
        return Request(method, self._url, path, query, version, headers, self._keep_alive,
                       length, chunked, expect_continue, host)

    # -- bodies ---------------------------------------------------------

    def _read_length_body(self, pending: list[bytes]) -> bool:
        """Body bytes of a Content-Length body; True at its end."""
        buf = self._buf
        pos = self._pos
        n = min(self._remaining, len(buf) - pos)
        if n:
            pending.append(bytes(buf[pos:pos + n]))
            self._pos = pos + n
            self._remaining -= n
        return not self._remaining

    def _read_chunk_size(self) -> bool:
        line = self._take_line(self._max_field_size - 2, 400, "chunk-size line")
        if line is None:
            return False
        m = _CHUNK_LINE.fullmatch(line)
        if m is None:
            raise self._reject(400, "invalid chunk-size line")
        size = int(m.group(1), 16)
        if size == 0:
            self._state = _TRAILERS
            self._lines = []
            self._hbytes = 0
            return True
        budget = self._body_budget
        if budget is not None:
            budget -= size
            if budget < 0:
                raise self._reject(413, "request body too large")
            self._body_budget = budget
        self._remaining = size
        self._state = _CHUNK_DATA
        return True

    def _read_chunk_data(self, pending: list[bytes]) -> bool:
        if not self._read_length_body(pending):
            return False
        self._state = _CHUNK_END
        return True

    def _read_chunk_end(self) -> bool:
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 2:
            if buf[pos:pos + 1] not in (b"", b"\r"):
                raise self._reject(400, "chunk data not followed by CRLF")
            return False
        if buf[pos] != 13 or buf[pos + 1] != 10:
            raise self._reject(400, "chunk data not followed by CRLF")
        self._pos = pos + 2
        self._state = _CHUNK_SIZE
        return True

    def _read_trailers(self) -> bool:
        """The trailer section: validated and bounded like a header section,
        then dropped (WSGI has no place for trailers).  True at its end."""
        lines = self._lines
        while True:
            budget = min(self._max_field_size, self._max_header_bytes - self._hbytes) - 2
            line = self._take_line(max(budget, 0), 431, "trailer field")
            if line is None:
                return False
            if not line:
                return True
            self._hbytes += len(line) + 2
            if len(lines) >= self._max_header_count:
                raise self._reject(431, "too many trailer fields")
            colon = line.find(b":")
            if colon <= 0 or _TOKEN.fullmatch(line, 0, colon) is None:
                raise self._reject(400, "invalid trailer field")
            if _BAD_VALUE_BYTE.search(line, colon + 1) is not None:
                raise self._reject(400, "invalid character in a trailer field")
            name = line[:colon].lower()
            if name in FORBIDDEN_TRAILERS:
                raise self._reject(400, f"{name.decode('ascii')} is not allowed in a trailer section")
            lines.append(name)
