# lichen.http.framing: how a response body goes on the wire, with no I/O.
#
# Strategy: build_head (lichen.http.response) chooses a Framer for the body
# of each response: none (HEAD, 1xx, 204, 304), Content-Length, chunked, or
# close-delimited (HTTP/1.0 without a length). A framer turns each body
# write into wire bytes and says at the end whether the body came out whole
# (`complete`) or the connection can no longer be trusted (`must_close`): it
# never puts more on the wire than a Content-Length announced. Body data may
# be any bytes-like object; every length is a count of bytes.
from __future__ import annotations

from typing import Any

from .errors import LocalProtocolError

__all__ = ["Framer", "NoBodyFramer", "LengthFramer", "ChunkedFramer", "CloseFramer", "NO_BODY",
           "CLOSE_DELIMITED", "FINISHED", "SWITCHED", "SwitchedFramer", "LAST_CHUNK", "body_bytes"]

LAST_CHUNK = b"0\r\n\r\n"


def body_bytes(data: Any) -> bytes:
    """A body item as bytes: ``bytes`` as is, any other object with the
    buffer protocol (bytearray, memoryview of any format, array.array...)
    as its ``nbytes`` bytes, so that every length counts bytes, never items.

    Raises:
        TypeError: ``data`` is not bytes-like (a str, say).
    """
    if type(data) is bytes:
        return data
    try:
        return memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"response body must be bytes-like, not {type(data).__name__}") from None


# -- framers --------------------------------------------------------------


class Framer:
    """Turns the application's body writes into bytes for the wire.

    ``frame(data)`` returns what to send for ``data`` (bytes-like; lengths
    count its bytes, see :func:`body_bytes`); ``end()`` returns what
    to send once the body is finished (e.g. the last chunk).  After
    ``end()``, ``complete`` says whether the body was framed correctly
    (e.g. exactly Content-Length bytes) and ``must_close`` whether the
    connection cannot be reused after this response.  Before ``end()``
    they answer "if the response stopped here".
    """

    __slots__ = ()

    def frame(self, data: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError

    @property
    def complete(self) -> bool:
        raise NotImplementedError

    @property
    def must_close(self) -> bool:
        raise NotImplementedError

    # Bodies sent around frame() (os.sendfile): only framings that put body
    # bytes on the wire unchanged allow it.
    @property
    def remaining(self) -> int | None:
        """How many more body bytes may go on the wire unframed: None for
        no limit; raises LocalProtocolError if the framing transforms them
        (chunked), so the caller must use frame() instead."""
        raise LocalProtocolError(f"{type(self).__name__} cannot pass raw body bytes through")

    def advance(self, n: int) -> None:
        """Account for ``n`` body bytes the caller sent itself, unframed
        (at most ``remaining``)."""
        raise LocalProtocolError(f"{type(self).__name__} cannot pass raw body bytes through")


class NoBodyFramer(Framer):
    """1xx / 204 / 304 / HEAD: body bytes are silently discarded."""

    __slots__ = ()
    complete = True  # type: ignore[assignment]
    must_close = False  # type: ignore[assignment]
    remaining = 0  # type: ignore[assignment]

    def frame(self, data: bytes) -> bytes:
        return b""

    def end(self) -> bytes:
        return b""

    def advance(self, n: int) -> None:
        if n:
            raise LocalProtocolError("body bytes sent for a response without body")


class LengthFramer(Framer):
    """Content-Length framing: bytes beyond the declared length are cut
    (``overflowed`` records it); fewer bytes leave ``complete`` False."""

    __slots__ = ("_remaining", "overflowed")

    def __init__(self, length: int) -> None:
        self._remaining = length
        self.overflowed = False

    def frame(self, data: bytes) -> bytes:
        if type(data) is not bytes:
            data = body_bytes(data)
        remaining = self._remaining
        n = len(data)
        if n <= remaining:
            self._remaining = remaining - n
            return data
        # Never put more on the wire than announced: the excess would be
        # read as the start of the next response.
        self._remaining = 0
        self.overflowed = True
        return data[:remaining]

    def end(self) -> bytes:
        return b""

    @property
    def complete(self) -> bool:  # type: ignore[override]
        return self._remaining == 0

    @property
    def must_close(self) -> bool:  # type: ignore[override]
        # Short: the client would wait for the rest. Overflowed: the app
        # disagrees with its own Content-Length; don't trust the connection.
        return self._remaining != 0 or self.overflowed

    @property
    def remaining(self) -> int:  # type: ignore[override]
        return self._remaining

    def advance(self, n: int) -> None:
        if n > self._remaining:
            raise LocalProtocolError(f"{n} body bytes sent with only {self._remaining} left of Content-Length")
        self._remaining -= n


class ChunkedFramer(Framer):
    """Transfer-Encoding: chunked; an empty write produces nothing (an
    empty chunk would be the end marker)."""

    __slots__ = ("_ended",)

    def __init__(self) -> None:
        self._ended = False

    def frame(self, data: bytes) -> bytes:
        if type(data) is not bytes:
            data = body_bytes(data)
        if not data:
            return b""
        if self._ended:
            raise LocalProtocolError("body written after the end of response")
        return b"%x\r\n%b\r\n" % (len(data), data)

    def end(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        return LAST_CHUNK

    @property
    def complete(self) -> bool:  # type: ignore[override]
        return self._ended

    @property
    def must_close(self) -> bool:  # type: ignore[override]
        return not self._ended


class CloseFramer(Framer):
    """HTTP/1.0 without a length: the body ends when the connection does."""

    __slots__ = ()
    complete = True  # type: ignore[assignment]
    must_close = True  # type: ignore[assignment]
    remaining = None  # type: ignore[assignment]

    def frame(self, data: bytes) -> bytes:
        return data if type(data) is bytes else body_bytes(data)

    def end(self) -> bytes:
        return b""

    def advance(self, n: int) -> None:
        pass


class SwitchedFramer(NoBodyFramer):
    """After 101 Switching Protocols: the connection speaks another protocol
    now, so whatever the application still returns as an HTTP body is
    dropped (as for a response without body), and the connection never
    serves another HTTP request."""

    __slots__ = ()
    must_close = True  # type: ignore[assignment]


NO_BODY = NoBodyFramer()
CLOSE_DELIMITED = CloseFramer()
#: The framer of a response whose head and whole body are already framed
#: (build_whole_response): complete, reusable, and nothing more to send.
#: The framer of a connection that switched protocols (101): it drops body
#: writes and closes the connection after the application returns.
SWITCHED: Framer = SwitchedFramer()
FINISHED: Framer = NO_BODY
