# gunicorn's server hooks from a gunicorn.conf.py: which are called, when,
# in which process and with what; what a hook that raises does; and the
# pre_request/post_request middleware around plain and streamed bodies.
# Strategy: the config file's hooks append one JSON line per call to a file
# named by $HOOK_LOG (with the PID they ran in and the attributes they
# read), so the test reads back the order and the arguments after driving
# the master with requests and signals. The middleware is also tested in
# process, with a hand-made start_response and close().
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lichen.config import ConfigError, parse_args
from lichen.hooks import Hooks, check_hook, request_hooks
from proc_helpers import ROOT, Master, children, free_port, get, wait_for, wait_port

APP = '''
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks():
            for i in range(5):
                time.sleep(0.05)
                yield b"chunk %d\\n" % i
        return chunks()
    if path == "/block":
        time.sleep(30)  # blocks the worker's loop
    body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [body]
'''

CONF = '''
import json
import os

bind = "127.0.0.1:{port}"
workers = 2
worker_class = "sync"
worker_connections = 500
errorlog = "-"
loglevel = "info"
keepalive = 5
limit_request_line = 4094
PORT = os.environ.get("PORT", "8000")  # a helper global, not a setting


def _record(hook, **fields):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(json.dumps(dict(hook=hook, ran_in=os.getpid(), **fields)) + "\\n")


def worker_fields(worker):
    return dict(worker_pid=worker.pid, age=worker.age, alive=worker.alive, has_log=hasattr(worker.log, "info"))


def on_starting(server):
    _record("on_starting", server_pid=server.pid, workers=server.cfg.workers, num_workers=server.num_workers,
            has_log=hasattr(server.log, "info"), listeners=len(server.LISTENERS))


def on_reload(server):
    _record("on_reload", server_pid=server.pid)


def when_ready(server):
    _record("when_ready", server_pid=server.pid, listeners=len(server.LISTENERS), workers=len(server.WORKERS))


def pre_fork(server, worker):
    _record("pre_fork", server_pid=server.pid, **worker_fields(worker))


def post_fork(server, worker):
    _record("post_fork", server_pid=server.pid, ppid=worker.ppid, **worker_fields(worker))


def post_worker_init(worker):
    _record("post_worker_init", has_app=callable(worker.wsgi), **worker_fields(worker))


def worker_int(worker):
    _record("worker_int", **worker_fields(worker))


def worker_abort(worker):
    _record("worker_abort", **worker_fields(worker))


def pre_exec(server):
    _record("pre_exec", server_pid=server.pid)


def pre_request(worker, req):
    _record("pre_request", method=req.method, path=req.path, query=req.query, uri=req.uri,
            version=list(req.version), headers=dict(req.headers), **worker_fields(worker))


def post_request(worker, req, environ, resp):
    _record("post_request", path=req.path, environ_path=environ["PATH_INFO"], status=resp.status,
            status_code=resp.status_code, sent=resp.sent, length=resp.response_length, nr=worker.nr,
            **worker_fields(worker))


def child_exit(server, worker):
    _record("child_exit", server_pid=server.pid, **worker_fields(worker))


def worker_exit(server, worker):
    _record("worker_exit", server_pid=server.pid, **worker_fields(worker))


def nworkers_changed(server, new_value, old_value):
    _record("nworkers_changed", new=new_value, old=old_value)


def on_exit(server):
    _record("on_exit", server_pid=server.pid)
'''


