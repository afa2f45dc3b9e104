# HTTP/1.1 behaviour of WSGIServer end to end, through the real server on a
# socket: keep-alive, pipelining, the fast lane handing a request to the
# parser on one connection, 100-continue answered before the client sends
# the body, TCP_NODELAY, one strictness case and one size limit. Every other
# HTTP behaviour of the driver is tested over the fake transport, in
# test_wsgi_driver_http.py.
# Strategy: one server per module (limits set small) in a background thread
# with its own hub; each test talks to it with blocking stdlib sockets.
from __future__ import annotations

import socket

import pytest

from wsgi_helpers import LIMITS, ServerThread, errlog, error_lines, get, http_app  # noqa: F401 (errlog: a fixture)


@pytest.fixture(scope="module")
def srv():
    with ServerThread(http_app, **LIMITS) as s:
        yield s


def test_http11_connection_is_kept_alive_by_default(srv):
    with srv.connect() as c:
        for i in range(3):
            c.send(get(f"/{i}"))
            r = c.read_response()
            assert r.body == f"hello /{i}".encode()
            assert r.header("connection") is None
        assert not c.is_closed(0.2)


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


def test_a_request_the_fast_lane_declines_is_parsed_on_the_same_connection(srv):
    with srv.connect() as c:
        c.send(get("/a"))
        assert c.read_response().body == b"hello /a"
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n")
        assert c.read_response().body == b"xyz"
        c.send(get("/b"))
        assert c.read_response().body == b"hello /b"


def test_100_continue_is_sent_when_the_app_reads_the_body(srv):
    with srv.connect() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = c.read_response(interim=True)
        assert interim.status == 100
        c.send(b"body")
        r = c.read_response()
        assert r.status == 200 and r.body == b"body"


def test_accepted_tcp_sockets_have_tcp_nodelay(srv):
    with srv.connect() as c:
        c.send(get("/"))
        c.read_response()

        def nodelay():
            return [conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in srv.server.connections]
        values = srv.call(nodelay)
        assert values and all(values)


def test_an_invalid_request_is_rejected_with_its_status_and_close(srv, errlog):
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert r.header("connection") == "close"
        assert r.header("server") == "lichen" and r.header("date")
        assert r.body  # a short text explanation
        assert c.read_until_close() == b""
    assert "(400)" in error_lines(errlog)


def test_one_huge_header_field_is_431(srv, errlog):
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 20000)
        r = c.read_response()
        assert r.status == 431
    assert "(431)" in error_lines(errlog)
