# Deployment paths other than the lichen command: the PROXY protocol in front
# of the WSGI server, serve_in_thread in a plain threaded program, and
# gunicorn running lichen's worker class.
import http.client
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.request

import pytest

from lichen.embed import serve_in_thread
from lichen.proxy import PROXY_V2_SIGNATURE
from proc_helpers import ROOT, free_port, kill_group, wait_port
from wsgi_helpers import ServerThread


def env_app(environ, start_response):
    body = f"{environ['REMOTE_ADDR']} {environ['REMOTE_PORT']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def raw(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:  # closed with our bytes unread: refused
            pass
    return data


GET = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_proxy_protocol_v1_client_address_becomes_remote_addr():
    with ServerThread(env_app, proxy_protocol=True) as srv:
        data = raw(srv.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n" + GET)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"203.0.113.9 4711")


def test_proxy_protocol_v2_client_address_becomes_remote_addr():
    body = ipaddress.IPv6Address("2001:db8::7").packed + ipaddress.IPv6Address("::1").packed + struct.pack("!HH", 9, 80)
    header = PROXY_V2_SIGNATURE + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body
    with ServerThread(env_app, proxy_protocol=True) as srv:
        data = raw(srv.port, header + GET)
    assert data.endswith(b"2001:db8::7 9")


def test_proxy_protocol_missing_header_closes_without_answer():
    with ServerThread(env_app, proxy_protocol=True) as srv:
        assert raw(srv.port, GET) == b""


def test_proxy_protocol_from_a_peer_not_allowed_is_refused():
    with ServerThread(env_app, proxy_protocol=True, proxy_allow_ips="10.0.0.0/8") as srv:
        assert raw(srv.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n" + GET) == b""


def test_without_proxy_protocol_a_proxy_line_is_a_bad_request():
    with ServerThread(env_app) as srv:
        assert raw(srv.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 80\r\n" + GET).startswith(b"HTTP/1.1 400")


def test_serve_in_thread_serves_a_plain_threaded_program_and_stops():
    handle = serve_in_thread(env_app, ("127.0.0.1", 0), log=None)
    try:
        host, port = handle.address[:2]
        results = []

        def fetch():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                results.append(r.status)

        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == [200] * 8
    finally:
        handle.stop(2)
    assert not handle.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_serve_in_thread_reports_a_bind_error_to_the_caller():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(OSError):
            serve_in_thread(env_app, busy.getsockname())


def test_gunicorn_runs_the_lichen_worker_class(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "lichen.gunicorn.Worker", "-w", "2",
                             "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "tests.apps.sample:app"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "gunicorn.log", "w"))
    try:
        wait_port(port)
        pids = set()
        for _ in range(30):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/", headers={"Connection": "close"})
            r = c.getresponse()
            assert r.status == 200
            pids.add(r.read().decode().split("pid=")[1])
            c.close()
        assert pids  # served by gunicorn's workers running lichen
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        kill_group(proc)
