# Differential tests of the C fast lane for request heads (lichen._fastpath).
# Strategy: the fast lane takes a strict subset of complete HTTP/1.x heads
# (no body, or a Content-Length one that the caller reads after the head) and
# builds the Request and WSGI environ itself; for anything
# else parse() returns None and the server asks the Python path
# (lichen.http.RequestParser + lichen.wsgi.environ.request_environ), which
# stays the authority.  So every call here goes through `lane()`, which checks
# the whole contract against that authority on the same bytes:
#   - accepted  => the parser reads exactly that Request from data[:consumed]
#                  (then END_OF_MESSAGE, or the same body bytes when they are
#                  all there), and request_environ() gives an equal environ
#                  (same types too); `base` is never touched;
#   - the parser rejects the first message => the lane returned None.
# On top of that: one test per fallback trigger (None, and what the Python
# path makes of it), one per accepted case (the environ fields), pipelining,
# and hypothesis runs (derandomized, no database: CI sees the same examples)
# over a grammar of valid and slightly-off heads, mutated valid heads, and
# every prefix of a head (a few seconds in all; LICHEN_FUZZ_SCALE=N for a
# longer, randomly seeded campaign); the heads come from head_grammar.py.  Only the lane's *agreement* is required
# for inputs outside the listed accepted cases: a stricter lane is always
# correct.
from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from head_grammar import (DEFAULTS, ODD_TAILS, TAILS, examples, grammar_request, head, limits_for, mutated,
                          plain_request, python_reading)
from lichen._fastpath import FastParser
from lichen.http import END_OF_MESSAGE, Request, RequestParser
from lichen.wsgi.environ import base_environ, request_environ
from lichen.wsgi.input import EMPTY_INPUT

PEER = ("127.0.0.1", 5555)
# The environ keys of the proxy headers a server trusts (lichen.proxy's defaults).
PROXY_KEYS = frozenset(("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_FORWARDED",
                        "HTTP_X_REAL_IP"))
GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def make_base(extra: dict | None = None) -> dict:
    return base_environ("localhost", "8000", "http", None, None, extra)


def fast_parser(base: dict, limits: dict) -> FastParser:
    return FastParser(base, EMPTY_INPUT, Request, limits["max_request_line"], limits["max_header_bytes"],
                      limits["max_header_count"], limits["max_field_size"], limits["max_body"], PROXY_KEYS)


# The authority ------------------------------------------------------------------------
def parser_takes(data: bytes, **limits) -> list:
    """The Python path accepts `data`: its events (no error)."""
    events, err = python_reading(data, {**DEFAULTS, **limits})
    assert err is None, err
    assert events and isinstance(events[0], Request), events
    return events


def parser_rejects(data: bytes, **limits) -> int:
    """The Python path rejects `data`: the status it answers with."""
    _, err = python_reading(data, {**DEFAULTS, **limits})
    assert err is not None, "the parser accepts this"
    return err.status


# The contract -------------------------------------------------------------------------
def check_contract(data: bytes, got, remote, base: dict, limits: dict) -> None:
    if got is None:
        return  # falling back is always allowed
    events, err = python_reading(data, limits)
    assert type(got) is tuple and len(got) == 4, got
    env, req, consumed, proxied = got
    assert proxied is (not PROXY_KEYS.isdisjoint(env))
    # Safety: the parser must read the same first message from these very
    # bytes (whatever it thinks of bytes after that message): the head, and
    # a Content-Length body when all of it is here, else no error so far.
    body = req.content_length or 0
    assert events and isinstance(events[0], Request), (
        f"the fast lane took a head the parser does not: events={events!r} error={err!r}")
    if consumed + body <= len(data):
        assert END_OF_MESSAGE in events, f"the parser does not complete this message: {events!r} {err!r}"
        assert b"".join(e for e in events[:events.index(END_OF_MESSAGE)] if type(e) is bytes) == \
            data[consumed:consumed + body]
    else:
        assert err is None, f"the parser rejects this message before its body is complete: {err!r}"
    assert type(consumed) is int
    # The head runs through its blank line; a strict head has no CR or LF of
    # its own, so that is the first CRLF CRLF.
    assert consumed == data.find(b"\r\n\r\n") + 4, (consumed, data)

    # Equivalence of the Request: fed exactly data[:consumed], the parser
    # reads one whole message and is back between messages.
    p = RequestParser(**limits)
    p.feed(data[:consumed])
    py_req = p.next_event()
    if body:
        assert p.next_event() is None and not p.idle  # the body is the caller's to read
    else:
        assert p.next_event() is END_OF_MESSAGE
        assert p.next_event() is None and p.idle
    assert type(py_req) is Request and type(req) is Request
    assert req == py_req
    assert events[0] == py_req
    for f in fields(Request):
        assert type(getattr(req, f.name)) is type(getattr(py_req, f.name)), f.name
    assert all(type(h) is tuple and len(h) == 2 and type(h[0]) is bytes and type(h[1]) is bytes
               for h in req.headers), req.headers

    # Equivalence of the environ.
    want = request_environ(base, remote, py_req, EMPTY_INPUT)
    assert type(env) is dict and env is not base
    assert env == want
    assert {k: type(v) for k, v in env.items()} == {k: type(v) for k, v in want.items()}
    assert env["wsgi.input"] is EMPTY_INPUT


