# WSGIServer under load and during shutdown: 1000 concurrent keep-alive
# clients, 5000 idle connections held while new requests stay fast, graceful
# stop(timeout) with requests in flight, and the max_connections cap.
# Strategy: the server runs in its own thread and hub; the concurrent
# clients are greenlets of a second thread with its own hub (so they never
# share the server's loop); mass connections close with SO_LINGER 0 so no
# TIME_WAIT ports pile up across runs. The fd limit is raised to the hard
# limit for the module.
from __future__ import annotations

import resource
import socket
import struct
import threading
import time

import pytest

from lichen import hub as lhub
from lichen import socket as lsocket
from wsgi_helpers import Client, ServerThread, get, hello_app, wait_until

LINGER_0 = struct.pack("ii", 1, 0)


@pytest.fixture(scope="module", autouse=True)
def raised_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12000:
        pytest.skip(f"needs ~12000 file descriptors, the hard limit is {hard}")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def run_in_client_thread(fn, timeout: float = 60.0):
    """Run fn() in a fresh thread (own hub) and return its result."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised in the test thread
            out["error"] = e

    t = threading.Thread(target=target, name="greenlet-clients", daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "client thread did not finish"
    if "error" in out:
        raise out["error"]
    return out["value"]


def read_cl_response(sock, buf: bytearray) -> tuple[int, bytes]:
    """(status, body) of one Content-Length response from a lichen socket."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the head")
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end]).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    length = 0
    for line in head.split("\r\n")[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    while len(buf) < end + length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed in the body")
        buf += data
    body = bytes(buf[end:end + length])
    del buf[:end + length]
    return status, body


def test_1000_concurrent_keep_alive_clients_all_get_correct_responses():
    def app(environ, start_response):
        lhub.sleep(0.001 * (hash(environ["PATH_INFO"]) % 5))  # interleave the requests
        body = environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    n, per_client = 1000, 3
    with ServerThread(app) as srv:
        def clients():
            failures = []

            def one(i):
                s = lsocket.create_connection(srv.address, timeout=20)
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                    buf = bytearray()
                    for j in range(per_client):
                        path = f"/c{i}/r{j}"
                        s.sendall(get(path))
                        status, body = read_cl_response(s, buf)
                        if status != 200 or body != path.encode():
                            failures.append((i, j, status, body))
                except Exception as e:
                    failures.append((i, repr(e)))
                finally:
                    s.close()

            greenlets = [lhub.spawn(one, i) for i in range(n)]
            lhub.joinall(greenlets, timeout=50)
            assert all(g.ready() for g in greenlets)
            return failures

        start = time.monotonic()
        failures = run_in_client_thread(clients)
        elapsed = time.monotonic() - start
        assert failures == []
        assert elapsed < 30
        wait_until(lambda: srv.call(lambda: len(srv.server.connections)) == 0)


def test_5000_idle_connections_are_held_while_new_requests_are_answered_promptly():
    n, batch = 5000, 500
    socks: list[socket.socket] = []
    with ServerThread(hello_app) as srv:
        try:
            for start in range(0, n, batch):
                group = []
                for _ in range(batch):
                    s = socket.create_connection(srv.address, timeout=10)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                    s.sendall(get("/idle"))
                    group.append(s)
                for s in group:  # each made one request and is now an idle keep-alive connection
                    data = s.recv(4096)
                    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"hello /idle"), data
                socks += group

            def state():
                srv_ = srv.server
                busy = sum(1 for c in srv_.connections if c.worker is not None or c.busy)
                return len(srv_.connections), len(srv_.idle), busy, srv_.idle_workers

            conns, idle, busy, free = srv.call(state)
            assert conns == n and idle == n
            assert busy == 0  # an idle connection holds no greenlet (and, by design, no parser)
            assert free <= 128

            worst = 0.0
            for i in range(20):
                t0 = time.monotonic()
                with srv.connect() as c:
                    c.send(get(f"/new{i}"))
                    assert c.read_response().body == f"hello /new{i}".encode()
                worst = max(worst, time.monotonic() - t0)
            assert worst < 0.5, worst
            # And the idle ones still work.
            for s in socks[:: n // 10]:
                s.sendall(get("/again"))
                assert s.recv(4096).endswith(b"hello /again")
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: srv.call(lambda: len(srv.server.connections)) == 0, timeout=10)


