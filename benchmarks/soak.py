# benchmarks/soak.py: the soak benchmark — lichen under a long mixed load, with its memory,
# file descriptors and error log checked for drift. Not part of `make test`.
#
# Strategy: start a WSGIServer on 127.0.0.1 in a subprocess pinned to CPU 0 (taskset, when
# there is a second CPU), logging everything down to DEBUG to a file. Drive it from helpers
# pinned to CPU 1, both at once: wrk for the keep-alive requests (a Lua script counts them, so
# the number is exact), and Python client processes whose greenlets (lichen's own hub and
# sockets) open short connections that behave badly on purpose: early disconnects at every
# stage (FIN or RST), slow readers of a large response, slow writers of a request body,
# readers that stall until the server's write timeout cuts them (a few at a time), garbage
# requests, and plain good requests. A warm-up run of the same mix (10% of the counts) comes
# first, then the full counts in SOAK_SEGMENTS segments (default 4). After the warm-up and
# after each segment, once the server holds no connection, its RSS and open fds are read from
# /proc, so a leak shows as a steady climb. The run passes when RSS and fds at the end are
# within 5% of the warm-up reading, the server logged nothing at WARNING or above (client
# disconnects and write-timeout cuts are DEBUG, bad requests INFO), every stalled reader was
# cut, and every request that should have succeeded did.
#
# Counts: SOAK_REQUESTS (keep-alive requests, default 1,000,000) and SOAK_CONNECTIONS (short
# connections, default 100,000); SOAK_MAX_SECONDS bounds the whole run (default 1800). The
# summary is printed as markdown and written to results/soak-DATE.md. Every process started
# here is stopped by its PID on the way out; only 127.0.0.1 is used. Run it with a Python
# that has lichen's dependencies (the repo's .venv, or benchmarks/.venv): lichen is imported
# from ../src.
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.join(ROOT, "src"))

WRK_CONNECTIONS = 50
CLIENT_PROCS = 2
CLIENT_CONCURRENCY = 64  # greenlets per client process
WRITE_TIMEOUT = 2.0  # server setting: stalled readers are cut after this
STALLED_MAX = 4  # stalled readers at a time, per client process
BIG = 256 * 1024  # bytes of the /big response
TOLERANCE = 0.05
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The server ------------------------------------------------------------------------------------
SERVER = r"""
import logging, sys
from lichen.wsgi import WSGIServer

# DEBUG: client disconnects and write-timeout cuts are logged (and counted) too.
logging.basicConfig(level=logging.DEBUG, filename=sys.argv[1], format="%(levelname)s %(name)s %(message)s")
BIG = b"b" * int(sys.argv[2])
HELLO = b"hello, soak\n"

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (BIG[i:i + 65536] for i in range(0, len(BIG), 65536))
    if path == "/endless":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return iter(lambda: BIG[:65536], None)
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/_stats":
        body = str(len(server.connections)).encode()
        start_response("200 OK", [("Content-Length", str(len(body))), ("Connection", "close")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]

server = WSGIServer(("127.0.0.1", 0), app, log=None, write_timeout=float(sys.argv[3]),
                    header_timeout=5.0, body_timeout=5.0, backlog=4096)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""

# The keep-alive load: wrk, stopped after exactly its share of requests ------------------------
# (wrk itself only ends at its -d duration: the thread that reached its count stops and writes
# a marker file, and the driver then sends wrk SIGINT, on which it prints its summary and exits.)
WRK_LUA = """
local n, limit, marker = 0, tonumber(os.getenv("SOAK_PER_THREAD")), os.getenv("SOAK_DONE_FILE")
function response(status, headers, body)
  n = n + 1
  if n == limit then
    local f = io.open(marker, "w")
    f:write("done")
    f:close()
    wrk.thread:stop()
  end
