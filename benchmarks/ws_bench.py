# benchmarks/ws_bench.py: lichen's websockets against gevent + gevent-websocket.
#
# Strategy: each server runs the same gevent-websocket style echo app (receive
# until None, send back) in its own process pinned to CPU 0 (servers.start);
# the load comes from this process on the other core, with raw sockets and one
# selector, so no client library sets the pace. Two scenarios per server:
#   echo: CLIENTS websockets each send a 32-byte text message, wait for the
#         echo, send the next, for SECONDS: messages per second and the p50/p99
#         round trip (median of REPS runs);
#   idle: IDLE websockets that did the handshake and one echo, so each waits in
#         receive(): the server's RSS grown per websocket, and how long a new
#         client then takes from connect to its first echo.
# Results go to results/websocket-DATE.md. QUICK=1 (or --quick) gives a short
# run; `--servers lichen` picks servers; nothing here runs from the test suite.
from __future__ import annotations

import argparse
import base64
import os
import platform
import resource
import selectors
import socket
import statistics
import struct
import sys
import time

import servers
from servers import HOST, Server, ServerFailed, start

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
QUICK = os.environ.get("QUICK", "") not in ("", "0")
KEY = base64.b64encode(b"lichen-bench-key").decode()
HANDSHAKE = (f"GET /echo HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
MASK = b"\x0f\x1e\x2d\x3c"  # (a benchmark may reuse one masking key)
LINGER_0 = struct.pack("ii", 1, 0)


def client_frame(text: bytes) -> bytes:
    """A masked text frame (under 126 bytes)."""
    return bytes([0x81, 0x80 | len(text)]) + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(text))


MESSAGE = b"0123456789abcdef0123456789abcdef"
FRAME = client_frame(MESSAGE)
ECHO = bytes([0x81, len(MESSAGE)]) + MESSAGE  # what the server sends back


# --------------------------------------------------------------------------- child side
def echo(environ, start_response):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)
    return []


def serve_lichen(port: int) -> None:
    from lichen.wsgi import WSGIServer

    WSGIServer((HOST, port), echo, log=None, backlog=servers.BACKLOG,
               max_connections=servers.MAX_CONNECTIONS).serve_forever()


def serve_gevent_websocket(port: int) -> None:
    from gevent import pywsgi
    from geventwebsocket.handler import WebSocketHandler

    class Quiet(WebSocketHandler):
        def log_request(self):  # one line per websocket otherwise
            pass

    pywsgi.WSGIServer((HOST, port), echo, handler_class=Quiet, log=None, backlog=servers.BACKLOG).serve_forever()


def _self(name: str):
    return lambda port, tmp: [sys.executable, os.path.abspath(__file__), "serve", name, str(port)]


SERVERS = {s.name: s for s in [
    Server("lichen", (), ("greenlet", "cffi", "httptools", "wsproto"), _self("lichen"),
           f"WSGIServer(log=None, max_connections={servers.MAX_CONNECTIONS}); websockets with their defaults"),
    Server("gevent-websocket", ("gevent", "gevent-websocket"), ("gevent", "geventwebsocket"),
           _self("gevent_websocket"), "gevent.pywsgi.WSGIServer(handler_class=WebSocketHandler, log=None)"),
]}


