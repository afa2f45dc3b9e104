# StreamServer and the listener/lifecycle API shared with WSGIServer:
# listener forms ((host, port), 'host:port', '[::1]:port', 'unix:/path', a
# bound socket, '' for all interfaces), address/server_port, start/stop/
# close/serve_forever, the context manager, spawn= forms, listeners and fds
# released on stop, and the accept back-off when file descriptors run out.
# (gevent's own surface, restarting a stopped server among it, is in
# test_gevent_server.py.)
# Strategy: servers run in a background thread with their own hub (see
# wsgi_helpers.ServerThread) or, for StreamServer, in a thread of their own;
# clients are blocking stdlib sockets.
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from lichen import hub as lhub
from lichen.server import StreamServer, make_listener, parse_address
from lichen.settings import SettingError
from lichen.sync import Pool
from lichen.wsgi import WSGIServer
from helpers import run_in_thread
from wsgi_helpers import Client, ServerThread, get, hello_app


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# Listener forms ---------------------------------------------------------------------
def test_tuple_listener_serves():
    with ServerThread(hello_app, listener=("127.0.0.1", 0)) as srv:
        assert srv.request(get("/t")).body == b"hello /t"


def test_host_port_string_listener_serves():
    with ServerThread(hello_app, listener="127.0.0.1:0") as srv:
        assert srv.address[0] == "127.0.0.1"
        assert srv.request(get("/s")).body == b"hello /s"


def test_bracketed_ipv6_listener_serves():
    with ServerThread(hello_app, listener="[::1]:0") as srv:
        assert srv.address[0] == "::1" and len(srv.address) == 4
        assert srv.request(get("/6")).body == b"hello /6"


def test_empty_host_listens_on_ipv4_and_ipv6():
    def app(environ, start_response):
        body = environ["REMOTE_ADDR"].encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with ServerThread(app, listener=("", 0)) as srv:
        port = srv.address[1]
        for addr in (("127.0.0.1", port), ("::1", port, 0, 0)):
            with Client.connect(addr) as c:
                c.send(get("/any"))
                # An IPv4 client shows as itself, not as ::ffff:127.0.0.1.
                assert c.read_response().body == addr[0].encode()


def test_unix_listener_serves_and_removes_its_path_on_stop(tmp_path):
    path = str(tmp_path / "srv.sock")
    with ServerThread(hello_app, listener="unix:" + path) as srv:
        assert srv.address == path
        assert srv.server.server_port is None
        with Client.connect(path) as c:
            c.send(get("/u"))
            assert c.read_response().body == b"hello /u"
    assert not os.path.exists(path)


def test_unix_listener_replaces_a_stale_socket_file(tmp_path):
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # leaves the file, nobody listening
    with ServerThread(hello_app, listener="unix:" + path) as srv, Client.connect(path) as c:
        c.send(get("/"))
        assert c.read_response().status == 200
        assert srv.address == path


def test_unix_listener_refuses_to_replace_a_regular_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(OSError):
        make_listener("unix:" + str(path))
    assert path.read_text() == "keep me"


def test_unix_listener_refuses_a_path_another_server_listens_on(tmp_path):
    path = str(tmp_path / "busy.sock")
    with ServerThread(hello_app, listener="unix:" + path):
        with pytest.raises(OSError):
            make_listener("unix:" + path)


def test_already_bound_socket_listener_serves():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    with ServerThread(hello_app, listener=sock) as srv:
        assert srv.server.server_port == port
        assert srv.request(get("/b")).body == b"hello /b"


def test_several_listeners_serve_at_once(tmp_path):
    path = str(tmp_path / "multi.sock")
    with ServerThread(hello_app, listener=[("127.0.0.1", 0), "unix:" + path]) as srv:
        assert srv.request(get("/tcp")).body == b"hello /tcp"
        with Client.connect(path) as c:
            c.send(get("/unix"))
            assert c.read_response().body == b"hello /unix"


@pytest.mark.parametrize("spec,expected", [
    (("1.2.3.4", 80), (socket.AF_INET, ("1.2.3.4", 80))),
    ("1.2.3.4:80", (socket.AF_INET, ("1.2.3.4", 80))),
    (":8080", (socket.AF_INET, ("", 8080))),
    ("[::1]:81", (socket.AF_INET6, ("::1", 81))),
    (("::", 82), (socket.AF_INET6, ("::", 82))),
    ("unix:/run/x.sock", (socket.AF_UNIX, "/run/x.sock")),
])
def test_parse_address_accepts_every_listener_form(spec, expected):
    assert parse_address(spec) == expected


@pytest.mark.parametrize("spec", ["nonsense", "[::1", "[::1]80", "unix:", "host:99999", "host:http", "::1:80",
                                  3.5, None])
def test_parse_address_rejects_bad_specs_with_a_clear_error(spec):
    with pytest.raises((ValueError, TypeError)):
        parse_address(spec)


# Addresses and lifecycle -------------------------------------------------------------
def test_address_and_server_port_are_known_before_start():
    server = WSGIServer(("127.0.0.1", 0), hello_app)
    try:
        port = server.server_port
        assert port and server.address == ("127.0.0.1", port)
        assert not server.started
    finally:
        server.close()


def test_context_manager_starts_and_stops_the_server():
    result: dict = {}

    def run():
        with WSGIServer(("127.0.0.1", 0), hello_app) as server:
            result["started"] = server.started
            result["port"] = server.server_port
            sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
            result["sock"] = sock
            lhub.sleep(0.01)
        result["closed"] = server.closed

    run_in_thread(run)
    assert result["started"] and result["closed"]
    result["sock"].close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", result["port"]), timeout=2)


