# lichen's websockets with a real client library (`websockets`, its sync
# client in the test's threads): text and binary echo, a 1 MiB message,
# permessage-deflate, many clients at once, a broadcast from one websocket's
# greenlet to the others, wss (TLS), and a blocking app in threads=N.
# Strategy: the server runs in its own thread and hub (ServerThread); clients
# are plain threads with the library's blocking client, each bounded in time.
from __future__ import annotations

import ssl
import threading

import pytest
from websockets.sync.client import connect

from helpers import make_self_signed_cert
from lichen.websocket import WebSocketError
from wsgi_helpers import ServerThread, wait_until
from ws_helpers import echo_app, echo_clients

MIB = 1 << 20


def url(srv, path="/ws", scheme="ws"):
    return f"{scheme}://127.0.0.1:{srv.port}{path}"


@pytest.fixture
def srv():
    with ServerThread(echo_app) as s:
        yield s


def test_text_and_binary_messages_come_back_as_they_went(srv):
    with connect(url(srv), open_timeout=5) as c:
        c.send("text ✓")
        assert c.recv(timeout=5) == "text ✓"
        c.send(b"\x00binary")
        assert c.recv(timeout=5) == b"\x00binary"


def test_a_1_mib_message_is_echoed_whole_by_default(srv):
    big = bytes(range(256)) * (MIB // 256)
    with connect(url(srv), open_timeout=5, max_size=2 * MIB, compression=None) as c:
        c.send(big)
        assert c.recv(timeout=10) == big


def test_a_1_mib_text_message_is_echoed_whole_with_compression(srv):
    big = "lichen " * (MIB // 7)
    with connect(url(srv), open_timeout=5, max_size=2 * MIB) as c:
        assert c.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        c.send(big)
        assert c.recv(timeout=10) == big


def test_the_client_close_code_is_echoed(srv):
    with connect(url(srv), open_timeout=5) as c:
        c.close(code=1000, reason="done")
    assert c.close_code == 1000 and c.close_reason == "done"


def test_many_clients_at_once_each_get_their_own_messages(srv):
    assert echo_clients(url(srv), 200, 5) == [1000] * 200


def test_a_message_can_be_sent_to_other_websockets_while_they_wait_in_receive():
    room: list = []

    def chat(environ, start_response):
        ws = environ["wsgi.websocket"]
        room.append(ws)
        try:
            while (msg := ws.receive()) is not None:
                for other in list(room):
                    try:
                        other.send(msg)
                    except WebSocketError:
                        pass
        finally:
            room.remove(ws)
        return []

    with ServerThread(chat) as srv:
        with connect(url(srv), open_timeout=5) as a, connect(url(srv), open_timeout=5) as b:
            wait_until(lambda: len(room) == 2)
            a.send("hi all")
            assert a.recv(timeout=5) == "hi all"
            assert b.recv(timeout=5) == "hi all"


def test_wss_works_over_tls(tmp_path):
    cert, key = make_self_signed_cert(str(tmp_path))
    ctx = ssl.create_default_context(cafile=cert)
    with ServerThread(echo_app, certfile=cert, keyfile=key) as srv:
        with connect(url(srv, scheme="wss"), ssl=ctx, server_hostname="localhost", open_timeout=5,
                     max_size=2 * MIB) as c:
            c.send("secure")
            assert c.recv(timeout=5) == "secure"
            big = b"s" * MIB
            c.send(big)
            assert c.recv(timeout=10) == big
        assert c.close_code == 1000


def test_a_blocking_app_in_threads_gets_a_working_websocket():
    threads_seen = set()

    def blocking_echo(environ, start_response):
        threads_seen.add(threading.current_thread().name)
        return echo_app(environ, start_response)

    with ServerThread(blocking_echo, threads=4) as srv:
        with connect(url(srv), open_timeout=5, max_size=2 * MIB) as c:
            c.send("from a thread")
            assert c.recv(timeout=5) == "from a thread"
            c.send(b"t" * MIB)
            assert c.recv(timeout=10) == b"t" * MIB
        assert c.close_code == 1000
    assert threads_seen and all(name.startswith("lichen-app") for name in threads_seen)
