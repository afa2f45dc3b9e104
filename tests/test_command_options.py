# The `lichen` command's options for people coming from gunicorn: each one
# doing what gunicorn's does (--preload, -u/-g, -e, --check-config,
# --log-config*, --capture-output, client certificates, --reload-extra-file,
# -D, -n), and a gunicorn.conf.py read as it is.
# Strategy: real masters on free ports for what happens in processes (the
# worker's uid from /proc, the app's PID at import time, files the app or
# the logging configuration wrote); parse_args in process for what the
# configuration makes of a file. Certificates are made here: a CA, a server
# certificate and a client certificate it signed.
from __future__ import annotations

import datetime
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from lichen.apploader import AppLoadError, load_app, load_app_file
from lichen.config import parse_args
from proc_helpers import ROOT, Master, children, free_port, get, wait_for, wait_port

APP = '''
import os
import sys

with open(os.environ["IMPORTED_IN"], "a") as f:
    f.write("%d\\n" % os.getpid())


def app(environ, start_response):
    if environ["PATH_INFO"] == "/print":
        print("printed by the app")
        sys.stderr.write("written to stderr by the app\\n")
    body = ("pid=%d uid=%d env=%s" % (os.getpid(), os.getuid(), os.environ.get("GREETING", "-"))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def project(tmp_path):
    # World-readable, so a worker running as another user can import the app.
    folder = tempfile.mkdtemp(prefix="lichen-opt-", dir="/tmp")
    os.chmod(folder, 0o755)
    with open(os.path.join(folder, "optapp.py"), "w") as f:
        f.write(APP)
    os.chmod(os.path.join(folder, "optapp.py"), 0o644)
    yield folder
    subprocess.run(["rm", "-rf", folder])


class Run:
    def __init__(self, folder, *args, env=None):
        self.port = free_port()
        self.imported = os.path.join(folder, "imported.txt")
        with open(self.imported, "w"):
            pass
        os.chmod(self.imported, 0o666)  # for a worker that runs as another user
        self.master = Master("-b", f"127.0.0.1:{self.port}", *args, cwd=folder,
                             env={"IMPORTED_IN": self.imported, **(env or {})},
                             stderr_path=os.path.join(folder, "stderr.log"))

    def __enter__(self):
        wait_port(self.port)
        return self

    def __exit__(self, *exc):
        self.master.close()

    def get(self, path="/"):
        return get(self.port, path)

    def imported_in(self):
        with open(self.imported) as f:
            return [int(line) for line in f.read().split()]


def status_ids(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]), fields["Groups"].split()


def test_preload_imports_the_app_once_in_the_master(project):
    with Run(project, "-w", "2", "--preload", "optapp:app") as run:
        assert run.get()[0] == 200
        assert run.imported_in() == [run.master.pid]


def test_without_preload_each_worker_imports_the_app(project):
    with Run(project, "-w", "2", "optapp:app") as run:
        assert wait_for(lambda: len(run.imported_in()) == 2)
        assert sorted(run.imported_in()) == sorted(children(run.master.pid))


def test_user_and_group_switch_the_workers_after_binding(project):
    with Run(project, "-u", "nobody", "-g", "nogroup", "optapp:app") as run:
        status, body = run.get()
        worker = int(body.split()[0].split("=")[1])
        assert status == 200 and "uid=65534" in body
        assert status_ids(worker) == (65534, 65534, [])
        assert status_ids(run.master.pid)[0] == 0  # the master keeps its user, to bind again on USR2


def test_user_alone_takes_the_users_own_group(project):
    with Run(project, "--user", "nobody", "optapp:app") as run:
        worker = int(run.get()[1].split()[0].split("=")[1])
        assert status_ids(worker)[:2] == (65534, 65534)


def test_env_sets_a_variable_before_the_app_loads(project):
    with Run(project, "-e", "GREETING=hi there", "optapp:app") as run:
        assert run.get()[1].endswith("env=hi there")


def test_check_config_loads_the_app_and_says_ok(project):
    out = subprocess.run([sys.executable, "-m", "lichen", "--check-config", "optapp:app"], cwd=project,
                         env={**os.environ, "IMPORTED_IN": os.path.join(project, "i.txt")}, capture_output=True,
                         text=True, timeout=30)
    assert (out.returncode, out.stdout, out.stderr) == (0, "OK\n", "")


def test_check_config_gives_the_reason_and_exit_1():
    out = subprocess.run([sys.executable, "-m", "lichen", "--check-config", "tests.apps.sample:nope"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == "lichen: cannot load the application: 'tests.apps.sample' has no attribute 'nope'\n"


def test_capture_output_sends_the_apps_prints_to_the_error_log(project):
    logfile = os.path.join(project, "error.log")
    with Run(project, "--capture-output", "--error-logfile", logfile, "optapp:app") as run:
        assert run.get("/print")[0] == 200
        assert wait_for(lambda: "printed by the app" in open(logfile).read())
        assert "written to stderr by the app" in open(logfile).read()


LOGGING = {"version": 1,
           "formatters": {"tagged": {"format": "TAGGED %(levelname)s %(message)s"}},
           "handlers": {"file": {"class": "logging.FileHandler", "filename": "{path}", "formatter": "tagged"}},
           "loggers": {"gunicorn.error": {"handlers": ["file"], "level": "INFO", "propagate": False}}}


def test_log_config_json_configures_the_error_log_as_gunicorns_loggers_named_it(project):
    logfile = os.path.join(project, "tagged.log")
    conf = os.path.join(project, "logging.json")
    with open(conf, "w") as f:
        json.dump(json.loads(json.dumps(LOGGING).replace("{path}", logfile)), f)
    with Run(project, "--log-config-json", conf, "optapp:app") as run:
        assert run.get()[0] == 200
        assert wait_for(lambda: os.path.exists(logfile) and "TAGGED INFO worker" in open(logfile).read())


def test_log_config_dict_takes_a_python_dict_literal(project):
    logfile = os.path.join(project, "dict.log")
    literal = repr({"version": 1, "handlers": {"f": {"class": "logging.FileHandler", "filename": logfile}},
                    "loggers": {"lichen.error": {"handlers": ["f"], "level": "INFO"}}})
    with Run(project, "--log-config-dict", literal, "optapp:app") as run:
        assert run.get()[0] == 200
        assert wait_for(lambda: os.path.exists(logfile) and "serving" in open(logfile).read())


def test_log_config_reads_a_file_config_ini(project):
    logfile = os.path.join(project, "ini.log")
    ini = os.path.join(project, "logging.ini")
    with open(ini, "w") as f:
        f.write("[loggers]\nkeys=root,error\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
                "[logger_root]\nlevel=WARNING\nhandlers=\n"
                "[logger_error]\nlevel=INFO\nhandlers=file\nqualname=lichen.error\npropagate=0\n"
                f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({logfile!r},)\n"
                "[formatter_plain]\nformat=INI %(message)s\n")
    with Run(project, "--log-config", ini, "optapp:app") as run:
        assert run.get()[0] == 200
        assert wait_for(lambda: os.path.exists(logfile) and "INI worker" in open(logfile).read())


def test_reload_extra_file_restarts_the_workers_when_it_changes(project):
    extra = os.path.join(project, "settings.toml")
    with open(extra, "w") as f:
        f.write("a = 1\n")
    with Run(project, "--reload", "--reload-extra-file", extra, "optapp:app") as run:
        first = run.get()[1].split()[0]
        time.sleep(1.1)
        with open(extra, "w") as f:
            f.write("a = 2\n")
        assert wait_for(lambda: _body(run) not in (None, "") and _body(run).split()[0] != first, timeout=15)


def _body(run):
    try:
        return run.get()[1]
    except OSError:
        return None


def test_name_sets_the_process_name_of_master_and_workers(project):
    with Run(project, "-n", "myproject-web", "optapp:app") as run:
        assert run.get()[0] == 200
        for pid in [run.master.pid, *children(run.master.pid)]:
            with open(f"/proc/{pid}/comm") as f:
                assert f.read().strip() == "myproject-web"


def test_daemon_detaches_serves_and_stops_by_its_pid_file(project):
    port = free_port()
    pidfile = os.path.join(project, "app.pid")
    logfile = os.path.join(project, "error.log")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "lichen", "-D", "--pid", pidfile, "--error-logfile", logfile,
                          "-b", f"127.0.0.1:{port}", "optapp:app"], cwd=project, capture_output=True, text=True,
                         env={**os.environ, "IMPORTED_IN": os.path.join(project, "i.txt")}, timeout=30)
    pid = int(open(pidfile).read())
    try:
        assert (out.returncode, out.stdout, out.stderr) == (0, "", "") and time.monotonic() - t0 < 10
        assert get(port)[0] == 200  # served as soon as the command returned
        assert os.getsid(pid) == os.getpgid(pid) != os.getsid(0)  # its own session, no terminal
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) != os.getpid()  # not our child
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=20)
        assert not os.path.exists(pidfile)
    finally:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


# Client certificates --------------------------------------------------------------------------
def _certificates(folder):
    """A CA, a server certificate for localhost/127.0.0.1 and a client
    certificate, both signed by it: (ca.pem, (server.pem, server.key),
    (client.pem, client.key))."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(cn, key, issuer, issuer_key, ca=False, san=None):
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem, cert, key):
        paths = (os.path.join(folder, stem + ".pem"), os.path.join(folder, stem + ".key"))
        with open(paths[0], "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(paths[1], "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return paths

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = issue("lichen test CA", ca_key, name("lichen test CA"), ca_key, ca=True)
    server = issue("localhost", server_key, ca.subject, ca_key,
                   san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client = issue("a client", client_key, ca.subject, ca_key)
    return (write("ca", ca, ca_key)[0], write("server", server, server_key),
            write("client", client, client_key))


def _https_get(port, ca, client=None):
    context = ssl.create_default_context(cafile=ca)
    if client:
        context.load_cert_chain(*client)
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=context, timeout=10) as resp:
        return resp.status


def test_client_certificates_are_required_with_cert_reqs_required(project):
    ca, (cert, key), client = _certificates(project)
    with Run(project, "--certfile", cert, "--keyfile", key, "--ca-certs", ca, "--cert-reqs", "required",
             "optapp:app") as run:
        assert _https_get(run.port, ca, client) == 200
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            _https_get(run.port, ca)


def test_client_certificates_are_optional_with_cert_reqs_optional(project):
    ca, (cert, key), client = _certificates(project)
    with Run(project, "--certfile", cert, "--keyfile", key, "--ca-certs", ca, "--cert-reqs", "1",
             "optapp:app") as run:
        assert _https_get(run.port, ca) == 200
        assert _https_get(run.port, ca, client) == 200


def _tls12_cipher(port, ca, ciphers=None):
    """The cipher a TLS 1.2 client offering `ciphers` (default: its own list) gets."""
    context = ssl.create_default_context(cafile=ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3's suites are not set by a cipher list
    if ciphers:
        context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.cipher()[0]


def test_ciphers_limits_what_the_server_negotiates(project):
    ca, (cert, key), _ = _certificates(project)
    with Run(project, "--certfile", cert, "--keyfile", key, "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384",
             "optapp:app") as run:
        assert _tls12_cipher(run.port, ca) == "ECDHE-ECDSA-AES256-GCM-SHA384"
        with pytest.raises(ssl.SSLError):
            _tls12_cipher(run.port, ca, "ECDHE-ECDSA-AES128-GCM-SHA256")


# gunicorn.conf.py, read in process -------------------------------------------------------------
GUNICORN_CONF = '''
import multiprocessing
import os
import ssl

