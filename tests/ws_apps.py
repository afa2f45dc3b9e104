# WebSocket apps written as gevent-websocket apps are (only the import
# changes): served by the `lichen` command in test_websocket_cli.py and by
# ServerThread in the other websocket tests (as ws_helpers.echo_app).
from __future__ import annotations

from lichen.websocket import WebSocketError


def echo(environ, start_response):
    """Echo every message until the client closes; plain HTTP otherwise."""
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    try:
        while not ws.closed:
            message = ws.receive()
            if message is None:
                break
            ws.send(message)
    except WebSocketError:
        pass
    return []