def lane(data: bytes, remote=PEER, base: dict | None = None, **limits):
    """parse() through a fresh FastParser, checked against the contract."""
    limits = {**DEFAULTS, **limits}
    base = make_base() if base is None else base
    before = dict(base)
    got = fast_parser(base, limits).parse(data, remote)
    assert base == before and all(base[k] is before[k] for k in before), "parse() changed base"
    check_contract(data, got, remote, base, limits)
    return got


def accepted(data: bytes, remote=PEER, base: dict | None = None, **limits) -> tuple[dict, Request, int]:
    got = lane(data, remote, base, **limits)
    assert got is not None, "the fast lane did not take this request"
    return got[:3]


# Fallback triggers: None, and the Python path does the job ----------------------------
def test_incomplete_head_falls_back():
    for data in (b"", b"GET / HTTP/1.1", b"GET / HTTP/1.1\r\nHost: a\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r"):
        assert lane(data) is None
        assert python_reading(data, DEFAULTS) == ([], None)  # the parser waits for more


def test_content_length_body_is_left_to_the_caller_after_consumed():
    data = head(b"Host: a", b"Content-Length: 5", start=b"POST / HTTP/1.1") + b"hello"
    env, req, consumed = accepted(data)
    assert req.content_length == 5 and env["CONTENT_LENGTH"] == "5"
    assert data[consumed:] == b"hello"


def test_content_length_head_is_taken_before_its_body_arrives():
    data = head(b"Host: a", b"Content-Length: 5", start=b"POST / HTTP/1.1")
    assert accepted(data)[1].content_length == 5


def test_content_length_over_max_body_falls_back():
    data = head(b"Host: a", b"Content-Length: 11", start=b"POST / HTTP/1.1") + b"x" * 11
    assert lane(data, max_body=10) is None
    assert parser_rejects(data, max_body=10) == 413


def test_content_length_at_max_body_is_taken():
    data = head(b"Host: a", b"Content-Length: 10", start=b"POST / HTTP/1.1") + b"x" * 10
    assert accepted(data, max_body=10)[1].content_length == 10


def test_content_length_with_leading_zeros_is_read_as_the_parser_reads_it():
    data = head(b"Host: a", b"Content-Length: 007", start=b"POST / HTTP/1.1") + b"x" * 7
    env, req, _ = accepted(data)
    assert req.content_length == 7 and env["CONTENT_LENGTH"] == "007"


def test_content_length_too_long_to_be_a_number_here_falls_back():
    data = head(b"Host: a", b"Content-Length: 1" + b"0" * 18, start=b"POST / HTTP/1.1")
    assert lane(data) is None


def test_transfer_encoding_falls_back():
    data = head(b"Host: a", b"Transfer-Encoding: chunked", start=b"POST / HTTP/1.1") + b"0\r\n\r\n"
    assert lane(data) is None
    assert parser_takes(data)[0].chunked is True


def test_expect_falls_back():
    # Even without a body, where the parser reads it as a plain request.
    data = head(b"Host: a", b"Expect: 100-continue")
    assert lane(data) is None
    assert parser_takes(data)[0].expect_continue is False


def test_upgrade_header_falls_back():
    for data in (head(b"Host: a", b"Connection: Upgrade", b"Upgrade: websocket"), head(b"Host: a", b"Upgrade: h2c")):
        assert lane(data) is None
        assert parser_takes(data)  # WSGI cannot switch: an ordinary request


