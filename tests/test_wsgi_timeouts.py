# Timeouts of WSGIServer in real time, one of each kind end to end: the
# header deadline (slowloris guard), the body idle timeout, the keep-alive
# idle timeout (the stream server's sweep, for a connection that has served a
# request and for one that never sends, and TCP_DEFER_ACCEPT) and the write
# timeout for clients that stop reading, which a slow but steady reader
# never trips (lichen.socket's progress-reset send). How the driver keeps
# its deadlines is tested on a fake clock in test_wsgi_driver.py.
# Strategy: each test runs a server with small timeout settings and measures
# with a blocking client how long the server keeps the connection.
from __future__ import annotations

import logging
import select
import socket
import threading
import time

from wsgi_helpers import ServerThread, echo_app, get, hello_app, wait_until


def test_slowloris_dribbling_headers_gets_408_and_close_at_the_header_deadline(caplog):
    caplog.set_level(logging.INFO, logger="lichen.error")
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"x" * 200
    with ServerThread(hello_app, header_timeout=0.5) as srv, srv.connect() as c:
        start = time.monotonic()
        got = b""
        for i in range(len(data)):
            try:
                c.send(data[i:i + 1])
            except OSError:
                break
            readable, _, _ = select.select([c.sock], [], [], 0.1)
            if readable:
                got = c.read_until_close()
                break
        elapsed = time.monotonic() - start
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert b"Connection: close" in got
        assert 0.4 <= elapsed < 1.0, elapsed
    assert any("408" in r.getMessage() for r in caplog.records if r.name == "lichen.error")


def test_stalled_request_body_is_cut_after_the_body_timeout():
    with ServerThread(echo_app, body_timeout=0.3) as srv, srv.connect() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        start = time.monotonic()
        assert c.read_until_close() == b""
        assert 0.25 <= time.monotonic() - start < 1.0
        wait_until(lambda: srv.call(lambda: len(srv.server.connections)) == 0)


def test_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout():
    with ServerThread(hello_app, keepalive_timeout=0.3) as srv, srv.connect() as c:
        c.send(get("/"))
        c.read_response()
        start = time.monotonic()
        assert c.is_closed(timeout=2.0)
        assert 0.25 <= time.monotonic() - start < 0.8


def test_connection_that_never_sends_is_closed_after_the_keepalive_timeout():
    # Without TCP_DEFER_ACCEPT: with it the kernel holds such a connection
    # and the server never sees it (the next test).
    with ServerThread(hello_app, keepalive_timeout=0.3, defer_accept=False) as srv, srv.connect() as c:
        start = time.monotonic()
        assert c.is_closed(timeout=2.0)
        assert 0.25 <= time.monotonic() - start < 0.8


def test_with_defer_accept_a_connection_is_accepted_when_its_first_bytes_arrive():
    with ServerThread(hello_app, defer_accept=True) as srv, srv.connect() as c:
        time.sleep(0.3)
        held_before = srv.call(lambda: len(srv.server.connections))
        c.send(get("/"))
        assert c.read_response().status == 200
    assert held_before == 0


def _big_app(closed: threading.Event, total: int = 64 << 20):
    chunk = b"x" * (1 << 20)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(total))])

        class Body:
            def __iter__(self):
                for _ in range(total // len(chunk)):
                    yield chunk

            def close(self):
                closed.set()
        return Body()
    return app


def test_client_that_stops_reading_is_cut_after_the_write_timeout(caplog):
    closed = threading.Event()
    with ServerThread(_big_app(closed), write_timeout=0.3) as srv:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(5)
        s.connect(srv.address)
        try:
            s.sendall(get("/"))
            start = time.monotonic()
            assert closed.wait(5), "the app iterable was not closed"
            assert time.monotonic() - start < 3
            wait_until(lambda: srv.call(lambda: len(srv.server.connections)) == 0)
        finally:
            s.close()
    assert not [r for r in caplog.records if r.name == "lichen.error" and r.levelno >= logging.ERROR]


def test_slow_but_steady_reader_of_one_large_write_is_not_cut_by_the_write_timeout():
    body = b"y" * (24 << 20)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]  # a single write far bigger than the socket buffers

    with ServerThread(app, write_timeout=0.4) as srv:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(5)
        s.connect(srv.address)
        try:
            s.sendall(get("/"))
            buf = bytearray()
            start = time.monotonic()
            expected = None
            while expected is None or len(buf) < expected:
                data = s.recv(1 << 20)
                if not data:
                    break
                buf += data
                if expected is None and b"\r\n\r\n" in buf:
                    expected = buf.index(b"\r\n\r\n") + 4 + len(body)
                if time.monotonic() - start < 1.2:
                    time.sleep(0.02)  # reading, but slower than the server writes
            assert time.monotonic() - start > 0.5  # the send did outlast the write timeout
        finally:
            s.close()
        assert expected is not None and len(buf) == expected, "connection was cut before the whole body arrived"
