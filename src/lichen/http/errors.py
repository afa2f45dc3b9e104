# Protocol errors raised by the sans-I/O HTTP/1.1 layer (lichen.http).
# Strategy: one small hierarchy.  Every error carries the HTTP status the
# server should answer with, so the connection code never has to guess:
# RemoteProtocolError (the peer sent garbage: 4xx/5xx reply, then close) and
# LocalProtocolError (our application asked for something that cannot be put
# on the wire: 500).  Plain Exception subclasses, no I/O, no dependencies.
from __future__ import annotations

__all__ = ["ProtocolError", "RemoteProtocolError", "LocalProtocolError"]


class ProtocolError(Exception):
    """Base class for HTTP protocol violations.

    Attributes:
        status: the HTTP status code to answer with (e.g. 400).
        message: a short human-readable explanation (safe to put in a
            text/plain error page; never contains CR/LF).
    """

    #: Default status for the class; instances may override it.
    default_status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        # CR/LF are folded away so the message can go into logs or a plain
        # text body without ever being able to forge extra lines.
        message = message.replace("\r", " ").replace("\n", " ")
        super().__init__(message)
        self.message: str = message
        self.status: int = self.default_status if status is None else status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid (answer with ``status``, then close).

    Typical statuses: 400, 408, 413, 414, 417, 431, 501, 505.
    """

    default_status = 400


class LocalProtocolError(ProtocolError):
    """Our side (the application) tried to send something invalid.

    For example a malformed status line or a header containing CR/LF.  The
    status is 500: the response was not sent, an error page should be.
    """

    default_status = 500
