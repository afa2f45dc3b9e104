# gevent's server surface on lichen's StreamServer and WSGIServer: every
# **ssl_args key, spawn in all its forms, stop_timeout and stop()/close()/
# serve_forever(stop_timeout=), closed/started, start() again after stop(),
# start_accepting()/stop_accepting(), and the listener strings ':8000',
# '*:8000', '8000'. Strategy: servers run on the hub of a thread of their
# own (helpers.run_in_thread) and are talked to by cooperative lichen
# sockets in the same hub, or from the test thread with stdlib sockets
# (wsgi_helpers.ServerThread); TLS contexts are only inspected.
from __future__ import annotations

import socket
import ssl
import time
import warnings

import pytest

from helpers import make_pki, run_in_thread
from lichen import hub as lhub
from lichen import socket as lsocket
from lichen.listeners import parse_address, parse_bind
from lichen.server import StreamServer
from lichen.settings import SettingError
from lichen.sync import Pool
from lichen.wsgi import WSGIServer
from wsgi_helpers import ServerThread, get, hello_app


def fetch(port: int, path: str = "/") -> bytes:
    """One request (Connection: close) from a cooperative socket: the whole answer."""
    conn = lsocket.create_connection(("127.0.0.1", port))
    try:
        conn.sendall(get(path, extra="Connection: close\r\n"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data
    finally:
        conn.close()


def slow_app(environ, start_response):
    lhub.sleep(30)
    start_response("200 OK", [])
    return [b"late"]


def stop_with_a_request_in_flight(server: WSGIServer, stop) -> float:
    """Start `server` (its app is slow_app), send it a request, then time stop(server)."""
    server.start()
    client = lhub.spawn(fetch, server.server_port)
    lhub.sleep(0.1)
    started = time.monotonic()
    stop(server)
    took = time.monotonic() - started
    client.kill()
    return took


# **ssl_args ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def context_of(pki, **ssl_args) -> ssl.SSLContext:
    server = WSGIServer(("127.0.0.1", 0), hello_app, **ssl_args)
    assert server.ssl_enabled
    return server.ssl_context


def test_every_context_argument_of_gevents_ssl_args_is_applied(pki):
    ctx = context_of(pki, certfile=pki["cert"], keyfile=pki["key"], ca_certs=pki["ca"], cert_reqs=ssl.CERT_REQUIRED,
                     ssl_version=ssl.PROTOCOL_TLSv1_2, ciphers="ECDHE+AESGCM")
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"} <= {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384"}
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "lichen test CA"),),)


def test_gevents_default_ssl_version_is_the_modern_default_without_a_warning(pki):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx = context_of(pki, certfile=pki["cert"], keyfile=pki["key"], ssl_version=ssl.PROTOCOL_SSLv23)
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER


def test_the_per_connection_arguments_of_gevents_ssl_args_are_accepted(pki):
    ctx = context_of(pki, certfile=pki["cert"], keyfile=pki["key"], server_side=True, do_handshake_on_connect=False,
                     suppress_ragged_eofs=True)
    assert ctx.verify_mode == ssl.CERT_NONE


def test_an_ssl_context_is_used_as_it_is_with_the_per_connection_arguments(pki):
    mine = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    mine.load_cert_chain(pki["cert"], pki["key"])
    assert context_of(pki, ssl_context=mine, server_side=True, suppress_ragged_eofs=False) is mine
    stream = StreamServer(("127.0.0.1", 0), lambda sock, addr: None, ssl_context=mine)
    assert stream.ssl_enabled and stream.ssl_context is mine


def test_tls_arguments_that_are_none_make_a_plain_server():
    server = WSGIServer(("127.0.0.1", 0), hello_app, certfile=None, keyfile=None, ssl_context=None)
    assert not server.ssl_enabled and server.environ["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("ssl_args,error,words", [
    (dict(server_side=False), ValueError, "server_side: a server's TLS is server-side"),
    (dict(server_hostname="example.org"), ValueError, "server_hostname: an option of TLS clients"),
    (dict(ca_certs="ca.pem", cert_reqs=ssl.CERT_REQUIRED), ValueError, "certfile: TLS needs a certificate"),
    (dict(ssl_context="nope"), TypeError, "must be an ssl.SSLContext"),
    (dict(cert_reqs="sometimes"), ValueError, "cert_reqs: 'sometimes' is none of"),
])
def test_tls_arguments_that_cannot_work_fail_naming_the_argument(pki, ssl_args, error, words):
    if "cert_reqs" in ssl_args and "ca_certs" not in ssl_args:
        ssl_args = dict(ssl_args, certfile=pki["cert"], keyfile=pki["key"])
    with pytest.raises(error, match=words) as caught:
        WSGIServer(("127.0.0.1", 0), hello_app, **ssl_args)
    assert not isinstance(caught.value, SettingError)  # a TLS argument, never taken for a setting