def test_bare_lf_line_endings_fall_back():
    for data in (b"GET / HTTP/1.1\nHost: a\n\n", b"GET / HTTP/1.1\r\nHost: a\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\n"):
        assert lane(data) is None
        assert parser_rejects(data) == 400


def test_obs_fold_continuation_line_falls_back():
    for fold in (b" folded", b"\tfolded"):
        data = head(b"Host: a", b"X-A: one", fold)
        assert lane(data) is None
        assert parser_rejects(data) == 400


def test_leading_crlf_before_the_request_line_falls_back():
    data = b"\r\n" + GET
    assert lane(data) is None
    assert parser_takes(data)[0].target == b"/"


def test_absolute_form_target_falls_back():
    data = head(b"Host: a", start=b"GET http://example.com/x?q=1 HTTP/1.1")
    assert lane(data) is None
    assert parser_takes(data)[0].host == b"example.com"


def test_asterisk_form_options_falls_back():
    data = head(b"Host: a", start=b"OPTIONS * HTTP/1.1")
    assert lane(data) is None
    assert parser_takes(data)[0].path == b"*"


def test_fragment_in_target_falls_back():
    for target in (b"/a#frag", b"/a?q=1#frag", b"/#"):
        data = head(b"Host: a", start=b"GET " + target + b" HTTP/1.1")
        assert lane(data) is None
        assert parser_takes(data)[0].target == target


def test_obs_text_in_a_header_value_falls_back():
    data = head(b"Host: a", b"X-Name: caf\xe9")
    assert lane(data) is None
    assert parser_takes(data)[0].headers[1] == (b"x-name", b"caf\xe9")


def test_duplicate_host_falls_back():
    for data in (head(b"Host: a", b"Host: a"), head(b"Host: a", b"host: b", start=b"GET / HTTP/1.0")):
        assert lane(data) is None
        assert parser_rejects(data) == 400


def test_http11_without_host_falls_back():
    data = b"GET / HTTP/1.1\r\n\r\n"
    assert lane(data) is None
    assert parser_rejects(data) == 400


def test_unknown_method_falls_back():
    data = head(b"Host: a", start=b"FOO / HTTP/1.1")
    assert lane(data) is None
    assert parser_rejects(data) == 400


def test_lower_case_method_falls_back():
    data = head(b"Host: a", start=b"get / HTTP/1.1")
    assert lane(data) is None
    assert parser_rejects(data) == 400


def test_http2_version_falls_back():
    data = head(b"Host: a", start=b"GET / HTTP/2.0")
    assert lane(data) is None
    assert parser_rejects(data) == 505


def test_header_count_over_limit_falls_back():
    data = head(b"Host: a", b"X-A: 1", b"X-B: 2")
    assert lane(data, max_header_count=2) is None
    assert parser_rejects(data, max_header_count=2) == 431


def test_header_bytes_over_limit_falls_back():
    data = head(b"Host: a", b"X-A: " + b"v" * 40)
    size = len(b"host") + len(b"a") + 4 + len(b"x-a") + 40 + 4  # what the parser counts
    assert lane(data, max_header_bytes=size - 1) is None
    assert parser_rejects(data, max_header_bytes=size - 1) == 431


def test_request_line_over_limit_falls_back():
    line = b"GET /" + b"x" * 30 + b" HTTP/1.1"
    data = head(b"Host: a", start=line)
    assert lane(data, max_request_line=len(line) - 1) is None
    assert parser_rejects(data, max_request_line=len(line) - 1) == 414


def test_control_character_in_a_header_value_falls_back():
    for ctl in (b"\x00", b"\x01", b"\x1b", b"\x7f"):
        data = head(b"Host: a", b"X-A: a" + ctl + b"b")
        assert lane(data) is None, ctl
        assert parser_rejects(data) == 400


def test_space_before_the_colon_of_a_header_name_falls_back():
    for data in (head(b"Host: a", b"X-A : v"), head(b"Host: a", b"X-A\t: v"), head(b"Host : a")):
        assert lane(data) is None, data
        assert parser_rejects(data) == 400