bind = ["127.0.0.1:9001", "unix:/tmp/lichen-gconf.sock"]
workers = 3
worker_class = "gthread"
threads = 4
worker_connections = 500
timeout = 60
graceful_timeout = 20
keepalive = 5
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 4000
accesslog = "-"
errorlog = "/tmp/lichen-gconf-error.log"
loglevel = "WARNING"
access_log_format = '%(h)s "%(r)s" %(s)s'
proc_name = "myproject"
preload_app = True
raw_env = ["A=1", "B=two"]
user = 65534
forwarded_allow_ips = ["10.0.0.1", "10.0.0.2"]
umask = 0o007
capture_output = True
reload_extra_files = ["settings.toml"]
certfile = "server.pem"
keyfile = "server.key"
ca_certs = "ca.pem"
cert_reqs = ssl.CERT_REQUIRED
ciphers = "ECDHE+AESGCM"
statsd_host = "localhost:8125"
sendfile = None
spew = False
CPUS = multiprocessing.cpu_count()
port = int(os.environ.get("PORT", "8000"))
def helper():
    return 1
'''


def test_a_gunicorn_conf_py_is_read_as_it_is(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(GUNICORN_CONF)
    cfg = parse_args([], environ={}, cwd=str(tmp_path))  # found without -c, as gunicorn finds it
    st = cfg.settings
    assert cfg.config_file == str(conf)
    assert st.bind == ("127.0.0.1:9001", "unix:/tmp/lichen-gconf.sock") and st.workers == 3
    assert (st.worker_class, st.threads, st.max_connections, st.timeout, st.graceful_timeout) == \
        ("gthread", 4, 500, 60.0, 20.0)
    assert (st.keepalive_timeout, st.max_request_line, st.max_header_count, st.max_field_size) == (5.0, 4094, 50, 4000)
    assert (st.access_logfile, st.error_logfile, st.log_level) == ("-", "/tmp/lichen-gconf-error.log", "WARNING")
    assert (st.access_log_format, st.proc_name, st.preload_app, st.raw_env) == \
        ('%(h)s "%(r)s" %(s)s', "myproject", True, ("A=1", "B=two"))
    assert (st.user, st.forwarded_allow_ips, st.umask, st.capture_output) == ("65534", "10.0.0.1,10.0.0.2", 7, True)
    assert (st.reload_extra_files, st.certfile, st.keyfile, st.ca_certs, st.cert_reqs, st.ciphers) == \
        (("settings.toml",), "server.pem", "server.key", "ca.pem", 2, "ECDHE+AESGCM")
    notes = dict((message, level) for level, message in cfg.notes)
    assert notes[f"{conf}: statsd_host: a gunicorn setting without effect in lichen (lichen sends no metrics)"] \
        == logging.INFO
    assert notes[f"{conf}: sendfile: a gunicorn setting without effect in lichen (lichen sends "
                 "wsgi.file_wrapper files with sendfile)"] == logging.DEBUG
    assert notes[f"{conf}: CPUS is no setting; ignored"] == logging.DEBUG
    assert notes[f"{conf}: port is no setting; ignored"] == logging.DEBUG
    assert notes[f"{conf}: helper is no setting; ignored"] == logging.DEBUG
    assert any(m.startswith("--worker-class gthread: lichen runs the app in a pool of 4 OS threads") for m in notes)
    # print-config writes it back as a lichen config file giving the same settings.
    printed = tmp_path / "printed.conf.py"
    printed.write_text(cfg.describe())
    assert parse_args(["-c", str(printed)], environ={}).settings == st


@pytest.mark.parametrize("mode,expected", [("v1", True), ("v2", True), ("auto", True), ("off", False)])
def test_gunicorns_proxy_protocol_modes_in_a_config_file_are_lichens_switch(tmp_path, mode, expected):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(f"proxy_protocol = {mode!r}\n")
    assert parse_args(["-c", str(conf)], environ={}).settings.proxy_protocol is expected


@pytest.mark.parametrize("args,expected", [
    (["--proxy-protocol", "v2", "pkg:app"], True),
    (["--proxy-protocol=auto", "pkg:app"], True),
    (["--proxy-protocol", "off", "pkg:app"], False),
    (["--proxy-protocol", "pkg:app"], True),  # lichen's own switch, before the app
])
def test_gunicorns_proxy_protocol_mode_on_the_command_line_is_lichens_switch(args, expected):
    st = parse_args(args, environ={}).settings
    assert (st.proxy_protocol, st.wsgi_app) == (expected, "pkg:app")


def test_every_gunicorn_setting_is_a_setting_a_hook_or_one_with_a_note():
    from gunicorn.config import Config as GunicornConfig

    from lichen.compat import GUNICORN_ONLY
    from lichen.hooks import HOOKS
    from lichen.settings import TABLE

    known = {name for spec in TABLE.values() for name in spec.names} | set(GUNICORN_ONLY) | set(HOOKS)
    assert sorted(set(GunicornConfig().settings) - known) == []


def test_a_newer_gunicorn_setting_in_a_config_file_gets_a_line_saying_why_it_does_nothing(tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("http_protocols = 'h2,h1'\npaste = 'development.ini'\n")
    notes = parse_args(["-c", str(conf)], environ={}).notes
    assert (logging.INFO, f"{conf}: http_protocols: a gunicorn setting without effect in lichen (lichen speaks "
                          "HTTP/1.1 only)") in notes
    assert any(level == logging.INFO and "paste: a gunicorn setting without effect" in m for level, m in notes)


def test_lichen_conf_py_is_read_before_gunicorn_conf_py_and_c_empty_reads_none(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 2\n")
    assert parse_args([], environ={}, cwd=str(tmp_path)).workers == 2
    (tmp_path / "lichen.conf.py").write_text("workers = 3\n")
    assert parse_args([], environ={}, cwd=str(tmp_path)).workers == 3
    assert parse_args(["-c", ""], environ={}, cwd=str(tmp_path)).workers == 1


def test_gunicorns_ignored_options_are_accepted_with_a_note():
    cfg = parse_args(["--worker-tmp-dir", "/dev/shm", "--no-sendfile", "--master", "--nodaemon"], environ={})
    assert [m for _, m in cfg.notes] == [
        "--worker-tmp-dir: a gunicorn option without effect in lichen (the heartbeat files live in the temporary "
        "directory)",
        "--no-sendfile: a gunicorn option without effect in lichen (lichen sends wsgi.file_wrapper files with "
        "sendfile)"]


def test_dash_p_is_gunicorns_pid_file_and_a_number_there_gets_a_warning():
    cfg = parse_args(["-p", "4"], environ={})
    assert cfg.settings.pidfile == "4" and cfg.workers == 1
    assert (logging.WARNING, "-p 4 is gunicorn's --pid: the PID goes to a file named '4' (uWSGI's process count "
                             "is --processes or -w)") in cfg.notes


@pytest.mark.parametrize("args,app,name,bind", [
    (["web", "--wsgi", "myproject.app"], "myproject.app", None, ("tcp:8080",)),
    (["-n", "web", "--port", "tcp:8081", "--wsgi", "myproject.app"], "myproject.app", None, ("tcp:8081",)),
    (["-n", "web", "--wsgi", "myproject.app"], "myproject.app", None, ("tcp:8080",)),
    (["-n", "web", "myproject:app"], "myproject:app", "web", ("127.0.0.1:8000",)),  # gunicorn's --name
    (["-n", "web", "--module", "myproject:app"], "myproject:app", "web", ("127.0.0.1:8000",)),
    (["web"], "web", None, ("127.0.0.1:8000",)),  # an app named web
])
def test_twistds_web_command_line_is_told_from_gunicorns_name(args, app, name, bind):
    st = parse_args(args, environ={}).settings
    assert (st.wsgi_app, st.proc_name, st.bind) == (app, name, bind)


def test_twistds_default_port_gives_way_to_port_in_the_environment():
    assert parse_args(["web", "--wsgi", "m.app"], environ={"PORT": "9000"}).bind == ("0.0.0.0:9000",)


def test_uwsgis_callable_names_the_app_of_a_module():
    st = parse_args(["--module", "tests.apps.sample", "--callable", "broken_factory"], environ={}).settings
    assert load_app(st.wsgi_app, callable_name=st.callable).__name__ == "broken_factory"


def test_a_wsgi_file_loads_its_application_or_the_callable_named(tmp_path):
    (tmp_path / "my-app.py").write_text("def application(e, sr):\n    return [b'a']\n"
                                        "def other(e, sr):\n    return [b'o']\n")
    assert load_app_file(str(tmp_path / "my-app.py"))(None, None) == [b"a"]
    assert load_app_file(str(tmp_path / "my-app.py"), "other")(None, None) == [b"o"]
    with pytest.raises(AppLoadError, match="has no 'missing'"):
        load_app_file(str(tmp_path / "my-app.py"), "missing")
    with pytest.raises(AppLoadError, match="no such file"):
        load_app_file(str(tmp_path / "nope.py"))
