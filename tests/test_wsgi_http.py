# HTTP/1.1 behaviour of WSGIServer, through the real server on a socket:
# keep-alive, pipelining, chunked bodies, Expect, HEAD and no-body statuses,
# Date/Server, one send per head+body start, TCP_NODELAY, the strictness
# rules and the size limits (each with its status and a log line).
# Strategy: one server per module (limits set small) in a background thread
# with its own hub; each test talks to it with blocking stdlib sockets.
from __future__ import annotations

import email.utils
import logging
import socket
import time

import pytest

from lichen.wsgi import exchange as wsgi_exchange
from wsgi_helpers import Client, ServerThread, echo_app, get, streaming_app

LIMITS = dict(max_request_line=1024, max_header_bytes=4096, max_header_count=20, max_field_size=1024, max_body=10000)


def app(environ, start_response):
    """Routes by path: enough behaviours for the whole module."""
    path = environ["PATH_INFO"]
    if path == "/echo":
        return echo_app(environ, start_response)
    if path == "/stream":
        return streaming_app(environ, start_response)
    if path == "/noread":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/close":
        start_response("200 OK", [("Content-Length", "2"), ("Connection", "close")])
        return [b"ok"]
    if path.startswith("/status/"):
        code = path.rsplit("/", 1)[1]
        headers = [("Content-Type", "text/plain")]
        if environ["QUERY_STRING"] == "cl":
            headers.append(("Content-Length", "4"))
        start_response(f"{code} Whatever", headers)
        return [b"body"]
    if path == "/host":
        body = environ.get("HTTP_HOST", "<none>").encode("latin-1")
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    body = b"hello " + path.encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def srv():
    with ServerThread(app, **LIMITS) as s:
        yield s


@pytest.fixture
def errlog(caplog):
    caplog.set_level(logging.INFO, logger="lichen.error")
    return caplog


def error_lines(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "lichen.error")


# Keep-alive --------------------------------------------------------------------
def test_http11_connection_is_kept_alive_by_default(srv):
    with srv.connect() as c:
        for i in range(3):
            c.send(get(f"/{i}"))
            r = c.read_response()
            assert r.body == f"hello /{i}".encode()
            assert r.header("connection") is None
        assert not c.is_closed(0.2)


