# benchmarks/idle.py: a client process that opens and holds many HTTP connections to one server.
#
# Strategy: one process, one epoll selector, non-blocking sockets. It opens `--count`
# connections to 127.0.0.1:PORT with at most `--window` in flight and sends one request for
# `--path` on each; a connection counts as opened once, by `--expect`:
#   response  the whole response (by Content-Length) is in: an idle keep-alive connection;
#   pending   the request is sent and nothing is expected back: a parked long-poll request;
#   stream    the response header and the first bytes of its body are in: a subscribed
#             text/event-stream client.
# Then it reports one JSON line and waits for commands on stdin, one per line: `check` (how
# many are still open: a MSG_PEEK that finds EOF or an error means the server dropped it, one
# that finds bytes is counted as `data` too: a parked request that was answered), `verify T`
# (one more request on every open connection, counts the 200 answers), `event T` (streams:
# answer `armed`, then read until every connection has one more `data: SEND_TIME` event or
# T seconds pass, and report each one's receive time minus SEND_TIME in ms; both are
# time.monotonic() readings of this machine), `quit` (or EOF: close all).
from __future__ import annotations

import argparse
import errno
import json
import os
import re
import resource
import selectors
import socket
import sys
import time
from typing import Callable

PROGRESS_STEP = 50  # connections that must complete within --stall seconds to go on
EXPECT = ("response", "pending", "stream")
EVENT = re.compile(rb"data: ([0-9.]+)\n\n")


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


class Conn:
    __slots__ = ("sock", "buf", "need")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.need = -1  # total bytes of the response once the header is parsed

    def feed(self, data: bytes, stream: bool = False) -> bool:
        """Add received bytes; True once one whole response (header + body) is in, or with
        `stream`, once the header and the first body bytes of an endless response are."""
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            length = 1 if stream else 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.need = end + 4 + length
        return len(self.buf) >= self.need

    def ok(self) -> bool:
        return self.buf.startswith(b"HTTP/1.1 200") or self.buf.startswith(b"HTTP/1.0 200")

    def reset(self) -> None:
        self.buf = b""
        self.need = -1

    def opened(self, done: list[Conn]) -> None:
        """Keep it as one more held connection (with nothing buffered)."""
        self.buf = None  # type: ignore[assignment]
        done.append(self)


def _count_error(errors: dict[str, int], exc: BaseException | str) -> None:
    key = exc if isinstance(exc, str) else (errno.errorcode.get(getattr(exc, "errno", 0) or 0)
                                            or type(exc).__name__)
    errors[key] = errors.get(key, 0) + 1


def open_all(host: str, port: int, count: int, window: int, deadline: float,
             stall: float, path: str = "/", expect: str = "response") -> tuple[list[Conn], dict]:
    """Open `count` connections, one request each, until each counts as opened (see `--expect`);
    return the good ones and error counts. Gives up at `deadline`, or once fewer than
    PROGRESS_STEP connections finished in `stall` seconds (a server that serves one connection
    at a time would otherwise take forever)."""
    req = request(path)
    sel = selectors.DefaultSelector()
    progress = time.monotonic()
    since = 0
    done: list[Conn] = []
    errors: dict[str, int] = {}
    started = 0
    in_flight = 0
    while (started < count or in_flight) and time.monotonic() < min(deadline, progress + stall):
        while started < count and in_flight < window:
            started += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            except OSError as e:
                _count_error(errors, e)
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE, Conn(s))
            in_flight += 1
        for key, events in sel.select(timeout=0.5):
            c: Conn = key.data
            s = c.sock
            try:
                if events & selectors.EVENT_WRITE:  # connected (or failed): send the request
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    if s.send(req) != len(req):
                        raise OSError(errno.EAGAIN, "request not sent whole")
                    if expect != "pending":
                        sel.modify(s, selectors.EVENT_READ, c)
                        continue
                else:
                    data = s.recv(65536)
                    if not data:
                        raise OSError(errno.ECONNRESET, "EOF before the response")
                    if not c.feed(data, stream=expect == "stream"):
                        continue
                sel.unregister(s)
                in_flight -= 1
                since += 1
                if since >= PROGRESS_STEP:
                    progress, since = time.monotonic(), 0
                if expect == "pending" or c.ok():
                    c.opened(done)
                else:
                    _count_error(errors, "non-200")
                    s.close()
            except OSError as e:
                _count_error(errors, e)
                sel.unregister(s)
                in_flight -= 1
                s.close()
    for key in list(sel.get_map().values()):  # still in flight at the deadline
        _count_error(errors, "timeout")
        key.fileobj.close()
    sel.close()
    if started < count:
        errors["not tried (gave up)"] = count - started
    return done, errors


