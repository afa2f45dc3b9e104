# Differential tests of the C fast lane's head parser (lichen._fasthead).
# Strategy: the fast lane takes a strict subset of complete HTTP/1.x heads
# (no body, or a Content-Length one that the caller reads after the head) and
# builds the Request itself; for anything else parse() returns None and the
# server asks lichen.http.RequestParser, which stays the authority.  So every
# call here goes through `lane()`, which checks the whole contract against
# that authority on the same bytes:
#   - accepted  => the parser reads exactly that Request from data[:consumed]
#                  (then END_OF_MESSAGE, or the same body bytes when they are
#                  all there), with the same field types;
#   - the parser rejects the first message => the lane returned None.
# On top of that: one test per fallback trigger (None, and what the Python
# path makes of it), one per accepted case, pipelining, and hypothesis runs
# (derandomized, no database: CI sees the same examples) over a grammar of
# valid and slightly-off heads, mutated valid heads, and every prefix of a
# head (a few seconds in all; LICHEN_FUZZ_SCALE=N for a longer, randomly
# seeded campaign).  Only the lane's *agreement* is required for inputs
# outside the listed accepted cases: a stricter lane is always correct; but
# the grammar and mutation runs also require the lane to take a minimum share
# of what they generate, so that agreement cannot come from declining
# everything.  The environ of what the lane takes is the builder's, tested in
# test_wsgi_environ_c.py.
from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from head_grammar import (DEFAULTS, ODD_TAILS, TAILS, examples, grammar_request, head, limits_for, mutated,
                          plain_request, python_reading)
from lichen._fasthead import HeadParser
from lichen.http import END_OF_MESSAGE, Request, RequestParser

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
# Shares of the generated requests the lane must take.  Measured: 40 % of
# the grammar's heads and 27 % of the mutated ones in the derandomized runs,
# 35-39 % and 32-33 % in random ones (LICHEN_FUZZ_SCALE=5), and 29 % of the
# grammar's when the whole suite runs (hypothesis draws differ then); hence
# floors with a margin: far above "declines everything".
GRAMMAR_FLOOR = 0.20
MUTATED_FLOOR = 0.20


def fast_parser(limits: dict) -> HeadParser:
    return HeadParser(Request, limits["max_request_line"], limits["max_header_bytes"], limits["max_header_count"],
                      limits["max_field_size"], limits["max_body"])


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
def check_contract(data: bytes, got, limits: dict) -> None:
    if got is None:
        return  # falling back is always allowed
    events, err = python_reading(data, limits)
    assert type(got) is tuple and len(got) == 2, got
    req, consumed = got
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


def lane(data: bytes, **limits):
    """parse() through a fresh HeadParser, checked against the contract."""
    limits = {**DEFAULTS, **limits}
    got = fast_parser(limits).parse(data)
    check_contract(data, got, limits)
    return got


def accepted(data: bytes, **limits) -> tuple[Request, int]:
    got = lane(data, **limits)
    assert got is not None, "the fast lane did not take this request"
    return got


# Fallback triggers: None, and the Python path does the job ----------------------------
def test_incomplete_head_falls_back():
    for data in (b"", b"GET / HTTP/1.1", b"GET / HTTP/1.1\r\nHost: a\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r"):
        assert lane(data) is None
        assert python_reading(data, DEFAULTS) == ([], None)  # the parser waits for more


def test_content_length_body_is_left_to_the_caller_after_consumed():
    data = head(b"Host: a", b"Content-Length: 5", start=b"POST / HTTP/1.1") + b"hello"
    req, consumed = accepted(data)
    assert req.content_length == 5
    assert data[consumed:] == b"hello"


def test_content_length_head_is_taken_before_its_body_arrives():
    data = head(b"Host: a", b"Content-Length: 5", start=b"POST / HTTP/1.1")
    assert accepted(data)[0].content_length == 5


def test_content_length_over_max_body_falls_back():
    data = head(b"Host: a", b"Content-Length: 11", start=b"POST / HTTP/1.1") + b"x" * 11
    assert lane(data, max_body=10) is None
    assert parser_rejects(data, max_body=10) == 413


def test_content_length_at_max_body_is_taken():
    data = head(b"Host: a", b"Content-Length: 10", start=b"POST / HTTP/1.1") + b"x" * 10
    assert accepted(data, max_body=10)[0].content_length == 10


def test_content_length_with_leading_zeros_is_read_as_the_parser_reads_it():
    data = head(b"Host: a", b"Content-Length: 007", start=b"POST / HTTP/1.1") + b"x" * 7
    req, _ = accepted(data)
    assert req.content_length == 7 and (b"content-length", b"007") in req.headers


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


