# Fault tests of WSGIServer: what the server does when things go wrong
# around it — file descriptors run out, a client stops reading, the
# application misbehaves (close() raising, non-iterable or str bodies, a
# second start_response, a generator failing or never finishing), clients
# vanish at every stage of a request, a flood of garbage connections, and
# parked worker greenlets holding on to connections they served.
# Each test checks one behaviour and, where it matters, that the server goes
# on serving good requests afterwards without leaking fds, connections or
# greenlets. Behaviours already pinned elsewhere are not repeated: the
# EMFILE log-once/back-off/recovery cycle (test_server.py), the write
# timeout cut itself (test_wsgi_timeouts.py), and the basic app error cases
# (test_wsgi_driver_app.py); the tests here extend them.
# Strategy: servers run in a background thread (wsgi_helpers.ServerThread)
# or, for the fd limit, in a subprocess driven over stdin/stdout; clients
# are blocking stdlib sockets.
from __future__ import annotations

import gc
import logging
import os
import random
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from greenlet import greenlet

from lichen import hub as lhub
from wsgi_helpers import TIMEOUT, Client, ServerThread, get, hello_app, wait_until

LINGER_0 = struct.pack("ii", 1, 0)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="lichen")
    return caplog


def records(caplog, level=logging.ERROR, name="lichen.error"):
    return [r for r in caplog.records if r.name == name and r.levelno >= level]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead)


def connections(srv: ServerThread) -> int:
    return srv.call(lambda: len(srv.server.connections))


def settle(srv: ServerThread) -> None:
    """Wait until the server holds no connection (all fds closed)."""
    wait_until(lambda: connections(srv) == 0)


def serves(srv: ServerThread, path: str = "/ok") -> bool:
    """A fresh connection still gets a correct answer."""
    return srv.request(get(path)).body == b"hello " + path.encode()


def rst_close(sock: socket.socket) -> None:
    """Close with a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    sock.close()


def busy_greenlets(srv: ServerThread) -> int:
    """Live greenlets, not counting the server's parked free workers (a
    bounded cache that grows with the peak of concurrent requests)."""
    gc.collect()
    return live_greenlets() - srv.call(lambda: srv.server.idle_workers)


class Snapshot:
    """fds of this process, server connections and live greenlets; the
    server runs in this process, so its fds are counted too."""

    def __init__(self, srv: ServerThread) -> None:
        settle(srv)
        self.fds, self.greenlets = fd_count(), busy_greenlets(srv)

    def assert_no_leak(self, srv: ServerThread) -> None:
        settle(srv)
        wait_until(lambda: fd_count() <= self.fds)
        assert busy_greenlets(srv) <= self.greenlets, (busy_greenlets(srv), self.greenlets)


# Running out of file descriptors -----------------------------------------------------------
# The child lowers RLIMIT_NOFILE (to 64 or just above what it uses) and fills
# every free slot with /dev/null "ballast" on FILL, so accept() fails with
# EMFILE; FREE closes the ballast again. Commands come over stdin, handled by
# a thread (touching no fds); the log goes to stdout.
EMFILE_CHILD = textwrap.dedent("""
    import logging, os, resource, sys, threading
    from lichen import hub
    from lichen.wsgi import WSGIServer

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="LOG %(levelname)s %(name)s %(message)s")

    def app(environ, start_response):
        body = b"hello " + environ["PATH_INFO"].encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = WSGIServer(("127.0.0.1", 0), app, log=None, accept_backoff=0.05)
    server.start()
    h = hub.get_hub()
    limit = max(64, len(os.listdir("/proc/self/fd")) + 16)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print("PORT", server.server_port, flush=True)
    ballast = []

    def commands():
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "FILL":
                try:
                    while True:
                        ballast.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    pass
                print("FILLED", len(ballast), flush=True)
            elif cmd == "FREE":
                while ballast:
                    os.close(ballast.pop())
                print("FREED", flush=True)
            elif cmd == "STOP":
                h.call_soon_threadsafe(hub.spawn, server.stop, 1)
                return

    threading.Thread(target=commands, daemon=True).start()
    server.serve_forever()
    print("STOPPED", flush=True)
