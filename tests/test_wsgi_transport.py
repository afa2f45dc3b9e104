# What comes below HTTP on a connection, tried as an attacker would: the PROXY
# protocol header read once whatever the packet boundaries, TLS deadlines that
# a trickling client cannot stretch, stop() and lingering close with TLS
# connections, the idle clock that empty lines do not reset, and pipelined
# requests parsed without a copy per request.
# Strategy: a real server in a thread (wsgi_helpers.ServerThread) and raw
# client sockets; TLS records are made with ssl.MemoryBIO so a test can send
# one record byte by byte.
from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from helpers import make_self_signed_cert
from lichen.proxy import PROXY_V2_SIGNATURE
from wsgi_helpers import Client, ServerThread, get, hello_app


def addr_app(environ, start_response):
    body = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


PROXY_V1 = b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_self_signed_cert(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def client_ctx(cert):
    return ssl.create_default_context(cafile=cert[0])


@pytest.fixture(scope="module")
def server_ctx(cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` within `seconds` (what it sends
    before closing is read and dropped)."""
    sock.settimeout(0.1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError):
            return True
    return False


# PROXY protocol: one header per connection, whatever the packet boundaries ----------
def test_proxy_header_in_its_own_packet_then_the_request_after_a_pause():
    with ServerThread(addr_app, proxy_protocol=True) as srv, srv.connect() as c:
        c.send(PROXY_V1)
        time.sleep(0.2)  # the connection parks between the two
        c.send(get("/"))
        r = c.read_response()
        assert (r.status, r.body) == (200, b"203.0.113.9 http")
        c.send(get("/again"))  # and stays the proxied client's connection
        assert c.read_response().body == b"203.0.113.9 http"


def test_proxy_header_and_request_sent_byte_by_byte():
    with ServerThread(addr_app, proxy_protocol=True) as srv, srv.connect() as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in PROXY_V1 + get("/"):
            c.send(bytes([b]))
            time.sleep(0.001)
        assert c.read_response().body == b"203.0.113.9 http"


def test_proxy_v2_header_in_its_own_packet_then_the_request():
    import ipaddress
    import struct

    body = ipaddress.IPv4Address("198.51.100.7").packed + ipaddress.IPv4Address("127.0.0.1").packed
    header = PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 12) + body + struct.pack("!HH", 4711, 80)
    with ServerThread(addr_app, proxy_protocol=True) as srv, srv.connect() as c:
        c.send(header[:10])
        time.sleep(0.1)
        c.send(header[10:])
        time.sleep(0.1)
        c.send(get("/"))
        assert c.read_response().body == b"198.51.100.7 http"


def test_a_second_proxy_header_is_a_request_line_not_a_new_client_address():
    # Even with every peer allowed to send one, only the first bytes of a
    # connection can be a PROXY header: a client cannot pick its address.
    seen = []

    def app(environ, start_response):
        seen.append(environ["REMOTE_ADDR"])
        return addr_app(environ, start_response)

    with ServerThread(app, proxy_protocol=True, proxy_allow_ips="*") as srv, srv.connect() as c:
        c.send(PROXY_V1)
        time.sleep(0.2)
        c.send(b"PROXY TCP4 6.6.6.6 127.0.0.1 1 80\r\n" + get("/"))
        r = c.read_response()
        assert r.status == 400
    assert "6.6.6.6" not in seen


def test_proxy_header_comes_before_the_tls_handshake(server_ctx, client_ctx):
    with ServerThread(addr_app, proxy_protocol=True, ssl_context=server_ctx) as srv:
        raw = socket.create_connection(srv.address, timeout=5)
        raw.sendall(PROXY_V1)
        time.sleep(0.1)
        with Client(client_ctx.wrap_socket(raw, server_hostname="localhost")) as c:
            c.send(get("/"))
            assert c.read_response().body == b"203.0.113.9 https"


def test_proxy_header_glued_to_the_tls_hello(server_ctx, client_ctx):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ctx.wrap_bio(inc, out, server_hostname="localhost")
    with ServerThread(addr_app, proxy_protocol=True, ssl_context=server_ctx) as srv, \
            socket.create_connection(srv.address, timeout=5) as raw:
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        raw.sendall(PROXY_V1 + out.read())  # one segment: header and hello
        _finish_handshake(raw, tls, inc, out)
        tls.write(get("/"))
        raw.sendall(out.read())
        assert b"203.0.113.9 https" in _read_tls_until(raw, tls, inc, b"https")


def test_proxy_header_must_be_complete_within_the_header_timeout():
    with ServerThread(addr_app, proxy_protocol=True, header_timeout=0.5) as srv, srv.connect() as c:
        c.send(PROXY_V1[:10])
        start = time.monotonic()
        assert closed_within(c.sock, 3)
        assert time.monotonic() - start < 1.5


# TLS deadlines: totals from accept / first byte, not per wait ------------------------
def _finish_handshake(raw, tls, inc, out):
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                raw.sendall(data)
            inc.write(raw.recv(65536))
    raw.sendall(out.read())


def _read_tls_until(raw, tls, inc, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        try:
            got += tls.read(65536)
        except ssl.SSLWantReadError:
            data = raw.recv(65536)
            if not data:
                break
            inc.write(data)
    return got


def _trickle(raw: socket.socket, data: bytes, every: float, limit: float) -> float | None:
    """Send `data` one byte every `every` seconds; the time from the first
    byte until the server closed the connection, or None if it was still
    open after `limit` seconds (or all was sent)."""
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw.settimeout(every)
    start = time.monotonic()
    for b in data:
        if time.monotonic() - start > limit:
            return None
        try:
            raw.sendall(bytes([b]))
        except OSError:
            return time.monotonic() - start
        try:
            while True:
                if not raw.recv(65536):
                    return time.monotonic() - start
        except socket.timeout:
            pass
        except OSError:
            return time.monotonic() - start
    return None


def test_tls_handshake_trickled_byte_by_byte_is_cut_at_the_header_timeout(server_ctx, client_ctx):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = out.read()
    with ServerThread(hello_app, ssl_context=server_ctx, header_timeout=1.0) as srv, \
            socket.create_connection(srv.address, timeout=5) as raw:
        took = _trickle(raw, hello, every=0.25, limit=4.0)
    assert took is not None and took < 2.0, took


def test_tls_request_record_trickled_byte_by_byte_is_cut_at_the_header_timeout(server_ctx, client_ctx):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ctx.wrap_bio(inc, out, server_hostname="localhost")
    with ServerThread(hello_app, ssl_context=server_ctx, header_timeout=1.0) as srv, \
            socket.create_connection(srv.address, timeout=5) as raw:
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        raw.sendall(out.read())
        _finish_handshake(raw, tls, inc, out)
        time.sleep(0.2)  # the server reads the handshake's end and parks
        tls.write(b"G")  # the first byte of the head starts its deadline
        raw.sendall(out.read())
        time.sleep(0.1)
        tls.write(b"ET / HTTP/1.1\r\nHost: a\r\n\r\n")
        took = _trickle(raw, out.read(), every=0.25, limit=4.0)  # one record, byte by byte
    assert took is not None and took < 2.0, took


def test_stop_with_an_idle_tls_keep_alive_connection(server_ctx, client_ctx):
    srv = ServerThread(hello_app, ssl_context=server_ctx).start()
    raw = socket.create_connection(srv.address, timeout=5)
    with Client(client_ctx.wrap_socket(raw, server_hostname="localhost")) as c:
        c.send(get("/"))
        assert c.read_response().status == 200
        time.sleep(0.1)  # parked, idle
        srv.stop(timeout=2)  # raises what the server thread raised
        assert c.read_until_close() == b""


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_an_error_answer_is_followed_by_a_lingering_close(server_ctx, client_ctx, tls):
    # The server answers 413 at once and closes; closing with the client's
    # bytes unread would reset the connection, which can destroy the answer
    # before the client reads it. So it half-closes and reads what still
    # comes for a moment: the client can finish sending, over TLS too.
    with ServerThread(hello_app, max_body=1000, ssl_context=server_ctx if tls else None) as srv:
        raw = socket.create_connection(srv.address, timeout=5)
        sock = client_ctx.wrap_socket(raw, server_hostname="localhost") if tls else raw
        with Client(sock) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4000000\r\n\r\n")
            stop = threading.Event()
            errors: list[BaseException] = []

            def send_body() -> None:
                try:
                    while not stop.is_set():
                        sock.sendall(b"x" * 4096)
                        time.sleep(0.005)
                except OSError as e:
                    errors.append(e)

            sender = threading.Thread(target=send_body, daemon=True)
            sender.start()
            r = c.read_response()
            time.sleep(0.5)  # still sending after the answer
            stop.set()
            sender.join(5)
            assert r.status == 413
            assert errors == []


# The idle clock -------------------------------------------------------------------
def test_empty_lines_do_not_keep_an_idle_connection_alive():
    with ServerThread(hello_app, keepalive_timeout=1.0) as srv, srv.connect() as c:
        c.send(get("/"))
        assert c.read_response().status == 200
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 4:
            try:
                c.send(b"\r\n")
            except OSError:
                closed = True
                break
            if closed_within(c.sock, 0.4):
                closed = True
                break
        assert closed
        assert time.monotonic() - start < 2.5


def test_empty_lines_before_a_request_are_still_ignored():
    with ServerThread(hello_app, keepalive_timeout=5.0) as srv, srv.connect() as c:
        c.send(b"\r\n")
        time.sleep(0.1)
        c.send(b"\r\n" + get("/"))
        assert c.read_response().status == 200


# Pipelining ---------------------------------------------------------------------------
def test_pipelined_requests_in_one_read_are_parsed_from_one_copy():
    # The rest of a batch is copied out of the shared buffer once and walked
    # by offset: a copy per request made a 64 KiB batch quadratic.
    with ServerThread(hello_app) as srv:
        bases = []

        def install() -> None:
            fast = srv.server.fast_parse

            def recording(data):
                bases.append(id(data.obj) if isinstance(data, memoryview) else id(data))
                return fast(data)

            srv.server.fast_parse = recording

        srv.call(install)
        batch = get("/") * 200
        with srv.connect() as c:
            c.send(batch)
            for _ in range(200):
                assert c.read_response().status == 200
        assert len(bases) == 200
        assert len(set(bases)) <= 3, len(set(bases))
