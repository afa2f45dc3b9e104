# TLS in WSGIServer: via ssl_context and via certfile/keyfile,
# wsgi.url_scheme == "https", keep-alive and pipelining over TLS, request
# bodies, and wsgi.file_wrapper falling back to reads (no sendfile).
# Strategy: a self-signed certificate made with `cryptography` per module;
# the client is a stdlib ssl socket that trusts it.
from __future__ import annotations

import logging
import os
import socket
import ssl

import pytest

from helpers import make_self_signed_cert
from wsgi_helpers import Client, ServerThread, echo_app, get


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_self_signed_cert(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def client_ctx(cert):
    ctx = ssl.create_default_context(cafile=cert[0])
    return ctx


def server_ctx(cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


def tls_connect(srv, client_ctx) -> Client:
    raw = socket.create_connection(srv.address, timeout=5)
    return Client(client_ctx.wrap_socket(raw, server_hostname="localhost"))


def app(environ, start_response):
    if environ["PATH_INFO"] == "/echo":
        return echo_app(environ, start_response)
    if environ["PATH_INFO"] == "/big":
        start_response("200 OK", [])
        return (bytes([65 + i % 26]) * 100_000 for i in range(20))
    body = f"{environ['wsgi.url_scheme']} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def tls_srv(cert):
    with ServerThread(app, ssl_context=server_ctx(cert)) as srv:
        yield srv


def test_tls_via_ssl_context_serves_https(tls_srv, client_ctx):
    with tls_connect(tls_srv, client_ctx) as c:
        c.send(get("/a"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"https /a"


def test_tls_via_certfile_and_keyfile_serves_https(cert, client_ctx):
    with ServerThread(app, certfile=cert[0], keyfile=cert[1]) as srv, tls_connect(srv, client_ctx) as c:
        c.send(get("/k"))
        assert c.read_response().body == b"https /k"


def test_plain_server_has_http_url_scheme():
    with ServerThread(app) as srv:
        assert srv.request(get("/p")).body == b"http /p"


def test_tls_keep_alive_serves_several_requests(tls_srv, client_ctx):
    with tls_connect(tls_srv, client_ctx) as c:
        for i in range(5):
            c.send(get(f"/{i}"))
            assert c.read_response().body == f"https /{i}".encode()


def test_tls_pipelined_requests_in_separate_records_are_all_answered(tls_srv, client_ctx):
    with tls_connect(tls_srv, client_ctx) as c:
        for i in range(4):
            c.send(get(f"/{i}"))  # one TLS record each, back to back
        assert [c.read_response().body for _ in range(4)] == [f"https /{i}".encode() for i in range(4)]


def test_tls_request_bodies_are_read(tls_srv, client_ctx):
    body = os.urandom(200_000)
    with tls_connect(tls_srv, client_ctx) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert c.read_response().body == body
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert c.read_response().body == b"hello"


def test_tls_large_streamed_response_is_complete(tls_srv, client_ctx):
    with tls_connect(tls_srv, client_ctx) as c:
        c.send(get("/big"))
        r = c.read_response()
        assert r.body == b"".join(bytes([65 + i % 26]) * 100_000 for i in range(20))


def test_tls_file_wrapper_falls_back_to_reads(cert, client_ctx, tmp_path, monkeypatch):
    data = os.urandom(150_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    calls = []
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: (calls.append(a), real(*a))[1])

    def file_app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    with ServerThread(file_app, ssl_context=server_ctx(cert)) as srv, tls_connect(srv, client_ctx) as c:
        c.send(get("/") + get("/"))
        assert c.read_response().body == data
        assert c.read_response().body == data
    assert calls == []


def test_plain_http_to_a_tls_port_is_closed_and_not_logged_as_error(tls_srv, caplog):
    caplog.set_level(logging.INFO, logger="lichen")
    with tls_srv.connect() as c:
        c.send(get("/"))
        c.read_until_close()
    assert not [r for r in caplog.records if r.name.startswith("lichen") and r.levelno >= logging.WARNING]
    with socket.create_connection(tls_srv.address, timeout=5):
        pass  # connect and leave before the handshake: nothing to log either