# Limits: right at a limit the lane may take the request, but must then agree ----------
def test_at_the_limits_the_fast_lane_agrees_with_the_parser():
    line = b"GET /" + b"x" * 30 + b" HTTP/1.1"
    data = head(b"Host: a", b"X-A: " + b"v" * 40, start=line)
    size = len(b"Host: a\r\n") + len(b"X-A: " + b"v" * 40 + b"\r\n")
    limits = {"max_request_line": len(line), "max_header_bytes": size, "max_header_count": 2,
              "max_field_size": len(b"X-A: " + b"v" * 40 + b"\r\n")}
    assert lane(data, **limits) is not None
    assert parser_takes(data, **limits)
    for key in limits:
        over = {**limits, key: limits[key] - 1}
        assert lane(data, **over) is None, key
        assert parser_rejects(data, **over) in (414, 431), key


@pytest.mark.parametrize("data", [
    head(b"Host: a", start=b"GET / HTTP/1.2"),  # the parser reads a later 1.x as 1.1
    head(b"Host: a", start=b"GET / RTSP/1.0"),  # llhttp lets RTSP/1.0 through as 1.0
    head(b"Host: a", start=b"GET  / HTTP/1.1"),  # llhttp allows two spaces after the method
    head(b"Host: a", start=b"PURGE / HTTP/1.1"),  # a method from llhttp's table, not a common one
    head(b"Host: a", b"Proxy-Connection: close"),  # llhttp reads it like Connection
    head(b"Proxy-Connection: keep-alive", start=b"GET / HTTP/1.0"),
    head(b"Host: a", b"Connection: closed"),  # not the token "close"
    head(b"Host: a", b"Connection: keep-alive, close"),
    head(b"Connection: close, keep-alive", start=b"GET / HTTP/1.0"),
    head(b"Connection: keep-alive;x", start=b"GET / HTTP/1.0"),
    head(b"Host: a", b"Connection: keep-alive", b"Connection: close"),
    head(b"Host: a", b"Content-Length: 00"),  # CONTENT_LENGTH "00"
    head(b"Host: a", b"Content-Length:  0 "),
    head(b"Host: a", start=b"GET /a%00b%zz%4 HTTP/1.1"),  # NUL decoded, bad escapes kept
    head(b"Host: a", start=b"GET /%C3%A9?%C3%A9 HTTP/1.1"),  # decoded octets read as latin-1
    head(b"Host: a", start=b'GET /"<>{}|\\^` HTTP/1.1'),  # llhttp accepts these in a path
    head(b"Host: a", start=b"GET //x/../y HTTP/1.1"),
    head(b"Host: a", start=b"GET /a? HTTP/1.1"),
    head(b"Host:"),  # an empty Host is legal
    head(b"Host: [::1]:8080"),
    head(b"Host: [::ffff:1.2.3.4]"),
    head(b"Host: a_b.example"),
    head(b"Host: %41.example"),
    head(b"Host: a:99999"),
    head(b"Host: a b"),  # invalid: 400
    head(b"Host: a:"),  # invalid: 400
    head(b"Host: a", b"X-A:"),
    head(b"Host: a", b"X-A: \t "),
    head(b"Host: a", b"X!#$%&'*+.^`|~: v"),
    head(b"Host: a", b"Server-Name: spoof"),  # becomes HTTP_SERVER_NAME, not SERVER_NAME
], ids=lambda d: repr(d.split(b"\r\n\r\n")[0])[:60])
def test_fast_lane_agrees_with_the_parser_on_its_quirks(data):
    lane(data)


def test_whitespace_around_a_value_counts_toward_the_header_bytes_limit():
    # The limits bound the bytes a client makes us hold: raw bytes.
    field = b"X-A:" + b" " * 100 + b"v" + b" \t" * 100
    data = head(b"Host: a", field)
    size = len(b"Host: a\r\n") + len(field) + 2
    lane(data, max_header_bytes=size)
    assert parser_takes(data, max_header_bytes=size)
    assert lane(data, max_header_bytes=size - 1) is None
    assert parser_rejects(data, max_header_bytes=size - 1) == 431


# Accepted cases: the environ of what the fast lane takes ------------------------------
def test_plain_get_is_taken():
    env, req, consumed = accepted(GET)
    assert consumed == len(GET)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/"
    assert env["QUERY_STRING"] == ""
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "example.com"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == "5555"
    assert env["SERVER_NAME"] == "localhost" and env["SERVER_PORT"] == "8000"
    assert env["wsgi.url_scheme"] == "http"
    assert req.keep_alive is True and req.host == b"example.com"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_common_methods_without_a_body_are_taken(method):
    env, req, _ = accepted(head(b"Host: a", start=method.encode() + b" /x HTTP/1.1"))
    assert env["REQUEST_METHOD"] == req.method == method


