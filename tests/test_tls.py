# Spec tests for lichen.tls: TLS over the cooperative socket with a
# self-signed certificate made per session. Server sides wrap accepted
# connections with an SSLContext; clients trust the certificate via cafile.
from __future__ import annotations

import gc
import io
import os
import socket as stdlib_socket
import ssl
import time

import pytest

from helpers import Ticker, describe_fds, hub_hygiene, make_self_signed_cert, open_fds  # noqa: F401
from lichen import socket as ls
from lichen import tls
from lichen.hub import joinall, sleep, spawn


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_self_signed_cert(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def server_ctx(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return ctx


@pytest.fixture
def client_ctx(cert):
    return ssl.create_default_context(cafile=cert[0])


@pytest.fixture
def listener():
    server = ls.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def tls_pair(listener, server_ctx, client_ctx, server_delay: float = 0.0):
    """(client, server) TLS sockets over a fresh loopback connection; the
    server side accepts, optionally dawdles, then wraps and handshakes."""

    def serve():
        conn, _ = listener.accept()
        if server_delay:
            sleep(server_delay)
        return tls.wrap_socket(conn, server_ctx, server_side=True)

    srv = spawn(serve)
    plain = ls.create_connection(listener.getsockname())
    client = tls.wrap_socket(plain, client_ctx, server_hostname="localhost")
    return client, srv.get(timeout=5)


def recv_exactly(sock, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(65536, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_round_trip_over_tls_with_a_self_signed_certificate(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    try:
        assert isinstance(client, tls.SSLSocket) and isinstance(server, tls.SSLSocket)
        assert client.version() is not None and client.version().startswith("TLS")
        assert client.getpeercert()["subject"] == ((("commonName", "localhost"),),)
        assert server.server_side and not client.server_side
        client.sendall(b"hello over tls")
        assert server.recv(100) == b"hello over tls"
        server.sendall(b"hello back")
        assert client.recv(100) == b"hello back"
    finally:
        client.close()
        server.close()


def test_a_client_that_does_not_trust_the_certificate_fails_the_handshake(listener, server_ctx):
    untrusting = ssl.create_default_context()  # system CAs only

    def serve():
        conn, _ = listener.accept()
        try:
            tls.wrap_socket(conn, server_ctx, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    srv = spawn(serve)
    plain = ls.create_connection(listener.getsockname())
    with pytest.raises(ssl.SSLCertVerificationError):
        tls.wrap_socket(plain, untrusting, server_hostname="localhost")
    srv.join(2)


def test_the_handshake_runs_without_blocking_the_hub(listener, server_ctx, client_ctx):
    with Ticker(0.01) as ticker:
        before = ticker.count
        t0 = time.monotonic()
        # The server answers the ClientHello only after 0.2 s.
        client, server = tls_pair(listener, server_ctx, client_ctx, server_delay=0.2)
        took = time.monotonic() - t0
        ticks = ticker.count - before
    try:
        assert took >= 0.18
        assert ticks >= 8  # ~20 expected: the ticker kept running during the handshake
    finally:
        client.close()
        server.close()


def test_a_deferred_handshake_runs_on_first_use(listener, server_ctx, client_ctx):
    def serve():
        conn, _ = listener.accept()
        s = tls.wrap_socket(conn, server_ctx, server_side=True)
        s.sendall(s.recv(100).upper())
        return s

    srv = spawn(serve)
    plain = ls.create_connection(listener.getsockname())
    client = tls.wrap_socket(plain, client_ctx, server_hostname="localhost", do_handshake_on_connect=False)
    try:
        assert client.version() is None  # no handshake yet
        client.sendall(b"lazy")
        assert client.recv(100) == b"LAZY"
        assert client.version() is not None
    finally:
        client.close()
        srv.get(timeout=2).close()


def test_one_megabyte_each_way_at_the_same_time(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    up = os.urandom(1 << 20)
    down = os.urandom(1 << 20)
    try:
        t0 = time.monotonic()
        gs = [
            spawn(client.sendall, up),
            spawn(recv_exactly, server, len(up)),
            spawn(server.sendall, down),
            spawn(recv_exactly, client, len(down)),
        ]
        assert len(joinall(gs, timeout=10)) == 4
        assert all(g.successful() for g in gs), [g.exception for g in gs]
        assert gs[1].value == up
        assert gs[3].value == down
        assert time.monotonic() - t0 < 5
    finally:
        client.close()
        server.close()


def test_wrap_socket_keeps_the_plain_sockets_timeout(listener, server_ctx, client_ctx):
    def serve():
        conn, _ = listener.accept()
        return tls.wrap_socket(conn, server_ctx, server_side=True)

    srv = spawn(serve)
    plain = ls.create_connection(listener.getsockname(), timeout=0.5)
    client = tls.wrap_socket(plain, client_ctx, server_hostname="localhost")
    server = srv.get(timeout=2)
    try:
        assert client.gettimeout() == 0.5
        client.settimeout(0.05)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            client.recv(10)
        assert time.monotonic() - t0 < 0.5
    finally:
        client.close()
        server.close()


def test_unwrap_returns_a_plain_socket_that_still_works(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    client.sendall(b"encrypted")
    assert server.recv(100) == b"encrypted"
    # Both sides shut TLS down at once (each waits for the other's close_notify).
    cu = spawn(client.unwrap)
    su = spawn(server.unwrap)
    assert len(joinall([cu, su], timeout=5)) == 2
    plain_client, plain_server = cu.get(), su.get()
    try:
        assert type(plain_client) is ls.socket and type(plain_server) is ls.socket
        assert client.closed and server.closed
        plain_client.sendall(b"plain text now")
        assert plain_server.recv(100) == b"plain text now"
        plain_server.sendall(b"and back")
        assert plain_client.recv(100) == b"and back"
    finally:
        plain_client.close()
        plain_server.close()


def test_sendfile_over_tls_falls_back_to_read_and_send_and_delivers_exact_bytes(
        listener, server_ctx, client_ctx, tmp_path):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    content = os.urandom(700_000)
    path = tmp_path / "payload"
    path.write_bytes(content)
    try:
        reader = spawn(recv_exactly, server, len(content))
        with open(path, "rb") as f:
            assert client.sendfile(f) == len(content)
            assert f.tell() == len(content)
        assert reader.get(timeout=5) == content
        # offset and count are honoured too
        reader = spawn(recv_exactly, server, 1000)
        with open(path, "rb") as f:
            assert client.sendfile(f, offset=5, count=1000) == 1000
            assert f.tell() == 1005
        assert reader.get(timeout=5) == content[5:1005]
        # and a file object without a descriptor
        reader = spawn(recv_exactly, server, 1234)
        assert client.sendfile(io.BytesIO(content[:1234])) == 1234
        assert reader.get(timeout=5) == content[:1234]
    finally:
        client.close()
        server.close()


def test_tls_rejects_flags_on_recv_and_send(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    try:
        with pytest.raises(ValueError):
            client.recv(10, stdlib_socket.MSG_PEEK)
        with pytest.raises(ValueError):
            client.send(b"x", stdlib_socket.MSG_DONTWAIT)
    finally:
        client.close()
        server.close()


def test_closing_a_tls_socket_wakes_its_reader(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    try:
        def read():
            try:
                client.recv(10)
            except OSError as e:
                return e.errno

        reader = spawn(read)
        sleep(0.01)
        client.close()
        assert reader.get(timeout=1) == 9  # EBADF
    finally:
        server.close()


def test_accept_on_a_wrapped_listening_socket_returns_a_tls_connection(listener, server_ctx, client_ctx):
    tls_listener = tls.wrap_socket(listener, server_ctx, server_side=True)

    def serve():
        conn, _ = tls_listener.accept()
        try:
            conn.sendall(conn.recv(100))
        finally:
            conn.close()

    srv = spawn(serve)
    try:
        plain = ls.create_connection(tls_listener.getsockname())
        client = tls.wrap_socket(plain, client_ctx, server_hostname="localhost")
        try:
            client.sendall(b"echo")
            assert client.recv(100) == b"echo"
        finally:
            client.close()
    finally:
        srv.join(2)
        tls_listener.close()
    assert srv.successful(), srv.exception


def test_tls_connections_leak_no_file_descriptors(listener, server_ctx, client_ctx):
    def one_round():
        client, server = tls_pair(listener, server_ctx, client_ctx)
        client.sendall(b"x" * 5000)
        assert recv_exactly(server, 5000) == b"x" * 5000
        reader = spawn(server.recv, 10)
        sleep(0)
        server.close()
        reader.join()
        client.close()

    one_round()
    gc.collect()
    before = open_fds()
    for _ in range(15):
        one_round()
    gc.collect()
    after = open_fds()
    assert after == before, describe_fds(after ^ before)


# The deadline surface (what servers use) ----------------------------------------
def test_handshake_by_times_out_at_the_deadline_with_a_silent_client(listener, server_ctx):
    plain = ls.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    server = tls.wrap_socket(conn, server_ctx, server_side=True, do_handshake_on_connect=False)
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            server.handshake_by(time.monotonic() + 0.1)
        assert time.monotonic() - t0 < 0.5
    finally:
        server.close()
        plain.close()


def test_has_pending_input_works_through_tls(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    try:
        assert server.has_pending_input() is False
        client.sendall(b"ping")
        sleep(0.02)
        assert server.has_pending_input() is True
        buf = bytearray(2)
        assert server.recv_into_nowait(buf) == 2  # two of four decrypted bytes taken...
        assert server.has_pending_input() is True  # ...the rest waits inside OpenSSL
    finally:
        client.close()
        server.close()


def test_send_all_by_and_recv_into_by_over_tls(listener, server_ctx, client_ctx):
    client, server = tls_pair(listener, server_ctx, client_ctx)
    try:
        client.send_all_by(b"q" * 300000, 2.0)
        got = 0
        buf = bytearray(65536)
        while got < 300000:
            got += server.recv_into_by(buf, time.monotonic() + 2)
        assert got == 300000
        assert server.encrypted and not listener.encrypted
    finally:
        client.close()
        server.close()


# Server contexts from gevent/gunicorn-style options ------------------------------
def test_server_context_asks_for_client_certificates_when_required(cert):
    ctx = tls.server_context(cert[0], cert[1], ca_certs=cert[0], cert_reqs="required")
    assert ctx.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("value,mode", [(None, ssl.CERT_NONE), ("optional", ssl.CERT_OPTIONAL), (2, ssl.CERT_REQUIRED),
                                        ("2", ssl.CERT_REQUIRED), (ssl.CERT_OPTIONAL, ssl.CERT_OPTIONAL),
                                        ("CERT_REQUIRED", ssl.CERT_REQUIRED)])
def test_server_context_reads_cert_reqs_in_every_spelling(cert, value, mode):
    ctx = tls.server_context(cert[0], cert[1], ca_certs=cert[0], cert_reqs=value)
    assert ctx.verify_mode == mode


@pytest.mark.parametrize("kwargs,name", [({"cert_reqs": "sometimes", "ca_certs": "x"}, "cert_reqs"),
                                         ({"cert_reqs": "required"}, "cert_reqs"),
                                         ({"ciphers": "NO-SUCH-CIPHER"}, "ciphers"),
                                         ({"ssl_version": "PROTOCOL_NOPE"}, "ssl_version")])
def test_server_context_names_the_option_that_is_wrong(cert, kwargs, name):
    with pytest.raises(ValueError, match=name):
        tls.server_context(cert[0], cert[1], **kwargs)
