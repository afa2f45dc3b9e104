# The HTTP driver's behaviours, with no socket: each test is a function call
# over a scripted fake connection (fake_transport.py), so it runs in
# microseconds and says exactly what the server sent and whether it parked
# or closed the connection; the deadlines (header, body) run on the
# harness's clock, which moves only when the script says the client is
# silent. The HTTP and application families are in test_wsgi_driver_http.py
# and test_wsgi_driver_app.py, the environ in test_wsgi_driver_environ.py.
# End-to-end tests through real sockets live in test_wsgi_http.py and its
# siblings (test_wsgi_timeouts.py for the timeouts in real time), a few per
# family.
from __future__ import annotations

import pytest

from fake_transport import PAUSE, RESET, Silent, harness, parse, status_of
from wsgi_helpers import echo_app, errlog, error_lines, get, hello_app  # noqa: F401 (errlog: a fixture)


@pytest.fixture
def hello():
    h = harness(hello_app)
    yield h
    h.close()


def test_a_request_is_answered_and_the_connection_parks(hello):
    out = hello.serve(get("/a"))
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"hello /a")
    assert hello.parked


def test_keep_alive_serves_the_next_request_when_the_client_speaks_again(hello):
    hello.serve(get("/one"))
    out = hello.serve(get("/two"))
    assert out.endswith(b"hello /two") and hello.parked


def test_pipelined_requests_are_answered_in_order(hello):
    out = hello.serve(get("/1") + get("/2") + get("/3"))
    assert [o.rsplit(b"\r\n\r\n", 1)[-1] for o in out.split(b"HTTP/1.1 ")[1:]] == [b"hello /1", b"hello /2",
                                                                                   b"hello /3"]


def test_a_request_split_across_reads_is_answered(hello):
    data = get("/split")
    out = hello.serve(data[:5], data[5:17], data[17:])
    assert out.endswith(b"hello /split")


def test_connection_close_closes_after_the_response(hello):
    out = hello.serve(get("/", extra="Connection: close\r\n"))
    assert b"Connection: close\r\n" in out and out.endswith(b"hello /") and hello.closed


def test_a_client_that_closes_is_closed_without_answer(hello):
    assert hello.serve(b"") == b"" and hello.closed


def test_a_reset_between_requests_closes_quietly(hello):
    assert hello.serve(RESET) == b"" and hello.closed


def test_a_head_not_complete_by_the_deadline_is_408(hello):
    out = hello.serve(b"GET / HTTP/1.1\r\nHost: a\r\n", PAUSE)
    assert status_of(out) == 408 and hello.closed


def test_a_bad_request_is_answered_with_its_status_then_closed_lingering(hello):
    out = hello.serve(b"GET / HTTP/1.1\r\n\r\n")
    assert status_of(out) == 400 and b"missing Host" in out
    assert hello.closed and hello.sock.lingered


