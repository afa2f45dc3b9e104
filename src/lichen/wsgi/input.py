# lichen.wsgi.input: `wsgi.input`, the request body as a file-like object.
#
# Strategy: the body arrives as de-chunked pieces from the connection (which
# reads the socket and feeds the protocol parser); Input keeps at most one
# unread piece and never reads past the end of this request's body, so a
# pipelined next request is never consumed. `100 Continue` is sent on the
# first read only, so an app that rejects a request early never invites its
# body. Whatever the app leaves unread is drained by the connection later.
from __future__ import annotations

from typing import Callable, Iterator

__all__ = ["Input"]


class Input:
    """The `wsgi.input` stream of one request."""

    __slots__ = ("_next_chunk", "_buf", "_pos", "_done", "_on_first_read", "bytes_read", "_length")

    def __init__(self, next_chunk: Callable[[], bytes], empty: bool,
                 on_first_read: Callable[[], None] | None = None, length: int | None = None,
                 received: bytes = b"") -> None:
        # next_chunk() returns the next piece of body, b"" at its end. With
        # `length` (a Content-Length body whose pieces never run past it) the
        # body is known complete with its last piece, without asking again.
        # `received`: the start of the body, already read with the head.
        self._next_chunk = next_chunk
        self._buf = received
        self._pos = 0
        self._length = length
        self._done = empty or (length is not None and len(received) >= length)
        self._on_first_read = on_first_read
        self.bytes_read = len(received)  # body bytes received so far (the app may not have read them all)

    @classmethod
    def whole(cls, body: bytes) -> Input:
        """An input over a body that was received whole (nothing to pull)."""
        return cls(_no_body, False, None, len(body), body)

    def _pull(self) -> bytes:
        """The next piece of body from the connection; b"" at its end."""
        if self._done:
            return b""
        if self._on_first_read is not None:
            cb, self._on_first_read = self._on_first_read, None
            cb()
        chunk = self._next_chunk()
        if not chunk:
            self._done = True
            return b""
        self.bytes_read += len(chunk)
        if self.bytes_read == self._length:
            self._done = True
        return chunk

    def _take_buffered(self) -> bytes:
        data = self._buf[self._pos:] if self._pos else self._buf
        self._buf, self._pos = b"", 0
        return data

    # Large reads collect pieces in a list and join once: growing one bytes
    # object piece by piece would copy the body over and over.
    def read(self, size: int | None = -1) -> bytes:
        """Read up to `size` bytes (all of the body when size is None or < 0)."""
        buf, pos = self._buf, self._pos
        if size is not None and size >= 0 and len(buf) - pos >= size:
            self._pos = pos + size
            return buf[pos:pos + size]
        first = self._take_buffered()
        parts = [first] if first else []  # a join of one piece is that piece, uncopied
        n = len(first)
        while size is None or size < 0 or n < size:
            chunk = self._pull()
            if not chunk:
                break
            parts.append(chunk)
            n += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if size is not None and 0 <= size < n:
            self._buf, self._pos = data, size
            return data[:size]
        return data

    def read1(self, size: int = -1) -> bytes:
        """Read what is buffered, or one piece from the connection."""
        if self._pos >= len(self._buf):
            chunk = self._pull()
            if not chunk:
                return b""
            self._buf, self._pos = chunk, 0
        end = len(self._buf) if size is None or size < 0 else self._pos + size
        data = self._buf[self._pos:end]
        self._pos += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to and including b"\\n"), at most `size` bytes."""
        limit = -1 if size is None else size
        if limit == 0:
            return b""
        buf, pos = self._buf, self._pos
        end = len(buf) if limit < 0 else min(len(buf), pos + limit)
        nl = buf.find(b"\n", pos, end)
        if nl >= 0 or end < len(buf):  # the line, or the limit, is in the buffer
            end = nl + 1 if nl >= 0 else end
            self._pos = end
            return buf[pos:end]
        parts = [self._take_buffered()]
        n = len(parts[0])
        while limit < 0 or n < limit:
            chunk = self._pull()
            if not chunk:
                break
            want = len(chunk) if limit < 0 else min(len(chunk), limit - n)
            nl = chunk.find(b"\n", 0, want)
            take = nl + 1 if nl >= 0 else want
            if take < len(chunk):  # keep the rest for the next read
                self._buf, self._pos = chunk, take
                parts.append(chunk[:take])
                break
            parts.append(chunk)
            n += len(chunk)
            if nl >= 0:
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    @property
    def finished(self) -> bool:
        """True when the whole body was read by the app."""
        return self._done and self._pos >= len(self._buf)

    def close(self) -> None:
        """Apps may close wsgi.input; the connection still drains the body."""


def _no_body() -> bytes:
    return b""


# Requests without a body share one stateless, always-empty input.
EMPTY_INPUT = Input(_no_body, True)