def check(conns: list[Conn]) -> tuple[int, int, int]:
    """(open, dropped, data): a connection is dropped once a peek sees EOF or an error; `data`
    counts the open ones with bytes waiting (unexpected for idle and parked connections)."""
    alive = dropped = with_data = 0
    for c in conns:
        try:
            data = c.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                alive += 1  # unexpected bytes, but the connection is there
                with_data += 1
            else:
                dropped += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            dropped += 1
    return alive, dropped, with_data


def verify(conns: list[Conn], timeout: float) -> tuple[int, dict]:
    """One more `GET /` on every connection; the number answered with 200, and errors."""
    sel = selectors.DefaultSelector()
    errors: dict[str, int] = {}
    req = request("/")
    for c in conns:
        c.reset()
        try:
            c.sock.send(req)
            sel.register(c.sock, selectors.EVENT_READ, c)
        except OSError as e:
            _count_error(errors, e)
    answered = 0

    def answer_done(c: Conn, data: bytes, now: float) -> bool:
        nonlocal answered
        if not c.feed(data):
            return False
        answered += c.ok()
        if not c.ok():
            _count_error(errors, "non-200")
        return True

    _read_until_done(sel, timeout, answer_done, errors, "timeout")
    return answered, errors


def _read_until_done(sel: selectors.BaseSelector, timeout: float, done: Callable[[Conn, bytes, float], bool],
                     errors: dict, late: str) -> None:
    """Read every connection registered in `sel` until `done(c, data, now)` says
    what it waits for has come (`now`: just before the read), or it fails (an
    error counted), for up to `timeout` seconds; the connections still waiting
    then are counted under `late`. Closes `sel`."""
    deadline = time.monotonic() + timeout
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            now = time.monotonic()
            c = key.data
            try:
                data = c.sock.recv(65536)
                if not data:
                    raise OSError(errno.ECONNRESET, "EOF")
                if not done(c, data, now):
                    continue
            except OSError as e:
                _count_error(errors, e)
            sel.unregister(c.sock)
    if sel.get_map():
        errors[late] = len(sel.get_map())
    sel.close()


def await_event(conns: list[Conn], timeout: float, armed) -> tuple[list[float], dict]:
    """Read every stream until it has one more `data: SEND_TIME` event; call `armed()` once
    reading is set up. Returns each receive time minus SEND_TIME in ms (the receive time is
    taken just before the read that completed the event), and errors."""
    sel = selectors.DefaultSelector()
    errors: dict[str, int] = {}
    for c in conns:
        c.reset()
        sel.register(c.sock, selectors.EVENT_READ, c)
    armed()
    latencies = []

    def event_done(c: Conn, data: bytes, now: float) -> bool:
        c.buf += data
        m = EVENT.search(c.buf)
        if not m:
            return False
        latencies.append(round((now - float(m.group(1))) * 1000, 3))
        return True

    _read_until_done(sel, timeout, event_done, errors, "no event (timeout)")
    for c in conns:
        c.buf = None  # type: ignore[assignment]
    return latencies, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--window", type=int, default=256, help="connections in flight while opening")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for opening them all")
    ap.add_argument("--stall", type=float, default=5.0, help="give up once fewer than 50 connections complete in this many seconds")
    ap.add_argument("--path", default="/", help="the request target of each connection's GET")
    ap.add_argument("--expect", choices=EXPECT, default="response", help="when a connection counts as opened")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    t0 = time.monotonic()
    conns, errors = open_all(args.host, args.port, args.count, args.window, t0 + args.timeout, args.stall,
                             args.path, args.expect)

    def report(**kw) -> None:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()

    report(event="opened", ok=len(conns), errors=errors, seconds=round(time.monotonic() - t0, 2))
    for line in sys.stdin:
        cmd = line.strip().split()
        if not cmd:
            continue
        if cmd[0] == "check":
            alive, dropped, with_data = check(conns)
            report(event="check", open=alive, dropped=dropped, data=with_data)
        elif cmd[0] == "verify":
            timeout = float(cmd[1]) if len(cmd) > 1 else 10.0
            answered, errs = verify(conns, timeout)
            report(event="verify", answered=answered, errors=errs)
        elif cmd[0] == "event":
            timeout = float(cmd[1]) if len(cmd) > 1 else 10.0
            latencies, errs = await_event(conns, timeout, lambda: report(event="armed"))
            report(event="event", latencies_ms=latencies, errors=errs)
        elif cmd[0] == "quit":
            break
    for c in conns:
        c.sock.close()


if __name__ == "__main__":
    main()
