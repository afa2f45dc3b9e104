# HTTP/1.1 as the driver speaks it, over the fake transport: keep-alive by
# version and Connection header, pipelining, the C fast lane and what it
# leaves to the parser, chunked bodies, Expect, HEAD and the statuses without
# a body, Date/Server and what leaves in one send, the strictness table and
# the size limits (each with its status and a log line).
# Strategy: each test scripts one client conversation with http_app (served
# with small limits) through fake_transport.harness, and reads the answer
# back with fake_transport.parse, as a client would. test_wsgi_http.py keeps
# a few of these end to end over a real socket.
from __future__ import annotations

import email.utils
import logging
import time

import pytest

from fake_transport import Silent, harness, parse
from wsgi_helpers import LIMITS, errlog, error_lines, get, http_app  # noqa: F401 (errlog: a fixture)

POST_ECHO = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
CHUNKED = POST_ECHO + b"Transfer-Encoding: chunked\r\n\r\n"


def post_echo(body: bytes) -> bytes:
    return POST_ECHO + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def bodies(out: bytes) -> list[bytes]:
    return [r.body for r in parse(out)]


@pytest.fixture
def h():
    with harness(http_app, **LIMITS) as h:
        yield h


# Keep-alive --------------------------------------------------------------------
def test_http11_is_kept_alive_without_a_connection_header(h):
    for i in range(3):
        [r] = h.responses(get(f"/{i}"))
        assert r.body == f"hello /{i}".encode() and r.header("connection") is None
    assert h.parked