def test_http10_connection_closes_by_default(srv):
    with srv.connect() as c:
        c.send(b"GET /x HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello /x"
        assert (r.header("connection") or "close").lower() == "close"
        assert c.is_closed()


def test_http10_keep_alive_is_answered_with_keep_alive_and_content_length(srv):
    with srv.connect() as c:
        for _ in range(2):
            c.send(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            assert r.body == b"hello /ka"
            assert r.header("connection").lower() == "keep-alive"
            assert r.header("content-length") == "9"
        assert not c.is_closed(0.2)


def test_http10_keep_alive_request_with_unknown_length_closes_without_chunking(srv):
    with srv.connect() as c:
        c.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.header("transfer-encoding") is None
        assert r.header("content-length") is None
        assert (r.header("connection") or "close").lower() != "keep-alive"
        assert r.body == b"one,two,three"  # read until close
        assert c.eof


def test_http10_response_without_length_is_close_delimited_never_chunked(srv):
    with srv.connect() as c:
        c.send(b"GET /stream HTTP/1.0\r\n\r\n")
        raw = c.read_until_close()
    assert b"chunked" not in raw.lower()
    assert raw.endswith(b"\r\n\r\none,two,three")


def test_connection_close_from_client_is_honoured(srv):
    with srv.connect() as c:
        c.send(get("/a", extra="Connection: close\r\n"))
        r = c.read_response()
        assert r.body == b"hello /a"
        assert r.header("connection") == "close"
        assert c.is_closed()


def test_connection_close_from_app_is_honoured(srv):
    with srv.connect() as c:
        c.send(get("/close"))
        r = c.read_response()
        assert r.header_all("connection") == ["close"]
        assert c.is_closed()


def test_connection_close_token_among_others_is_honoured(srv):
    with srv.connect() as c:
        c.send(get("/a", extra="Connection: foo, CLOSE\r\n"))
        r = c.read_response()
        assert r.header("connection") == "close"
        assert c.is_closed()


# Pipelining --------------------------------------------------------------------
def test_pipelined_requests_are_answered_in_order_with_exact_boundaries(srv):
    reqs = (get("/1")
            + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
            + b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
            + get("/stream")
            + get("/4"))
    with srv.connect() as c:
        c.send(reqs)
        bodies = [c.read_response().body for _ in range(5)]
        assert bodies == [b"hello /1", b"abcde", b"xyz", b"one,two,three", b"hello /4"]
        assert c.buf == b""
        assert not c.is_closed(0.2)  # nothing extra on the wire, still open


def test_pipelined_requests_sent_byte_by_byte_are_answered(srv):
    reqs = get("/a") + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" + get("/b")
    with srv.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(reqs)):
            c.send(reqs[i:i + 1])
        assert [c.read_response().body for _ in range(3)] == [b"hello /a", b"xyz", b"hello /b"]


def test_requests_followed_by_a_half_close_are_still_answered(srv):
    with srv.connect() as c:
        c.send(get("/1") + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_response().body == b"hello /1"
        assert c.read_response().body == b"hi"
        assert c.read_until_close() == b""


def test_many_sequential_requests_on_one_connection(srv):
    with srv.connect() as c:
        for i in range(200):
            c.send(get(f"/{i}"))
            assert c.read_response().body == f"hello /{i}".encode()


def test_requests_pipelined_after_connection_close_are_not_answered(srv):
    with srv.connect() as c:
        c.send(get("/a", extra="Connection: close\r\n") + get("/b"))
        r = c.read_response()
        assert r.body == b"hello /a"
        assert c.read_until_close() == b""


# The C fast lane ---------------------------------------------------------------
def test_plain_requests_are_served_without_taking_a_parser():
    with ServerThread(app, **LIMITS) as fresh, fresh.connect() as c:
        for i in range(3):
            c.send(get(f"/{i}", extra="Accept: */*\r\nCookie: a=1\r\n"))
            assert c.read_response().body == f"hello /{i}".encode()
        # A parser taken by a connection goes back to this free list when it idles.
        assert fresh.server._free_parsers == []


def test_a_request_the_fast_lane_declines_is_parsed_on_the_same_connection(srv):
    with srv.connect() as c:
        c.send(get("/a"))
        assert c.read_response().body == b"hello /a"
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n")
        assert c.read_response().body == b"xyz"
        c.send(get("/b"))
        assert c.read_response().body == b"hello /b"


def test_fast_lane_head_followed_by_a_partial_request_waits_for_the_rest(srv):
    with srv.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(get("/a") + b"GET /b HTTP/1.1\r\nHo")
        assert c.read_response().body == b"hello /a"
        time.sleep(0.05)
        c.send(b"st: x\r\n\r\n")
        assert c.read_response().body == b"hello /b"


def test_fast_lane_leaves_errors_to_the_parser(srv, errlog):
    with srv.connect() as c:
        c.send(get("/a") + b"GET /b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")
        assert c.read_response().body == b"hello /a"
        assert c.read_response().status == 400
    assert "more than one Host header" in error_lines(errlog)


def test_fast_lane_body_arriving_after_the_head_is_read_whole(srv):
    with srv.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab")
        time.sleep(0.05)
        c.send(b"cd")
        time.sleep(0.05)
        c.send(b"ef")
        assert c.read_response().body == b"abcdef"


def test_fast_lane_body_and_pipelined_requests_in_one_segment_keep_their_boundaries(srv):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /"
               + get("/after"))
        assert [c.read_response().body for _ in range(3)] == [b"abc", b"GET /", b"hello /after"]
        assert not c.is_closed(0.1)


def test_fast_lane_body_the_app_leaves_unread_is_drained_before_the_next_request(srv):
    with srv.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nGET /x ")
        assert c.read_response().body == b"ok"
        c.send(b"H" + get("/next"))
        assert c.read_response().body == b"hello /next"


def test_fast_lane_body_cut_short_by_the_client_closes_without_answer(srv):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_close() == b""


# Chunked -----------------------------------------------------------------------
def test_chunked_request_body_is_dechunked_with_extensions_and_trailers(srv):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        assert r.body == b"hello world"
        c.send(get("/after"))
        assert c.read_response().body == b"hello /after"


def test_chunked_response_for_http11_when_length_is_unknown(srv):
    with srv.connect() as c:
        c.send(get("/stream"))
        r = c.read_response()
        assert r.header("transfer-encoding") == "chunked"
        assert r.header("content-length") is None
        assert r.chunked and r.body == b"one,two,three"
        c.send(get("/next"))  # the last chunk ended the message exactly
        assert c.read_response().body == b"hello /next"


def test_empty_app_write_does_not_end_a_chunked_body(srv):
    with srv.connect() as c:
        c.send(get("/stream"))
        raw_expected = b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
        head = c.read_head()
        assert head.header("transfer-encoding") == "chunked"
        while len(c.buf) < len(raw_expected):
            assert c._more()
        assert c.buf == raw_expected


# Expect: 100-continue ------------------------------------------------------------
def test_100_continue_is_sent_when_the_app_reads_the_body(srv):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response(interim=True)
        assert interim.status == 100
        c.send(b"body")
        r = c.read_response()
        assert r.status == 200 and r.body == b"body"


def test_100_continue_is_not_sent_when_the_app_does_not_read_the_body(srv):
    with srv.connect() as c:
        c.send(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response(interim=True)
        assert r.status == 200 and r.body == b"ok"
        assert b"100" not in r.raw_head.split(b"\r\n")[0]
        # The body was never invited: the connection cannot be reused, and
        # the response says so.
        assert r.header("connection") == "close"
        assert c.is_closed()


def test_100_continue_is_never_sent_to_http10(srv):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.0\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        time.sleep(0.1)
        c.send(b"body")
        raw = c.read_until_close()
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert b"100 Continue" not in raw
        assert raw.endswith(b"\r\n\r\nbody")


def test_unknown_expectation_is_417(srv, errlog):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: teapot\r\n\r\nbody")
        r = c.read_response()
        assert r.status == 417
        assert c.is_closed()
    assert "417" in error_lines(errlog)


# HEAD, no-body statuses -------------------------------------------------------------
def _without_date(r):
    return [(k, v) for k, v in r.headers if k.lower() != "date"]


def test_head_response_has_no_body_but_same_headers_as_get(srv):
    with srv.connect() as c:
        c.send(get("/h") + get("/h", method="HEAD") + get("/after"))
        g = c.read_response()
        h = c.read_response("HEAD")
        assert _without_date(h) == _without_date(g)
        assert h.header("content-length") == str(len(g.body))
        assert c.read_response().body == b"hello /after"  # no stray body bytes in between
        assert c.buf == b""


def test_head_of_a_streamed_response_has_no_body(srv):
    with srv.connect() as c:
        c.send(get("/stream", method="HEAD") + get("/after"))
        h = c.read_response("HEAD")
        assert h.status == 200
        assert c.read_response().body == b"hello /after"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_status_sends_no_body(srv, code):
    with srv.connect() as c:
        c.send(get(f"/status/{code}") + get("/after"))
        r = c.read_response()
        assert r.status == code
        assert r.header("transfer-encoding") is None
        assert c.read_response().body == b"hello /after"


def test_204_drops_an_app_content_length(srv):
    with srv.connect() as c:
        c.send(b"GET /status/204?cl HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 204 and r.header("content-length") is None


def test_304_with_empty_body_gets_no_invented_content_length():
    def app(environ, start_response):
        start_response("304 Not Modified", [("ETag", '"x"')])
        return []

    with ServerThread(app) as s, s.connect() as c:
        c.send(get("/") + get("/"))
        for _ in range(2):
            r = c.read_response()
            assert r.status == 304 and r.header("content-length") is None


def test_head_answered_with_an_empty_body_gets_no_content_length_zero():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"full body"]

    with ServerThread(app) as s, s.connect() as c:
        c.send(get("/", method="HEAD") + get("/"))
        assert c.read_response("HEAD").header("content-length") is None
        assert c.read_response().body == b"full body"


def test_1xx_final_status_sends_no_body_and_closes(srv):
    with srv.connect() as c:
        c.send(get("/status/103"))
        r = c.read_response(interim=True)
        assert r.status == 103
        assert c.read_until_close() == b""


# Date, Server, sends, TCP_NODELAY ------------------------------------------------------
def test_date_and_server_headers_are_present(srv):
    r = srv.request(get("/"))
    assert r.header("server") == "lichen"
    date = r.header("date")
    assert date.endswith(" GMT")
    parsed = email.utils.parsedate_to_datetime(date)
    assert abs(parsed.timestamp() - time.time()) < 5


def test_server_header_can_be_turned_off():
    with ServerThread(app, server_header=None) as s:
        r = s.request(get("/"))
        assert r.header("server") is None and r.header("date") is not None


@pytest.fixture
def sends(monkeypatch):
    """Every Exchange.sendall payload, in order."""
    calls: list[bytes] = []
    orig = wsgi_exchange.Exchange.sendall

    def sendall(self, data):
        calls.append(bytes(data))
        return orig(self, data)

    monkeypatch.setattr(wsgi_exchange.Exchange, "sendall", sendall)
    return calls


def test_head_and_whole_list_body_leave_in_one_send(srv, sends):
    r = srv.request(get("/one"))
    assert r.body == b"hello /one"
    assert len(sends) == 1 and sends[0].endswith(b"\r\n\r\nhello /one")


def test_head_and_start_of_streamed_body_leave_in_one_send(srv, sends):
    r = srv.request(get("/stream"))
    assert r.body == b"one,two,three"
    assert sends[0].endswith(b"\r\n\r\n4\r\none,\r\n")


def test_accepted_tcp_sockets_have_tcp_nodelay(srv):
    with srv.connect() as c:
        c.send(get("/"))
        c.read_response()

        def nodelay():
            return [conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in srv.server.connections]
        values = srv.call(nodelay)
        assert values and all(values)


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
def test_invalid_request_is_rejected_with_status_close_and_log_line(srv, errlog, data, status):
    with srv.connect() as c:
        c.send(data)
        r = c.read_response()
        assert r.status == status, r
        assert r.header("connection") == "close"
        assert r.header("server") == "lichen" and r.header("date")
        assert r.body  # a short text explanation
        assert c.read_until_close() == b""
    assert f"({status})" in error_lines(errlog)


def test_http12_request_is_answered_as_http11(srv):
    with srv.connect() as c:
        c.send(b"GET /v HTTP/1.2\r\nHost: a\r\n\r\n")
        r = c.read_response()
        assert r.version == "HTTP/1.1" and r.status == 200 and r.body == b"hello /v"
        c.send(get("/again"))  # kept alive like 1.1
        assert c.read_response().body == b"hello /again"


def test_identical_content_length_list_is_accepted_or_rejected_consistently(srv):
    # RFC 9110 8.6 allows accepting "5, 5" as 5; lichen rejects it (400).
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc")
        r = c.read_response()
        assert r.status in (200, 400)
        if r.status == 200:
            assert r.body == b"abc"


def test_absolute_form_authority_replaces_host(srv):
    r = srv.request(b"GET http://real.example:8080/host?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert r.status == 200 and r.body == b"real.example:8080"


def test_error_after_a_good_pipelined_request_answers_the_good_one_first(srv):
    with srv.connect() as c:
        c.send(get("/good") + b"GET / HTTP/1.1\r\n\r\n")
        assert c.read_response().body == b"hello /good"
        assert c.read_response().status == 400
        assert c.read_until_close() == b""


# Limits -------------------------------------------------------------------------
def test_request_line_too_long_is_414(srv, errlog):
    r = srv.request(get("/" + "a" * 1100))
    assert r.status == 414
    assert "(414)" in error_lines(errlog)


def test_header_section_too_large_is_431(srv, errlog):
    headers = "".join(f"X-H{i}: {'v' * 400}\r\n" for i in range(12))
    r = srv.request(get("/", extra=headers))
    assert r.status == 431
    assert "(431)" in error_lines(errlog)


def test_one_huge_header_field_is_431(srv, errlog):
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 20000)
        r = c.read_response()
        assert r.status == 431
    assert "(431)" in error_lines(errlog)


def test_too_many_header_fields_is_431(srv, errlog):
    headers = "".join(f"X-H{i}: v\r\n" for i in range(25))
    r = srv.request(get("/", extra=headers))
    assert r.status == 431
    assert "(431)" in error_lines(errlog)


def test_many_tiny_fields_are_431_at_once_without_waiting_for_the_head_to_end(srv, errlog):
    # The count is checked as fields arrive: no waiting for the header
    # timeout while holding what the fields cost.
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"aa:\r\n" * 30)
        r = c.read_response()
        assert r.status == 431
        assert c.read_until_close() == b""
    assert "(431)" in error_lines(errlog)


def test_transfer_encoding_with_ows_and_empty_elements_is_read_as_chunked(srv):
    for te in (b"chunked \t", b",chunked,"):
        with srv.connect() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
                   b"5 ; a = b\r\nhello\r\n0\r\n\r\n")
            r = c.read_response()
            assert (r.status, r.body) == (200, b"hello"), te


