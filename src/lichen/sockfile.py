# lichen.sockfile: the file-like conveniences of lichen's cooperative socket
# (makefile, sendfile), kept apart from its system-call methods.
#
# Strategy: a mixin over the socket's own waits: sendfile tries os.sendfile
# and waits for writability on EAGAIN, falling back to read-and-send where
# the kernel cannot (not a regular file, TLS); makefile wraps the socket in
# the stdlib's SocketIO and buffers, and counts the files it handed out so
# the descriptor stays open until the last one closes, as in the stdlib.
from __future__ import annotations

import errno
import io
import os
import socket as _stdlib
from typing import Any

from lichen.loop import WRITE

__all__ = ["FileMethods"]


class FileMethods:
    """makefile() and sendfile() for lichen.socket.socket (a mixin: the
    socket provides raw, _wait, _io_refs and sendall)."""

    __slots__ = ()

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file with os.sendfile, cooperatively; falls back to reads
        and sends where sendfile cannot be used. Returns bytes sent and leaves
        the file position after the last byte sent, like the stdlib."""
        try:
            fileno = file.fileno()
            fsize = os.fstat(fileno).st_size
        except (AttributeError, io.UnsupportedOperation, OSError):
            return self._sendfile_fallback(file, offset, count)
        if not fsize:
            return 0
        blocksize = min(count or fsize, fsize, 1 << 30)
        total = 0
        sockno = self.raw.fileno()
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        break
                try:
                    sent = os.sendfile(sockno, fileno, offset, blocksize)
                except BlockingIOError:
                    self._wait(WRITE)
                    continue
                except OSError as e:
                    if total == 0 and e.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP):
                        return self._sendfile_fallback(file, offset, count)
                    raise
                if sent == 0:
                    break
                offset += sent
                total += sent
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset)

    def _sendfile_fallback(self, file: Any, offset: int, count: int | None) -> int:
        if offset and hasattr(file, "seek"):
            file.seek(offset)
        total = 0
        blocksize = min(count, 65536) if count else 65536
        while True:
            if count:
                blocksize = min(count - total, blocksize)
                if blocksize <= 0:
                    break
            data = file.read(blocksize)
            if not data:
                break
            self.sendall(data)
            total += len(data)
        return total

    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None) -> Any:
        """A file object over the socket, as stdlib socket.makefile."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        rawmode = ("r" if reading else "") + ("w" if writing else "")
        raw = _stdlib.SocketIO(self, rawmode)  # type: ignore[arg-type]
        self._io_refs += 1
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buffer: Any = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        text = io.TextIOWrapper(buffer, encoding, errors, newline)
        text.mode = mode  # type: ignore[misc]
        return text