def test_percent_encoded_path_is_decoded_in_path_info_but_kept_in_raw_uri():
    env, _, _ = accepted(head(b"Host: a", start=b"GET /a%20b%2Fc HTTP/1.1"))
    assert env["PATH_INFO"] == "/a b/c"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/a%20b%2Fc"


def test_query_string_is_kept_raw():
    env, _, _ = accepted(head(b"Host: a", start=b"GET /p?q=a%20b&x=%2F+y HTTP/1.1"))
    assert env["PATH_INFO"] == "/p"
    assert env["QUERY_STRING"] == "q=a%20b&x=%2F+y"
    assert env["RAW_URI"] == "/p?q=a%20b&x=%2F+y"


def test_http10_without_host_is_taken():
    env, req, _ = accepted(b"GET /old HTTP/1.0\r\n\r\n")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in env and req.host is None
    assert req.keep_alive is False


def test_connection_close_ends_keep_alive():
    env, req, _ = accepted(head(b"Host: a", b"Connection: close"))
    assert req.keep_alive is False
    assert env["HTTP_CONNECTION"] == "close"


def test_http10_with_connection_keep_alive_keeps_alive():
    _, req, _ = accepted(head(b"Connection: keep-alive", start=b"GET / HTTP/1.0"))
    assert req.keep_alive is True


def test_repeated_fields_are_joined_with_a_comma():
    env, req, _ = accepted(head(b"Host: a", b"Accept: text/html", b"X-Other: 1", b"accept: */*"))
    assert env["HTTP_ACCEPT"] == "text/html, */*"
    assert req.headers[1] == (b"accept", b"text/html") and req.headers[3] == (b"accept", b"*/*")


def test_repeated_cookie_fields_are_joined_with_a_semicolon():
    env, _, _ = accepted(head(b"Host: a", b"Cookie: a=1", b"Cookie: b=2"))
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_content_type_and_zero_content_length_have_no_http_prefix():
    env, req, _ = accepted(head(b"Host: a", b"Content-Type: text/plain", b"Content-Length: 0",
                                start=b"POST /form HTTP/1.1"))
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert req.content_length == 0


def test_header_name_with_an_underscore_is_dropped_from_the_environ():
    env, req, _ = accepted(head(b"Host: a", b"X-Auth-User: good", b"X_Auth_User: spoofed"))
    assert env["HTTP_X_AUTH_USER"] == "good"
    assert (b"x_auth_user", b"spoofed") in req.headers  # still in the Request


def test_surrounding_whitespace_of_a_value_is_stripped():
    env, req, _ = accepted(head(b"Host: a", b"X-A: v w \t ", b"X-B:\tt\t"))
    assert env["HTTP_X_A"] == "v w" and env["HTTP_X_B"] == "t"
    assert req.headers[1:] == [(b"x-a", b"v w"), (b"x-b", b"t")]


def test_ipv4_mapped_ipv6_peer_gives_the_ipv4_address():
    env, _, _ = accepted(GET, ("::ffff:1.2.3.4", 80, 0, 0))
    assert env["REMOTE_ADDR"] == "1.2.3.4"
    assert env["REMOTE_PORT"] == "80"


def test_ipv6_peer_address_is_kept():
    env, _, _ = accepted(GET, ("2001:db8::1", 4433, 0, 0))
    assert env["REMOTE_ADDR"] == "2001:db8::1" and env["REMOTE_PORT"] == "4433"


def test_unix_socket_peer_has_empty_address_and_port():
    env, _, _ = accepted(GET, "")
    assert env["REMOTE_ADDR"] == "" and env["REMOTE_PORT"] == ""


# The server's `environ` setting lands in base: keys an application asked for
# there meet the request's own, and the environ must come out as the parser's.
BASE_EXTRAS = [{"HTTP_HOST": "default.example"}, {"HTTP_X_FOO": "1"}, {"HTTP_COOKIE": "a=0"},
               {"CONTENT_TYPE": "text/x-default"}, {"CONTENT_LENGTH": "7"}, {"REMOTE_ADDR": "0.0.0.0"},
               {"PATH_INFO": "/default", "QUERY_STRING": "d=1"}]