""")


class Child:
    def __init__(self, script: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float = 10.0) -> str:
        """The next stdout line starting with `prefix` (others are kept)."""
        import select

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not r:
                break
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line from the child; got:\n{''.join(self.lines)}")

    def output(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def test_out_of_fds_keeps_serving_existing_keep_alive_connections_and_serves_the_queued_ones_once_fds_free():
    child = Child(EMFILE_CHILD)
    kept: list[Client] = []
    queued: list[Client] = []
    try:
        port = int(child.expect("PORT").split()[1])
        kept = [Client.connect(("127.0.0.1", port)) for _ in range(3)]
        for i, c in enumerate(kept):
            c.send(get(f"/k{i}"))
            assert c.read_response().body == f"hello /k{i}".encode()
        child.send("FILL")
        assert int(child.expect("FILLED").split()[1]) > 0
        # New connections complete in the kernel's backlog but are not
        # accepted: their requests stay unanswered while fds are out.
        for i in range(4):
            c = Client.connect(("127.0.0.1", port))
            c.send(get(f"/q{i}"))
            queued.append(c)
        # Meanwhile the existing keep-alive connections are served, promptly,
        # for longer than several back-off rounds.
        t_end = time.monotonic() + 1.5
        rounds = 0
        while time.monotonic() < t_end:
            for i, c in enumerate(kept):
                t0 = time.monotonic()
                c.send(get(f"/k{i}"))
                assert c.read_response().body == f"hello /k{i}".encode()
                assert time.monotonic() - t0 < 0.5
            rounds += 1
            time.sleep(0.05)
        assert rounds >= 5
        for c in queued:
            c.sock.settimeout(0.05)
            with pytest.raises(socket.timeout):
                c.sock.recv(1)
            c.sock.settimeout(TIMEOUT)
        child.send("FREE")
        child.expect("FREED")
        for i, c in enumerate(queued):
            assert c.read_response().body == f"hello /q{i}".encode()
        child.expect("LOG WARNING lichen.error accept() works again")
        # And brand-new connections are accepted again.
        with Client.connect(("127.0.0.1", port)) as c:
            c.send(get("/new"))
            assert c.read_response().body == b"hello /new"
        for c in kept + queued:
            c.close()
        child.send("STOP")
        child.expect("STOPPED")
    finally:
        for c in kept + queued:
            c.close()
        child.close()
    out = child.output()
    # Many accept attempts failed during the episode; one line said so.
    assert out.count("accept() failed") == 1, out
    assert out.count("accept() works again") == 1, out
    assert "LOG ERROR" not in out.replace("LOG ERROR lichen.error accept() failed", ""), out


# A client that stops reading ---------------------------------------------------------------
def test_server_keeps_serving_others_while_and_after_a_client_that_stopped_reading_is_cut(logs):
    cut = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/big":
            return hello_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():
            try:
                while True:
                    yield b"x" * 65536
            finally:
                cut.set()
        return body()

    with ServerThread(app, write_timeout=0.5) as srv:
        before = Snapshot(srv)
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        stuck.settimeout(TIMEOUT)
        stuck.connect(srv.address)
        try:
            stuck.sendall(get("/big"))
            t0 = time.monotonic()
            with srv.connect() as other:  # a keep-alive neighbour, served during the stall
                while not cut.is_set():
                    t1 = time.monotonic()
                    other.send(get("/other"))
                    assert other.read_response().body == b"hello /other"
                    assert time.monotonic() - t1 < 0.3
                    time.sleep(0.05)
                    assert time.monotonic() - t0 < 4, "the stuck client was never cut"
            assert 0.4 < time.monotonic() - t0
            assert serves(srv)
        finally:
            stuck.close()
        before.assert_no_leak(srv)
    assert not records(logs, logging.WARNING)


# The application misbehaving ---------------------------------------------------------------
def test_close_raising_after_a_streamed_response_leaves_it_complete_logged_and_the_server_serving(logs):
    class Body:
        def __iter__(self):
            yield b"part1,"
            yield b"part2"

        def close(self):
            raise RuntimeError("close exploded")

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            return hello_app(environ, start_response)
        start_response("200 OK", [])
        return Body()

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/stream"))
        r = c.read_response()  # chunked, up to and including the last chunk
        assert r.chunked and r.body == b"part1,part2"
        assert c.is_closed()
        assert serves(srv)
    errs = records(logs)
    assert len(errs) == 1 and "close exploded" in str(errs[0].exc_info[1])


def test_close_raising_after_the_app_failed_still_answers_500_and_logs_both(logs):
    class Body:
        def __iter__(self):
            raise ValueError("iteration failed")

        def close(self):
            raise RuntimeError("close failed too")

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            return hello_app(environ, start_response)
        start_response("200 OK", [])
        return Body()

    with ServerThread(app) as srv:
        assert srv.request(get("/bad")).status == 500
        assert serves(srv)
    messages = {str(r.exc_info[1]) for r in records(logs) if r.exc_info}
    assert messages == {"iteration failed", "close failed too"}


NON_ITERABLES = {"none": None, "int": 42, "object": object()}


@pytest.mark.parametrize("result", NON_ITERABLES.values(), ids=NON_ITERABLES.keys())
def test_app_returning_a_non_iterable_is_500_with_a_log_line(logs, result):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            return hello_app(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return result

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/bad"))
        r = c.read_response()
        assert r.status == 500
        assert c.is_closed()
        assert serves(srv)
    assert len(records(logs)) == 1


# Common mistakes whose items are not bytes: a bare str (iterates as str),
# bytes (iterates as ints) or a generator of str.
def _bare_str(environ, start_response):
    start_response("200 OK", [])
    return "hello"


def _bare_bytes(environ, start_response):
    start_response("200 OK", [])
    return b"hello"


def _str_generator(environ, start_response):
    start_response("200 OK", [])
    yield "hello"


@pytest.mark.parametrize("app", [_bare_str, _bare_bytes, _str_generator], ids=["str", "bytes", "str-generator"])
def test_app_body_of_non_bytes_items_is_500_with_a_log_line(logs, app):
    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/"))
        assert c.read_response().status == 500
        assert c.is_closed()
    errs = records(logs)
    assert len(errs) == 1 and "bytes" in str(errs[0].exc_info[1])


def test_str_item_after_the_first_chunk_cuts_the_response_without_last_chunk_and_logs(logs):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            yield from hello_app(environ, start_response)
            return
        start_response("200 OK", [])
        yield b"good"
        yield "bad"

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/"))
        raw = c.read_until_close()
        assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"4\r\ngood\r\n")
        assert serves(srv)
    assert len(records(logs)) == 1


def test_start_response_again_without_exc_info_after_the_body_started_closes_and_logs(logs):
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"started")
        start_response("500 Oops", [])
        return [b"never"]

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        raw = c.read_until_close()
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b"7\r\nstarted\r\n")
    assert raw.count(b"HTTP/1.1") == 1  # the pipelined request is not served on a broken connection
    errs = records(logs)
    assert len(errs) == 1 and "already called" in str(errs[0].exc_info[1])


def test_generator_raising_after_the_first_chunk_closes_without_last_chunk_and_logs(logs):
    closed = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/ok":
            yield from hello_app(environ, start_response)
            return
        start_response("200 OK", [])
        try:
            yield b"first"
            raise ValueError("generator broke")
        finally:
            closed.set()

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/gen"))
        raw = c.read_until_close()
        assert raw.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in raw
        assert raw.endswith(b"5\r\nfirst\r\n")  # no "0\r\n\r\n": the client sees the body is incomplete
        assert closed.is_set()
        assert serves(srv)
    errs = records(logs)
    assert len(errs) == 1 and "generator broke" in str(errs[0].exc_info[1])


def test_response_generator_that_never_finishes_still_ends_at_stop_timeout():
    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            while True:
                yield b"tick"
                lhub.sleep(0.01)
        finally:
            closed.set()

    srv = ServerThread(app).start()
    try:
        c = srv.connect()
        c.send(get("/"))
        assert c.read_head().status == 200
        t0 = time.monotonic()
        srv.stop_async(timeout=0.5)
        c.read_until_close()  # returns when the server closes the connection
        elapsed = time.monotonic() - t0
        assert 0.45 <= elapsed < 2.0, elapsed
        srv.join()
        assert closed.wait(2), "the generator was not closed"
        c.close()
    finally:
        srv.stop()


# Clients vanishing -------------------------------------------------------------------------
def _body_reader(environ, start_response):
    if environ["PATH_INFO"] == "/ok":
        return hello_app(environ, start_response)
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def _big_streamer(environ, start_response):
    if environ["PATH_INFO"] == "/ok":
        return hello_app(environ, start_response)
    start_response("200 OK", [])
    return (b"y" * 65536 for _ in range(200))


def _disconnect_mid_body(srv: ServerThread, rst: bool) -> None:
    c = srv.connect()
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"z" * 3000)
    time.sleep(0.02)
    rst_close(c.sock) if rst else c.close()


def _disconnect_mid_response(srv: ServerThread, rst: bool) -> None:
    c = srv.connect()
    c.send(get("/big"))
    c.read_head()
    rst_close(c.sock) if rst else c.close()


def _disconnect_after_head(srv: ServerThread, rst: bool) -> None:
    c = srv.connect()
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    rst_close(c.sock) if rst else c.close()


def _disconnect_after_get_head(srv: ServerThread, rst: bool) -> None:
    c = srv.connect()
    c.send(get("/big"))
    rst_close(c.sock) if rst else c.close()


DISCONNECTS = {
    "mid-request-body": (_body_reader, _disconnect_mid_body),
    "mid-response": (_big_streamer, _disconnect_mid_response),
    "right-after-the-head-of-a-request-with-body": (_body_reader, _disconnect_after_head),
    "right-after-the-head-of-a-get": (_big_streamer, _disconnect_after_get_head),
}


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("app,disconnect", DISCONNECTS.values(), ids=DISCONNECTS.keys())
def test_client_disconnecting_logs_no_error_and_leaks_no_fd_connection_or_greenlet(logs, app, disconnect, rst):
    with ServerThread(app) as srv:
        disconnect(srv, rst)  # warm-up: the first worker greenlet and parser
        assert serves(srv)
        before = Snapshot(srv)
        for _ in range(10):
            disconnect(srv, rst)
        before.assert_no_leak(srv)
        assert serves(srv)
    assert not records(logs, logging.WARNING), [r.getMessage() for r in records(logs, logging.WARNING)]


def test_parked_worker_greenlets_keep_no_closed_connection_alive():
    """A worker back in the free list must not hold the connection it served
    (greenlet keeps the arguments a greenlet was started with)."""
    from lichen.channel import Channel

    with ServerThread(_body_reader) as srv:
        clients = [srv.connect() for _ in range(5)]
        for c in clients:  # five requests in flight at once: five workers
            c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(0.1)
        for c in clients:
            c.send(b"cd")
            assert c.read_response().body == b"abcd"
            c.close()
        settle(srv)
        assert srv.call(lambda: srv.server.idle_workers) >= 2
        gc.collect()
        assert [o for o in gc.get_objects() if isinstance(o, Channel)] == []


# Interrupts (a signal handler raising KeyboardInterrupt lands anywhere) -------------------
class _Counted:
    """The part of a server that Channel.close() reports to."""

    def __init__(self) -> None:
        self.idle: dict = {}
        self.closed: list = []

    def channel_closed(self, conn) -> None:
        self.closed.append(conn)

    def ready(self, conn) -> None:
        pass


def test_connection_closing_interrupted_by_keyboard_interrupt_still_releases_its_slot():
    from types import SimpleNamespace

    from lichen.channel import Channel

    def interrupted_close():
        raise KeyboardInterrupt

    server = _Counted()
    conn = Channel(server, SimpleNamespace(encrypted=False, close=interrupted_close), ("127.0.0.1", 1), True)
    with pytest.raises(KeyboardInterrupt):
        conn.close()
    assert server.closed == [conn] and conn.closed


class _QueuedConnection:
    """A connection in the server's ready queue; serve() records or raises."""

    def __init__(self, served: list, exc: BaseException | None = None) -> None:
        self.closed = False
        self.worker = None
        self.preamble_done = True
        self.peer = ("127.0.0.1", 1)
        self._served = served
        self._exc = exc

    def serve(self) -> None:
        if self._exc is not None:
            raise self._exc
        self._served.append(self)

    def close(self) -> None:
        self.closed = True