def test_http10_closes_after_the_response_by_default(h):
    [r] = h.responses(b"GET /x HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.body == b"hello /x"
    assert (r.header("connection") or "close").lower() == "close"
    assert h.closed


def test_http10_keep_alive_is_answered_with_keep_alive_and_a_content_length(h):
    for _ in range(2):
        [r] = h.responses(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert r.body == b"hello /ka"
        assert r.header("connection").lower() == "keep-alive" and r.header("content-length") == "9"
    assert h.parked


def test_http10_keep_alive_with_an_unknown_length_closes_without_chunking(h):
    [r] = h.responses(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert r.status == 200
    assert r.header("transfer-encoding") is None and r.header("content-length") is None
    assert (r.header("connection") or "close").lower() != "keep-alive"
    assert r.body == b"one,two,three" and h.closed  # delimited by the close


def test_http10_response_without_a_length_is_close_delimited_never_chunked(h):
    out = h.serve(b"GET /stream HTTP/1.0\r\n\r\n")
    assert b"chunked" not in out.lower()
    assert out.endswith(b"\r\n\r\none,two,three") and h.closed


def test_connection_close_from_the_app_closes_after_the_response(h):
    [r] = h.responses(get("/close"))
    assert r.header_all("connection") == ["close"] and h.closed


def test_connection_close_among_other_tokens_is_honoured(h):
    [r] = h.responses(get("/a", extra="Connection: foo, CLOSE\r\n"))
    assert r.header("connection") == "close" and h.closed


def test_keepalive_timeout_zero_turns_keep_alive_off():
    with harness(http_app, keepalive_timeout=0) as h:
        [r] = h.responses(get("/"))
        assert r.header("connection") == "close" and h.closed


# Pipelining --------------------------------------------------------------------
PIPELINE = get("/1") + post_echo(b"abcde") + CHUNKED + b"3\r\nxyz\r\n0\r\n\r\n" + get("/stream") + get("/4")


def test_pipelined_requests_of_every_framing_are_answered_in_order_with_exact_boundaries(h):
    assert bodies(h.serve(PIPELINE)) == [b"hello /1", b"abcde", b"xyz", b"one,two,three", b"hello /4"]
    assert h.parked


def test_pipelined_requests_sent_byte_by_byte_are_answered(h):
    reqs = get("/a") + post_echo(b"xyz") + get("/b")
    out = h.serve(*(reqs[i:i + 1] for i in range(len(reqs))))
    assert bodies(out) == [b"hello /a", b"xyz", b"hello /b"]


def test_requests_followed_by_the_client_closing_are_answered_then_closed(h):
    out = h.serve(get("/1") + post_echo(b"hi"), b"")
    assert bodies(out) == [b"hello /1", b"hi"] and h.closed


def test_many_sequential_requests_on_one_connection(h):
    for i in range(200):
        assert h.responses(get(f"/{i}"))[0].body == f"hello /{i}".encode()


def test_requests_pipelined_after_connection_close_are_not_answered(h):
    out = h.serve(get("/a", extra="Connection: close\r\n") + get("/b"))
    assert bodies(out) == [b"hello /a"] and h.closed


# The C fast lane ---------------------------------------------------------------
def test_plain_requests_are_served_without_taking_a_parser(h):
    for i in range(3):
        assert h.responses(get(f"/{i}", extra="Accept: */*\r\nCookie: a=1\r\n"))[0].body == f"hello /{i}".encode()
    # A parser taken by a connection goes back to this free list when it idles.
    assert h.server._free_parsers == []


def test_a_request_the_fast_lane_declines_is_parsed_on_the_same_connection(h):
    assert bodies(h.serve(get("/a"))) == [b"hello /a"]
    assert bodies(h.serve(CHUNKED + b"3\r\nxyz\r\n0\r\n\r\n")) == [b"xyz"]
    assert bodies(h.serve(get("/b"))) == [b"hello /b"]


def test_a_partial_head_after_a_fast_lane_request_waits_for_the_rest(h):
    out = h.serve(get("/a") + b"GET /b HTTP/1.1\r\nHo", Silent(0.05), b"st: x\r\n\r\n")
    assert bodies(out) == [b"hello /a", b"hello /b"]


def test_the_fast_lane_leaves_errors_to_the_parser(h, errlog):
    rs = h.responses(get("/a") + b"GET /b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")
    assert [r.status for r in rs] == [200, 400] and rs[0].body == b"hello /a"
    assert "more than one Host header" in error_lines(errlog)


def test_a_fast_lane_body_arriving_after_the_head_is_read_whole(h):
    out = h.serve(POST_ECHO + b"Content-Length: 6\r\n\r\nab", Silent(0.05), b"cd", Silent(0.05), b"ef")
    assert bodies(out) == [b"abcdef"]


def test_a_fast_lane_body_and_pipelined_requests_in_one_read_keep_their_boundaries(h):
    out = h.serve(post_echo(b"abc") + POST_ECHO + b"Content-Length: 5\r\n\r\nGET /" + get("/after"))
    assert bodies(out) == [b"abc", b"GET /", b"hello /after"] and h.parked


def test_a_fast_lane_body_the_app_leaves_unread_is_drained_before_the_next_request(h):
    out = h.serve(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nGET /x ", Silent(0.05),
                  b"H" + get("/next"))
    assert bodies(out) == [b"ok", b"hello /next"] and h.parked


def test_a_fast_lane_body_cut_short_by_the_client_closes_without_answer(h):
    assert h.serve(POST_ECHO + b"Content-Length: 10\r\n\r\nabc", b"") == b""
    assert h.closed


# Chunked -----------------------------------------------------------------------
def test_a_chunked_body_is_dechunked_with_extensions_and_trailers(h):
    out = h.serve(CHUNKED + b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n" + get("/after"))
    assert bodies(out) == [b"hello world", b"hello /after"]


def test_a_response_of_unknown_length_is_chunked_on_http11(h):
    r, after = h.responses(get("/stream") + get("/next"))
    assert r.header("transfer-encoding") == "chunked" and r.header("content-length") is None
    assert r.chunked and r.body == b"one,two,three"
    assert after.body == b"hello /next"  # the last chunk ended the message exactly


def test_an_empty_app_write_does_not_end_a_chunked_body(h):
    head, body = h.serve(get("/stream")).split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


# Expect: 100-continue ------------------------------------------------------------
def test_100_continue_is_never_sent_to_http10(h):
    out = h.serve(b"POST /echo HTTP/1.0\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", Silent(0.1), b"body")
    assert out.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in out
    assert out.endswith(b"\r\n\r\nbody")


def test_an_unknown_expectation_is_417(h, errlog):
    [r] = h.responses(POST_ECHO + b"Content-Length: 4\r\nExpect: teapot\r\n\r\nbody")
    assert r.status == 417 and h.closed
    assert "417" in error_lines(errlog)


# HEAD, statuses without a body --------------------------------------------------------
def without_date(r):
    return [(k, v) for k, v in r.headers if k.lower() != "date"]


def test_a_head_response_has_the_headers_of_get_and_no_body(h):
    g, hd, after = h.responses(get("/h") + get("/h", method="HEAD") + get("/after"), methods=("GET", "HEAD"))
    assert without_date(hd) == without_date(g) and hd.header("content-length") == str(len(g.body))
    assert after.body == b"hello /after"  # no stray body bytes in between


def test_head_of_a_streamed_response_has_no_body(h):
    hd, after = h.responses(get("/stream", method="HEAD") + get("/after"), methods=("HEAD",))
    assert hd.status == 200 and after.body == b"hello /after"


@pytest.mark.parametrize("code", [204, 304])
def test_a_no_body_status_sends_no_body(h, code):
    r, after = h.responses(get(f"/status/{code}") + get("/after"))
    assert r.status == code and r.header("transfer-encoding") is None
    assert after.body == b"hello /after"


def test_204_drops_an_app_content_length(h):
    [r] = h.responses(get("/status/204?cl"))
    assert r.status == 204 and r.header("content-length") is None


def test_304_with_an_empty_body_gets_no_invented_content_length():
    def app(environ, start_response):
        start_response("304 Not Modified", [("ETag", '"x"')])
        return []

    rs = harness(app).responses(get("/") + get("/"))
    assert [(r.status, r.header("content-length")) for r in rs] == [(304, None)] * 2


def test_head_answered_with_an_empty_body_gets_no_content_length_zero():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"full body"]

    hd, g = harness(app).responses(get("/", method="HEAD") + get("/"), methods=("HEAD",))
    assert hd.header("content-length") is None and g.body == b"full body"


def test_a_1xx_final_status_sends_no_body_and_closes(h):
    assert [r.status for r in h.responses(get("/status/103"))] == [103]  # and nothing after its head
    assert h.closed


# Date, Server, sends ---------------------------------------------------------------
def test_date_and_server_headers_are_present(h):
    [r] = h.responses(get("/"))
    assert r.header("server") == "lichen"
    date = r.header("date")
    assert date.endswith(" GMT")
    assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 5


def test_the_server_header_can_be_turned_off():
    [r] = harness(http_app, server_header=None).responses(get("/"))
    assert r.header("server") is None and r.header("date") is not None


def test_the_head_and_a_whole_list_body_leave_in_one_send(h):
    h.serve(get("/one"))
    [(data, _flags)] = h.sock.sends
    assert data.endswith(b"\r\n\r\nhello /one")


def test_the_head_and_the_start_of_a_streamed_body_leave_in_one_send(h):
    h.serve(get("/stream"))
    assert h.sock.sends[0][0].endswith(b"\r\n\r\n4\r\none,\r\n")


# Strictness -------------------------------------------------------------------------
BAD_REQUESTS = {
    "http11_without_host_is_400": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "duplicate_host_is_400": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    "host_with_space_is_400": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "host_with_bad_port_is_400": (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
    "host_with_userinfo_is_400": (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    "host_with_unclosed_ipv6_is_400": (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    "content_length_with_transfer_encoding_is_400":
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "transfer_encoding_not_ending_in_chunked_is_400":
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "transfer_encoding_identity_alone_is_400":
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    "unknown_transfer_coding_is_501":
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501),
    "chunked_on_http10_is_400": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "negative_content_length_is_400": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    "signed_content_length_is_400": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    "content_length_with_inner_space_is_400": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
    "hex_content_length_is_400": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\n", 400),
    "content_length_list_that_differs_is_400":
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\nxx", 400),
    "duplicate_content_lengths_that_differ_are_400":
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400),
    "whitespace_before_colon_is_400": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "whitespace_before_first_header_is_400": (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    "obs_fold_is_400": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n", 400),
    "http2_version_is_505": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "http3_version_is_505": (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    "bare_cr_in_header_value_is_400": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
    "nul_in_header_value_is_400": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
    "bare_cr_in_request_line_is_400": (b"GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "nul_in_target_is_400": (b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "invalid_header_name_is_400": (b"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400),
    "invalid_chunk_size_is_400":
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    "connect_method_is_400": (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400),
    "garbage_request_line_is_400": (b"hello\r\n\r\n", 400),
    "transfer_coding_before_chunked_is_501":
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    "duplicate_content_type_is_400":
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 0\r\n\r\n",
         400),
    "forbidden_trailer_field_is_400":
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"1\r\nx\r\n0\r\nContent-Length: 5\r\n\r\n", 400),
    "field_over_max_field_size_is_431":
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 1100 + b"\r\n\r\n", 431),
}


@pytest.mark.parametrize("data,status", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_an_invalid_request_is_rejected_with_its_status_a_close_and_a_log_line(h, errlog, data, status):
    [r] = h.responses(data)  # and nothing after it
    assert r.status == status, r
    assert r.header("connection") == "close"
    assert r.header("server") == "lichen" and r.header("date")
    assert r.body  # a short text explanation
    assert h.closed and h.sock.lingered
    assert f"({status})" in error_lines(errlog)


def test_an_http12_request_is_answered_as_http11_and_kept_alive(h):
    [r] = h.responses(b"GET /v HTTP/1.2\r\nHost: a\r\n\r\n")
    assert r.version == "HTTP/1.1" and r.status == 200 and r.body == b"hello /v"
    assert bodies(h.serve(get("/again"))) == [b"hello /again"]


def test_an_identical_content_length_list_is_accepted_or_rejected_consistently(h):
    # RFC 9110 8.6 allows accepting "5, 5" as 5; lichen rejects it (400).
    [r] = h.responses(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc")
    assert r.status in (200, 400)
    if r.status == 200:
        assert r.body == b"abc"


def test_an_absolute_form_authority_replaces_host(h):
    [r] = h.responses(b"GET http://real.example:8080/host?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert r.status == 200 and r.body == b"real.example:8080"


def test_an_error_after_a_good_pipelined_request_answers_the_good_one_first(h):
    rs = h.responses(get("/good") + b"GET / HTTP/1.1\r\n\r\n")
    assert [r.status for r in rs] == [200, 400] and rs[0].body == b"hello /good"
    assert h.closed


# Limits -------------------------------------------------------------------------
def test_a_request_line_too_long_is_414(h, errlog):
    assert [r.status for r in h.responses(get("/" + "a" * 1100))] == [414]
    assert "(414)" in error_lines(errlog)


def test_a_header_section_too_large_is_431(h, errlog):
    headers = "".join(f"X-H{i}: {'v' * 400}\r\n" for i in range(12))
    assert [r.status for r in h.responses(get("/", extra=headers))] == [431]
    assert "(431)" in error_lines(errlog)


def test_one_huge_header_field_is_431_before_the_head_ends(h, errlog):
    assert [r.status for r in h.responses(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 20000)] == [431]
    assert "(431)" in error_lines(errlog)


def test_too_many_header_fields_is_431(h, errlog):
    headers = "".join(f"X-H{i}: v\r\n" for i in range(25))
    assert [r.status for r in h.responses(get("/", extra=headers))] == [431]
    assert "(431)" in error_lines(errlog)


def test_many_tiny_fields_are_431_at_once_without_waiting_for_the_head_to_end(h, errlog):
    # The count is checked as fields arrive: no waiting for the header
    # timeout (which would be a 408 here) while holding what the fields cost.
    assert [r.status for r in h.responses(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"aa:\r\n" * 30)] == [431]
    assert h.closed
    assert "(431)" in error_lines(errlog)


@pytest.mark.parametrize("te", [b"chunked \t", b",chunked,"])
def test_transfer_encoding_with_ows_and_empty_elements_is_read_as_chunked(h, te):
    [r] = h.responses(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
                      b"5 ; a = b\r\nhello\r\n0\r\n\r\n")
    assert (r.status, r.body) == (200, b"hello")


def test_trailers_never_reach_the_environ():
    seen = {}

    def app(environ, start_response):
        environ["wsgi.input"].read()
        seen.update(environ)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    [r] = harness(app).responses(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"1\r\nx\r\n0\r\nX-Checksum: abc\r\n\r\n")
    assert r.status == 200
    assert "HTTP_X_CHECKSUM" not in seen


def test_a_proxy_header_never_reaches_the_environ_as_http_proxy():
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("HTTP_PROXY"))
        start_response("200 OK", [("Content-Length", "0")])
        return []

    h = harness(app)
    # One plain head (the C fast lane) and one chunked (the parser).
    h.serve(b"GET / HTTP/1.1\r\nHost: a\r\nProxy: http://attacker.example:3128\r\n\r\n")
    h.serve(b"POST / HTTP/1.1\r\nHost: a\r\nProxy: http://attacker.example:3128\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert seen == [None, None]


def test_a_declared_body_over_max_body_is_413(h, errlog):
    assert [r.status for r in h.responses(POST_ECHO + b"Content-Length: 10001\r\n\r\n")] == [413]
    assert "(413)" in error_lines(errlog)


def test_a_chunked_body_over_max_body_is_413(h, errlog):
    [r] = h.responses(CHUNKED, *[b"1000\r\n" + b"x" * 4096 + b"\r\n"] * 3)
    assert r.status == 413 and r.header("connection") == "close"
    assert "(413)" in error_lines(errlog)


def test_a_body_at_max_body_is_accepted(h):
    [r] = h.responses(post_echo(b"y" * 10000))
    assert r.status == 200 and r.body == b"y" * 10000


def test_leading_empty_lines_before_a_request_are_ignored(h):
    [r] = h.responses(b"\r\n\r\n" + get("/x"))
    assert r.status == 200 and r.body == b"hello /x"


def test_a_client_closing_mid_request_is_not_logged_as_an_error(h, errlog):
    assert h.serve(b"GET / HTTP/1.1\r\nHost: a\r\n", b"") == b"" and h.closed
    assert not [r for r in errlog.records if r.name == "lichen.error" and r.levelno >= logging.WARNING]