# Accepted cases: the Request of what the fast lane takes ------------------------------
def test_plain_get_is_taken():
    req, consumed = accepted(GET)
    assert consumed == len(GET)
    assert {f.name: getattr(req, f.name) for f in fields(Request)} == {
        "method": "GET", "target": b"/", "path": b"/", "query": b"", "http_version": "1.1",
        "headers": [(b"host", b"example.com")], "keep_alive": True, "content_length": None, "chunked": False,
        "expect_continue": False, "host": b"example.com"}


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_common_methods_without_a_body_are_taken(method):
    req, _ = accepted(head(b"Host: a", start=method.encode() + b" /x HTTP/1.1"))
    assert req.method == method


def test_percent_encoded_path_and_query_are_kept_raw():
    req, _ = accepted(head(b"Host: a", start=b"GET /a%20b%2Fc?q=a%20b&x=%2F+y HTTP/1.1"))
    assert req.target == b"/a%20b%2Fc?q=a%20b&x=%2F+y"
    assert req.path == b"/a%20b%2Fc" and req.query == b"q=a%20b&x=%2F+y"


def test_http10_without_host_is_taken():
    req, _ = accepted(b"GET /old HTTP/1.0\r\n\r\n")
    assert req.http_version == "1.0" and req.host is None and req.headers == []
    assert req.keep_alive is False


def test_connection_close_ends_keep_alive():
    req, _ = accepted(head(b"Host: a", b"Connection: close"))
    assert req.keep_alive is False
    assert req.headers[1] == (b"connection", b"close")


def test_http10_with_connection_keep_alive_keeps_alive():
    req, _ = accepted(head(b"Connection: keep-alive", start=b"GET / HTTP/1.0"))
    assert req.keep_alive is True


def test_repeated_fields_stay_separate_entries():
    req, _ = accepted(head(b"Host: a", b"Accept: text/html", b"X-Other: 1", b"accept: */*", b"Cookie: a=1",
                           b"Cookie: b=2"))
    assert req.headers[1] == (b"accept", b"text/html") and req.headers[3] == (b"accept", b"*/*")
    assert req.headers[4:] == [(b"cookie", b"a=1"), (b"cookie", b"b=2")]


def test_content_type_and_zero_content_length_are_taken():
    req, _ = accepted(head(b"Host: a", b"Content-Type: text/plain", b"Content-Length: 0",
                           start=b"POST /form HTTP/1.1"))
    assert req.content_length == 0
    assert req.headers[1:] == [(b"content-type", b"text/plain"), (b"content-length", b"0")]


def test_header_names_with_an_underscore_or_proxy_stay_in_the_request():
    # (The environ drops them; the Request keeps every field.)
    req, _ = accepted(head(b"Host: a", b"X-Auth-User: good", b"X_Auth_User: spoofed", b"Proxy: http://p:3128"))
    assert req.headers[2:] == [(b"x_auth_user", b"spoofed"), (b"proxy", b"http://p:3128")]


def test_surrounding_whitespace_of_a_value_is_stripped():
    req, _ = accepted(head(b"Host: a", b"X-A: v w \t ", b"X-B:\tt\t"))
    assert req.headers[1:] == [(b"x-a", b"v w"), (b"x-b", b"t")]


def test_field_names_are_shared_lower_cased_bytes():
    # The same b"x-a" object for every request that has the field, however
    # spelt: the environ builder finds its key by identity.
    first, _ = accepted(head(b"Host: a", b"X-A: 1"))
    second, _ = accepted(head(b"HOST: b", b"x-A: 2"))
    assert [n for n, _ in first.headers] == [b"host", b"x-a"]
    assert all(a is b for (a, _), (b, _) in zip(first.headers, second.headers))


# The objects handed back --------------------------------------------------------------
def test_a_request_class_with_post_init_is_constructed_by_calling_it():
    from dataclasses import dataclass

    @dataclass(slots=True)
    class Checked(Request):
        def __post_init__(self) -> None:
            self.method = self.method + "!"

    req = HeadParser(Checked, 8190, 65536, 100, 8190).parse(GET)[0]
    assert type(req) is Checked and req.method == "GET!"


def test_a_request_class_that_is_not_a_slots_dataclass_is_constructed_by_calling_it():
    class Plain:
        def __init__(self, *args) -> None:
            self.args = args

    req = HeadParser(Plain, 8190, 65536, 100, 8190).parse(GET)[0]
    assert type(req) is Plain and req.args[:2] == ("GET", b"/") and len(req.args) == 11