def test_queue_after_a_worker_killed_by_keyboard_interrupt_is_still_served():
    from lichen.wsgi import WSGIServer

    server = WSGIServer(("127.0.0.1", 0), hello_app)
    server.protocol = lambda channel: channel.serve()
    served: list = []
    first = _QueuedConnection(served, KeyboardInterrupt())
    rest = [_QueuedConnection(served) for _ in range(3)]
    try:
        for conn in [first, *rest]:
            server.ready(conn)
        with pytest.raises(KeyboardInterrupt):  # reaches the main greenlet
            lhub.sleep(0.01)
        lhub.sleep(0.01)
        assert first.closed and served == rest
    finally:
        parked = server.idle_workers
        server.stop(0)
        lhub.sleep(0.01)
    assert parked and server.idle_workers == 0  # stop() ends the parked workers


# A flood of bad requests -------------------------------------------------------------------
GOOD_STARTS = [b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"]


def garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # pure noise
        return rng.randbytes(rng.randrange(1, 600))
    if kind == 1:  # a valid start, then noise
        return rng.choice(GOOD_STARTS) + rng.randbytes(rng.randrange(0, 300))
    if kind == 2:  # a request with a byte or two corrupted
        data = bytearray(get("/p", extra="X-A: b\r\nContent-Length: 3\r\n") + b"abc")
        for _ in range(rng.randrange(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    return b"\r\n" * rng.randrange(1, 20) + rng.choice([b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x16\x03\x01\x02\x00",
                                                        b"GET / HTTP/9.9\r\n\r\n", b"CONNECT a:1 HTTP/1.1\r\n\r\n"])


def test_flood_of_1000_garbage_connections_leaves_the_server_serving_with_no_leak(logs):
    rng = random.Random(1234)
    with ServerThread(_body_reader, header_timeout=1.0, body_timeout=1.0) as srv:
        assert serves(srv)
        before = Snapshot(srv)
        t0 = time.monotonic()
        for i in range(1000):
            s = socket.create_connection(srv.address, timeout=TIMEOUT)
            try:
                s.sendall(garbage(rng))
                mode = rng.randrange(3)
                if mode == 0:  # vanish at once
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                elif mode == 1:  # half-close and wait for the server's verdict
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
            except (ConnectionResetError, BrokenPipeError):
                pass
            finally:
                s.close()
            if i % 100 == 99:
                assert serves(srv)
        assert time.monotonic() - t0 < 60
        assert serves(srv)
        before.assert_no_leak(srv)
    assert not records(logs, logging.WARNING), [r.getMessage() for r in records(logs, logging.WARNING)][:5]


def test_413_to_a_client_still_sending_its_body_ends_in_a_clean_eof_not_a_reset():
    """Lingering close: the server half-closes and drains what the client
    still sends instead of closing with unread input, which makes the kernel
    answer with a reset that can destroy the response in flight."""
    import socket as _socket

    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app, max_body=1000) as srv:
        outcomes = []
        for _ in range(5):
            s = _socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n")
            chunk = b"x" * 65536
            data = b""
            try:
                for _ in range(20):
                    s.sendall(chunk)
                while True:
                    part = s.recv(65536)
                    if not part:
                        outcomes.append(("eof", data[:12]))
                        break
                    data += part
            except (ConnectionResetError, BrokenPipeError):
                outcomes.append(("reset", data[:12]))
            s.close()
    assert outcomes == [("eof", b"HTTP/1.1 413")] * 5
