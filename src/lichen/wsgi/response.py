# lichen.wsgi.response: start_response, the write path, and wsgi.file_wrapper.
#
# Strategy: start_response only records status and headers; the head is
# framed (lichen.http.response) when the first body bytes exist, so the head
# and the start of the body leave in one send. A body given as a list gets a
# Content-Length instead of chunked framing. FileWrapper bodies on plain
# sockets go out with os.sendfile after the head. Body items may be any
# bytes-like object: they become bytes here, on the way in, so every length
# (framing, Content-Length, bytes_sent) counts bytes. The response's state,
# start_response (the response object itself is the callable: no bound
# method per request) and the common whole send (plain headers, a body known
# whole, one send) are C (lichen._fastresponse, src/_http/response.c), which
# only ever declines: whatever it does not take is answered here, and the
# tests hold its bytes equal to this path's.
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from lichen._fastresponse import ResponseCore, ResponseStateError
from lichen.http import FINISHED, SWITCHED, build_head, build_whole_response
from lichen.http.framing import LengthFramer
from lichen.http.response import body_bytes, framer_after_whole

__all__ = ["FileWrapper", "Response", "ResponseStateError", "close_body"]

log = logging.getLogger("lichen.error")


def close_body(result: Any, whose: str) -> bool:
    """Call close() of an app's response iterable when it has one (PEP 3333
    asks it of the server however the response ended). An exception there is
    logged, naming `whose` iterable it was, and makes this return False."""
    close = getattr(result, "close", None)
    if close is None:
        return True
    try:
        close()
    except Exception:
        log.exception("error in close() of %s response iterable", whose)
        return False
    return True


class FileWrapper:
    """`wsgi.file_wrapper`: iterate a file in blocks; the server may send it
    with os.sendfile instead."""

    __slots__ = ("filelike", "blksize", "close")

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def fileno(self) -> int | None:
        """The file's descriptor if it is a regular file, else None."""
        try:
            fd = self.filelike.fileno()
            import stat

            return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except (AttributeError, OSError, ValueError):
            return None


class Response(ResponseCore):
    """Response state of one request. The response itself is the
    start_response callable an app is given (PEP 3333); `start_response`
    is the same as a method. Built as
    ``Response(send, request, keep_alive, date, server, owner=None, raw=None)``:
    `send(bytes)` sends everything or raises, `request` gives `method` and
    `http_version`, `date` and `server` are the Date and Server values,
    `owner` (the server) closes the connection after the response once its
    `stopping` is set, and `raw` is a plain non-blocking socket: a whole
    response tries one send(2) on its descriptor first (the rest, or
    everything after an error, goes to `send`). The state,
    `must_close`, the keep-alive answer when a head is built
    (`_keep_alive_now()`) and the common whole send (`whole()`) are
    lichen._fastresponse's; every other rule is here."""

    __slots__ = ()
    # (What whole() gives a response it sent: read by the C core.)
    FINISHED = FINISHED
    LengthFramer = LengthFramer

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        """PEP 3333 start_response."""
        return self(status, headers, exc_info)

    def head(self, length: int | None, keep_alive: bool | None = None) -> bytes:
        """The head; `length` is the whole body's length when known, and
        `keep_alive` what _keep_alive_now() said when the caller asked it."""
        if keep_alive is None:
            keep_alive = self._keep_alive_now()
        req = self._request
        head, framer, keep = build_head(self.status, self.headers or [], http_version=req.http_version,
                                        method=req.method, keep_alive=keep_alive,
                                        date=self._date, server=self._server, length=length)
        self.framer = framer
        self.keep_alive = keep
        self.head_sent = True
        self.head_bytes = len(head)
        try:
            self.status_code = int(self.status[:3])
        except ValueError:
            self.status_code = 0
        return head

    def write(self, data: bytes) -> None:
        """The write() callable that start_response returns (and the path
        every body chunk takes). ``data`` may be any bytes-like object
        (bytearray, memoryview, array.array...); a str is a TypeError."""
        if type(data) is not bytes:
            data = body_bytes(data)
        if not self.head_sent:
            if data:
                # Frameworks return an iterable whose one item is the whole
                # body their Content-Length announces: then the response
                # goes out complete in one send (the C core's, or from the
                # per-second cache).
                if self.whole(data, True):
                    return
                keep_alive = self._keep_alive_now()
                req = self._request
                whole = build_whole_response(self.status, self.headers or [], data,
                                             http_version=req.http_version, method=req.method,
                                             keep_alive=keep_alive, date=self._date, server=self._server,
                                             declared=True)
                if whole is not None:
                    out, self.status_code, self.keep_alive, self.head_bytes = whole
                    self.framer = framer_after_whole(self.status_code, req.method)
                    self.head_sent = True
                    self._send(out)
                    self.bytes_sent += len(data)
                    return
                head = self.head(None, keep_alive)
                out = head + self.framer.frame(data)
            else:
                out = self.head(None)
            self._send(out)
            self.bytes_sent += len(data)
            return
        if data:
            out = self.framer.frame(data)
            if out:
                self._send(out)
            self.bytes_sent += len(data)

    def send_all_at_once(self, body: bytes) -> None:
        """The whole body is known: one send with a Content-Length.
        ``body`` may be any bytes-like object; a str is a TypeError."""
        if type(body) is not bytes:
            body = body_bytes(body)
        keep_alive = self._keep_alive_now()
        req = self._request
        whole = build_whole_response(self.status, self.headers or [], body, http_version=req.http_version,
                                     method=req.method, keep_alive=keep_alive, date=self._date, server=self._server)
        if whole is not None:
            data, self.status_code, self.keep_alive, self.head_bytes = whole
            self.framer = FINISHED
            self.head_sent = True
            self._send(data)
            self.bytes_sent += len(body)
            return
        head = self.head(len(body), keep_alive)
        framer = self.framer
        self._send(head + framer.frame(body) + framer.end() if body else head + framer.end())
        self.bytes_sent += len(body)

    def finish(self) -> None:
        """End the body (last chunk); sends the head if nothing was written."""
        if not self.head_sent:
            self.send_all_at_once(b"")
            return
        tail = self.framer.end()
        if tail:
            self._send(tail)

    def switched(self, head_bytes: int) -> None:
        """The connection leaves HTTP: a 101 Switching Protocols head of
        `head_bytes` went out (0: the app sent its own). What the app still
        returns as a body is dropped and the connection closes after it.
        ResponseStateError if an HTTP response has begun already."""
        if self.head_sent:
            raise ResponseStateError("the HTTP response has begun: the connection cannot switch protocols")
        self.head_sent = True
        self.framer = SWITCHED
        self.keep_alive = False
        self.status_code = 101
        self.head_bytes = head_bytes