class Setup:
    def __init__(self, tmp_path, conf=CONF, extra_conf=""):
        self.dir = tmp_path
        self.port = free_port()
        self.log = tmp_path / "hooks.jsonl"
        (tmp_path / "hookapp.py").write_text(APP)
        (tmp_path / "gunicorn.conf.py").write_text(conf.replace("{port}", str(self.port)) + extra_conf)
        self.masters = []

    def start(self, *args, wait=True, app="hookapp:app"):
        m = Master("-c", "gunicorn.conf.py", *args, app, cwd=str(self.dir),
                   env={"HOOK_LOG": str(self.log)}, stderr_path=str(self.dir / f"m{len(self.masters)}.log"))
        self.masters.append(m)
        if wait:
            wait_port(self.port)
        return m

    def calls(self, hook=None):
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [c for c in calls if hook is None or c["hook"] == hook]

    def close(self):
        for m in self.masters:
            m.close()


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path)
    yield s
    s.close()


def test_a_gunicorn_conf_py_runs_its_hooks_at_gunicorns_moments(setup):
    m = setup.start()
    assert wait_for(lambda: len(setup.calls("post_worker_init")) == 2)
    assert get(setup.port, "/stream?x=1")[1] == "".join(f"chunk {i}\n" for i in range(5))
    assert get(setup.port, "/")[1] == "hello"
    m.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(setup.calls("post_worker_init")) == 3)
    m.signal(signal.SIGHUP)  # reads `workers = 2` again, as gunicorn does: two new workers
    assert wait_for(lambda: len(setup.calls("post_worker_init")) == 5)
    m.signal(signal.SIGTERM)
    assert m.wait(20) == 0
    calls = setup.calls()
    names = [c["hook"] for c in calls]
    master = m.pid

    # The master's moments, in gunicorn's order.
    assert names[:3] == ["nworkers_changed", "on_starting", "when_ready"]
    assert calls[0]["new"] == 2 and calls[0]["old"] is None
    start = calls[1]
    assert (start["ran_in"], start["server_pid"], start["workers"], start["num_workers"], start["has_log"],
            start["listeners"]) == (master, master, 2, 2, True, 0)
    assert calls[2]["listeners"] == 1 and calls[2]["workers"] == 0  # bound, no worker yet
    assert names[-1] == "on_exit" and calls[-1]["ran_in"] == master
    assert [c["ran_in"] for c in setup.calls("on_reload")] == [master]

    # Each worker: pre_fork in the master, then post_fork and post_worker_init in the worker.
    forks = setup.calls("pre_fork")
    assert len(forks) == 5 and all(c["ran_in"] == master and c["worker_pid"] is None for c in forks)
    for post in setup.calls("post_fork"):
        assert post["ran_in"] == post["worker_pid"] != master and post["ppid"] == post["server_pid"] == master
        assert post["alive"] and names.index("pre_fork") < names.index("post_fork")
    inits = setup.calls("post_worker_init")
    assert all(c["has_app"] and c["ran_in"] == c["worker_pid"] for c in inits)
    assert sorted(c["age"] for c in inits) == [1, 2, 3, 4, 5]
    assert [(c["new"], c["old"]) for c in setup.calls("nworkers_changed")] == [(2, None), (3, 2), (2, 3)]

    # Requests: pre_request before, post_request after the whole body, in the worker.
    pre = setup.calls("pre_request")
    post = setup.calls("post_request")
    assert [c["path"] for c in pre] == [c["path"] for c in post] == ["/stream", "/"]
    assert pre[0]["method"] == "GET" and pre[0]["query"] == "x=1" and pre[0]["uri"] == "/stream?x=1"
    assert pre[0]["version"] == [1, 1] and pre[0]["headers"]["HOST"] == f"127.0.0.1:{setup.port}"
    assert pre[0]["ran_in"] == pre[0]["worker_pid"] != master
    stream, plain = post
    assert (stream["status"], stream["status_code"], stream["sent"], stream["length"]) == ("200 OK", 200, 40, None)
    assert (plain["sent"], plain["length"], plain["environ_path"]) == (5, 5, "/")
    assert names.index("post_request") > names.index("pre_request")

    # Stopping: worker_exit in each worker, child_exit in the master for each.
    exits = setup.calls("worker_exit")
    assert len(exits) == 5 and all(c["ran_in"] == c["worker_pid"] and not c["alive"] for c in exits)
    reaped = setup.calls("child_exit")
    assert sorted(c["worker_pid"] for c in reaped) == sorted(c["worker_pid"] for c in exits)
    assert all(c["ran_in"] == master for c in reaped)