def test_stop_closes_the_listener_so_the_port_refuses_connections():
    srv = ServerThread(hello_app).start()
    addr = srv.address
    srv.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr, timeout=2)


def test_start_and_stop_leak_no_file_descriptors():
    before = fd_count()
    for _ in range(5):
        with ServerThread(hello_app) as srv:
            srv.request(get("/"))
            with srv.connect() as c:  # one left open at stop
                c.send(get("/"))
                c.read_response()
                srv.stop()
    assert fd_count() <= before + 1  # tolerate one lazily-created fd (e.g. urandom)


def test_serve_forever_returns_after_stop_from_another_greenlet():
    result: dict = {}

    def run():
        server = WSGIServer(("127.0.0.1", 0), hello_app)
        lhub.spawn_later(0.1, server.stop, 1)
        t0 = time.monotonic()
        server.serve_forever()
        result["elapsed"] = time.monotonic() - t0
        result["closed"] = server.closed

    run_in_thread(run)
    assert result["closed"] and result["elapsed"] < 2


def test_stop_twice_and_close_are_harmless():
    def run():
        server = WSGIServer(("127.0.0.1", 0), hello_app)
        server.start()
        port = server.server_port
        server.stop(0)
        server.stop(0)
        server.close()
        return server.closed, server.started, port

    closed, started, port = run_in_thread(run)
    assert closed and not started
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_unknown_setting_is_rejected_with_its_name():
    with pytest.raises(SettingError, match="no_such_setting"):
        WSGIServer(("127.0.0.1", 0), hello_app, no_such_setting=1)


def test_invalid_setting_value_is_rejected_with_its_name():
    with pytest.raises(SettingError, match="header_timeout"):
        WSGIServer(("127.0.0.1", 0), hello_app, header_timeout=0)


def test_spawn_int_sets_the_connection_cap():
    server = WSGIServer(("127.0.0.1", 0), hello_app, spawn=7)
    assert server.settings.max_connections == 7
    server2 = WSGIServer(("127.0.0.1", 0), hello_app, spawn=Pool(9))
    assert server2.settings.max_connections == 9
    with pytest.raises(TypeError):
        WSGIServer(("127.0.0.1", 0), hello_app, spawn="many")
    for s in (server, server2):
        s.close()


# StreamServer -------------------------------------------------------------------------
class StreamThread:
    def __init__(self, handle, **kw):
        self.handle, self.kw = handle, kw
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        self.hub = lhub.get_hub()
        self.server = StreamServer(("127.0.0.1", 0), self.handle, **self.kw)
        self.server.start()
        self.address = self.server.address
        self.stop_event = __import__("lichen.sync", fromlist=["Event"]).Event()
        self.ready.set()
        self.stop_event.wait()
        self.server.stop(1)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.hub.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)
        assert not self.thread.is_alive()


def echo_handle(sock, address):
    while True:
        data = sock.recv(4096)
        if not data:
            return
        sock.sendall(data)


def test_stream_server_runs_handle_per_connection():
    with StreamThread(echo_handle) as st:
        socks = [socket.create_connection(st.address, timeout=5) for _ in range(3)]
        for i, s in enumerate(socks):
            s.sendall(b"ping%d" % i)
        for i, s in enumerate(socks):
            assert s.recv(100) == b"ping%d" % i
            s.close()


def test_stream_server_with_a_pool_serves_at_most_its_size_at_once():
    active, peak = [0], [0]

    def handle(sock, address):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        try:
            echo_handle(sock, address)
        finally:
            active[0] -= 1

    with StreamThread(handle, spawn=Pool(2)) as st:
        socks = [socket.create_connection(st.address, timeout=5) for _ in range(4)]
        for s in socks[:2]:
            s.sendall(b"x")
            assert s.recv(10) == b"x"
        socks[2].sendall(b"y")
        socks[2].settimeout(0.3)
        with pytest.raises(socket.timeout):
            socks[2].recv(10)
        socks[0].close()
        socks[2].settimeout(5)
        assert socks[2].recv(10) == b"y"
        for s in socks[1:]:
            s.close()
    assert peak[0] == 2


# Running out of file descriptors ------------------------------------------------------
EMFILE_SCRIPT = textwrap.dedent("""
    import logging, resource, socket, sys, time, threading
    from lichen import hub
    from lichen.wsgi import WSGIServer

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = WSGIServer(("127.0.0.1", 0), app, log=None, accept_backoff=0.05)
    server.start()
    print("PORT", server.server_port, flush=True)
    import os
    nfd = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nfd + 3, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    hub.spawn_later(2.0, server.stop, 0)
    t0 = time.process_time()
    server.serve_forever()
    print("CPU", time.process_time() - t0, flush=True)
""")


def test_out_of_file_descriptors_logs_once_backs_off_and_recovers():
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    socks = []
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT"), line
        port = int(line.split()[1])
        time.sleep(0.2)
        for _ in range(8):  # more than the child can accept
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(get("/"))
            socks.append(s)
        time.sleep(0.5)
        answered = []
        for s in socks:  # close what was served, one by one: slots and fds free up
            s.settimeout(1.5)
            try:
                answered.append(s.recv(4096).endswith(b"ok"))
            except socket.timeout:
                answered.append(False)
            s.close()
        out, _ = proc.communicate(timeout=10)
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    full = line + out
    # One line per episode (not per attempt): each failure line is followed
    # by a recovery line, except perhaps the last.
    failures, recoveries = full.count("accept() failed"), full.count("accept() works again")
    assert failures >= 1 and recoveries >= 1, full
    assert failures - recoveries in (0, 1), full
    assert sum(answered) == len(socks), (answered, full)
    cpu = float(full.split("CPU")[1].split()[0])
    assert cpu < 0.5, f"the accept loop spun: {cpu} s CPU in 2 s"