def test_trailers_never_reach_the_environ():
    seen = {}

    def app(environ, start_response):
        environ["wsgi.input"].read()
        seen.update(environ)
        start_response("200 OK", [("Content-Length", "0")])
        return []

    with ServerThread(app) as s:
        r = s.request(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"1\r\nx\r\n0\r\nX-Checksum: abc\r\n\r\n")
    assert r.status == 200
    assert "HTTP_X_CHECKSUM" not in seen


def test_a_proxy_header_never_reaches_the_environ_as_http_proxy():
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("HTTP_PROXY"))
        start_response("200 OK", [("Content-Length", "0")])
        return []

    with ServerThread(app) as s:
        # One plain head (the C fast lane) and one chunked (the parser).
        s.request(b"GET / HTTP/1.1\r\nHost: a\r\nProxy: http://attacker.example:3128\r\n\r\n")
        s.request(b"POST / HTTP/1.1\r\nHost: a\r\nProxy: http://attacker.example:3128\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert seen == [None, None]


def test_declared_body_over_max_body_is_413(srv, errlog):
    r = srv.request(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10001\r\n\r\n")
    assert r.status == 413
    assert "(413)" in error_lines(errlog)


def test_chunked_body_over_max_body_is_413(srv, errlog):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            c.send(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        r = c.read_response()
        assert r.status == 413
        assert r.header("connection") == "close"
    assert "(413)" in error_lines(errlog)


def test_body_at_max_body_is_accepted(srv):
    r = srv.request(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10000\r\n\r\n" + b"y" * 10000)
    assert r.status == 200 and r.body == b"y" * 10000


def test_leading_empty_lines_before_a_request_are_ignored(srv):
    r = srv.request(b"\r\n\r\n" + get("/x"))
    assert r.status == 200 and r.body == b"hello /x"


def test_client_closing_mid_request_is_not_logged_as_error(srv, errlog):
    c = Client.connect(srv.address)
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
    c.close()
    time.sleep(0.1)
    assert not [r for r in errlog.records if r.name == "lichen.error" and r.levelno >= logging.WARNING]
