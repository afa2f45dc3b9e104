# Instructions per request, counted by callgrind: a measure of the server's
# hot path that the machine's noise cannot move.
#
# Strategy: a lichen server runs under `valgrind --tool=callgrind` and stops
# itself after exactly N requests, sent by a plain client process over one
# keep-alive connection (a wrk-like head; or a 16 KiB POST). The whole
# process is counted twice, with N1 and N2 requests: start-up and shutdown
# cancel out in the difference, which divided by N2 - N1 is the cost of one
# request. Repeating a run gives the same count to within about 0.1 % (the
# hash seed is fixed: with a random one, counts vary by up to 3 %).
#
#   python benchmarks/callgrind.py            # every scenario (GET, 16 KiB POST, both on Flask)
#   python benchmarks/callgrind.py get        # one scenario
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GET = (b"GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n"
       b"Accept: text/plain,text/html;q=0.9\r\nConnection: keep-alive\r\n\r\n")
BODY = b"p" * 16384
POST = (b"POST /upload HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
# name: (request, app): "hello" is a bare WSGI callable, "flask" the same
# answer from a Flask view (Flask's Response, a ClosingIterator, its headers).
# "varying" sends a different ETag and cookie each time (the head cache
# cannot hold it); "iter" answers with an iterable that has close(), as
# frameworks do, instead of a list.
SCENARIOS = {"get": (GET, "hello"), "post16k": (POST, "hello"), "varying": (GET, "varying"),
             "iter": (GET, "iter"), "flask": (GET, "flask"), "flaskpost16k": (POST, "flask")}
N1, N2 = 2000, 6000

SERVER = r"""
import sys
from lichen import WSGIServer, spawn
n = int(sys.argv[1]); port_file = sys.argv[2]; kind = sys.argv[3]
served = 0

def count():
    global served
    served += 1
    if served == n:
        spawn(server.stop, 1)

def hello(environ, start_response):
    inp = environ["wsgi.input"]
    if environ["REQUEST_METHOD"] == "POST":
        inp.read()
    count()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]

if kind == "flask":
    from flask import Flask, request
    app = Flask("bench")

    @app.route("/plaintext")
    def plaintext():
        count()
        return "Hello, World!", 200, {"Content-Type": "text/plain"}

    @app.route("/upload", methods=["POST"])
    def upload():
        request.get_data()
        count()
        return "Hello, World!", 200, {"Content-Type": "text/plain"}
elif kind == "varying":
    def app(environ, start_response):
        count()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13"),
                                  ("ETag", '"%d"' % served), ("Set-Cookie", "s=%d; HttpOnly; Path=/" % served)])
        return [b"Hello, World!"]
elif kind == "iter":
    class Body:
        def __init__(self, chunks):
            self._it = iter(chunks)
        def __iter__(self):
            return self
        def __next__(self):
            return next(self._it)
        def close(self):
            pass

    def app(environ, start_response):
        count()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return Body([b"Hello, World!"])
else:
    app = hello
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
open(port_file, "w").write(str(server.server_port))
server.serve_forever()
"""


def client(port: int, request: bytes, n: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            s.sendall(request)
            got = b""
            while not got.endswith(b"Hello, World!"):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed early")
                got += chunk


def count(request: bytes, kind: str, n: int, python: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                 python, "-c", SERVER, str(n), port_file, kind],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                # A fixed hash seed: dict and set layouts, and so the count, repeat.
                                env=dict(os.environ, PYTHONHASHSEED="0"))
        try:
            deadline = time.monotonic() + 120
            while not (os.path.exists(port_file) and open(port_file).read()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
            client(int(open(port_file).read()), request, n)
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        m = re.search(rb"Collected : (\d+)", err)
        if m is None:
            raise RuntimeError(f"no callgrind total in: {err.decode()[-2000:]}")
        return int(m.group(1))


def per_request(name: str, python: str = sys.executable) -> float:
    request, kind = SCENARIOS[name]
    return (count(request, kind, N2, python) - count(request, kind, N1, python)) / (N2 - N1)


def main(argv: list[str]) -> None:
    names = argv or list(SCENARIOS)
    for name in names:
        print(f"{name}: {per_request(name):,.0f} instructions per request", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
