# lichen.websocket: WebSockets (RFC 6455) on lichen's cooperative connections.
#
# Strategy: the package sits between the HTTP protocol and the WSGI server:
# it imports lichen.http (the request it judges), the hub and the sockets'
# deadline surface, and lichen.wsgi imports it, so a WSGIServer accepts
# websockets by default (the `websocket` setting turns them off). The
# handshake is judged with no I/O (handshake.py); wsproto does the framing
# (connection.py drives it); permessage-deflate is bounded (deflate.py); one
# Registry per server keeps pings, idle and close deadlines and the 1001 of a
# graceful stop (registry.py); compat.py gives libraries that speak WebSocket
# themselves (simple-websocket, Flask-Sock) the raw socket they look for.
#
# Porting from gevent-websocket: `from geventwebsocket.handler import
# WebSocketHandler` becomes `from lichen.websocket import WebSocketHandler`
# (or leave handler_class out), `WebSocketError` comes from here too, and
# `environ["wsgi.websocket"]` has the same receive/send/close.
from __future__ import annotations

from lichen.websocket.compat import CooperativeSelector, GreenThread, RawSocket, simple_websocket_options
from lichen.websocket.connection import WebSocket, WebSocketError
from lichen.websocket.handshake import Handshake, Rejection, check_request
from lichen.websocket.registry import Registry

__all__ = ["WebSocket", "WebSocketError", "WebSocketHandler", "Registry", "Handshake", "Rejection",
           "check_request", "RawSocket", "GreenThread", "CooperativeSelector", "simple_websocket_options"]


class WebSocketHandler:
    """gevent-websocket's handler class, by name: `WSGIServer(addr, app,
    handler_class=WebSocketHandler)` is accepted and means what lichen does
    anyway, so a gevent-websocket app ports by changing its imports.
    Websockets need no handler here: every WSGIServer accepts them unless
    its `websocket` setting is off."""
