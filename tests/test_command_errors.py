# What the `lichen` command says when it cannot run: a bad value anywhere is
# one line naming the option and exit status 2; a start that fails (port in
# use, no permission, the app cannot be imported, the pid file, TLS files) is
# one line giving the cause and exit status 1; neither prints a traceback
# unless --log-level debug asks for one.
# Strategy: the real command in a subprocess, whole stderr compared. "No
# permission" is made as root by taking CAP_NET_BIND_SERVICE out of the
# child's bounding set before exec, so port 80 is refused as to any user.
from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys

import pytest

from proc_helpers import ROOT, free_port


def lichen(*args, cwd=ROOT, preexec_fn=None, timeout=30):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PORT", "WEB_CONCURRENCY", "LICHEN_CMD_ARGS", "GUNICORN_CMD_ARGS")}
    return subprocess.run([sys.executable, "-m", "lichen", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


@pytest.mark.parametrize("args,expected", [
    (["-b", "127.0.0.1:notaport"], "--bind: bad port 'notaport' in listener '127.0.0.1:notaport'; expected a number"),
    (["-b", ":99999"], "--bind: port out of range in listener ':99999'"),
    (["-b", "[::1"], "--bind: bad IPv6 listener '[::1'; expected '[addr]:port'"),
    (["-b", "fd://x"], "--bind: bad listener 'fd://x'; expected fd://N with a file descriptor number"),
    (["-w", "0"], "--workers: must be >= 1, got 0"),
    (["--processes", "many"], "--workers: expected an integer, got 'many'"),
    (["-k", "uvicorn.workers.UvicornWorker"], "--worker-class: 'uvicorn.workers.UvicornWorker' is no worker lichen"),
    (["-u", "no-such-user-here"], "--user: no user named 'no-such-user-here'"),
    (["-g", "no-such-group-here"], "--group: no group named 'no-such-group-here'"),
    (["-e", "NOVALUE"], "--env: expected KEY=VALUE, got 'NOVALUE'"),
    (["--cert-reqs", "required", "--certfile", "c.pem"], "--cert-reqs: verifying client certificates needs --ca-certs"),
    (["--cert-reqs", "sometimes"], "--cert-reqs: expected none, optional or required (or 0, 1, 2), got 'sometimes'"),
    (["--ca-certs", "ca.pem"], "--ca-certs: needs --certfile"),
    (["--certfile", "c.pem", "--ciphers", "NO-SUCH-CIPHER"], "--ciphers: no cipher matches 'NO-SUCH-CIPHER'"),
    (["--log-config-dict", "[1, 2]"], "--log-config-dict: expected a dict, got '[1, 2]'"),
    (["--log-config-dict", "{'version': 7}"], "--log-config-dict: ValueError: Unsupported version: 7"),
    (["--log-config", "/no/such/logging.ini"], "--log-config: no such file '/no/such/logging.ini'"),
    (["--log-config-json", "/no/such/logging.json"], "--log-config-json: cannot read '/no/such/logging.json'"),
    (["--wsgi-file", "a.py", "pkg:app"], "--wsgi-file: the app is named twice (--wsgi-file a.py and pkg:app)"),
    (["web", "--module", "pkg:app"], "--module: the app is named twice ('web' and 'pkg:app')"),
    (["--umask", "999"], "--umask: expected an octal number like 027"),
    (["myproject:create_app("], "APP: 'myproject:create_app(': 'create_app(' is not an attribute name or a call"),
    (["myproject:create_app(os.environ)"], "APP: 'myproject:create_app(os.environ)': factory arguments must be "
                                           "literals"),
    ([":app"], "APP: ':app': missing module name before ':'"),
    (["--module", "my project:app"], "--module: 'my project:app': 'my project' is not a module name"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["-c", "/no/such/gunicorn.conf.py"], "config file '/no/such/gunicorn.conf.py' does not exist"),
    (["--error-logfile", "/no/such/dir/error.log"], "--error-logfile: cannot open '/no/such/dir/error.log'"),
])
def test_a_bad_value_is_one_line_naming_the_option_and_exit_2(args, expected):
    out = lichen(*args)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("lichen: error: " + expected), out.stderr


def test_a_bad_value_in_a_gunicorn_conf_py_names_the_file_and_the_name(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("bind = 'localhost:http'\n")
    out = lichen(cwd=tmp_path)  # read without -c, as gunicorn reads its own
    assert out.returncode == 2
    assert out.stderr == (f"lichen: error: {tmp_path}/gunicorn.conf.py: bind: bad port 'http' in listener "
                          "'localhost:http'; expected a number\n")


def start_failure(*args, cwd=ROOT, preexec_fn=None):
    out = lichen(*args, cwd=cwd, preexec_fn=preexec_fn)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


def test_an_app_that_cannot_be_imported_is_one_line_and_exit_1():
    assert start_failure("-b", f"127.0.0.1:{free_port()}", "nosuchmodule:app") == \
        "lichen: cannot load the application: No module named 'nosuchmodule'\n"


def test_an_app_that_raises_on_import_says_what_it_raised(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no database')\n")
    assert start_failure("-b", f"127.0.0.1:{free_port()}", "broken:app", cwd=tmp_path) == \
        "lichen: cannot load the application: importing 'broken' failed: RuntimeError: no database\n"


@pytest.mark.parametrize("preload", [[], ["--preload"]], ids=["in the worker", "preloaded"])
def test_an_app_that_calls_sys_exit_as_it_loads_is_one_line_and_exit_1(tmp_path, preload):
    # exit(3) is also the worker's "reload me" code: it must not make the master fork again and again.
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(3)\n")
    assert start_failure(*preload, "-b", f"127.0.0.1:{free_port()}", "quits:app", cwd=tmp_path) == \
        "lichen: cannot load the application: importing 'quits' failed: SystemExit: 3\n"


def test_log_level_debug_adds_the_traceback():
    out = lichen("-b", f"127.0.0.1:{free_port()}", "--log-level", "debug", "nosuchmodule:app")
    assert out.returncode == 1 and "Traceback" in out.stderr
    assert out.stderr.splitlines()[-1] == "lichen: cannot load the application: No module named 'nosuchmodule'"


def test_a_port_in_use_is_one_line_and_exit_1():
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        assert start_failure("-b", f"127.0.0.1:{port}", "tests.apps.sample:app") == \
            f"lichen: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    finally:
        busy.close()


def _without_bind_service() -> None:
    # PR_CAPBSET_DROP CAP_NET_BIND_SERVICE: after exec even root may not bind below 1024.
    if ctypes.CDLL(None, use_errno=True).prctl(24, 10, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_no_permission_to_bind_is_one_line_and_exit_1():
    assert start_failure("-b", "127.0.0.1:80", "tests.apps.sample:app", preexec_fn=_without_bind_service) == \
        "lichen: cannot listen on 127.0.0.1:80: Permission denied\n"


def test_a_unix_socket_in_a_missing_folder_is_one_line_and_exit_1(tmp_path):
    path = tmp_path / "no" / "app.sock"
    assert start_failure("-b", f"unix:{path}", "tests.apps.sample:app") == \
        f"lichen: cannot listen on unix:{path}: No such file or directory\n"


def test_an_unknown_host_is_one_line_and_exit_1():
    stderr = start_failure("-b", "no-such-host.invalid:8000", "tests.apps.sample:app")
    assert stderr.startswith("lichen: cannot listen on no-such-host.invalid:8000: ") and stderr.count("\n") == 1


def test_a_pid_file_that_cannot_be_written_is_one_line_and_exit_1(tmp_path):
    assert start_failure("-b", f"127.0.0.1:{free_port()}", "--pid", str(tmp_path / "no" / "x.pid"),
                         "tests.apps.sample:app") == \
        f"lichen: --pid: cannot write '{tmp_path}/no/x.pid': No such file or directory\n"


def test_a_missing_certificate_is_one_line_and_exit_1(tmp_path):
    assert start_failure("-b", f"127.0.0.1:{free_port()}", "--certfile", str(tmp_path / "cert.pem"),
                         "tests.apps.sample:app") == f"lichen: --certfile: no such file '{tmp_path}/cert.pem'\n"


def test_a_preloaded_app_that_cannot_be_imported_fails_before_binding():
    port = free_port()
    assert start_failure("--preload", "-b", f"127.0.0.1:{port}", "nosuchmodule:app") == \
        "lichen: cannot load the application: No module named 'nosuchmodule'\n"


def test_a_daemon_that_cannot_start_says_why_and_exits_1(tmp_path):
    assert start_failure("-D", "--error-logfile", str(tmp_path / "error.log"), "-b",
                         f"127.0.0.1:{free_port()}", "nosuchmodule:app") == \
        "lichen: cannot load the application: No module named 'nosuchmodule'\n"
    # The log file gets the same line.
    assert "lichen: cannot load the application" in (tmp_path / "error.log").read_text()


def test_print_config_into_a_closed_pipe_ends_quietly():
    r, w = os.pipe()
    os.close(r)  # as `lichen --print-config | head -1` once head is done
    try:
        out = subprocess.run([sys.executable, "-m", "lichen", "--print-config"], cwd=ROOT, stdout=w,
                             stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(w)
    assert (out.returncode, out.stderr) == (0, "")