# Graceful stop ------------------------------------------------------------------------------
def slow_app(environ, start_response):
    delay = float(environ["QUERY_STRING"] or 0)
    lhub.sleep(delay)
    body = b"done " + environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_graceful_stop_finishes_in_flight_requests_and_closes_idle_connections_at_once():
    srv = ServerThread(slow_app).start()
    idle, busy = [], []
    try:
        for i in range(10):
            c = srv.connect()
            c.send(get(f"/idle{i}"))
            assert c.read_response().status == 200
            idle.append(c)
        for i in range(20):
            c = srv.connect()
            c.send(get(f"/busy{i}?0.5"))
            busy.append(c)
        wait_until(lambda: srv.call(lambda: sum(1 for c in srv.server.connections if c.worker is not None)) == 20)

        t0 = time.monotonic()
        srv.stop_async(timeout=10)
        for c in idle:
            assert c.is_closed(timeout=0.3)  # idle connections are closed at once
        with pytest.raises(OSError):  # no longer accepting
            Client.connect(srv.address, timeout=1).close()
        failed = 0
        for i, c in enumerate(busy):
            r = c.read_response()
            if r.status != 200 or r.body != f"done /busy{i}".encode():
                failed += 1
            assert r.header("connection") == "close"
            assert c.is_closed()
        assert failed == 0
        srv.join()
        # stop() returned when the work was done, not at its 10 s deadline.
        assert srv.stop_returned_at - t0 < 3
    finally:
        for c in idle + busy:
            c.close()
        srv.stop()


def test_graceful_stop_closes_what_remains_at_the_deadline_and_not_before():
    srv = ServerThread(slow_app).start()
    try:
        c = srv.connect()
        c.send(get("/long?5"))
        wait_until(lambda: srv.call(lambda: sum(1 for x in srv.server.connections if x.worker is not None)) == 1)
        t0 = time.monotonic()
        srv.stop_async(timeout=0.5)
        assert c.read_until_close() == b""
        elapsed = time.monotonic() - t0
        assert 0.45 <= elapsed < 2.0, elapsed
        srv.join()
        c.close()
    finally:
        srv.stop()


def test_stop_answers_a_request_arriving_on_a_busy_connection_with_connection_close():
    srv = ServerThread(slow_app).start()
    try:
        c = srv.connect()
        c.send(get("/first?0.3") + get("/second"))
        wait_until(lambda: srv.call(lambda: sum(1 for x in srv.server.connections if x.worker is not None)) == 1)
        srv.stop_async(timeout=5)
        r = c.read_response()
        assert r.body == b"done /first" and r.header("connection") == "close"
        assert c.read_until_close() == b""  # the pipelined second request is not started
        srv.join()
        c.close()
    finally:
        srv.stop()


# The connection cap ---------------------------------------------------------------------------
def test_max_connections_pauses_accepting_without_busy_loop_and_resumes():
    with ServerThread(hello_app, max_connections=5) as srv:
        held = []
        try:
            for i in range(5):
                c = srv.connect()
                c.send(get(f"/{i}"))
                assert c.read_response().status == 200
                held.append(c)
            extra = srv.connect()  # completes in the kernel backlog, not accepted
            held.append(extra)
            extra.send(get("/extra"))
            cpu0 = srv.call(time.thread_time)
            assert extra.is_closed(timeout=0.5) is False and extra.buf == b""  # no answer yet
            cpu = srv.call(time.thread_time) - cpu0
            assert cpu < 0.1, f"server thread burned {cpu:.3f} s of CPU while at the cap"
            held[0].close()  # frees a slot
            assert extra.read_response().body == b"hello /extra"
        finally:
            for c in held:
                c.close()


# Memory of idle connections -------------------------------------------------------------------
MEMORY_SERVER = r"""
import gc, sys, threading
from lichen import hub
from lichen.wsgi import WSGIServer

def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]

server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
h = hub.get_hub()

def report():
    gc.collect()
    rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS"))
    busy = sum(1 for c in server.connections if c.worker is not None or c.busy)
    print("RSS", rss, len(server.idle), busy, flush=True)

def commands():
    for _ in sys.stdin:
        h.call_soon_threadsafe(report)
    h.call_soon_threadsafe(hub.spawn, server.stop, 0)

threading.Thread(target=commands, daemon=True).start()
print("PORT", server.server_port, flush=True)
server.serve_forever()
"""