def test_an_ssl_context_with_context_arguments_is_refused(pki):
    mine = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match="certfile, ciphers: set on the ssl_context"):
        WSGIServer(("127.0.0.1", 0), hello_app, ssl_context=mine, certfile=pki["cert"], ciphers="HIGH")


def test_an_unknown_keyword_is_still_an_unknown_setting_and_tls_keys_never_are(pki):
    with pytest.raises(SettingError, match="ssl_verison"):
        WSGIServer(("127.0.0.1", 0), hello_app, certfile=pki["cert"], keyfile=pki["key"], ssl_verison=2)
    server = WSGIServer(("127.0.0.1", 0), hello_app, certfile=pki["cert"], keyfile=pki["key"], ciphers="HIGH",
                        keepalive_timeout=5)
    assert server.settings.keepalive_timeout == 5 and server.environ["wsgi.url_scheme"] == "https"


# spawn= ----------------------------------------------------------------------------------------
class GeventStylePool:
    """What servers ask of a gevent pool: spawn, and a size."""

    def __init__(self, size):
        self.size = size

    def spawn(self, fn, *args):  # pragma: no cover - lichen never runs connections in it
        raise AssertionError("lichen runs no handler in the user's pool")


def test_spawn_an_int_caps_connections_and_pool_reports_it():
    server = WSGIServer(("127.0.0.1", 0), hello_app, spawn=7)
    assert server.settings.max_connections == 7
    assert server.pool.size == 7 and server.pool.free_count() == 7 and len(server.pool) == 0
    assert not server.pool.full() and not server.full()


@pytest.mark.parametrize("spawn,cap", [(Pool(9), 9), (GeventStylePool(3), 3), (Pool(), None)])
def test_spawn_a_pool_caps_connections_by_its_size_and_is_the_pool(spawn, cap):
    # (A pool without a size leaves the cap to the file-descriptor limit.)
    server = WSGIServer(("127.0.0.1", 0), hello_app, spawn=spawn)
    assert server.settings.max_connections == cap and server.pool is spawn


@pytest.mark.parametrize("spawn", ["default", None, lhub.spawn])
def test_spawn_default_none_or_a_function_leaves_the_cap_to_max_connections(spawn):
    server = WSGIServer(("127.0.0.1", 0), hello_app, spawn=spawn, max_connections=50)
    assert server.settings.max_connections == 50 and server.pool is None


@pytest.mark.parametrize("spawn,error", [("many", TypeError), (0, ValueError), (True, TypeError), (2.5, TypeError)])
def test_spawn_of_another_kind_is_refused(spawn, error):
    with pytest.raises(error, match="spawn"):
        WSGIServer(("127.0.0.1", 0), hello_app, spawn=spawn)


def test_a_gevent_style_pool_serves_without_running_anything_in_it():
    with ServerThread(hello_app, spawn=GeventStylePool(2)) as srv:
        assert srv.request(get("/p")).body == b"hello /p"


# stop(), close(), serve_forever(), closed ----------------------------------------------------------
def test_stop_without_a_timeout_waits_stop_timeout_one_second_as_gevent():
    assert WSGIServer.stop_timeout == 1.0 and StreamServer.stop_timeout == 1.0
    took = run_in_thread(lambda: stop_with_a_request_in_flight(WSGIServer(("127.0.0.1", 0), slow_app, log=None),
                                                               lambda s: s.stop()))
    assert 0.8 < took < 3


def test_a_subclass_stop_timeout_is_honoured():
    class Quick(WSGIServer):
        stop_timeout = 0.2

    took = run_in_thread(lambda: stop_with_a_request_in_flight(Quick(("127.0.0.1", 0), slow_app, log=None),
                                                               lambda s: s.stop()))
    assert took < 0.8


