# gevent.pywsgi scripts run with only their imports changed to lichen's.
#
# Strategy: each script in tests/gevent_scripts/ is written for gevent.
# to_lichen() rewrites its import lines (gevent.pywsgi -> lichen.wsgi,
# gevent.pool -> lichen.sync, gevent -> lichen.hub) and checks that no other
# line changed; the script then runs as a subprocess on a free port, is
# requested over HTTP(S) by plain stdlib clients, and is stopped the way its
# user would stop it (Ctrl-C, or a request that makes it call stop()). With
# LICHEN_GEVENT_PYTHON set to a Python that has gevent, every test also runs
# the original script under gevent, with the same assertions: the two must
# behave alike.
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
IMPORTS = [("from gevent.pywsgi import ", "from lichen.wsgi import "),
           ("from gevent.pool import ", "from lichen.sync import "),
           ("from gevent import ", "from lichen.hub import ")]
# gevent's access line: client, local time, request line, status, bytes, seconds.
GEVENT_LINE = r'127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "%s" %d \d+ \d+\.\d{6}'


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
        argv = [python, str(path)] + ([str(self.port)] if not port_literal else []) + list(args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=tmp_path)
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the script ended: {self.proc.communicate()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the script never listened")

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
            return self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the script did not end:\n{out}\n{err}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


SERVERS = ["lichen", pytest.param("gevent", marks=pytest.mark.skipif(
    not GEVENT_PYTHON, reason="set LICHEN_GEVENT_PYTHON to a Python with gevent to compare"))]


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
    assert to_lichen(source.replace("x = 'gevent'\n", "")) == "from lichen.wsgi import WSGIServer\n" \
                                                               "from lichen.hub import sleep\n"


@pytest.mark.parametrize("server", SERVERS)
def test_gevents_hello_world_serves_logs_to_stderr_and_stops_on_ctrl_c(run, server):
    script = run("hello_world.py", server, port_literal="8088")
    assert script.get("/") == (200, b"<b>hello world</b>")
    assert script.get("/nope") == (404, b"<h1>Not Found</h1>")
    script.interrupt()
    out, err = script.finish()
    assert out == f"Serving on {script.port}...\n"
    assert re.search(r"^%s$" % (GEVENT_LINE % ("GET / HTTP/1.1", 200)), err, re.M), err
    assert re.search(r"^%s$" % (GEVENT_LINE % ("GET /nope HTTP/1.1", 404)), err, re.M), err
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
def test_a_pool_as_spawn_caps_the_connections_served_at_once(run, server):
    script = run("pool.py", server)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: script.get("/"), range(4)))
    assert all(status == 200 for status, _ in answers)
    assert max(int(body.split()[1]) for _, body in answers) == 2
    script.interrupt()
    out, _ = script.finish()
    assert out.startswith("pool size 2\n")
