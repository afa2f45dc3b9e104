# Request heads for the differential tests of the C fast lane
# (test_http_fastpath.py: the head parser against lichen.http.RequestParser)
# and of the C environ builder (test_wsgi_environ_c.py: against
# lichen.wsgi.environ.request_environ, on requests from both lanes).
# Strategy: one place for what both need: the parser's reading of some bytes
# (the authority), and hypothesis strategies for heads: a grammar of valid
# and slightly-off pieces, plain heads of the kind the fast lane exists for,
# byte-level mutations of those, and limits set around what a head needs.
from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from lichen.http import RemoteProtocolError, Request, RequestParser
from mutations import mutated as mutate

DEFAULTS = {"max_request_line": 8190, "max_header_bytes": 65536, "max_header_count": 100, "max_field_size": 8190,
            "max_body": None}

# As in test_http_fuzz.py: LICHEN_FUZZ_SCALE=N runs N times the examples, with random seeds.
SCALE = max(1, int(os.environ.get("LICHEN_FUZZ_SCALE", "1")))


def examples(n: int) -> settings:
    return settings(max_examples=n * SCALE, deadline=None, derandomize=SCALE == 1, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def head(*lines: bytes, start: bytes = b"GET / HTTP/1.1") -> bytes:
    return b"\r\n".join((start,) + lines) + b"\r\n\r\n"


def python_reading(data: bytes, limits: dict) -> tuple[list, RemoteProtocolError | None]:
    """What RequestParser makes of `data` fed whole: the events it delivers
    (those queued before an error included) and the error, if any."""
    p = RequestParser(**limits)
    events: list = []
    err = None
    try:
        p.feed(data)
    except RemoteProtocolError as e:
        err = e
    try:
        while (ev := p.next_event()) is not None:
            events.append(ev)
    except RemoteProtocolError as e:
        err = e
    return events, err


# Strategies --------------------------------------------------------------------------
TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


def joined(pieces, max_size: int = 6):
    return st.lists(pieces, max_size=max_size).map(b"".join)


METHODS = [b"GET", b"GET", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]
ODD_METHODS = [b"get", b"Get", b"FOO", b"GETS", b"PURGE", b"PROPFIND", b"M-SEARCH", b"TRACE", b"CONNECT", b"PRI",
               b"", b"G\xc9T"]
SEPARATORS, ODD_SEPARATORS = [b" "], [b"  ", b"\t", b""]
TARGET_PIECES = [b"a", b"Zz9", b"/", b"-._~", b"!$&'()*+,;=:@", b"%20", b"%2F", b"%2f", b"%C3%A9", b"?", b"?a=b&c=d",
                 b"=", b"index.html"]
ODD_TARGET_PIECES = [b"%", b"%zz", b"%4", b"%00", b"#", b"#frag", b" ", b"\t", b"\x00", b"\x7f", b"\xe9", b'"',
                     b"<>", b"{}", b"|\\^`", b"[]", b"\r", b"\n", b"//", b"/../"]
ODD_TARGETS = [b"*", b"http://h/x?y", b"HTTPS://h:1", b"h:443", b"", b"x/y", b"%2F", b"http://u@h/"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]
ODD_VERSIONS = [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1", b"http/1.1", b"HTTP/1.1 ", b"RTSP/1.0",
                b"HTTP/1.10", b"HTTP/3"]
NAMES = [b"Accept", b"accept", b"Cookie", b"cookie", b"User-Agent", b"X-Foo", b"x-foo", b"Content-Type",
         b"Connection", b"Accept-Encoding", b"Referer", b"X-Forwarded-For"]
# Names the parser accepts but that mean something (or nothing) special.
SPECIAL_NAMES = [b"Host", b"host", b"X_Foo", b"x_foo", b"Content_Type", b"Content-Length", b"Proxy-Connection",
                 b"Keep-Alive", b"Transfer-Encoding", b"Expect", b"Upgrade", b"TE", b"X!#$%&'*+.^`|~", b"Server-Name"]
ODD_NAMES = [b"X Foo", b"X\tFoo", b"X\xffFoo", b"", b" X", b"X-\x01", b"X(y)"]
HOSTS = [b"a", b"example.com", b"example.com:8080", b"127.0.0.1", b"127.0.0.1:80", b"localhost:8000"]
ODD_HOSTS = [b"[::1]", b"[::1]:8080", b"[::ffff:1.2.3.4]", b"[zz::1]", b"[::1", b"", b"a b", b"a:", b":80",
             b"a:123456", b"a:99999", b"a_b.example", b"%41.example", b"EXAMPLE.com", b"a:1:2", b"x@y", b"h\xe9",
             b"a\tb", b"a,b"]
SPECIAL_VALUES = {
    b"host": HOSTS + ODD_HOSTS,
    b"connection": [b"close", b"Close", b"keep-alive", b"Keep-Alive", b"keep-alive, close", b"close, keep-alive",
                    b"upgrade", b"Upgrade", b"closed", b"xclose", b"", b"te", b"keep-alive, Upgrade", b"close;x",
                    b"close,", b",close", b"keep-alive , x"],
    b"content-length": [b"0", b"0", b"00", b"5", b"0, 0", b"-1", b"x", b"", b"1", b"+0"],
    b"transfer-encoding": [b"chunked", b"gzip, chunked", b"gzip", b"identity"],
    b"expect": [b"100-continue", b"100-Continue", b"", b"foo"],
    b"upgrade": [b"websocket", b"h2c", b""],
}
SPECIAL_VALUES[b"proxy-connection"] = SPECIAL_VALUES[b"connection"]
VALUE_PIECES = [b"a", b"text/html", b"q=0.9", b" ", b",", b";", b'"x y"', b"=", b"%20", b"/", b"()", b"*/*", b"1",
                b"\t"]
ODD_VALUE_PIECES = [b"\xe9", b"\x80\xff", b"\x00", b"\x01", b"\x7f", b"\x1b", b"\r", b"\n", b"\r\n", b"\r\n "]
OWS = [b"", b"", b" ", b" ", b"\t", b" \t "]
COLONS, ODD_COLONS = [b":", b": ", b": ", b":\t", b":  "], [b" :", b"\t:", b"", b"::"]
EOLS, ODD_EOLS = [b"\r\n"], [b"\n", b"\r", b"\n\r", b"\r\r\n"]
LEADS, ODD_LEADS = [b""], [b"\r\n", b"\n", b" ", b"\r\n\r\n"]
OBS_FOLDS = [b" folded", b"\tx", b" "]
TAILS = [b"", b"", b"GET /next HTTP/1.1\r\nHost: b\r\n\r\n"]
ODD_TAILS = [b"hello", b"\r\n", b"garbage\r\n\r\n", b"0\r\n\r\n", b"GET /next HTTP/1.1\r\n"]


def _token(raw: bytes) -> bytes:
    return "".join(TCHAR[b % len(TCHAR)] for b in raw).encode()


@st.composite
def grammar_request(draw) -> bytes:
    """One head from a grammar of valid and slightly-off pieces, then maybe
    a body, another request or junk.  How often a piece is off is drawn per
    request (from never to one in three), so that some heads are clean, some
    have one oddity and some are a mess."""
    odds = draw(st.sampled_from([10_000, 10_000, 60, 20, 3]))

    def pick(common: list, odd: list) -> bytes:
        # (Not the ends of the range: hypothesis favours those.)
        return draw(st.sampled_from(odd if draw(st.integers(0, odds - 1)) == odds // 2 else common))

    def field() -> bytes:
        kind = draw(st.integers(0, 3))
        name = pick(NAMES, ODD_NAMES) if kind < 2 else (
            draw(st.sampled_from(SPECIAL_NAMES)) if kind == 2 else _token(draw(st.binary(min_size=1, max_size=8))))
        values = SPECIAL_VALUES.get(name.lower())
        if values is not None:
            value = draw(st.sampled_from(values))
        else:
            value = b"".join(pick(VALUE_PIECES, ODD_VALUE_PIECES) for _ in range(draw(st.integers(0, 5))))
        return name + pick(COLONS, ODD_COLONS) + value + draw(st.sampled_from(OWS))

    if pick([False], [True]):
        target = draw(st.sampled_from(ODD_TARGETS))
    else:
        target = b"/" + b"".join(pick(TARGET_PIECES, ODD_TARGET_PIECES) for _ in range(draw(st.integers(0, 6))))
    lines = [pick(METHODS, ODD_METHODS) + pick(SEPARATORS, ODD_SEPARATORS) + target + b" " + pick(VERSIONS,
                                                                                                 ODD_VERSIONS)]
    lines += [field() for _ in range(draw(st.integers(0, 5)))]
    if draw(st.integers(0, 7)) != 3:  # mostly one Host, somewhere
        lines.insert(draw(st.integers(1, len(lines))), b"Host:" + draw(st.sampled_from(OWS)) + pick(HOSTS, ODD_HOSTS))
    if pick([False], [True]):
        lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(OBS_FOLDS)))
    eol = pick(EOLS, ODD_EOLS)
    out = b"".join(line + pick([eol], ODD_EOLS) for line in lines) + eol
    return pick(LEADS, ODD_LEADS) + out + pick(TAILS, ODD_TAILS)


@st.composite
def plain_request(draw) -> bytes:
    """A head of the kind the fast lane exists for."""
    method = draw(st.sampled_from(METHODS))
    target = b"/" + draw(joined(st.sampled_from(TARGET_PIECES), 5))
    version = draw(st.sampled_from(VERSIONS))
    lines = [method + b" " + target + b" " + version]
    if version == b"HTTP/1.1" or draw(st.booleans()):
        lines.append(b"Host: " + draw(st.sampled_from(HOSTS)))
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.one_of(st.sampled_from(NAMES), st.binary(min_size=1, max_size=8).map(_token)))
        if name.lower() in SPECIAL_VALUES:  # Host, Connection and the framing fields
            continue
        value = draw(joined(st.sampled_from(VALUE_PIECES), 4)).strip(b" ")
        lines.append(name + b":" + draw(st.sampled_from(OWS)) + value + draw(st.sampled_from(OWS)))
    conn = draw(st.sampled_from([None, None, b"close", b"keep-alive"]))
    if conn is not None:
        lines.insert(draw(st.integers(1, len(lines))), b"Connection: " + conn)
    return b"\r\n".join(lines) + b"\r\n\r\n"


