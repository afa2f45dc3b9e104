# lichen.http: the HTTP/1.1 protocol layer, sans I/O.
# Strategy: pure functions and small state machines over bytes.  Parsing is
# done by httptools (llhttp) plus our own stricter checks (request.py); the
# response side builds heads and frames bodies (response.py).  Nothing here
# touches sockets, the event loop or greenlets, so it is testable on its own
# and the connection code stays a thin loop around it.
"""Sans-I/O HTTP/1.1 protocol layer for lichen."""
from __future__ import annotations

from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import END_OF_MESSAGE, EndOfMessage, Request
from .request import RequestParser
from .response import (
    CONTINUE_RESPONSE,
    FINISHED,
    SWITCHED,
    Framer,
    build_head,
    build_simple_response,
    build_whole_response,
)

__all__ = [
    "CONTINUE_RESPONSE",
    "END_OF_MESSAGE",
    "EndOfMessage",
    "FINISHED",
    "Framer",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Request",
    "RequestParser",
    "SWITCHED",
    "build_head",
    "build_simple_response",
    "build_whole_response",
]