def test_an_idle_keep_alive_connection_costs_less_than_1_5_kib():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", MEMORY_SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    socks: list[socket.socket] = []

    def rss() -> tuple[int, int, int]:
        proc.stdin.write("rss\n")
        proc.stdin.flush()
        _, kib, idle, busy = proc.stdout.readline().split()
        return int(kib), int(idle), int(busy)

    def open_idle(n: int) -> None:
        for start in range(0, n, 500):
            group = []
            for _ in range(500):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                s.sendall(get("/"))
                group.append(s)
            for s in group:
                assert s.recv(4096).endswith(b"ok")
            socks.extend(group)

    try:
        port = int(proc.stdout.readline().split()[1])
        open_idle(1000)  # warm up: free lists, dict growth, allocator arenas
        time.sleep(0.1)
        before, idle, _ = rss()
        assert idle == 1000
        open_idle(4000)
        time.sleep(0.1)
        after, idle, busy = rss()
        assert idle == 5000
        assert busy == 0  # no greenlet and no parser held while idle
        per_conn = (after - before) / 4000
        assert per_conn < 1.5, f"{per_conn:.2f} KiB per idle connection"
    finally:
        for s in socks:
            s.close()
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def locals_of_a_parked_request(request_bytes: bytes) -> list:
    """(frame name, value) for every local of the frames below an app that
    waits in the request (a long-poll), seen while it waits; the request
    is then let go and must still be answered."""
    from lichen.sync import Event

    parked: dict = {}
    release = Event()

    def app(environ, start_response):
        parked["glet"] = lhub.getcurrent()
        release.wait(5)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    def held():
        found, frame = [], parked["glet"].gr_frame
        while frame is not None:
            found += [(frame.f_code.co_name, value) for value in frame.f_locals.values()]
            frame = frame.f_back
        return found

    with ServerThread(app) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            s.sendall(request_bytes)
            wait_until(lambda: "glet" in parked)
            found = srv.call(held)
            srv.call(release.set)
            assert s.recv(4096).endswith(b"ok")
    return found


def requests_among(found: list) -> list:
    """The Request objects among the `found` locals, held directly or
    through an Exchange."""
    from lichen.http import Request

    requests = [v for _, v in found if isinstance(v, Request)]
    return requests + [v.request for _, v in found if isinstance(getattr(v, "request", None), Request)]


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",  # the C fast lane's
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",  # the parser's
], ids=["fast-lane", "parser"])
def test_a_request_waiting_in_the_app_holds_no_view_of_the_shared_buffer_and_no_second_copy_of_its_fields(
        request_bytes):
    # What stays alive while an app waits (long-poll) is paid per request:
    # the frames below the app must not pin the server's receive buffer,
    # and the header fields live on in the environ alone.
    found = locals_of_a_parked_request(request_bytes)
    views = [name for name, value in found if isinstance(value, memoryview)]
    requests = requests_among(found)
    assert views == [] and requests and all(r.headers == [] for r in requests)


@pytest.mark.parametrize("request_bytes", [
    b"GET /poll?cursor=%s HTTP/1.1\r\nHost: x\r\n\r\n",  # the C fast lane's
    b"POST /poll?cursor=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # the parser's
], ids=["fast-lane", "parser"])
def test_a_request_waiting_in_the_app_holds_its_target_in_the_environ_alone(request_bytes):
    # A long-poll URL (a cursor, a token) is paid for per waiting request:
    # once the environ has it, the request head below the app keeps no
    # second copy of the target, its path or its query.
    cursor = b"c" * 2000
    found = locals_of_a_parked_request(request_bytes % cursor)
    requests = requests_among(found)
    held = [(name, len(value)) for name, value in found if isinstance(value, (bytes, str)) and cursor in
            (value if isinstance(value, bytes) else value.encode("latin-1"))]
    assert requests and held == []
    assert all(cursor not in r.target + r.path + r.query for r in requests)


def test_a_plain_request_waiting_in_the_app_holds_no_exchange_object():
    # The common request (fast lane, no body, no handler class) is served
    # without an Exchange: a long-poll parks one object fewer per request.
    from lichen.wsgi.exchange import Exchange

    found = locals_of_a_parked_request(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [name for name, value in found if isinstance(value, Exchange)] == []
