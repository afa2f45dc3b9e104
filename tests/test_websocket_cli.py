# A gevent-websocket style echo app under the `lichen` command, as a user
# runs it: many clients at once with the `websockets` library, a 1 MiB
# message, the close code echoed, an unmasked frame refused with 1002, and
# 2,000 idle websockets held by one worker (the command raises the open-files
# limit from a soft 1024) at a bounded memory cost each, while a new client still
# gets its echo at once.
# Strategy: `python -m lichen ws_apps:echo` in its own process group (killed
# by PID at the end); idle websockets are raw sockets of this process that
# did the handshake and one echo, so each is known to wait in receive().
from __future__ import annotations

import resource
import socket
import struct
import time

import pytest
from websockets.sync.client import connect

from helpers import raise_nofile_limit
from proc_helpers import ROOT, Master, children, free_port, wait_port
from ws_helpers import RawWS, echo_clients, frame, handshake_request

IDLE = 2000
# What one idle websocket may cost the worker (the bound): measured
# here at about 10.3 KiB; gevent-websocket's is about 20 KiB.
IDLE_BUDGET = 12 * 1024
LINGER_0 = struct.pack("ii", 1, 0)


def _low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if raise_nofile_limit(IDLE + 1000) < IDLE + 1000:
        pytest.skip(f"needs {IDLE + 1000} file descriptors")
    port = free_port()
    log = str(tmp_path_factory.mktemp("ws-cli") / "stderr.log")
    master = Master("ws_apps:echo", "--bind", f"127.0.0.1:{port}", "--pythonpath", f"{ROOT}/tests",
                    "--no-access-log", "--graceful-timeout", "2", preexec_fn=_low_nofile, stderr_path=log)
    try:
        wait_port(port)
        yield master, port
    finally:
        master.close()


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/echo"


def test_many_clients_at_once_get_their_echoes(server):
    _master, port = server
    assert echo_clients(url(port), 300, 3, threads=100) == [1000] * 300


def test_a_1_mib_message_comes_back_whole(server):
    _master, port = server
    big = bytes(range(256)) * 4096
    with connect(url(port), open_timeout=10, max_size=2 << 20) as c:
        c.send(big)
        assert c.recv(timeout=20) == big


def test_the_close_code_is_echoed(server):
    _master, port = server
    with connect(url(port), open_timeout=10) as c:
        c.send("bye")
        assert c.recv(timeout=10) == "bye"
        c.close(code=1000)
    assert c.close_code == 1000


def test_an_unmasked_frame_is_refused_with_1002(server):
    _master, port = server
    with RawWS.open(("127.0.0.1", port)) as ws:
        ws.send(frame(0x1, b"not masked", mask=False))
        assert ws.read_close() == 1002
        assert ws.at_eof()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _open_idle(port: int, n: int) -> list[socket.socket]:
    """n websockets that did the handshake and one echo: each now waits in
    the app's receive()."""
    request = handshake_request("/idle") + frame(0x1, b"hi")
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        s.sendall(request)
        socks.append(s)
    for s in socks:
        data = b""
        while not data.endswith(b"\x81\x02hi"):
            chunk = s.recv(4096)
            assert chunk, "the server closed an idle websocket"
            data += chunk
    return socks


def test_2000_idle_websockets_cost_little_and_a_new_client_is_served_at_once(server):
    master, port = server
    worker = children(master.pid)[0]
    warm = _open_idle(port, 200)  # the worker's free lists and arenas grow first
    for s in warm:
        s.close()
    time.sleep(1.0)
    before = _rss_kib(worker)
    idle = _open_idle(port, IDLE)
    try:
        time.sleep(0.5)
        per_websocket = (_rss_kib(worker) - before) * 1024 / IDLE
        start = time.monotonic()
        with connect(url(port), open_timeout=10) as c:
            c.send("still fast")
            assert c.recv(timeout=10) == "still fast"
        latency = time.monotonic() - start
        for s in idle[::97]:  # a sample of the idle ones still answers
            s.sendall(frame(0x1, b"ok"))
            assert s.recv(16) == b"\x81\x02ok"
    finally:
        for s in idle:
            s.close()
    print(f"{per_websocket:.0f} bytes per idle websocket, new client {latency * 1000:.1f} ms")
    assert per_websocket <= IDLE_BUDGET, f"{per_websocket:.0f} bytes per idle websocket"
    assert latency < 1.0
