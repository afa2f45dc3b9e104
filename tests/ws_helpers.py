# Shared helpers for the websocket tests.
#
# - RawWS: a blocking stdlib socket that does the opening handshake by hand
#   and then sends frames as built here (masked or not, fragmented, with any
#   opcode, RSV bit or close payload) and reads the server's frames back, so
#   the RFC 6455 case table can send what no client library would.
# - echo_app: gevent-websocket style echo (tests/ws_apps.py's, re-exported).
# - handshake_request(): the request bytes of an opening handshake.
# - echo_clients(): many `websockets` clients at once, each checking its
#   own echoes; returns their close codes.
from __future__ import annotations

import base64
import concurrent.futures
import os
import socket
import struct
from typing import Any

from ws_apps import echo as echo_app  # noqa: F401 (re-exported for the tests)

TIMEOUT = 5.0
KEY = base64.b64encode(b"0123456789abcdef").decode()


def handshake_request(path: str = "/ws", *, key: str = KEY, version: str = "13", method: str = "GET",
                      extra: str = "", upgrade: str = "websocket", connection: str = "Upgrade",
                      http: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{http}", "Host: test"]
    if upgrade:
        lines.append(f"Upgrade: {upgrade}")
    if connection:
        lines.append(f"Connection: {connection}")
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode("latin-1")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = True, rsv1: bool = False) -> bytes:
    """One client frame, masked by default."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
        head + key + _mask_fast(payload, key)


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


class RawWS:
    """A websocket client over a plain socket, frame by frame."""

    def __init__(self, address: Any, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buf = b""
        self.head = b""
        self.status = 0

    @classmethod
    def open(cls, address: Any, path: str = "/ws", extra: str = "", **kw: Any) -> RawWS:
        ws = cls(address)
        status = ws.handshake(handshake_request(path, extra=extra, **kw))
        assert status == 101, ws.head
        return ws

    def handshake(self, request: bytes) -> int:
        """Send `request`; read the response head (the body of an error
        response too, up to its Content-Length); return the status."""
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head
        self.status = int(head.split(b" ", 2)[1])
        length = self.header("content-length")
        if length:
            while len(self.buf) < int(length):
                self._more()
            self.body, self.buf = self.buf[:int(length)], self.buf[int(length):]
        return self.status

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.encode():
                return v.strip().decode("latin-1")
        return None

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        self.send(frame(0x1, text.encode()))

    def send_close(self, code: int | None = 1000, reason: bytes = b"") -> None:
        self.send(frame(0x8, close_payload(code, reason)))

    def read_frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, payload) of the server's next frame (which must be
        unmasked and use no RSV bit unless compressed)."""
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "a server frame must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def read_message(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next data or close frame (pings are
        skipped)."""
        while True:
            fin, op, payload = self.read_frame()
            if op != 0x9:
                return op, payload

    def read_close(self) -> int | None:
        """The code of the server's close frame (None: no code), after
        skipping any data frames; asserts the frame is a close."""
        while True:
            _fin, op, payload = self.read_frame()
            if op == 0x8:
                return struct.unpack("!H", payload[:2])[0] if payload else None

    def at_eof(self, timeout: float = TIMEOUT) -> bool:
        """Whether the server closed the connection (reads past any data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWS:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def echo_clients(url: str, clients: int, messages: int, threads: int = 50, timeout: float = 20.0) -> list[int]:
    """`clients` websockets (`threads` at a time), each sending `messages`
    texts and checking every echo; the close codes they end with."""
    from websockets.sync.client import connect

    def client(i: int) -> int:
        with connect(url, open_timeout=timeout) as c:
            for j in range(messages):
                c.send(f"{i}:{j}")
                assert c.recv(timeout=timeout) == f"{i}:{j}"
        return c.close_code

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(client, range(clients), timeout=120))
