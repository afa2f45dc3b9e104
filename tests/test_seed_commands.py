# The command lines people bring from gunicorn, uWSGI and twistd, typed as
# they write them: each runs the installed `lichen` script from a folder holding a
# small Flask project, gets a page over HTTP, and stops with TERM, exit 0.
# Strategy: a command whose port is a default (8000, twistd web's 8080)
# first waits for that port to be free (another run may just be leaving
# it) and fails saying so if it stays taken; a command that names its port
# gets a free one; $PORT, WEB_CONCURRENCY
# and LICHEN_CMD_ARGS are removed from the environment so that nothing but
# the command line speaks. The environment's own spellings ($PORT,
# WEB_CONCURRENCY) get free ports.
from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from proc_helpers import children, free_port, get, kill_group, wait_port

LICHEN = os.path.join(os.path.dirname(sys.executable), "lichen")

FLASK_PROJECT = '''
from flask import Flask


def create_app(greeting="hello from flask"):
    app = Flask(__name__)

    @app.route("/")
    def index():
        return greeting

    return app


app = create_app()
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "myproject.py").write_text(FLASK_PROJECT)
    return tmp_path


def wait_free(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"port {port}, which the command names, stays taken by another process")
        time.sleep(0.2)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORT", "WEB_CONCURRENCY", "LICHEN_CMD_ARGS", "GUNICORN_CMD_ARGS")}
    env.update(extra)
    return env


class Command:
    """A command line run as typed, in its own process group."""

    def __init__(self, line: str, cwd, env=None) -> None:
        argv = shlex.split(line)
        assert argv[0] == "lichen"
        self.log = open(os.path.join(cwd, "stderr.log"), "w+")
        self.proc = subprocess.Popen([LICHEN, *argv[1:]], cwd=cwd, env=env or clean_env(),
                                     stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        kill_group(self.proc)
        self.log.close()


def serve(line: str, port: int, cwd, env=None, body: str = "hello from flask", workers: int = 1) -> str:
    """Run `line`, check it serves `body` on `port` with `workers` workers and
    stops on TERM with status 0; returns what it logged."""
    wait_free(port)
    cmd = Command(line, cwd, env)
    try:
        wait_port(port)
        assert get(port) == (200, body)
        assert len(children(cmd.proc.pid)) == workers
        assert cmd.stop() == 0
        return cmd.stderr()
    finally:
        cmd.close()


# Spellings that name their port get a free one in place of {port} (the
# seed's own number in the comment); the ones whose port is a default (gunicorn's
# 8000, twistd web's 8080) run on it.
@pytest.mark.parametrize("line,port,workers,body", [
    ("lichen myproject:app", 8000, 1, "hello from flask"),
    ("lichen -w 4 -b 127.0.0.1:{port} myproject:app", None, 4, "hello from flask"),  # 4000
    ('lichen "myproject:create_app()"', 8000, 1, "hello from flask"),
    ("""lichen "myproject:create_app('hello from the factory')" """, 8000, 1, "hello from the factory"),
    ("lichen --http 127.0.0.1:{port} --module myproject:app", None, 1, "hello from flask"),  # 5000
    ("lichen web --wsgi myproject.app", 8080, 1, "hello from flask"),
    ("lichen -n web --port tcp:{port} --wsgi myproject.app", None, 1, "hello from flask"),  # 8080
    ("lichen --listen tcp:{port} --wsgi myproject.app", None, 1, "hello from flask"),  # 8080
    ("lichen --wsgi-file myproject.py --callable app --master --processes 2 --http-socket :{port}", None, 2,
     "hello from flask"),
    ("lichen --wsgi-file myproject.py --http :{port}", None, 1, "hello from flask"),
    ("lichen -b localhost myproject:app", 8000, 1, "hello from flask"),
    ("lichen -b tcp://127.0.0.1:{port} -k gevent myproject:app", None, 1, "hello from flask"),
])
def test_the_seed_command_serves_the_flask_app_and_stops_on_term(project, line, port, workers, body):
    if port is None:
        port = free_port()
        line = line.replace("{port}", str(port))
    serve(line, port, project, body=body, workers=workers)


def test_twistd_web_without_a_port_says_it_took_twistds_default(project):
    log = serve("lichen web --wsgi myproject.app", 8080, project)
    assert "twistd's web: listening on tcp:8080" in log


def test_a_gunicorn_worker_class_gets_one_line_saying_what_lichen_does_instead(project):
    port = free_port()
    log = serve(f"lichen -b 127.0.0.1:{port} -k sync myproject:app", port, project)
    notes = [line for line in log.splitlines() if "--worker-class sync:" in line]
    assert len(notes) == 1 and "--threads N" in notes[0]


def test_port_in_the_environment_binds_every_interface_on_it(project):
    port = free_port()
    serve("lichen myproject:app", port, project, env=clean_env(PORT=str(port)))


def test_web_concurrency_sets_the_number_of_workers(project):
    port = free_port()
    serve(f"lichen -b 127.0.0.1:{port} myproject:app", port, project, env=clean_env(WEB_CONCURRENCY="3"),
          workers=3)


def test_a_bind_on_the_command_line_wins_over_port_in_the_environment(project):
    port, other = free_port(), free_port()
    serve(f"lichen -b 127.0.0.1:{port} myproject:app", port, project, env=clean_env(PORT=str(other)))
