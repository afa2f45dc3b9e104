# lichen behind a real HAProxy (Debian's), run from the two configurations of
# examples/haproxy/ that docs/deploy/haproxy.md explains: in TCP mode with
# the PROXY protocol (v2 as written, v1 with send-proxy), for plain HTTP and
# for TLS that passes through to lichen; and in HTTP mode, terminating TLS
# and speaking in X-Forwarded-* headers. What the app sees of the client, that
# HAProxy's own health checks pass, and that spoofing does not.
# Strategy: the example files are used as they are, with only their listen
# addresses, lichen's host names and the certificate path rewritten to this
# machine (and nothing starts unless every address left is a loopback one).
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from helpers import make_self_signed_cert
from proc_helpers import ROOT, Master, free_port, wait_port

APP = "tests.apps.sample:app"
HAPROXY = "/usr/sbin/haproxy"
EXAMPLES = os.path.join(ROOT, "examples", "haproxy")


def config(name, replacements):
    with open(os.path.join(EXAMPLES, name)) as f:
        text = f.read()
    for old, new in replacements.items():
        assert old in text, f"{name} no longer has {old!r}"
        text = text.replace(old, new)
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if words[:1] in (["bind"], ["server"]):
            address = words[1] if words[0] == "bind" else words[2]
            assert address.startswith("127.0.0.1:"), line
    return text


def start_haproxy(tmp, name, text, ports):
    path = tmp / name
    path.write_text(text)
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / f"{name}.log", "w"))
    for port in ports:
        wait_port(port)
    return proc