SPECIAL_BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b"#", b"%", b"_", b"\xff", b"\x7f", b"\r\n\r\n",
                 b"\r\n ", b"Host: x\r\n", b"Content-Length: 1\r\n", b"Transfer-Encoding: chunked\r\n",
                 b"Connection: close\r\n", b"Expect: 100-continue\r\n", b"Upgrade: h2c\r\n"]


def mutated(base):
    return mutate(base, SPECIAL_BYTES, centred=True)


@st.composite
def limits_for(draw, data: bytes) -> dict:
    """The default limits, or one limit set just around what the first
    request of `data` needs (one under, exactly, one over)."""
    limits = dict(DEFAULTS)
    if draw(st.integers(0, 2)) == 0:
        return limits
    events, _ = python_reading(data, DEFAULTS)
    if events and isinstance(events[0], Request):
        r = events[0]
        first, _, rest = data.partition(b"\r\n")
        field_lines = rest[:rest.find(b"\r\n\r\n") + 2].split(b"\r\n")[:-1] if rest[:2] != b"\r\n" else []
        need = {"max_request_line": len(first),
                "max_header_bytes": sum(len(line) + 2 for line in field_lines),
                "max_header_count": len(r.headers),
                "max_field_size": max((len(line) + 2 for line in field_lines), default=0)}
        key = draw(st.sampled_from(sorted(need)))
        limits[key] = max(0, need[key] + draw(st.sampled_from([-1, 0, 0, 1])))
    return limits