def test_pipelined_requests_consume_only_the_first_head():
    second = head(b"Host: b", start=b"GET /second HTTP/1.1")
    req, consumed = accepted(GET + second)
    assert consumed == len(GET) and req.path == b"/"
    req2, consumed2 = accepted((GET + second)[consumed:])
    assert consumed2 == len(second) and req2.path == b"/second"


def test_head_followed_by_a_request_with_a_body_is_taken_alone():
    data = GET + head(b"Host: a", b"Content-Length: 3", start=b"POST / HTTP/1.1") + b"abc"
    assert accepted(data)[1] == len(GET)


def test_each_parse_returns_new_objects():
    fp = fast_parser(DEFAULTS)
    req1, _ = fp.parse(GET)
    req2, _ = fp.parse(GET)
    assert req1 is not req2 and req1.headers is not req2.headers
    req1.headers.append((b"x", b"y"))
    assert fp.parse(GET)[0].headers == [(b"host", b"example.com")]


def test_parse_reads_any_bytes_like_object():
    for data in (bytearray(GET), memoryview(GET), memoryview(b"xx" + GET)[2:]):
        assert fast_parser(DEFAULTS).parse(data)[0] == accepted(GET)[0]


def test_one_fast_parser_reads_each_request_on_its_own():
    fp = fast_parser(DEFAULTS)
    requests = [
        GET, head(b"Host: b", b"Cookie: a=1", b"Connection: close", start=b"GET /b?x HTTP/1.1"),
        b"GET /c HTTP/1.0\r\n\r\n", head(b"Host: a", b"Content-Length: 5", start=b"POST / HTTP/1.1") + b"hello",
        head(b"Host: a", b"X-A: 1", b"X-A: 2"), head(b"Host: a", b"Host: b"), GET,
    ]
    for _ in range(2):
        for data in requests:
            check_contract(data, fp.parse(data), DEFAULTS)


# Property tests ----------------------------------------------------------------------
def test_grammar_requests_are_read_like_the_parser_reads_them_or_left_to_it():
    taken: list[bool] = []

    @examples(300)
    @given(st.data(), grammar_request())
    def run(draw, data):
        taken.append(lane(data, **draw.draw(limits_for(data))) is not None)

    run()
    assert sum(taken) >= GRAMMAR_FLOOR * len(taken), f"the lane took {sum(taken)} of {len(taken)}"


def test_mutated_requests_are_read_like_the_parser_reads_them_or_left_to_it():
    taken: list[bool] = []

    @examples(300)
    @given(st.data(), mutated(st.one_of(plain_request(), st.tuples(plain_request(), plain_request()).map(b"".join))))
    def run(draw, data):
        taken.append(lane(data, **draw.draw(limits_for(data))) is not None)

    run()
    assert sum(taken) >= MUTATED_FLOOR * len(taken), f"the lane took {sum(taken)} of {len(taken)}"


@examples(200)
@given(plain_request(), st.sampled_from(TAILS + ODD_TAILS + [b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"]))
def test_the_decision_is_made_on_the_complete_head_alone(data, tail):
    # Cut anywhere before the end of the head: not complete, None.  Cut
    # anywhere after it: the same result as with all the bytes.
    fp = fast_parser(DEFAULTS)
    whole = fp.parse(data + tail)
    if whole is None:
        assert all(fp.parse((data + tail)[:k]) is None for k in range(len(data + tail) + 1))
        return
    consumed = whole[1]
    assert consumed == len(data)
    for k in range(len(data + tail) + 1):
        got = fp.parse((data + tail)[:k])
        if k < consumed:
            assert got is None, k
        else:
            assert got == whole, k


# Hardening: what both lanes refuse alike ----------------------------------------------
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
    # fault injection), so each error path runs: none may keep an object.
    # (test_wsgi_environ_c.py does the same for the environ builder.)
    import gc
    import sys

    import _testcapi

    data = b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nCookie: a\r\nCookie: b\r\n\r\n"

    def run(fp: HeadParser, rounds: int) -> None:
        for nth in range(40):
            for _ in range(rounds):
                _testcapi.set_nomemory(nth, nth + 1)
                try:
                    fp.parse(data)
                except MemoryError:
                    pass
                finally:
                    _testcapi.remove_mem_hooks()

    fp = fast_parser(DEFAULTS)
    run(fp, 2)
    gc.collect()
    before = sys.getallocatedblocks()
    run(fp, 20)
    gc.collect()
    assert sys.getallocatedblocks() - before < 10