def stop(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def healthz_answered(log_path, scheme="", timeout=10.0):
    """Wait for a GET /healthz that lichen answered 200 in its access log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path) as f:
            if any('"GET /healthz HTTP/1.0" 200' in line for line in f):
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def lichens(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("haproxy")
    cert, key = make_self_signed_cert(str(tmp))
    ports = {"plain": free_port(), "tls": free_port(), "headers": free_port()}
    common = ["-w", "1", "--proxy-protocol", "--proxy-allow-ips", "127.0.0.1"]
    masters = [
        Master(*common, "-b", f"127.0.0.1:{ports['plain']}", "--access-logfile", str(tmp / "plain.log"), APP,
               stderr_path=str(tmp / "plain.err")),
        Master(*common, "-b", f"127.0.0.1:{ports['tls']}", "--certfile", cert, "--keyfile", key,
               "--access-logfile", str(tmp / "tls.log"), APP, stderr_path=str(tmp / "tls.err")),
        Master("-w", "1", "-b", f"127.0.0.1:{ports['headers']}", "--forwarded-allow-ips", "127.0.0.1",
               "--access-logfile", str(tmp / "headers.log"), APP, stderr_path=str(tmp / "headers.err")),
    ]
    try:
        for port in ports.values():
            wait_port(port)
        with open(tmp / "site.pem", "w") as pem:  # HAProxy wants certificate and key in one file
            pem.write(open(cert).read() + open(key).read())
        yield tmp, ports
    finally:
        for m in masters:
            m.close()


@pytest.fixture(scope="module", params=["send-proxy-v2", "send-proxy"])
def tcp_mode(request, lichens):
    tmp, ports = lichens
    front = {"http": free_port(), "https": free_port()}
    text = config("haproxy.cfg", {
        "bind :80\n": f"bind 127.0.0.1:{front['http']}\n",
        "bind :443\n": f"bind 127.0.0.1:{front['https']}\n",
        "lichen-1:8000": f"127.0.0.1:{ports['plain']}", "lichen-2:8000": f"127.0.0.1:{ports['plain']}",
        "lichen-1:8443": f"127.0.0.1:{ports['tls']}", "lichen-2:8443": f"127.0.0.1:{ports['tls']}",
    }).replace("send-proxy-v2", request.param)
    proc = start_haproxy(tmp, f"tcp-{request.param}.cfg", text, front.values())
    try:
        yield front
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def http_mode(lichens):
    tmp, ports = lichens
    front = {"http": free_port(), "https": free_port()}
    text = config("haproxy-http.cfg", {
        "bind :443 ssl crt /etc/haproxy/site.pem\n": f"bind 127.0.0.1:{front['https']} ssl crt {tmp}/site.pem\n",
        "bind :80\n": f"bind 127.0.0.1:{front['http']}\n",
        "lichen-1:8000": f"127.0.0.1:{ports['headers']}", "lichen-2:8000": f"127.0.0.1:{ports['headers']}",
    })
    proc = start_haproxy(tmp, "http.cfg", text, front.values())
    try:
        yield front
    finally:
        stop(proc)


def request(port, headers=(), tls=False, source="127.0.0.2"):
    """GET /env from a chosen loopback address: (status, what the app saw)."""
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    lines = ["GET /env HTTP/1.1", "Host: example.test", "Connection: close", *headers, "", ""]
    s.sendall("\r\n".join(lines).encode())
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    s.close()
    if not data:
        return None, {}
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)


# TCP mode, PROXY protocol ----------------------------------------------------------
def test_the_app_sees_the_client_address_from_the_proxy_header(tcp_mode):
    status, seen = request(tcp_mode["http"])
    assert status == 200 and (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.2", "http")


def test_tls_passes_through_and_lichen_terminates_it_after_the_proxy_header(tcp_mode):
    status, seen = request(tcp_mode["https"], tls=True)
    assert status == 200 and (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.2", "https")


def test_a_clients_forwarded_headers_are_not_trusted_behind_the_proxy_header(tcp_mode):
    # The peer is now the client (127.0.0.2), not a trusted proxy.
    status, seen = request(tcp_mode["http"], headers=["X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https"])
    assert status == 200 and (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.2", "http")


def test_haproxys_health_checks_pass_with_the_proxy_header(lichens, tcp_mode):
    tmp, _ = lichens
    assert healthz_answered(tmp / "plain.log") and healthz_answered(tmp / "tls.log")


def test_a_connection_without_the_proxy_header_is_refused(lichens):
    _, ports = lichens
    assert request(ports["plain"], source="127.0.0.1") == (None, {})  # allowed peer, no header
    assert request(ports["plain"], source="127.0.0.2") == (None, {})  # a peer not in --proxy-allow-ips


# HTTP mode, headers --------------------------------------------------------------
def test_haproxy_terminating_tls_gives_the_client_address_and_https(http_mode):
    status, seen = request(http_mode["https"], tls=True)
    assert status == 200 and (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.2", "https")


def test_plain_http_through_haproxy_stays_http_whatever_the_client_says(http_mode):
    status, seen = request(http_mode["http"], headers=["X-Forwarded-Proto: https"])
    assert status == 200 and (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.2", "http")


@pytest.mark.parametrize("spoof", ["X-Forwarded-For: 6.6.6.6", "X-Real-IP: 6.6.6.6", "Forwarded: for=6.6.6.6"])
def test_a_clients_own_address_headers_do_not_win_through_haproxy(http_mode, spoof):
    status, seen = request(http_mode["https"], headers=[spoof], tls=True)
    assert status == 200 and seen["REMOTE_ADDR"] == "127.0.0.2"


def test_haproxys_health_checks_reach_the_header_trusting_lichen(lichens, http_mode):
    tmp, _ = lichens
    assert healthz_answered(tmp / "headers.log")


def test_the_examples_pass_haproxys_own_check_of_their_syntax(lichens, tmp_path):
    # Everything but the rewritten addresses: haproxy -c on the rewritten files.
    tmp, ports = lichens
    text = config("haproxy.cfg", {"bind :80\n": "bind 127.0.0.1:1\n", "bind :443\n": "bind 127.0.0.1:2\n",
                                  "lichen-1:8000": "127.0.0.1:3", "lichen-2:8000": "127.0.0.1:3",
                                  "lichen-1:8443": "127.0.0.1:4", "lichen-2:8443": "127.0.0.1:4"})
    (tmp_path / "h.cfg").write_text(text)
    out = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "h.cfg")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "WARNING" not in out.stdout + out.stderr, out.stdout + out.stderr
