# lichen behind a real nginx (Debian nginx-light), over TCP and over a unix
# socket: what the app sees of the client, and that spoofed proxy headers from
# an untrusted client never reach it. One lichen runs with the defaults
# behind nginx's usual recipe; a second one runs with --trust-forwarded-host
# behind locations that overwrite X-Forwarded-Host/-Port/-Prefix.
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from proc_helpers import Master, free_port, wait_port

APP = "tests.apps.sample:app"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream lichen_tcp {{ server 127.0.0.1:{lichen_port}; }}
    upstream lichen_host {{ server 127.0.0.1:{host_port}; }}
    upstream lichen_unix {{ server unix:{sock}; }}
    server {{
        listen 127.0.0.1:{tcp_port};
        location / {{
            proxy_pass http://lichen_tcp;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location /host-trusted/ {{
            proxy_pass http://lichen_host/;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Prefix /host-trusted;
        }}
        location /tls-terminated/ {{
            proxy_pass http://lichen_host/;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port 443;
            proxy_set_header X-Forwarded-Prefix /tls-terminated;
        }}
    }}
    server {{
        listen 127.0.0.1:{unix_port};
        location / {{
            proxy_pass http://lichen_unix;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    sock = str(tmp / "lichen.sock")
    lichen_port, host_port, tcp_port, unix_port = free_port(), free_port(), free_port(), free_port()
    lichen = Master("-w", "1", "-b", f"127.0.0.1:{lichen_port}", "-b", f"unix:{sock}", APP,
                    stderr_path=str(tmp / "lichen.log"))
    lichen_host = Master("-w", "1", "-b", f"127.0.0.1:{host_port}", "--trust-forwarded-host", APP,
                         stderr_path=str(tmp / "lichen-host.log"))
    conf = tmp / "nginx.conf"
    # As root, nginx's worker would drop to nobody and could not reach the
    # socket in the private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(user=user, tmp=tmp, lichen_port=lichen_port, host_port=host_port, sock=sock,
                                      tcp_port=tcp_port, unix_port=unix_port))
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp)], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(lichen_port)
        wait_port(host_port)
        wait_port(tcp_port)
        wait_port(unix_port)
        yield {"lichen": lichen_port, "tcp": tcp_port, "unix": unix_port}
    finally:
        os.killpg(nginx.pid, signal.SIGTERM)
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(nginx.pid, signal.SIGKILL)
            nginx.wait(10)
        lichen.close()
        lichen_host.close()


def request(port, path="/env", headers=(), source="127.0.0.2"):
    """A raw HTTP/1.1 request from a chosen loopback source address."""
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    lines = [f"GET {path} HTTP/1.1", "Host: example.test", "Connection: close", *headers, "", ""]
    s.sendall("\r\n".join(lines).encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    seen = dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)
    return status, seen


def test_app_behind_nginx_over_tcp_sees_the_real_client_address(stack):
    status, seen = request(stack["tcp"])
    assert status == 200 and seen["REMOTE_ADDR"] == "127.0.0.2"


def test_app_behind_nginx_over_tcp_sees_the_original_host_and_scheme(stack):
    # Host comes from nginx's `proxy_set_header Host $host`; SERVER_NAME stays
    # lichen's own unless X-Forwarded-Host is trusted.
    _, seen = request(stack["tcp"])
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["wsgi.url_scheme"]) == ("example.test", "127.0.0.1", "http")


def test_tls_terminating_proxy_sets_https_scheme_and_script_name(stack):
    _, seen = request(stack["tcp"], "/tls-terminated/env")
    assert (seen["wsgi.url_scheme"], seen["SCRIPT_NAME"]) == ("https", "/tls-terminated")
    assert (seen["HTTP_HOST"], seen["SERVER_PORT"]) == ("example.test", "443")


def test_client_x_forwarded_host_through_nginx_does_not_reach_the_app_by_default(stack):
    # nginx's usual recipe passes the client's X-Forwarded-Host through.
    status, seen = request(stack["tcp"], headers=["X-Forwarded-Host: evil.test", "X-Forwarded-Prefix: /evil"])
    assert status == 200 and (seen["HTTP_HOST"], seen["SCRIPT_NAME"]) == ("example.test", "")


def test_trusted_forwarded_host_comes_from_nginx_not_from_the_client(stack):
    status, seen = request(stack["tcp"], "/host-trusted/env",
                           headers=["X-Forwarded-Host: evil.test", "X-Forwarded-Port: 1", "X-Forwarded-Prefix: /evil"])
    assert status == 200 and (seen["SERVER_NAME"], seen["SCRIPT_NAME"]) == ("example.test", "/host-trusted")
    assert (seen["HTTP_HOST"], seen["SERVER_PORT"]) == (f"example.test:{stack['tcp']}", str(stack["tcp"]))


def test_app_behind_nginx_over_unix_socket_sees_the_real_client_address(stack):
    status, seen = request(stack["unix"])
    assert status == 200 and seen["REMOTE_ADDR"] == "127.0.0.2"


def test_client_spoofed_forwarded_for_through_nginx_does_not_win(stack):
    _, seen = request(stack["tcp"], headers=["X-Forwarded-For: 6.6.6.6"])
    assert seen["REMOTE_ADDR"] == "127.0.0.2"


def test_spoofed_proxy_headers_from_an_untrusted_client_are_dropped(stack):
    status, seen = request(stack["lichen"], headers=["X-Forwarded-For: 6.6.6.6", "X-Real-IP: 6.6.6.6",
                                                      "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.test"])
    assert status == 200
    assert seen["REMOTE_ADDR"] == "127.0.0.2" and seen["wsgi.url_scheme"] == "http"
    assert seen["HTTP_HOST"] == "example.test" and seen["HTTP_X_FORWARDED_FOR"] == "" and seen["HTTP_X_REAL_IP"] == ""


def test_disagreeing_proxy_headers_from_a_trusted_peer_are_400(stack):
    status, _ = request(stack["lichen"], headers=["X-Forwarded-For: 203.0.113.1", "X-Real-IP: 203.0.113.2"],
                        source="127.0.0.1")
    assert status == 400
