# gevent.pywsgi scripts run with only their imports changed to lichen's.
#
# Strategy: each script in tests/gevent_scripts/ is written for gevent.
# to_lichen() rewrites its import lines (`from gevent.pywsgi import` and
# `from gevent import` become `from lichen import`, `from gevent.pool
# import` becomes `from lichen.sync import`) and checks that no other line
# changed; the script then runs as a subprocess on a free port (its output
# going to files, so a test can wait for a line without blocking), is
# requested over HTTP(S) by plain stdlib clients, and is stopped the way its
# user would stop it: Ctrl-C, or a request that makes it call stop() or
# close(). Every wait has a deadline and every process is killed by its PID
# at the end of its test. With LICHEN_GEVENT_PYTHON set to a Python that has
# gevent, every test also runs the original script under gevent, with the
# same assertions: the two must behave alike.
from __future__ import annotations

import concurrent.futures
import http.client
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from helpers import make_pki

SCRIPTS = pathlib.Path(__file__).resolve().parent / "gevent_scripts"
GEVENT_PYTHON = os.environ.get("LICHEN_GEVENT_PYTHON")
IMPORTS = [("from gevent.pywsgi import ", "from lichen import "),
           ("from gevent.pool import ", "from lichen.sync import "),
           ("from gevent import ", "from lichen import ")]
# gevent's access line: client, local time, request line, status, bytes, seconds.
GEVENT_LINE = r'127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "%s" %d \d+ \d+\.\d{6}'
DEADLINE = 15.0  # seconds for any one wait on a script