def test_worker_int_runs_in_each_worker_on_int(setup):
    m = setup.start("-w", "2")
    assert wait_for(lambda: len(setup.calls("post_worker_init")) == 2)
    m.signal(signal.SIGINT)
    assert m.wait(15) == 0
    ints = setup.calls("worker_int")
    assert len(ints) == 2 and all(c["ran_in"] == c["worker_pid"] != m.pid for c in ints)


def test_worker_int_runs_for_a_quit_that_arrives_while_the_app_loads(setup):
    (setup.dir / "slowapp.py").write_text("import time\ntime.sleep(1.0)\nfrom hookapp import app\n")
    setup.start("-w", "1", wait=False, app="slowapp:app")
    assert wait_for(lambda: setup.calls("post_fork"))
    booting = setup.calls("post_fork")[0]["worker_pid"]
    os.kill(booting, signal.SIGQUIT)  # the worker is importing slowapp
    assert wait_for(lambda: setup.calls("worker_int"))
    assert setup.calls("worker_int")[0]["worker_pid"] == booting


def test_worker_abort_runs_in_a_worker_killed_for_blocking_its_loop(setup):
    m = setup.start("-w", "1", "--timeout", "1")
    assert wait_for(lambda: setup.calls("post_worker_init"))
    with pytest.raises(OSError):
        get(setup.port, "/block", timeout=15)
    assert wait_for(lambda: setup.calls("worker_abort"), timeout=10)
    aborted = setup.calls("worker_abort")[0]
    assert aborted["ran_in"] == aborted["worker_pid"] != m.pid and not aborted["alive"]
    assert wait_for(lambda: len(setup.calls("post_worker_init")) == 2)  # replaced


def test_pre_exec_runs_in_the_new_masters_process_before_exec(setup):
    m = setup.start("-w", "1", "--pid", str(setup.dir / "app.pid"))
    assert wait_for(lambda: setup.calls("post_worker_init"))
    m.signal(signal.SIGUSR2)
    assert wait_for(lambda: setup.calls("pre_exec"))
    call = setup.calls("pre_exec")[0]
    assert call["server_pid"] == m.pid != call["ran_in"]  # in the forked child that execs
    pidfile = setup.dir / "app.pid"
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(call["ran_in"]), timeout=15)
    os.kill(call["ran_in"], signal.SIGKILL)
    for pid in children(call["ran_in"]):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("hook,args", [("on_starting", "server"), ("when_ready", "server"),
                                       ("post_fork", "server, worker"), ("post_worker_init", "worker")])