end
"""


# The abusive load: one client process ----------------------------------------------------------
def client_main(port: int, count: int, seed: int, concurrency: int, deadline: float) -> None:
    """Open `count` short connections with `concurrency` greenlets; print JSON counts."""
    from lichen import hub
    from lichen import socket as lsocket

    rng = random.Random(seed)
    addr = ("127.0.0.1", port)
    stats: collections.Counter = collections.Counter()
    left = [count]
    linger0 = struct.pack("ii", 1, 0)

    def connect() -> lsocket.socket:
        s = lsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10.0)
        s.connect(addr)
        return s

    def close(s: lsocket.socket, rst: bool) -> None:
        if rst:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
            except OSError:
                pass
        s.close()

    def read_all(s: lsocket.socket, piece: int = 65536, pause: float = 0.0) -> bytes:
        parts = []
        while True:
            data = s.recv(piece)
            if not data:
                return b"".join(parts)
            parts.append(data)
            if pause:
                hub.sleep(pause)

    def good(s: lsocket.socket) -> bool:
        s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        return read_all(s).startswith(b"HTTP/1.1 200 ")

    def garbage(s: lsocket.socket) -> bool:
        s.sendall(rng.choice([b"\x00\x01garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
                              b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                              b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"]))
        return read_all(s).startswith((b"HTTP/1.1 4", b"HTTP/1.1 505 "))

    def slow_reader(s: lsocket.socket) -> bool:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        data = read_all(s, 8192, 0.002)
        return data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"0\r\n\r\n") and len(data) > BIG

    def slow_writer(s: lsocket.socket) -> bool:
        body = bytes(rng.randrange(256) for _ in range(4096))
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nConnection: close\r\nContent-Length: 4096\r\n\r\n")
        for i in range(0, len(body), 512):
            hub.sleep(0.003)
            s.sendall(body[i:i + 512])
        return read_all(s).endswith(b"\r\n\r\n" + body)

    stalled_now = [0]

    def stalled_reader(s: lsocket.socket) -> bool:
        # Asks for an endless response and never reads: once the socket buffers are full the
        # server must cut it at its write timeout (counted from the server's log: reading here
        # would let the server make progress again). At most STALLED_MAX at a time per
        # process, so the server's peak memory (a pending chunk each) is the same in every
        # phase (the worker picks a slow reader instead while all slots are taken).
        stalled_now[0] += 1
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /endless HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
            hub.sleep(2 * WRITE_TIMEOUT + 1)
        finally:
            stalled_now[0] -= 1
        return True

    def early(s: lsocket.socket) -> bool:
        stage = rng.randrange(5)
        if stage == 1:  # half a head
            s.sendall(b"GET /slow HTTP/1.1\r\nHo")
        elif stage == 2:  # a head, no body
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5000\r\n\r\n")
        elif stage == 3:  # part of the body
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5000\r\n\r\n" + b"p" * 1000)
        elif stage == 4:  # mid-response
            s.sendall(b"GET /big HTTP/1.1\r\nHost: soak\r\n\r\n")
            s.recv(4096)
        return True  # stage 0: connect and leave at once

    kinds = [(good, 40), (early, 35), (garbage, 10), (slow_reader, 6), (slow_writer, 8), (stalled_reader, 1)]
    only = os.environ.get("SOAK_ONLY")  # development: one kind alone, e.g. SOAK_ONLY=slow_reader
    if only:
        kinds = [k for k in kinds if k[0].__name__ in only.split(",")]
    names = [k.__name__ for k, _ in kinds]
    weights = [w for _, w in kinds]

    def worker() -> None:
        while left[0] > 0 and time.monotonic() < deadline:
            left[0] -= 1
            kind = rng.choices(range(len(kinds)), weights)[0]
            name = names[kind]
            if name == "stalled_reader" and stalled_now[0] >= STALLED_MAX and "slow_reader" in names:
                kind = names.index("slow_reader")
                name = "slow_reader"
            rst = rng.random() < 0.5
            try:
                s = connect()
            except OSError as e:
                stats[f"connect failed: {type(e).__name__}"] += 1
                continue
            try:
                ok = kinds[kind][0](s)
                stats[name + (" ok" if ok else " WRONG")] += 1
            except OSError as e:
                # A connection that misbehaves on purpose may see a reset; others must not.
                expected = name in ("early", "stalled_reader")
                stats[f"{name} {'reset' if expected else 'FAILED'} ({type(e).__name__})"] += 1
            finally:
                close(s, (rst and name == "early") or name == "stalled_reader")

    workers = [hub.spawn(worker) for _ in range(concurrency)]
    hub.joinall(workers)
    if left[0] > 0:
        stats["unfinished"] += left[0]
    print(json.dumps(dict(stats)), flush=True)


# The driver ------------------------------------------------------------------------------------
def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_connections(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /_stats HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1]) - 1  # not counting this very connection


def wait_quiet(port: int, timeout: float) -> int:
    """Wait until the server holds no connection; returns how many it still holds."""
    deadline = time.monotonic() + timeout
    n = server_connections(port)
    while n and time.monotonic() < deadline:
        time.sleep(0.2)
        n = server_connections(port)
    time.sleep(0.3)  # let the server's last closes and frees run
    return n


class Procs:
    """Every child process, stopped by PID on the way out."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def run_phase(procs: Procs, port: int, requests: int, connections: int, seed: int, deadline: float,
              lua_path: str) -> dict:
    """The keep-alive load and the abusive load at the same time; returns their counts."""
    t0 = time.monotonic()
    wrk = None
    marker = os.path.join(os.path.dirname(lua_path), f"wrk-done-{seed}")
    if requests:
        dur = max(int(deadline - time.monotonic()), 1)
        env = dict(os.environ, SOAK_PER_THREAD=str(requests), SOAK_DONE_FILE=marker)
        wrk = procs.start(pinned(1) + ["wrk", "-t1", f"-c{min(WRK_CONNECTIONS, requests)}", f"-d{dur}s",
                                       "--timeout", "10s", "-s", lua_path, f"http://127.0.0.1:{port}/"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    clients = []
    per = [connections // CLIENT_PROCS + (1 if i < connections % CLIENT_PROCS else 0) for i in range(CLIENT_PROCS)]
    for i, n in enumerate(per):
        if n:
            clients.append(procs.start(
                pinned(1) + [sys.executable, os.path.abspath(__file__), "--client", str(port), str(n),
                             str(seed * 100 + i), str(CLIENT_CONCURRENCY), str(deadline)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out: dict = {"clients": collections.Counter(), "wrk": {}}
    wrk_seconds = None
    # Wait for both loads together, so wrk's rate is over its own run.
    while time.monotonic() < deadline:
        if wrk is not None and wrk_seconds is None and (os.path.exists(marker) or wrk.poll() is not None):
            wrk_seconds = time.monotonic() - t0
            if wrk.poll() is None:
                wrk.send_signal(signal.SIGINT)  # wrk's own PID (taskset execs it)
        if all(c.poll() is not None for c in clients) and (wrk is None or wrk_seconds is not None):
            break
        time.sleep(0.05)
    for c in clients:
        if c.poll() is None:
            c.send_signal(signal.SIGTERM)  # past the deadline
        stdout, stderr = c.communicate(timeout=30)
        if c.returncode != 0 or not stdout.strip():
            print(f"soak: a client process failed ({c.returncode}): {stderr[-2000:]}", file=sys.stderr)
            out["clients"]["client process FAILED or killed at the deadline"] += 1
            continue
        out["clients"].update(json.loads(stdout.strip().splitlines()[-1]))
    if wrk is not None:
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)
        text, _ = wrk.communicate(timeout=30)
        out["wrk"] = parse_wrk(text)
        if wrk_seconds:
            out["wrk"]["rps"] = out["wrk"].get("requests", 0) / wrk_seconds
    out["seconds"] = time.monotonic() - t0
    return out


def parse_wrk(text: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
    res = {"raw": text}
    if m:
        res["requests"] = int(m.group(1))
        res["seconds"] = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    res["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return res


def log_levels(path: str) -> tuple[collections.Counter, list[str]]:
    """Lines per level, plus "write timeout" (cuts of stalled readers) and "client gone"
    (other disconnects seen mid-request); and the lines at WARNING or above."""
    levels: collections.Counter = collections.Counter()
    bad: list[str] = []
    with open(path, errors="replace") as f:
        for line in f:
            level = line.split(" ", 1)[0]
            if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                levels[level] += 1
                if "went away" in line:
                    levels["write timeout" if "write timeout" in line else "client gone"] += 1
                if level in ("WARNING", "ERROR", "CRITICAL"):
                    bad.append(line.rstrip())
            elif not line.startswith(("Traceback", "  ")):
                bad.append(line.rstrip())  # something not from logging (a crash on stderr?)
    return levels, bad


def within(a: float, b: float) -> bool:
    return abs(b - a) <= TOLERANCE * a


def main() -> int:
    requests = int(os.environ.get("SOAK_REQUESTS", "1000000"))
    connections = int(os.environ.get("SOAK_CONNECTIONS", "100000"))
    segments = max(1, int(os.environ.get("SOAK_SEGMENTS", "4")))
    max_seconds = float(os.environ.get("SOAK_MAX_SECONDS", "1800"))
    if not shutil.which("wrk"):
        print("soak: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + max_seconds
    tmp = tempfile.mkdtemp(prefix="lichen-soak-")
    log_path = os.path.join(tmp, "server.log")
    lua_path = os.path.join(tmp, "count.lua")
    with open(lua_path, "w") as f:
        f.write(WRK_LUA)
    procs = Procs()
    started = datetime.datetime.now()
    warm_req = max(requests // 10, 1000) if requests else 0
    warm_conn = max(connections // 10, 200) if connections else 0
    checkpoints: list[tuple[str, int, int, int]] = []  # (when, RSS KiB, fds, connections left)
    clients: collections.Counter = collections.Counter()  # outcomes of the main run
    warm_wrong: dict = {}
    warm_stalled = 0
    wrk_total = collections.Counter()
    wrk_seconds = 0.0
    main_seconds = 0.0
    try:
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
        server = procs.start(pinned(0) + [sys.executable, "-c", SERVER, log_path, str(BIG), str(WRITE_TIMEOUT)],
                             stdout=subprocess.PIPE, text=True, env=env)
        port = int(server.stdout.readline())
        print(f"soak: server pid {server.pid} on 127.0.0.1:{port}; warm-up {warm_req} requests + {warm_conn} "
              f"connections", file=sys.stderr)
        warm = run_phase(procs, port, warm_req, warm_conn, 1, deadline, lua_path)
        warm_wrong = {f"warm-up {k}": v for k, v in warm["clients"].items() if _unexpected(k)}
        warm_stalled = warm["clients"]["stalled_reader ok"]
        left = wait_quiet(port, 30)
        checkpoints.append(("after warm-up", rss_kib(server.pid), fd_count(server.pid), left))
        print(f"soak: {checkpoints[-1]}", file=sys.stderr)
        # The main run in segments, with a reading after each: a leak shows as a steady climb.
        for k in range(segments):
            r = requests * (k + 1) // segments - requests * k // segments
            c = connections * (k + 1) // segments - connections * k // segments
            res = run_phase(procs, port, r, c, 2 + k, deadline, lua_path)
            clients.update(res["clients"])
            w = res["wrk"]
            wrk_total.update({x: w.get(x, 0) for x in ("requests", "non2xx", "socket_errors")})
            wrk_seconds += w.get("requests", 0) / w["rps"] if w.get("rps") else 0.0
            main_seconds += res["seconds"]
            left = wait_quiet(port, 30)
            checkpoints.append((f"after {100 * (k + 1) // segments}%", rss_kib(server.pid), fd_count(server.pid),
                                left))
            print(f"soak: {checkpoints[-1]}", file=sys.stderr)
            if time.monotonic() > deadline:
                break
        alive = server.poll() is None
    finally:
        procs.stop_all()
    levels, bad_lines = log_levels(log_path)
    finished = datetime.datetime.now()

    _, rss0, fds0, _ = checkpoints[0]
    _, rss1, fds1, _ = checkpoints[-1]
    wrong = {**warm_wrong, **{k: v for k, v in clients.items() if _unexpected(k)}}
    done = sum(v for k, v in clients.items() if k != "unfinished")
    wrk_bad = wrk_total["non2xx"] + wrk_total["socket_errors"]
    stalled = warm_stalled + clients["stalled_reader ok"]
    checks = {
        f"server RSS at the end within {TOLERANCE:.0%} of after warm-up": within(rss0, rss1),
        f"open fds at the end within {TOLERANCE:.0%} of after warm-up": within(fds0, fds1),
        "no server log line at WARNING or above": not bad_lines,
        "every stalled reader cut at the write timeout": levels["write timeout"] >= stalled,
        "every request that should succeed did (wrk and good/slow clients)": not wrong and not wrk_bad,
        "all keep-alive requests and short connections done": (
            wrk_total["requests"] >= requests and done >= connections),
        "no connection left open at any reading": all(c[3] == 0 for c in checkpoints),
        "server still running": alive,
    }
    ok = all(checks.values())
    lines = [
        f"# lichen soak, {started:%Y-%m-%d %H:%M}",
        "",
        f"- {requests:,} keep-alive requests (wrk, {WRK_CONNECTIONS} connections) + {connections:,} short "
        f"connections ({CLIENT_PROCS} client processes x {CLIENT_CONCURRENCY} greenlets) at the same time, "
        f"in {segments} segments, after a warm-up of {warm_req:,} + {warm_conn:,}",
        f"- Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; server "
        f"{'pinned to CPU 0' if pinned(0) else 'not pinned'}, load {'pinned to CPU 1' if pinned(1) else 'not pinned'}"
        f"; server write_timeout {WRITE_TIMEOUT} s",
        f"- main run {main_seconds:.0f} s, wrk {wrk_total['requests'] / wrk_seconds if wrk_seconds else 0:,.0f} "
        f"req/s alongside the abusive clients; whole soak {(finished - started).total_seconds():.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f}",
        "",
        "| reading (server idle) | RSS | change | open fds | change |",
        "|---|---|---|---|---|",
    ]
    for when, rss, fds, _ in checkpoints:
        lines.append(f"| {when} | {rss:,} KiB | {100 * (rss - rss0) / rss0:+.1f}% | {fds} | "
                     f"{100 * (fds - fds0) / fds0:+.1f}% |")
    lines += [
        "",
        "Server log lines by level: " + (", ".join(f"{k} {levels[k]:,}" for k in LEVELS if levels[k]) or "none")
        + f"; of the DEBUG lines, {levels['client gone']:,} are clients gone mid-request and "
        f"{levels['write timeout']:,} are stalled readers cut at the write timeout ({stalled:,} were sent). "
        "INFO lines are rejected bad requests and 408s.",
        "",
        f"Short connections of the main run ({done:,}), by kind and outcome:",
        "",
    ]
    lines += [f"- {k}: {v:,}" for k, v in sorted(clients.items())]
    lines += ["", f"wrk (main run): {wrk_total['requests']:,} requests, {wrk_total['non2xx']} non-2xx, "
                  f"{wrk_total['socket_errors']} socket errors", "", "Checks:", ""]
    lines += [f"- {'PASS' if v else 'FAIL'}: {k}" for k, v in checks.items()]
    if bad_lines:
        lines += ["", f"Server log lines at WARNING or above ({len(bad_lines)}, first 10):", "", "```",
                  *bad_lines[:10], "```"]
    if wrong:
        lines += ["", f"Unexpected client outcomes (warm-up included): {wrong}"]
    lines += ["", f"Result: {'PASS' if ok else 'FAIL'}", ""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f"soak-{started:%Y-%m-%d}.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"written to {os.path.relpath(out, ROOT)}; server log kept in {log_path}", file=sys.stderr)
    return 0 if ok else 1


def _unexpected(outcome: str) -> bool:
    return any(w in outcome for w in ("WRONG", "FAILED", "connect failed", "unfinished"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        ap = argparse.ArgumentParser()
        ap.add_argument("--client", type=int, dest="port")
        ap.add_argument("count", type=int)
        ap.add_argument("seed", type=int)
        ap.add_argument("concurrency", type=int)
        ap.add_argument("deadline_wall", type=float)
        a = ap.parse_args()
        client_main(a.port, a.count, a.seed, a.concurrency, a.deadline_wall)
    else:
        sys.exit(main())