def test_lichens_graceful_timeout_setting_is_the_stop_timeout_when_given():
    assert WSGIServer(("127.0.0.1", 0), hello_app, graceful_timeout=7).stop_timeout == 7
    from lichen.settings import Settings

    assert WSGIServer(("127.0.0.1", 0), hello_app, settings=Settings()).stop_timeout == 30


def test_serve_forever_stops_with_its_stop_timeout_when_interrupted():
    def run_forever(server):
        with lhub.Timeout(0.2):
            server.serve_forever(stop_timeout=0.3)

    def run():
        try:
            stop_with_a_request_in_flight(WSGIServer(("127.0.0.1", 0), slow_app, log=None), run_forever)
        except lhub.Timeout:
            pass

    started = time.monotonic()
    run_in_thread(run)
    assert time.monotonic() - started < 1.5  # 0.1 + 0.2 + 0.3, not 1 s more


def read_to_close(conn) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def app_taking(seconds: float):
    def app(environ, start_response):
        lhub.sleep(seconds)
        start_response("200 OK", [])
        return [b"done"]
    return app


def test_close_closes_the_listener_at_once_and_a_request_in_flight_still_finishes():
    def run():
        server = WSGIServer(("127.0.0.1", 0), app_taking(0.3), log=None)
        server.start()
        port = server.server_port
        conn = lsocket.create_connection(("127.0.0.1", port))
        conn.sendall(get("/slow"))  # (keep-alive: the server closes after the answer)
        lhub.sleep(0.1)
        started = time.monotonic()
        server.close()
        took = time.monotonic() - started
        try:
            lsocket.create_connection(("127.0.0.1", port)).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        answer = read_to_close(conn)
        conn.close()
        server.stop()
        return took, refused, server.closed, answer

    took, refused, closed, answer = run_in_thread(run)
    assert took < 0.05 and refused and closed
    assert answer.endswith(b"done") and b"\r\nConnection: close\r\n" in answer


def test_serve_forever_returns_after_close_once_requests_in_flight_finish():
    def run():
        server = WSGIServer(("127.0.0.1", 0), app_taking(0.3), log=None)
        server.start()
        client = lhub.spawn(fetch, server.server_port)
        lhub.spawn_later(0.1, server.close)
        started = time.monotonic()
        server.serve_forever()
        return time.monotonic() - started, client.get(timeout=5)

    took, answer = run_in_thread(run)
    assert 0.25 < took < 0.9 and answer.endswith(b"done")


def test_stop_called_by_the_application_answers_its_request_and_ends_serve_forever():
    def run():
        def app(environ, start_response):
            server.stop()  # (a /shutdown path of a gevent script)
            start_response("200 OK", [])
            return [b"bye"]

        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        forever = lhub.spawn(server.serve_forever)
        lhub.sleep(0.05)
        started = time.monotonic()
        answer = fetch(server.server_port, "/shutdown")
        forever.join(timeout=5)
        return time.monotonic() - started, answer, forever.dead, server.closed

    took, answer, ended, closed = run_in_thread(run)
    assert answer.endswith(b"bye") and ended and closed
    assert took < 0.5  # the request that stopped the server was not waited for (stop_timeout is 1 s)


def test_a_second_stop_waits_for_the_first():
    def run():
        server = WSGIServer(("127.0.0.1", 0), app_taking(0.3), log=None)
        server.start()
        client = lhub.spawn(fetch, server.server_port)
        lhub.sleep(0.1)
        first = lhub.spawn(server.stop)  # (stop_timeout: 1 s, time enough)
        lhub.sleep(0)
        started = time.monotonic()
        server.stop(0)  # not "end them now": the first stop is already letting them finish
        took = time.monotonic() - started
        return took, first.dead, client.get(timeout=5)

    took, first_done, answer = run_in_thread(run)
    assert 0.1 < took < 0.9 and first_done and answer.endswith(b"done")


def test_with_serves_in_its_block_and_stops_at_its_end():
    def run():
        with WSGIServer(("127.0.0.1", 0), hello_app, log=None) as server:
            port = server.server_port
            lhub.spawn_later(0.1, server.close)
            server.serve_forever()  # (what a gevent script does in the block)
            inside = server.closed
        return inside, server.closed, port

    inside, closed, port = run_in_thread(run)
    assert inside and closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_the_command_lines_server_keeps_its_30_second_graceful_timeout():
    from lichen.config import parse_args
    from lichen.worker import build_server

    cfg = parse_args(["--bind", "127.0.0.1:0"], environ={})
    server = build_server(cfg, [("127.0.0.1", 0)], hello_app)
    assert server.stop_timeout == 30 == cfg.settings.graceful_timeout