@pytest.mark.parametrize("extra", BASE_EXTRAS, ids=lambda e: ",".join(e))
def test_extra_keys_in_base_come_out_as_the_parser_gives_them(extra):
    data = head(b"Host: a", b"X-Foo: 2", b"Cookie: b=1", b"Content-Type: text/plain", b"Content-Length: 0",
                start=b"GET /p?q=1 HTTP/1.1")
    base = make_base(extra)
    lane(data, base=base)
    lane(b"GET /p HTTP/1.0\r\n\r\n", base=base)


# Pipelining and the objects handed back ------------------------------------------------
def test_a_proxy_header_is_flagged_for_the_proxy_checks():
    got = lane(head(b"Host: a", b"X-Forwarded-For: 10.0.0.1"))
    assert got is not None and got[3] is True


def test_a_request_without_proxy_headers_is_not_flagged():
    got = lane(head(b"Host: a", b"X-Forwarded-Fore: 1"))
    assert got is not None and got[3] is False


def test_a_proxy_key_in_the_base_environ_flags_every_request():
    got = lane(GET, base=make_base({"HTTP_X_REAL_IP": "1.2.3.4"}))
    assert got is not None and got[3] is True


def test_a_request_class_with_post_init_is_constructed_by_calling_it():
    from dataclasses import dataclass

    @dataclass(slots=True)
    class Checked(Request):
        def __post_init__(self) -> None:
            self.method = self.method + "!"

    fp = FastParser(make_base(), EMPTY_INPUT, Checked, 8190, 65536, 100, 8190)
    req = fp.parse(GET, PEER)[1]
    assert type(req) is Checked and req.method == "GET!"


def test_requests_from_the_lane_are_complete_request_objects():
    req = accepted(GET)[1]
    assert type(req) is Request
    assert {f.name: getattr(req, f.name) for f in fields(Request)} == {
        "method": "GET", "target": b"/", "path": b"/", "query": b"", "http_version": "1.1",
        "headers": [(b"host", b"example.com")], "keep_alive": True, "content_length": None, "chunked": False,
        "expect_continue": False, "host": b"example.com"}


def test_pipelined_requests_consume_only_the_first_head():
    second = head(b"Host: b", start=b"GET /second HTTP/1.1")
    env, _, consumed = accepted(GET + second)
    assert consumed == len(GET)
    assert env["PATH_INFO"] == "/"
    env2, _, consumed2 = accepted((GET + second)[consumed:])
    assert consumed2 == len(second) and env2["PATH_INFO"] == "/second"


def test_head_followed_by_a_request_with_a_body_is_taken_alone():
    data = GET + head(b"Host: a", b"Content-Length: 3", start=b"POST / HTTP/1.1") + b"abc"
    assert accepted(data)[2] == len(GET)


def test_each_parse_returns_a_new_environ_and_leaves_base_alone():
    base = make_base()
    before = dict(base)
    fp = fast_parser(base, DEFAULTS)
    env1, req1, _, _ = fp.parse(GET, PEER)
    env2, req2, _, _ = fp.parse(GET, PEER)
    assert env1 is not base and env2 is not base and env1 is not env2
    assert req1 is not req2 and req1.headers is not req2.headers
    env1["HTTP_HOST"] = "changed"
    req1.headers.append((b"x", b"y"))
    assert fp.parse(GET, PEER)[0]["HTTP_HOST"] == "example.com"
    assert fp.parse(GET, PEER)[1].headers == [(b"host", b"example.com")]
    assert base == before


def test_one_fast_parser_reads_each_request_on_its_own():
    base = make_base()
    before = dict(base)
    fp = fast_parser(base, DEFAULTS)
    requests = [
        GET, head(b"Host: b", b"Cookie: a=1", b"Connection: close", start=b"GET /b?x HTTP/1.1"),
        b"GET /c HTTP/1.0\r\n\r\n", head(b"Host: a", b"Content-Length: 5", start=b"POST / HTTP/1.1") + b"hello",
        head(b"Host: a", b"X-A: 1", b"X-A: 2"), head(b"Host: a", b"Host: b"), GET,
    ]
    for _ in range(2):
        for data in requests:
            check_contract(data, fp.parse(data, PEER), PEER, base, DEFAULTS)
    assert base == before


