# Property and fuzz tests of the I/O-free request parser (lichen.http).
# Strategy: hypothesis builds valid requests and pipelines from strategies
# (methods, origin- and absolute-form targets, header fields with optional
# whitespace, Content-Length and chunked bodies with extensions and
# trailers, Expect, Connection), serialises them, and then
#   - parses them back: every valid request is accepted and reads as
#     exactly what was generated (no valid request is rejected);
#   - mutates the bytes (flip, insert, delete, duplicate, inject CR/LF/NUL/
#     SP/HTAB, splice in smuggling-prone fragments) or builds streams from a
#     grammar of HTTP fragments, and feeds them whole, byte by byte and split
#     at random points: the parser raises nothing but lichen's ProtocolError,
#     every split gives the same reading (same events, same error status),
#     and the events always form well-framed messages;
#   - checks that a parser handed back to the server's free list reads the
#     next connection's bytes exactly like a fresh one.
# Everything runs derandomized, without an example database, so CI sees the
# same examples every time; the whole file takes a few seconds. For a longer
# campaign set LICHEN_FUZZ_SCALE=N: N times the examples, random seeds.
from __future__ import annotations

import os
import string
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lichen.http import END_OF_MESSAGE, ProtocolError, Request, RequestParser
from lichen.http.request import FORBIDDEN_TRAILERS, SINGLETON_FIELDS
from mutations import mutated as mutate

SCALE = max(1, int(os.environ.get("LICHEN_FUZZ_SCALE", "1")))


def examples(n: int) -> settings:
    return settings(max_examples=n * SCALE, deadline=None, derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


FUZZ = examples(400)
ROUND_TRIP = examples(200)


# Driving the parser -------------------------------------------------------------------
def run(chunks: list[bytes], *, parser: RequestParser | None = None, eof: bool = True) -> tuple[list, int | None]:
    """Feed `chunks` one after the other (draining events after each) and
    then EOF. Returns (normalised events, error status or None). Anything
    raised that is not a ProtocolError propagates and fails the test."""
    p = parser if parser is not None else RequestParser()
    events: list = []
    status = None
    try:
        for chunk in chunks:
            p.feed(chunk)
            _drain(p, events)
        if eof:
            p.feed_eof()
    except ProtocolError as e:
        status = e.status
        assert isinstance(e.status, int) and 400 <= e.status <= 599, e
        assert "\r" not in e.message and "\n" not in e.message
    # Events queued before an error are still delivered; then next_event()
    # must raise the very same error instead of returning None.
    try:
        _drain(p, events)
    except ProtocolError as e:
        assert status is not None and e.status == status, (e, status)
    else:
        assert status is None, "next_event() returned None after an error"
    check_framing(events, complete=status is None)
    return normalise(events), status


def _drain(p: RequestParser, out: list) -> None:
    while (ev := p.next_event()) is not None:
        out.append(ev)


def normalise(events: list) -> list:
    """Merge adjacent body chunks: how a body is cut into events depends on
    how the bytes arrived, its content must not."""
    out: list = []
    for ev in events:
        if type(ev) is bytes and out and type(out[-1]) is bytes:
            out[-1] += ev
        else:
            out.append(ev)
    return out


def check_framing(events: list, complete: bool) -> None:
    """Events form messages: Request, non-empty bytes*, END_OF_MESSAGE."""
    req: Request | None = None
    got = 0
    for ev in events:
        if isinstance(ev, Request):
            assert req is None, "a Request before the previous message ended"
            assert not (ev.chunked and ev.content_length is not None), ev
            assert ev.method and ev.http_version in ("1.0", "1.1"), ev
            assert ev.content_length is None or ev.content_length >= 0, ev
            req, got = ev, 0
        elif ev is END_OF_MESSAGE:
            assert req is not None, "END_OF_MESSAGE outside a message"
            if req.content_length is not None:
                assert got == req.content_length, (req, got)
            elif not req.chunked:
                assert got == 0, (req, got)
            req = None
        else:
            assert type(ev) is bytes, ev
            # wsgi.input takes an empty piece for the end of the body.
            assert ev, "empty body chunk event"
            assert req is not None and (req.chunked or req.content_length), (req, ev)
            got += len(ev)
            if req.content_length is not None:
                assert got <= req.content_length, (req, got)
    if complete:
        assert req is None, "EOF accepted in the middle of a message"


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces, prev = [], 0
    for c in points:
        pieces.append(data[prev:c])
        prev = c
    pieces.append(data[prev:])
    return pieces


def assert_one_reading(data: bytes, cuts: list[int]) -> tuple[list, int | None]:
    """Whole, byte by byte and split at `cuts`: one and the same reading."""
    whole = run([data])
    bytewise = run([data[i:i + 1] for i in range(len(data))])
    split = run(split_at(data, cuts))
    assert bytewise == whole, (data, whole, bytewise)
    assert split == whole, (data, cuts, whole, split)
    return whole


# Valid requests -----------------------------------------------------------------------
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "REPORT", "PURGE"]
# Fields whose semantics the generator controls itself.
RESERVED = {"host", "content-length", "transfer-encoding", "expect", "connection", "proxy-connection",
            "upgrade", "keep-alive"} | {n.decode() for n in SINGLETON_FIELDS}