# --------------------------------------------------------------------------- client side
def open_websockets(port: int, count: int, deadline: float, window: int = 500) -> list[socket.socket]:
    """`count` websockets that did the handshake and one echo (so each waits
    in the app's receive()); fewer if the deadline passes first."""
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    started = in_flight = 0
    bufs: dict[socket.socket, bytes] = {}
    while (started < count or in_flight) and time.monotonic() < deadline:
        while started < count and in_flight < window:
            s = socket.create_connection((HOST, port), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
            s.sendall(HANDSHAKE + FRAME)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
            started += 1
            in_flight += 1
        for key, _ in sel.select(1.0):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("the server closed a websocket during the handshake")
            bufs[s] += data
            if bufs[s].endswith(ECHO):
                sel.unregister(s)
                s.setblocking(True)
                done.append(s)
                in_flight -= 1
    sel.close()
    return done


def echo_load(port: int, clients: int, seconds: float) -> tuple[float, float, float]:
    """(messages per second, p50 ms, p99 ms) of `clients` websockets in
    ping-pong for `seconds`."""
    socks = open_websockets(port, clients, time.monotonic() + 60)
    if len(socks) < clients:
        raise ConnectionError(f"only {len(socks)} of {clients} websockets opened")
    sel = selectors.DefaultSelector()
    sent_at: dict[socket.socket, float] = {}
    got: dict[socket.socket, int] = {}
    rtts: list[float] = []
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        got[s] = 0
        sent_at[s] = time.perf_counter()
        s.send(FRAME)
    start = time.perf_counter()
    end = start + seconds
    count = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(0.1):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                raise ConnectionError("the server closed a websocket under load")
            got[s] += len(data)
            while got[s] >= len(ECHO):
                got[s] -= len(ECHO)
                t = time.perf_counter()
                rtts.append(t - sent_at[s])
                count += 1
                sent_at[s] = t
                s.send(FRAME)
    elapsed = time.perf_counter() - start
    sel.close()
    for s in socks:
        s.close()
    rtts.sort()
    pick = (lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000) if rtts else (lambda q: float("nan"))
    return count / elapsed, pick(0.50), pick(0.99)


def first_echo_ms(port: int) -> float:
    """Connect, handshake and one echo, timed."""
    start = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(HANDSHAKE + FRAME)
        data = b""
        while not data.endswith(ECHO):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the echo")
            data += chunk
    return (time.perf_counter() - start) * 1000


def idle_memory(run: servers.Running, count: int) -> tuple[int, float, float]:
    """(websockets opened, RSS bytes per idle websocket, new client's first
    echo in ms while they are open)."""
    warm = open_websockets(run.port, min(200, count), time.monotonic() + 30)
    for s in warm:
        s.close()
    time.sleep(1.0)
    before = run.rss_kib()
    socks = open_websockets(run.port, count, time.monotonic() + 120)
    try:
        time.sleep(1.0)
        grown = (run.rss_kib() - before) * 1024
        latency = statistics.median(first_echo_ms(run.port) for _ in range(5))
    finally:
        for s in socks:
            s.close()
    return len(socks), grown / max(len(socks), 1), latency


# --------------------------------------------------------------------------- driver
def main() -> int:
    ap = argparse.ArgumentParser(description="lichen's websockets vs gevent-websocket (see benchmarks/README.md)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: " + ", ".join(SERVERS))
    ap.add_argument("--clients", type=int, default=100 if QUICK else 1000)
    ap.add_argument("--seconds", type=float, default=2 if QUICK else 5)
    ap.add_argument("--reps", type=int, default=1 if QUICK else 3)
    ap.add_argument("--idle", type=int, default=2000 if QUICK else 10000)
    ap.add_argument("--quick", action="store_true", help="as QUICK=1")
    ap.add_argument("--no-save", action="store_true", help="print the table only")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 1000:
        print(f"RLIMIT_NOFILE hard limit {hard}: idle level lowered to {hard - 1000}")
        args.idle = max(hard - 1000, 0)
    rows, notes = [], []
    for name in args.servers.split(","):
        server = SERVERS[name]
        why = server.unavailable()
        if why:
            notes.append(f"{name}: not run ({why})")
            print(notes[-1])
            continue
        try:
            run = start(server)
        except ServerFailed as e:
            notes.append(f"{name}: failed to start ({e})")
            print(notes[-1])
            continue
        try:
            reps = [echo_load(run.port, args.clients, args.seconds) for _ in range(args.reps)]
            rate = statistics.median(r[0] for r in reps)
            p50 = statistics.median(r[1] for r in reps)
            p99 = statistics.median(r[2] for r in reps)
            opened, per_ws, first = idle_memory(run, args.idle) if args.idle else (0, float("nan"), float("nan"))
        finally:
            run.stop()
        rows.append((name, server.version(), rate, p50, p99, opened, per_ws, first))
        print(f"{name}: {rate:,.0f} msg/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms; {opened} idle: "
              f"{per_ws / 1024:.1f} KiB each, new client's first echo {first:.1f} ms")
    text = report(args, rows, notes)
    print(text)
    if not args.no_save:
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(RESULTS, f"websocket-{time.strftime('%Y-%m-%d')}" + ("-quick" if QUICK else "") + ".md")
        with open(path, "w") as f:
            f.write(text)
        print(f"written to {path}")
    return 0


def report(args: argparse.Namespace, rows: list, notes: list[str]) -> str:
    lines = [f"# WebSocket benchmark, {time.strftime('%Y-%m-%d')}", "",
             f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; "
             f"server pinned to CPU 0, client on the rest.", "",
             f"echo: {args.clients} websockets in ping-pong with a {len(MESSAGE)}-byte text message, "
             f"{args.seconds:g} s, median of {args.reps}; idle: {args.idle} websockets waiting in receive().", "",
             "| server | version | messages/s | p50 ms | p99 ms | idle websockets | RSS per idle websocket "
             "| new client's first echo |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, version, rate, p50, p99, opened, per_ws, first in rows:
        lines.append(f"| {name} | {version} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {opened} | "
                     f"{per_ws / 1024:.1f} KiB | {first:.1f} ms |")
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":  # child: python ws_bench.py serve NAME PORT
        globals()[f"serve_{sys.argv[2]}"](int(sys.argv[3]))
    else:
        sys.exit(main())
