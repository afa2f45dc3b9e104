# lichen.gunicorn.Worker: what a gunicorn configuration says reaches lichen's
# server. Strategy: server_options() and request_hook_functions() are
# checked on gunicorn's own Config objects; runs of gunicorn itself show the
# access log, trusted proxies and a request limit working end to end, and a
# gunicorn.conf.py's pre_request/post_request hooks called around requests
# in the worker (they append JSON lines to a file the test reads back).
from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import time

from helpers import make_self_signed_cert
from lichen.gunicorn import request_hook_functions, server_options
from lichen.wsgi import WSGIServer
from proc_helpers import ROOT, free_port, get, kill_group, wait_for, wait_port

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


class Gunicorn:
    """`gunicorn -k lichen.gunicorn.Worker -w 1` serving tests.apps.sample:app
    on a free port, in its own process group, killed by its PID's group at
    the end; its stderr in `errors`."""

    def __init__(self, tmp_path, *args, env=None):
        self.port = free_port()
        self.errors = tmp_path / "gunicorn.log"
        self._stderr = open(self.errors, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "lichen.gunicorn.Worker", "-w", "1",
                                      "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "2", *args,
                                      "tests.apps.sample:app"],
                                     cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, env={**os.environ, **(env or {})})

    def __enter__(self):
        wait_port(self.port)
        return self

    def __exit__(self, *exc):
        kill_group(self.proc)
        self._stderr.close()

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(15)


def test_gunicorn_serves_with_the_access_log_trusted_proxies_and_limits(tmp_path):
    access = tmp_path / "access.log"
    with Gunicorn(tmp_path, "--access-logfile", str(access), "--access-logformat", "%(h)s %(s)s %(U)s",
                  "--forwarded-allow-ips", "127.0.0.1", "--limit-request-line", "200") as g:
        c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=5)
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
        assert g.stop() == 0


def test_only_request_hooks_the_user_set_are_taken():
    assert request_hook_functions(gconfig.Config()) == {}  # gunicorn's defaults: nothing to wrap
    cfg = gconfig.Config()

    def pre(worker, req):
        pass

    cfg.set("pre_request", pre)
    assert request_hook_functions(cfg) == {"pre_request": pre}


def test_a_two_argument_post_request_is_taken_as_gunicorn_adapts_it():
    seen = []
    cfg = gconfig.Config()
    cfg.set("post_request", lambda worker, req: seen.append((worker, req)))
    request_hook_functions(cfg)["post_request"]("w", "r", {}, None)
    assert seen == [("w", "r")]


HOOKS_CONF = """
import json
import os


def _record(hook, worker, **fields):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(json.dumps(dict(hook=hook, ran_in=os.getpid(), worker_pid=worker.pid, age=worker.age,
                                alive=worker.alive, **fields)) + "\\n")


def pre_request(worker, req):
    worker.log.info("pre_request %s %s", req.method, req.path)
    _record("pre_request", worker, method=req.method, path=req.path, query=req.query, uri=req.uri,
            version=list(req.version), host=dict(req.headers).get("HOST"))


def post_request(worker, req, environ, resp):
    _record("post_request", worker, path=req.path, environ_path=environ["PATH_INFO"], status=resp.status,
            status_code=resp.status_code, sent=resp.sent, length=resp.response_length, nr=worker.nr)
"""


def test_gunicorns_pre_request_and_post_request_hooks_run_around_each_request(tmp_path):
    hook_log = tmp_path / "hooks.jsonl"
    (tmp_path / "gunicorn.conf.py").write_text(HOOKS_CONF)

    def calls(hook):
        lines = hook_log.read_text().splitlines() if hook_log.exists() else []
        return [c for c in map(json.loads, lines) if c["hook"] == hook]

    with Gunicorn(tmp_path, "-c", str(tmp_path / "gunicorn.conf.py"), env={"HOOK_LOG": str(hook_log)}) as g:
        status, body = get(g.port, "/first?x=1")
        assert status == 200
        assert get(g.port, "/second")[0] == 200
        assert wait_for(lambda: len(calls("post_request")) == 2)
        worker_pid = int(body.split("pid=")[1])
        pre, post = calls("pre_request"), calls("post_request")
        assert [c["path"] for c in pre] == [c["path"] for c in post] == ["/first", "/second"]
        first = pre[0]
        assert (first["method"], first["query"], first["uri"], first["version"], first["host"]) == \
            ("GET", "x=1", "/first?x=1", [1, 1], f"127.0.0.1:{g.port}")
        # In the worker, with gunicorn's own worker object.
        assert all(c["ran_in"] == c["worker_pid"] == worker_pid and c["age"] >= 1 and c["alive"] for c in pre + post)
        assert [(c["status"], c["status_code"], c["sent"], c["length"], c["environ_path"]) for c in post] == \
            [("200 OK", 200, len(body), len(body), "/first"), ("200 OK", 200, len(body), len(body), "/second")]
        assert [c["nr"] for c in post] == [1, 2]
        assert wait_for(lambda: "pre_request GET /first" in g.errors.read_text())  # worker.log is gunicorn's
        assert g.stop() == 0


def test_a_raising_request_hook_goes_to_gunicorns_error_log_and_the_request_is_served(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("def pre_request(worker, req):\n    raise RuntimeError('hook bug')\n")
    with Gunicorn(tmp_path, "-c", str(tmp_path / "gunicorn.conf.py")) as g:
        assert get(g.port, "/")[0] == 200
        assert wait_for(lambda: "RuntimeError: hook bug" in g.errors.read_text())
        assert "the pre_request hook raised" in g.errors.read_text()