def test_a_chunked_body_is_read_through_the_parser():
    h = harness(echo_app)
    out = h.serve(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert out.endswith(b"hello") and h.parked
    h.close()


def test_a_content_length_body_arriving_later_is_read_by_the_fast_lane():
    h = harness(echo_app)
    out = h.serve(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", b"hel", b"lo")
    assert out.endswith(b"hello")
    h.close()


EXPECTING = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"


def test_expect_continue_is_answered_100_when_the_app_reads_the_body():
    h = harness(echo_app)
    out = h.serve(EXPECTING, b"hi")
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ") and out.endswith(b"hi")
    h.close()


def test_expect_continue_is_not_answered_100_when_the_app_does_not_read(hello):
    out = hello.serve(EXPECTING)
    assert out.startswith(b"HTTP/1.1 200 ") and b"100 Continue" not in out
    assert b"Connection: close\r\n" in out and hello.closed  # the body would never be read


def test_empty_lines_alone_leave_the_idle_clock_running(hello):
    hello.serve(get("/"))
    since = hello.server.idle[hello.channel]
    hello.serve(b"\r\n\r\n")
    assert hello.parked and hello.server.idle[hello.channel] == since


def test_a_request_restarts_the_idle_clock(hello):
    hello.serve(get("/"))
    long_ago = hello.server.idle[hello.channel] - 100
    hello.server.idle[hello.channel] = long_ago
    hello.serve(b"\r\n" + get("/b"))
    assert hello.parked and hello.server.idle[hello.channel] > long_ago


def test_a_parked_connection_keeps_no_parser(hello):
    hello.serve(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert hello.parked
    assert len(hello.server._free_parsers) == 1  # the parser went back to the server's free list


def test_an_app_error_is_500_and_logged(caplog):
    def boom(environ, start_response):
        raise RuntimeError("kaboom")

    h = harness(boom)
    out = h.serve(get("/"))
    assert status_of(out) == 500
    assert any("kaboom" in (r.exc_text or "") or "kaboom" in str(r.exc_info) for r in caplog.records)
    h.close()


# Deadlines ------------------------------------------------------------------------
def test_a_head_dribbled_past_the_header_timeout_is_408_at_the_deadline_with_a_log_line(errlog):
    # The deadline counts from the head's first byte: bytes that keep coming
    # do not move it (the slowloris guard).
    h = harness(hello_app, header_timeout=0.5)
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"x" * 200
    start = h.clock()
    out = h.serve(*(p for i in range(len(data)) for p in (data[i:i + 1], Silent(0.01))))
    [r] = parse(out)
    assert r.status == 408 and r.header("connection") == "close" and h.closed
    assert h.clock() - start == pytest.approx(0.5)
    assert "(408)" in error_lines(errlog)


def test_the_header_deadline_starts_at_the_first_byte_not_at_connect():
    h = harness(hello_app, header_timeout=0.3)
    out = h.serve(Silent(0.5), b"GET /late HTTP/1.1\r\n", Silent(0.2), b"Host: a\r\n\r\n")
    assert out.endswith(b"hello /late")


def test_the_header_deadline_restarts_for_each_keep_alive_request():
    h = harness(hello_app, header_timeout=0.4)
    for i in range(3):  # parked between requests
        out = h.serve(b"GET /%d HTTP/1.1\r\n" % i, Silent(0.3), b"Host: a\r\n\r\n", Silent(0.3))
        assert status_of(out) == 200 and h.parked
    # Not parked between requests: the next head starts in the read that ends this one.
    heads = [b"GET /%d HTTP/1.1\r\n" % i for i in range(4)]
    out = h.serve(heads[0], *(p for head in heads[1:] for p in (Silent(0.3), b"Host: a\r\n\r\n" + head)),
                  Silent(0.3), b"Host: a\r\n\r\n")
    assert [r.status for r in parse(out)] == [200] * 4


CL_BODY = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"  # read by the fast lane
CHUNKED_BODY = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"  # by the parser
BODY_LANES = pytest.mark.parametrize("head,piece", [(CL_BODY, b"%c"), (CHUNKED_BODY, b"1\r\n%c\r\n")],
                                     ids=["content_length", "chunked"])


@BODY_LANES
def test_a_body_that_stalls_is_cut_at_the_body_timeout(head, piece):
    h = harness(echo_app, body_timeout=0.3)
    start = h.clock()
    out = h.serve(head + piece % b"h", PAUSE)
    assert out == b"" and h.closed  # nobody left to answer
    assert h.clock() - start == pytest.approx(0.3)
    assert not h.server.connections


@BODY_LANES
def test_a_slow_but_steady_body_is_not_cut_by_the_body_timeout(head, piece):
    h = harness(echo_app, body_timeout=0.3)
    steady = [p for b in b"abcde" for p in (Silent(0.25), piece % b)]
    tail = [Silent(0.25), b"0\r\n\r\n"] if head is CHUNKED_BODY else []
    out = h.serve(head, *steady, *tail)
    assert out.endswith(b"abcde") and h.parked
