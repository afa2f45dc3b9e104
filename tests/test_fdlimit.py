# The file-descriptor limit: a server raises the soft RLIMIT_NOFILE toward the
# hard limit when it starts (once per process, logged), derives its default
# connection cap from the limit it got, and so holds thousands of
# connections on a system whose soft limit is 1,024. The limit belongs to
# the process, so every case that changes it runs in a subprocess started
# with soft 1,024 and the hard limit of this one.
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

import pytest

from lichen.fdlimit import connection_cap
from proc_helpers import ROOT, Master, free_port, get, wait_port

SOFT = 1024
HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
HELD = 5000


@pytest.fixture(scope="module", autouse=True)
def client_descriptors():
    # The test itself holds HELD connections, so its own soft limit goes up.
    if HARD != resource.RLIM_INFINITY and HARD < HELD + 1000:
        pytest.fail(f"these tests need a hard RLIMIT_NOFILE above {HELD + 1000}; this system has {HARD}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def soft_1024():
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


SERVER_SCRIPT = r"""
import logging, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
from lichen import WSGIServer

def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]

kwargs = eval(sys.argv[2])
server = WSGIServer(("127.0.0.1", int(sys.argv[1])), app, **kwargs)
server.start()
print("cap", server.connection_cap, "soft", resource.getrlimit(resource.RLIMIT_NOFILE)[0], flush=True)
server.serve_forever()
"""


class ServerProcess:
    def __init__(self, tmp_path, **kwargs):
        self.port = free_port()
        self.err_path = tmp_path / "server.err"
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(self.port), repr(kwargs)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     preexec_fn=soft_1024, start_new_session=True)
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["cap"], f"server did not start: {self.log()}"
        self.cap, self.soft = int(line[1]), int(line[3])

    def log(self):
        self._err.flush()
        return self.err_path.read_text()

    def close(self):
        self.proc.kill()
        self.proc.wait(10)
        self._err.close()


@pytest.fixture
def server_process(tmp_path):
    started = []

    def start(**kwargs):
        started.append(ServerProcess(tmp_path, **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.close()


def hold_connections(port, count, timeout=60.0, batch=250):
    """Open `count` keep-alive connections, one request and one whole
    response on each, all kept open; returns the sockets (the caller closes
    them). Fails if any request gets no response before the deadline."""
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    held = []
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    try:
        while len(held) < count:
            pending = {}
            for _ in range(min(batch, count - len(held))):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(request)
                s.setblocking(False)
                pending[s] = b""
                sel.register(s, selectors.EVENT_READ)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    for s in pending:
                        s.close()
                    raise AssertionError(f"{len(pending)} of the last batch got no response; "
                                         f"{len(held)} connections were held")
                for key, _ in sel.select(min(left, 1.0)):
                    s = key.fileobj
                    data = s.recv(4096)
                    assert data, f"the server closed connection {len(held) + 1}"
                    pending[s] += data
                    if pending[s].endswith(b"\r\n\r\nok"):
                        assert pending[s].startswith(b"HTTP/1.1 200 ")
                        del pending[s]
                        sel.unregister(s)
                        held.append(s)
        return held
    except BaseException:
        for s in held:
            s.close()
        raise
    finally:
        sel.close()


def test_connection_cap_keeps_a_sixteenth_of_the_limit_free():
    assert connection_cap(1024) == 960
    assert connection_cap(20000) == 18750
    assert connection_cap(100) == 68  # at least 32 kept free
    assert connection_cap(None) == 10000


def test_a_server_raises_a_soft_limit_of_1024_to_the_hard_limit_and_logs_it(server_process):
    srv = server_process()
    assert srv.soft == HARD
    assert f"file descriptor limit raised from {SOFT} to {HARD}" in srv.log()


def test_the_default_connection_cap_follows_the_raised_limit(server_process):
    srv = server_process()
    assert srv.cap == connection_cap(HARD)


def test_a_server_holds_5000_connections_when_started_with_soft_limit_1024(server_process):
    srv = server_process()
    held = hold_connections(srv.port, HELD)
    try:
        assert len(held) == HELD
        status, body = get(srv.port)  # and a new client is still served
        assert (status, body) == (200, "ok")
    finally:
        for s in held:
            s.close()


def test_raise_fd_limit_false_leaves_the_limit_and_fits_the_cap_to_it(server_process):
    srv = server_process(raise_fd_limit=False)
    assert srv.soft == SOFT
    assert srv.cap == connection_cap(SOFT)
    assert "file descriptor limit raised" not in srv.log()


def test_a_max_connections_above_the_limit_is_kept_and_warned_about(server_process):
    srv = server_process(raise_fd_limit=False, max_connections=5000)
    assert srv.cap == 5000
    assert "max_connections=5000 is more than the file-descriptor limit 1024 allows" in srv.log()


def test_the_command_raises_the_limit_once_in_the_master(tmp_path):
    port = free_port()
    err = tmp_path / "err"
    master = Master("-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "info", stderr_path=str(err),
                    preexec_fn=soft_1024)
    try:
        wait_port(port)
        assert get(port)[0] == 200
        with open(f"/proc/{master.pid}/limits") as f:
            line = next(x for x in f if x.startswith("Max open files")).split()
        assert int(line[3]) == HARD
        time.sleep(0.5)  # both workers booted
        assert master.log().count("file descriptor limit raised") == 1
    finally:
        master.close()