def test_closed_and_started_follow_geventss_meaning():
    def run():
        server = WSGIServer(("127.0.0.1", 0), hello_app)
        states = [(server.closed, server.started)]  # nothing bound yet: closed
        server.init_socket()
        states.append((server.closed, server.started))
        server.start()
        states.append((server.closed, server.started))
        server.stop()
        states.append((server.closed, server.started))
        return states

    assert run_in_thread(run) == [(True, False), (False, False), (False, True), (True, False)]


def test_a_stopped_server_starts_again_on_the_same_address():
    def run():
        server = WSGIServer(("127.0.0.1", 0), hello_app, log=None)
        server.start()
        port = server.server_port
        first = fetch(port, "/one")
        server.close()
        assert server.address == ("127.0.0.1", port)  # (remembered, not bound anew)
        with pytest.raises(ConnectionRefusedError):
            fetch(port)
        server.start()
        try:
            return port, server.server_port, first, fetch(port, "/two")
        finally:
            server.stop()

    port, again, first, second = run_in_thread(run)
    assert again == port and first.endswith(b"hello /one") and second.endswith(b"hello /two")


def test_a_server_on_a_socket_starts_again_on_its_address():
    def run():
        sock = socket.create_server(("127.0.0.1", 0))
        server = WSGIServer(sock, hello_app, log=None)
        server.start()
        port = server.server_port
        server.stop()
        server.start()
        try:
            return port, server.server_port, fetch(port, "/s")
        finally:
            server.stop()

    port, again, answer = run_in_thread(run)
    assert again == port and answer.endswith(b"hello /s")


# start_accepting() / stop_accepting() ----------------------------------------------------------
def test_stop_accepting_leaves_new_clients_waiting_until_start_accepting():
    def run():
        server = WSGIServer(("127.0.0.1", 0), hello_app, log=None)
        server.start()
        keep = lsocket.create_connection(("127.0.0.1", server.server_port))
        keep.sendall(get("/before"))
        assert keep.recv(65536).endswith(b"hello /before")
        server.stop_accepting()
        lhub.sleep(0.05)  # (the accept loop reaches its gate)
        waiting = lhub.spawn(fetch, server.server_port, "/waiting")
        lhub.sleep(0.3)
        served_early = waiting.dead
        keep.sendall(get("/kept"))  # a connection already accepted is still served
        kept = keep.recv(65536)
        server.start_accepting()
        answer = waiting.get(timeout=5)
        keep.close()
        server.stop()
        return served_early, kept, answer

    served_early, kept, answer = run_in_thread(run)
    assert not served_early  # the client waited while accepting was off
    assert kept.endswith(b"hello /kept") and answer.endswith(b"hello /waiting")


def test_start_accepting_starts_a_server_that_was_not_started():
    def run():
        server = WSGIServer(("127.0.0.1", 0), hello_app, log=None)
        server.stop_accepting()  # (not started: nothing to do)
        server.start_accepting()
        try:
            return server.started, fetch(server.server_port, "/s")
        finally:
            server.stop()

    started, answer = run_in_thread(run)
    assert started and answer.endswith(b"hello /s")


# Listener strings ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [":8000", "*:8000", "8000", 8000, ("*", 8000), ("", 8000)])
def test_geventss_every_interface_listeners_parse(spec):
    assert parse_address(spec) == (socket.AF_INET, ("", 8000))


def test_the_command_lines_empty_host_is_every_interface_as_the_librarys():
    assert parse_bind(":8000") == (socket.AF_INET, ("", 8000))


@pytest.mark.parametrize("listener", [":0", "*:0"])
def test_a_star_or_empty_host_listener_serves_every_interface(listener):
    with ServerThread(hello_app, listener=listener) as srv:
        port = srv.address[1]
        for addr in (("127.0.0.1", port), ("::1", port)):
            with socket.create_connection(addr, timeout=5) as c:
                c.sendall(get("/all", extra="Connection: close\r\n"))
                data = b""
                while chunk := c.recv(65536):
                    data += chunk
                assert data.endswith(b"hello /all")
