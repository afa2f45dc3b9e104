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

    __slots__ = ("_next_chunk", "_buf", "_pos", "_done", "_on_first_read", "bytes_read")

    def __init__(self, next_chunk: Callable[[], bytes], empty: bool,
                 on_first_read: Callable[[], None] | None = None) -> None:
        # next_chunk() returns the next piece of body, b"" at its end.
        self._next_chunk = next_chunk
        self._buf = b""
        self._pos = 0
        self._done = empty
        self._on_first_read = on_first_read
        self.bytes_read = 0

    def _fill(self) -> bool:
        """Get the next piece into the buffer; False at end of body."""
        if self._done:
            return False
        if self._on_first_read is not None:
            cb, self._on_first_read = self._on_first_read, None
            cb()
        chunk = self._next_chunk()
        if not chunk:
            self._done = True
            return False
        self.bytes_read += len(chunk)
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos:] + chunk
        else:
            self._buf = chunk
        self._pos = 0
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to `size` bytes (all of the body when size is None or < 0)."""
        if size is None or size < 0:
            while self._fill():
                pass
            data = self._buf[self._pos:]
            self._buf, self._pos = b"", 0
            return data
        if size == 0:
            return b""
        while len(self._buf) - self._pos < size and self._fill():
            pass
        data = self._buf[self._pos:self._pos + size]
        self._pos += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        """Read what is buffered, or one piece from the connection."""
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        end = len(self._buf) if size is None or size < 0 else self._pos + size
        data = self._buf[self._pos:end]
        self._pos += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to and including b"\\n"), at most `size` bytes."""
        limit = -1 if size is None else size
        start = self._pos
        while True:
            nl = self._buf.find(b"\n", start)
            if nl >= 0:
                end = nl + 1
                break
            if 0 <= limit <= len(self._buf) - self._pos:
                end = len(self._buf)
                break
            start = len(self._buf) - self._pos  # search only new bytes next time
            if not self._fill():
                end = len(self._buf)
                break
        if 0 <= limit < end - self._pos:
            end = self._pos + limit
        data = self._buf[self._pos:end]
        self._pos = end
        return data

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