# Property tests ----------------------------------------------------------------------
REMOTES = [("127.0.0.1", 5555), ("10.1.2.3", 1), ("::ffff:10.0.0.1", 80, 0, 0), ("::1", 8080, 0, 0),
           ("fe80::1%eth0", 443, 0, 2), ("::ffff:abcd", 9, 0, 0), ""]
remote_st = st.sampled_from(REMOTES)


@examples(300)
@given(st.data(), grammar_request(), remote_st, st.sampled_from([None] * 6 + BASE_EXTRAS))
def test_grammar_requests_are_read_like_the_parser_reads_them_or_left_to_it(draw, data, remote, extra):
    lane(data, remote, make_base(extra), **draw.draw(limits_for(data)))


@examples(300)
@given(st.data(), mutated(st.one_of(plain_request(), st.tuples(plain_request(), plain_request()).map(b"".join))),
       remote_st)
def test_mutated_requests_are_read_like_the_parser_reads_them_or_left_to_it(draw, data, remote):
    lane(data, remote, **draw.draw(limits_for(data)))


@examples(200)
@given(plain_request(), st.sampled_from(TAILS + ODD_TAILS + [b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"]))
def test_the_decision_is_made_on_the_complete_head_alone(data, tail):
    # Cut anywhere before the end of the head: not complete, None.  Cut
    # anywhere after it: the same result as with all the bytes.
    fp = fast_parser(make_base(), DEFAULTS)
    whole = fp.parse(data + tail, PEER)
    if whole is None:
        assert all(fp.parse((data + tail)[:k], PEER) is None for k in range(len(data + tail) + 1))
        return
    consumed = whole[2]
    assert consumed == len(data)
    for k in range(len(data + tail) + 1):
        got = fp.parse((data + tail)[:k], PEER)
        if k < consumed:
            assert got is None, k
        else:
            assert got == whole, k


# Hardening: what both lanes refuse or drop alike ----------------------------------------
def test_a_proxy_header_never_becomes_http_proxy_in_either_lane():
    data = head(b"Host: a", b"Proxy: http://attacker.example:3128")
    env = accepted(data)[0]  # (the contract checks the parser's environ is equal)
    assert "HTTP_PROXY" not in env
    assert (b"proxy", b"http://attacker.example:3128") in parser_takes(data)[0].headers


@pytest.mark.parametrize("name", [b"Content-Type", b"Authorization", b"Proxy-Authorization", b"Range",
                                  b"If-Range", b"If-Modified-Since", b"If-Unmodified-Since", b"Max-Forwards"])
def test_a_repeated_singleton_field_falls_back_to_the_parsers_400(name):
    data = head(b"Host: a", name + b": a", b"X: y", name.upper() + b": b")
    assert lane(data) is None
    assert parser_rejects(data) == 400


def test_a_field_over_max_field_size_falls_back_to_the_parsers_431():
    field = b"X-Big: " + b"v" * 100
    data = head(b"Host: a", field)
    assert accepted(data, max_field_size=len(field) + 2)
    assert lane(data, max_field_size=len(field) + 1) is None
    assert parser_rejects(data, max_field_size=len(field) + 1) == 431


def test_no_object_leaks_when_an_allocation_inside_parse_fails():
    # Every allocation of a parse() is made to fail in turn (CPython's
    # fault injection), on base environs of every size around a dict
    # resize, so each error path runs: none may keep an object.  (A
    # REMOTE_PORT string once leaked when the REMOTE_ADDR insert failed.)
    import gc
    import sys

    import _testcapi

    data = b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nCookie: a\r\nCookie: b\r\n\r\n"

    def run(fp: FastParser, rounds: int) -> None:
        for nth in range(60):
            for _ in range(rounds):
                _testcapi.set_nomemory(nth, nth + 1)
                try:
                    fp.parse(data, PEER)
                except MemoryError:
                    pass
                finally:
                    _testcapi.remove_mem_hooks()

    for extra in range(24):
        fp = fast_parser(make_base({f"x.extra{i}": i for i in range(extra)}), DEFAULTS)
        run(fp, 2)
        gc.collect()
        before = sys.getallocatedblocks()
        run(fp, 20)
        gc.collect()
        assert sys.getallocatedblocks() - before < 10, f"{extra} extra keys"