def test_a_start_hook_that_raises_stops_the_start_with_one_line(tmp_path, hook, args):
    port = free_port()
    (tmp_path / "g.conf.py").write_text(f"def {hook}({args}):\n    raise RuntimeError('not today')\n")
    out = subprocess.run([sys.executable, "-m", "lichen", "-c", str(tmp_path / "g.conf.py"), "-b",
                          f"127.0.0.1:{port}", "tests.apps.sample:app"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"lichen: the {hook} hook failed: RuntimeError: not today"]


def test_a_request_hook_that_raises_is_logged_and_the_request_served(tmp_path):
    s = Setup(tmp_path, conf='bind = "127.0.0.1:{port}"\n',
              extra_conf="def pre_request(worker, req):\n    raise RuntimeError('hook bug')\n")
    try:
        s.start()
        assert get(s.port) == (200, "hello")
        assert wait_for(lambda: "the pre_request hook raised" in s.masters[0].log())
        assert "RuntimeError: hook bug" in s.masters[0].log()
    finally:
        s.close()


def test_a_hook_with_the_wrong_arguments_is_a_config_error(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("def post_fork(worker):\n    pass\n")
    with pytest.raises(ConfigError, match=r"post_fork must take 2 arguments \(server, worker\)"):
        parse_args(["-c", str(conf)], environ={})


def test_the_config_file_keeps_its_hooks_and_print_config_names_them(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(CONF.replace("{port}", "8000"))
    cfg = parse_args(["-c", str(conf)], environ={})
    assert "post_request" in cfg.hooks and "on_exit" in cfg.hooks
    assert "# hooks (from the config file): on_starting, on_reload, when_ready," in cfg.describe()


# The middleware, in process ---------------------------------------------------------------------
class Recorder:
    def __init__(self, **extra):
        self.calls = []
        functions = {"pre_request": lambda w, r: self.calls.append(("pre", r.path)),
                     "post_request": lambda w, r, e, resp: self.calls.append(("post", resp.status_code, resp.sent))}
        functions.update(extra)
        self.hooks = Hooks({k: check_hook(k, v) for k, v in functions.items()})


class FakeWorker:
    nr = 0


def run(app, recorder, path="/"):
    started = []
    wrapped = request_hooks(app, recorder.hooks, FakeWorker())
    result = wrapped({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h, e=None: started.append(s))
    return wrapped, result


def test_post_request_waits_for_a_streamed_body_to_be_closed():
    closed = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            try:
                yield b"ab"
                yield b"cde"
            finally:
                closed.append(True)
        return body()

    rec = Recorder()
    _, result = run(app, rec)
    assert rec.calls == [("pre", "/")]
    chunks = list(result)
    assert chunks == [b"ab", b"cde"] and rec.calls == [("pre", "/")]  # sent, not yet closed
    result.close()
    result.close()
    assert rec.calls == [("pre", "/"), ("post", 200, 5)] and closed == [True]


def test_post_request_runs_when_the_client_leaves_mid_body():
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([b"x" * 10, b"y" * 10])

    rec = Recorder()
    _, result = run(app, rec)
    next(iter(result))
    result.close()
    assert rec.calls[-1] == ("post", 200, 10)


def test_post_request_runs_when_the_app_raises_and_the_error_goes_on():
    def app(environ, start_response):
        raise ValueError("app bug")

    rec = Recorder()
    with pytest.raises(ValueError):
        run(app, rec)
    assert rec.calls == [("pre", "/"), ("post", None, 0)]


def test_a_shorter_post_request_is_called_as_gunicorn_calls_it():
    seen = []
    rec = Recorder(post_request=lambda worker, req: seen.append(req.path))

    def app(environ, start_response):
        start_response("204 No Content", [])
        return []

    _, result = run(app, rec, "/x")
    result.close()
    assert seen == ["/x"]


def test_without_request_hooks_the_app_is_not_wrapped():
    def app(environ, start_response):
        return []

    assert request_hooks(app, Hooks({"on_exit": lambda server: None}), FakeWorker()) is app


def test_a_raising_request_hook_is_logged_not_raised(caplog):
    def broken(worker, req):
        raise RuntimeError("hook bug")

    rec = Recorder(pre_request=broken)

    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    with caplog.at_level(logging.ERROR, logger="lichen.error"):
        _, result = run(app, rec)
        assert list(result) == [b"ok"]
        result.close()
    assert "the pre_request hook raised" in caplog.text and rec.calls[-1] == ("post", 200, 2)


def test_threads_and_hooks_serve_together(tmp_path):
    # The hooks wrap the app before the server hands it to its thread pool.
    s = Setup(tmp_path, conf=CONF, extra_conf="threads = 2\n")
    try:
        s.start()
        results = []
        threads = [threading.Thread(target=lambda: results.append(get(s.port))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == [(200, "hello")] * 4
        assert wait_for(lambda: len(s.calls("post_request")) == 4)
    finally:
        s.close()