def to_lichen(source: str) -> str:
    """The script with its gevent imports changed to lichen's, and nothing else."""
    out = []
    for line in source.splitlines(keepends=True):
        for old, new in IMPORTS:
            if line.startswith(old):
                line = new + line[len(old):]
                break
        out.append(line)
    changed = [(a, b) for a, b in zip(source.splitlines(), "".join(out).splitlines()) if a != b]
    assert all(a.startswith("from gevent") for a, _ in changed), changed
    code = [line for line in out if not line.lstrip().startswith("#")]
    assert "gevent" not in "".join(code).replace("gevent's", ""), "an import left unchanged"
    return "".join(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Script:
    """A script running under `server` ('lichen' or 'gevent') on a free port."""

    def __init__(self, tmp_path: pathlib.Path, name: str, server: str, *args: str, port_literal: str = "") -> None:
        self.port = free_port()
        self.server = server
        source = (SCRIPTS / name).read_text()
        if port_literal:  # (a script with its port written in: the only other change)
            source = source.replace(port_literal, str(self.port))
        if server == "lichen":
            source, python = to_lichen(source), sys.executable
        else:
            python = GEVENT_PYTHON
        path = tmp_path / f"{server}_{name}"
        path.write_text(source)
        self.out_path, self.err_path = tmp_path / f"{server}_{name}.out", tmp_path / f"{server}_{name}.err"
        argv = [python, str(path)] + ([str(self.port)] if not port_literal else []) + list(args)
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=tmp_path)
        self._wait_listening()

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the script ended:\n{self.out}\n{self.err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the script never listened")

    def wait_for(self, pattern: str, stream: str = "err") -> str:
        """The text of `stream` once `pattern` (a regular expression, per
        line) is in it: a line is written after its response is sent."""
        deadline = time.monotonic() + DEADLINE
        while True:
            text = self.out if stream == "out" else self.err
            if re.search(pattern, text, re.M):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no line {pattern!r} in {stream}:\n{text}")
            time.sleep(0.02)

    def get(self, path: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
        if context is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=context)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def interrupt(self) -> None:
        """Ctrl-C, as its user stops it. (gevent sometimes needs a second
        one: a KeyboardInterrupt that lands in a request's greenlet ends
        only that greenlet. lichen gets one.)"""
        self.proc.send_signal(signal.SIGINT)
        if self.server == "gevent":
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 10) -> tuple[str, str]:
        """Its stdout and stderr once it ended (within `timeout` seconds)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the script did not end:\n{self.out}\n{self.err}") from None
        return self.out, self.err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


# The comparison with gevent runs only where a Python with gevent is named.
SERVERS = ["lichen"] + (["gevent"] if GEVENT_PYTHON else [])


@pytest.fixture
def run(tmp_path):
    started: list[Script] = []

    def start(*args: str, **kwargs: str) -> Script:
        script = Script(tmp_path, *args, **kwargs)
        started.append(script)
        return script

    yield start
    for script in started:
        script.kill()


def test_the_import_rewrite_changes_only_import_lines():
    source = "from gevent.pywsgi import WSGIServer\nfrom gevent import sleep\nx = 'gevent'\n"
    with pytest.raises(AssertionError, match="left unchanged"):
        to_lichen(source)
    assert to_lichen(source.replace("x = 'gevent'\n", "")) == "from lichen import WSGIServer\n" \
                                                               "from lichen import sleep\n"


@pytest.mark.parametrize("server", SERVERS)
def test_gevents_hello_world_serves_logs_to_stderr_and_stops_on_ctrl_c(run, server):
    script = run("hello_world.py", server, port_literal="8088")
    assert script.get("/") == (200, b"<b>hello world</b>")
    assert script.get("/nope") == (404, b"<h1>Not Found</h1>")
    script.wait_for(r"^%s$" % (GEVENT_LINE % ("GET /nope HTTP/1.1", 404)))
    script.interrupt()
    out, err = script.finish()
    assert out == f"Serving on {script.port}...\n"
    assert re.search(r"^%s$" % (GEVENT_LINE % ("GET / HTTP/1.1", 200)), err, re.M), err
    assert "KeyboardInterrupt" in err


@pytest.mark.parametrize("server", SERVERS)
def test_a_handler_class_adds_to_the_environ_and_logs_each_request_its_way(run, server):
    script = run("handler_class.py", server)
    assert script.get("/a") == (200, b"request 1 from 127.0.0.1 at example.org")
    assert script.get("/b") == (200, b"request 2 from 127.0.0.1 at example.org")
    assert script.get("/stop")[0] == 200
    out, err = script.finish()
    assert script.proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1] == "stopped"
    access = [line for line in lines if line.startswith("ACCESS ")]
    assert [line.rsplit(" ", 1)[0] for line in access] == [
        'ACCESS 127.0.0.1 "GET /a HTTP/1.1" 200 200 OK', 'ACCESS 127.0.0.1 "GET /b HTTP/1.1" 200 200 OK',
        'ACCESS 127.0.0.1 "GET /stop HTTP/1.1" 200 200 OK']
    assert all(int(line.rsplit(" ", 1)[1]) > 39 for line in access)  # the head counts too
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.mark.parametrize("server", SERVERS)
def test_ssl_args_serve_https_only_to_clients_with_a_certificate_the_ca_signed(run, server, pki):
    script = run("ssl_client_cert.py", server, pki["cert"], pki["key"], pki["ca"])
    with_cert = ssl.create_default_context(cafile=pki["ca"])
    with_cert.load_cert_chain(pki["client_cert"], pki["client_key"])
    assert script.get("/", with_cert) == (200, b"hello, holder of a certificate (https)\n")
    with socket.create_connection(("127.0.0.1", script.port), timeout=10) as raw, \
            with_cert.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.2" and "GCM" in tls.cipher()[0]  # ssl_version and ciphers
    without = ssl.create_default_context(cafile=pki["ca"])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        script.get("/", without)
    script.interrupt()
    out, _ = script.finish()
    assert out.startswith("ssl enabled: True\n")


@pytest.mark.parametrize("server", SERVERS)
def test_an_application_assigned_after_start_serves_and_stop_from_a_request_ends_the_script(run, server):
    script = run("application_later.py", server)
    assert script.get("/first") == (200, f"/first on 127.0.0.1:{script.port} via {script.port}".encode())
    assert script.get("/fail")[0] == 500
    script.wait_for(r"^ValueError: this request fails on purpose$")  # (the error log: stderr)
    started = time.monotonic()
    assert script.get("/shutdown")[0] == 200
    out, err = script.finish()
    assert time.monotonic() - started < 5 and script.proc.returncode == 0, err
    assert out == "started: True, closed: False\nstopped: started False, closed True\n"
    assert err.count("Traceback") == 1  # the failing request's; log=None: no access lines
    assert "GET /first" not in err


@pytest.mark.parametrize("server", SERVERS)
def test_a_with_block_serves_logs_to_a_file_object_and_stops_at_its_end(run, server):
    script = run("with_block.py", server)
    assert script.get("/in") == (200, b"inside the with block\n")
    assert script.get("/close") == (200, b"inside the with block\n")
    out, err = script.finish()
    assert script.proc.returncode == 0, err
    lines = out.splitlines()
    assert re.match(r"^%s$" % (GEVENT_LINE % ("GET /in HTTP/1.1", 200)), lines[0]), out
    assert lines[-2:] == ["serve_forever returned, closed: True", "after the with block, closed: True"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", script.port), timeout=2)


@pytest.mark.parametrize("server", SERVERS)
def test_a_pool_as_spawn_caps_the_connections_served_at_once(run, server):
    script = run("pool.py", server)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: script.get("/"), range(4)))
    assert all(status == 200 for status, _ in answers)
    assert max(int(body.split()[1]) for _, body in answers) == 2
    script.interrupt()
    out, _ = script.finish()
    assert out.startswith("pool size 2\n")
