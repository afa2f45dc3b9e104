# Flask-Sock (simple-websocket underneath) on lichen, unpatched: it finds the
# connection's socket as environ["werkzeug.socket"] and speaks WebSocket
# itself. On the hub it runs with lichen.websocket.simple_websocket_options()
# (its reader a greenlet); with threads=N it runs as it is; on the hub with
# its default OS thread and threading.Event it is refused with a clear error
# at once, and the server goes on serving everyone else.
# Strategy: a real Flask app with a Sock route, driven by the `websockets`
# client library.
from __future__ import annotations

import pytest
from flask import Flask
from flask_sock import Sock
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lichen.websocket import simple_websocket_options
from wsgi_helpers import ServerThread, error_lines, errlog, get  # noqa: F401 (fixture)


def flask_app(options=None) -> Flask:
    app = Flask(__name__)
    if options is not None:
        app.config["SOCK_SERVER_OPTIONS"] = options
    sock = Sock(app)

    @sock.route("/echo")
    def echo(ws):
        while True:
            data = ws.receive()
            if data == "bye":
                ws.close(reason=1000, message="bye")
                return
            ws.send(data)

    @app.route("/")
    def index():
        return "index"

    return app


def talk(srv) -> int:
    with connect(f"ws://127.0.0.1:{srv.port}/echo", open_timeout=5) as c:
        c.send("hi")
        assert c.recv(timeout=5) == "hi"
        c.send(b"\x00\x01")
        assert c.recv(timeout=5) == b"\x00\x01"
        c.send("bye")
        with pytest.raises(ConnectionClosed):
            c.recv(timeout=5)
    return c.close_code


def test_flask_sock_runs_on_the_hub_with_lichens_options():
    with ServerThread(flask_app(simple_websocket_options())) as srv:
        assert talk(srv) == 1000
        assert srv.request(get("/")).body == b"index"


def test_flask_sock_runs_as_it_is_with_threads():
    with ServerThread(flask_app(), threads=4) as srv:
        assert talk(srv) == 1000


def test_flask_sock_on_the_hub_without_the_options_is_refused_clearly(errlog):
    with ServerThread(flask_app()) as srv:
        with connect(f"ws://127.0.0.1:{srv.port}/echo", open_timeout=5) as c:
            with pytest.raises(ConnectionClosed):
                c.recv(timeout=5)
        assert srv.request(get("/")).body == b"index"  # nobody else was held up
    assert "simple_websocket_options()" in error_lines(errlog)