# Strings are drawn as binary and mapped onto their alphabet: much cheaper
# for hypothesis than drawing them character by character.
VALUE_ALPHABET = VCHAR + b" \t"


def _pchars(raw: bytes, extra: str = "") -> str:
    alphabet = PCHAR + extra
    # A byte >= 224 becomes a percent-encoded octet.
    return "".join("%%%02X" % b if b >= 224 else alphabet[b % len(alphabet)] for b in raw)


segment = st.binary(max_size=8).map(_pchars)
path_st = st.lists(segment, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
query_st = st.binary(max_size=12).map(lambda raw: _pchars(raw, "/?"))
reg_name = st.binary(min_size=1, max_size=12).map(
    lambda raw: "".join((string.ascii_lowercase + string.digits + "-.")[b % 38] for b in raw))
host_st = st.tuples(reg_name, st.one_of(st.none(), st.integers(0, 65535))).map(
    lambda t: t[0] if t[1] is None else f"{t[0]}:{t[1]}")
name_st = st.binary(min_size=1, max_size=12).map(
    lambda raw: "".join(TCHAR[b % len(TCHAR)] for b in raw)).filter(lambda n: n.lower() not in RESERVED)
# Field values: VCHAR / obs-text with inner SP / HTAB, none at either end
# (surrounding whitespace is optional whitespace, drawn separately).
trailer_name_st = name_st.filter(lambda n: n.lower().encode() not in FORBIDDEN_TRAILERS)
core_value = st.binary(max_size=18).map(lambda raw: bytes(VALUE_ALPHABET[b % len(VALUE_ALPHABET)]
                                                           for b in raw).strip(b" \t"))
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t"])


@dataclass
class Msg:
    method: str
    target: bytes
    path: bytes
    query: bytes
    version: str
    headers: list[tuple[bytes, bytes]]  # as expected after parsing
    raw_fields: list[bytes]  # as put on the wire
    body: bytes
    content_length: int | None
    chunked: bool
    expect_continue: bool
    host: bytes | None
    keep_alive: bool
    wire_body: bytes = b""

    def serialise(self) -> bytes:
        line = b"%s %s HTTP/%s\r\n" % (self.method.encode(), self.target, self.version.encode())
        return line + b"".join(self.raw_fields) + b"\r\n" + self.wire_body


@st.composite
def chunked_body(draw, body: bytes) -> bytes:
    """`body` in chunks of random sizes, hex in either case, extensions,
    and an optional trailer section."""
    out, i = [], 0
    while i < len(body):
        n = draw(st.integers(1, len(body) - i))
        size = ("%x" if draw(st.booleans()) else "%X") % n
        size = "0" * draw(st.integers(0, 2)) + size
        ext = draw(st.sampled_from(["", ";a", ";a=b", ';n="q v"', ";x=1;y", " ; a = b", "\t;q", ';n = "\\"x"']))
        out.append(f"{size}{ext}\r\n".encode() + body[i:i + n] + b"\r\n")
        i += n
    trailers = draw(st.lists(st.tuples(trailer_name_st, core_value), max_size=2))
    out.append(b"0\r\n" + b"".join(n.encode() + b": " + v + b"\r\n" for n, v in trailers) + b"\r\n")
    return b"".join(out)


@st.composite
def valid_request(draw, last: bool = True) -> Msg:
    """One valid request; `last` allows one that ends the connection."""
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    method = draw(st.sampled_from(METHODS))
    path = draw(path_st).encode()
    query = draw(st.one_of(st.none(), query_st))
    query_b = b"" if query is None else query.encode()
    origin = path + (b"" if query is None else b"?" + query_b)
    host = draw(host_st).encode()
    absolute = draw(st.integers(0, 9)) == 0
    if absolute:
        authority = draw(host_st).encode()
        target = b"http://" + authority + origin
        eff_host = authority
    else:
        target, eff_host = origin, host
    fields: list[tuple[bytes, bytes, bytes]] = []  # (name on the wire, expected value, raw value)
    for name, value in draw(st.lists(st.tuples(name_st, core_value), max_size=5)):
        fields.append((name.encode(), value, draw(ows) + value + draw(ows)))
    send_host = version == "1.1" or draw(st.booleans())
    if send_host:
        fields.insert(draw(st.integers(0, len(fields))), (b"Host", host, host))
    elif not absolute:
        eff_host = None
    body = draw(st.binary(max_size=64))
    kind = draw(st.sampled_from(["none", "length", "chunked"] if version == "1.1" else ["none", "length"]))
    if kind == "none" and body:
        kind = "length"
    content_length, chunked, wire_body = None, False, b""
    if kind == "length":
        content_length = len(body)
        v = str(len(body)).encode()
        fields.append((draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"])), v, v))
        wire_body = body
    elif kind == "chunked":
        chunked = True
        v = draw(st.sampled_from([b"chunked", b"Chunked", b",chunked", b"chunked,", b", ,chunked"]))
        fields.append((b"Transfer-Encoding", v, v))
        wire_body = draw(chunked_body(body))
    expect = version == "1.1" and kind != "none" and draw(st.booleans())
    if expect:
        fields.append((b"Expect", b"100-continue", b"100-continue"))
    # Connection: a request that is not last must keep the connection open.
    if version == "1.1":
        conn = draw(st.sampled_from([None, b"keep-alive", b"close"] if last else [None, b"keep-alive"]))
        keep_alive = conn != b"close"
    else:
        conn = draw(st.sampled_from([None, b"keep-alive", b"close"] if last else [b"keep-alive"]))
        keep_alive = conn == b"keep-alive"
    if conn is not None:
        fields.append((b"Connection", conn, conn))
    # Shuffle the framing fields in among the others.
    order = draw(st.permutations(range(len(fields))))
    fields = [fields[i] for i in order]
    return Msg(
        method=method, target=target, path=path, query=query_b, version=version,
        headers=[(n.lower(), v) for n, v, _ in fields],
        raw_fields=[n + b":" + raw + b"\r\n" for n, _, raw in fields],
        body=body, content_length=content_length, chunked=chunked,
        # Nothing to wait for without a body: a 100-continue for 0 bytes is moot.
        expect_continue=expect and (chunked or bool(content_length)), host=eff_host, keep_alive=keep_alive, wire_body=wire_body)


@st.composite
def pipeline(draw, max_size: int = 4, keep_open: bool = False) -> list[Msg]:
    n = draw(st.integers(1, max_size))
    return [draw(valid_request(last=(i == n - 1 and not keep_open))) for i in range(n)]


def wire(msgs: list[Msg]) -> bytes:
    return b"".join(m.serialise() for m in msgs)


def expected_events(msgs: list[Msg]) -> list:
    out: list = []
    for m in msgs:
        out.append(Request(m.method, m.target, m.path, m.query, m.version, m.headers, m.keep_alive,
                           m.content_length, m.chunked, m.expect_continue, m.host))
        if m.body:
            out.append(m.body)
        out.append(END_OF_MESSAGE)
    return out


cuts_st = st.lists(st.integers(0, 4096), max_size=12)


# Round trip: no valid request is rejected ---------------------------------------------
@ROUND_TRIP
@given(msgs=pipeline(), cuts=cuts_st)
def test_valid_pipelines_parse_to_exactly_what_was_generated_however_they_are_split(msgs, cuts):
    data = wire(msgs)
    events, status = assert_one_reading(data, cuts)
    assert status is None, (data, status)
    assert events == expected_events(msgs)


@ROUND_TRIP
@given(msgs=pipeline(keep_open=True))
def test_valid_pipeline_leaves_the_parser_idle_and_reusable(msgs):
    p = RequestParser()
    p.feed(wire(msgs))
    events: list = []
    _drain(p, events)
    assert normalise(events) == expected_events(msgs)
    assert p.idle and p.reusable
    p.feed_eof()  # a clean end between messages is no error


# Fuzzing: errors are ProtocolErrors, one reading per byte stream -----------------------
SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"\r\n\r\n", b"0", b"\xff", b"\x7f"]

# Fragments that request smuggling and desync attacks are made of.
START_LINES = [
    b"GET / HTTP/1.1\r\n", b"POST /p HTTP/1.1\r\n", b"GET / HTTP/1.0\r\n", b"GET http://h/ HTTP/1.1\r\n",
    b"OPTIONS * HTTP/1.1\r\n", b"CONNECT h:443 HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/2.0\r\n", b"GET / HTTP/1.9\r\n", b"GET /\x00 HTTP/1.1\r\n", b"GET /  HTTP/1.1\r\n",
    b"GET / HTTP/1.1\n", b"\r\nGET / HTTP/1.1\r\n", b"get / HTTP/1.1\r\n", b"GET /\tHTTP/1.1\r\n",
]
FIELDS = [
    b"Host: a\r\n", b"Host: b\r\n", b"Host: [::1]:80\r\n", b"Host: a b\r\n", b"Host:\r\n", b"Host: a:\r\n",
    b"Content-Length: 5\r\n", b"Content-Length: 0\r\n", b"Content-Length: 05\r\n", b"Content-Length: 5, 5\r\n",
    b"Content-Length: -1\r\n", b"Content-Length: 99999999999999999999999\r\n", b"Content-Length : 5\r\n",
    b"Content-Length:\t5 \r\n", b"Content-Length: 3\r\n", b"Content-Length: +5\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n", b"Transfer-Encoding: chunked, gzip\r\n",
    b"Transfer-Encoding: xchunked\r\n", b"Transfer-Encoding : chunked\r\n", b"Transfer-Encoding:\tchunked\r\n",
    b"Transfer-Encoding: identity\r\n", b"Transfer-Encoding: chunked;q=1\r\n", b"Transfer-Encoding: ,chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n", b"Transfer-Encoding: chunked, chunked\r\n",
    b"Expect: 100-continue\r\n", b"Expect: nope\r\n", b"Connection: close\r\n", b"Connection: keep-alive\r\n",
    b"Connection: upgrade\r\nUpgrade: websocket\r\n", b"Upgrade: h2c\r\n", b" folded\r\n", b"\tfolded\r\n",
    b"X: y\r\n", b"X-\xff: v\r\n", b"X: a\x00b\r\n", b"X: a\rb\r\n", b"X: a\nb\r\n", b"X:\r\n", b":v\r\n",
    b"X: y\n", b"X y\r\n",
]
BODIES = [
    b"", b"hello", b"abc", b"5\r\nhello\r\n", b"0\r\n\r\n", b"0\r\nT: v\r\n\r\n", b"5;x=y\r\nhello\r\n",
    b"5 \r\nhello\r\n", b"ffffffffffffffffff\r\n", b"-1\r\n", b"0x5\r\n", b"5\nhello\n", b"3\r\nhello\r\n",
    b"\r\n0\r\n\r\n", b"0\r\nContent-Length: 5\r\n\r\n", b"1\r\nx\r\n0\r\n\r\n",
]
FRAGMENTS = START_LINES + FIELDS + BODIES + [b"\r\n", b"\n", b"\r"]


@st.composite
def fragment_messages(draw) -> bytes:
    """1-3 messages, each a start line, fields, blank line and body, all
    picked from the fragments above (so most get well past the start line)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        out.append(draw(st.sampled_from(START_LINES)))
        if draw(st.sampled_from([True, True, True, False])):
            out.append(b"Host: a\r\n")
        out.extend(draw(st.lists(st.sampled_from(FIELDS), max_size=5)))
        out.append(draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""])))
        out.extend(draw(st.lists(st.sampled_from(BODIES), max_size=3)))
    return b"".join(out)


def mutated(base):
    return mutate(base, SPECIAL + FRAGMENTS, rounds=(1, 1, 1, 2, 2, 3, 6), max_delete=8, max_duplicate=40)


grammar = st.one_of(fragment_messages(), st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map(b"".join))


@FUZZ
@given(data=mutated(pipeline().map(wire)), cuts=cuts_st)
def test_mutated_valid_requests_raise_only_protocol_errors_and_read_the_same_however_split(data, cuts):
    assert_one_reading(data, cuts)


@FUZZ
@given(data=grammar, cuts=cuts_st)
def test_streams_of_http_fragments_read_the_same_however_split(data, cuts):
    assert_one_reading(data, cuts)


@FUZZ
@given(data=mutated(grammar), cuts=cuts_st)
def test_mutated_fragment_streams_read_the_same_however_split(data, cuts):
    assert_one_reading(data, cuts)


@examples(300)
@given(data=st.binary(max_size=300), cuts=cuts_st)
def test_random_bytes_raise_only_protocol_errors_and_read_the_same_however_split(data, cuts):
    assert_one_reading(data, cuts)


@examples(200)
@given(prefix=st.sampled_from([b"GET / HTTP/1.1\r\nHost: a\r\n", b"POST / HTTP/1.1\r\nHost: a\r\n"
                                                                   b"Transfer-Encoding: chunked\r\n\r\n"]),
       data=st.binary(max_size=200), cuts=cuts_st)
def test_random_bytes_after_a_valid_start_read_the_same_however_split(prefix, data, cuts):
    assert_one_reading(prefix + data, cuts)


@examples(200)
@given(first=pipeline(max_size=2, keep_open=True), data=st.one_of(mutated(pipeline().map(wire)), grammar),
       cuts=cuts_st)
def test_a_parser_reused_for_another_connection_reads_like_a_fresh_one(first, data, cuts):
    # The server hands a `reusable` parser to the next connection.
    p = RequestParser()
    p.feed(wire(first))
    _drain(p, [])
    assert p.reusable
    assert run(split_at(data, cuts), parser=p) == run([data])
