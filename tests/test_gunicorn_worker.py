# lichen.gunicorn.Worker: what a gunicorn configuration says reaches lichen's
# server. Strategy: server_options() is checked on gunicorn's own Config
# objects; one run of gunicorn itself shows the access log, trusted proxies
# and a request limit working end to end.
from __future__ import annotations

import http.client
import logging
import os
import signal
import ssl
import subprocess
import sys
import time

from helpers import make_self_signed_cert
from lichen.gunicorn import server_options
from lichen.wsgi import WSGIServer
from proc_helpers import ROOT, free_port, wait_port

from gunicorn import config as gconfig


class _Log:
    access_log = logging.getLogger("test.gunicorn.access")
    error_log = logging.getLogger("test.gunicorn.error")


def options(**values):
    cfg = gconfig.Config()
    for name, value in values.items():
        cfg.set(name, value)
    return server_options(cfg, _Log())


def test_limits_and_worker_connections_become_lichen_settings():
    o = options(limit_request_line=1000, limit_request_fields=20, limit_request_field_size=500,
                worker_connections=77, keepalive=9)
    assert (o["max_request_line"], o["max_header_count"], o["max_field_size"]) == (1000, 20, 500)
    assert o["max_connections"] == 77 and o["keepalive_timeout"] == 9.0


def test_a_zero_limit_keeps_lichens_default():
    assert "max_request_line" not in options(limit_request_line=0)


def test_trusted_proxies_and_the_proxy_protocol_are_passed_on():
    o = options(forwarded_allow_ips="10.0.0.0/8,127.0.0.1", proxy_protocol="v1", proxy_allow_ips="10.1.1.1")
    assert o["forwarded_allow_ips"] == "10.0.0.0/8,127.0.0.1"
    assert o["proxy_protocol"] is True and o["proxy_allow_ips"] == "10.1.1.1"
    assert options(proxy_protocol="off")["proxy_protocol"] is False


def test_the_access_log_is_gunicorns_logger_with_its_format_only_when_configured():
    o = options(accesslog="-", access_log_format='%(h)s "%(r)s" %(s)s')
    assert o["log"] is _Log.access_log and o["access_log_format"] == '%(h)s "%(r)s" %(s)s'
    assert options()["log"] is None
    assert options()["error_log"] is _Log.error_log


def test_tls_options_make_a_context_that_asks_for_client_certificates(tmp_path):
    cert, key = make_self_signed_cert(str(tmp_path))
    o = options(certfile=cert, keyfile=key, ca_certs=cert, cert_reqs=ssl.CERT_REQUIRED)
    assert o["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_every_option_is_one_a_wsgi_server_accepts(tmp_path):
    cert, key = make_self_signed_cert(str(tmp_path))
    o = options(certfile=cert, keyfile=key, accesslog="-", limit_request_field_size=100)
    server = WSGIServer(("127.0.0.1", 0), lambda e, s: [], **o)
    server.close()


def test_gunicorn_serves_with_the_access_log_trusted_proxies_and_limits(tmp_path):
    port = free_port()
    access = tmp_path / "access.log"
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "lichen.gunicorn.Worker", "-w", "1",
                             "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "--access-logfile", str(access),
                             "--access-logformat", "%(h)s %(s)s %(U)s", "--forwarded-allow-ips", "127.0.0.1",
                             "--limit-request-line", "200", "tests.apps.sample:app"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "gunicorn.log", "w"))
    try:
        wait_port(port)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/via-proxy", headers={"X-Forwarded-For": "203.0.113.5"})
        r = c.getresponse()
        assert r.status == 200 and r.read()
        c.request("GET", "/" + "x" * 300)
        assert c.getresponse().status == 414
        c.close()
        deadline = time.monotonic() + 5
        while "203.0.113.5 200 /via-proxy" not in (access.read_text() if access.exists() else ""):
            assert time.monotonic() < deadline, access.read_text() if access.exists() else "no access log"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
