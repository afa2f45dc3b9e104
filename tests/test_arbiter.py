# The prefork master (lichen.arbiter) and its workers, as real processes.
import os
import signal
import socket
import threading
import time

import pytest

from proc_helpers import Master, children, free_port, get, kill_group, wait_for, wait_port

APP = "tests.apps.sample:app"


@pytest.fixture
def master_factory(tmp_path):
    started = []

    def start(*args, **kw):
        port = free_port()
        m = Master("-b", f"127.0.0.1:{port}", *args, stderr_path=str(tmp_path / f"m{len(started)}.log"), **kw)
        m.port = port
        started.append(m)
        wait_port(port)
        return m

    yield start
    for m in started:
        m.close()


def pids_seen(port, n=40):
    return {get(port)[1].split("pid=")[1] for _ in range(n)}


def test_two_workers_answer_from_two_different_pids(master_factory):
    m = master_factory("-w", "2", APP)
    assert wait_for(lambda: len(pids_seen(m.port, 20)) == 2)


def test_a_killed_worker_is_replaced(master_factory):
    m = master_factory("-w", "1", APP)
    first = get(m.port)[1].split("pid=")[1]
    os.kill(int(first), signal.SIGKILL)
    assert wait_for(lambda: _answer_pid(m.port) not in (None, first))


def _answer_pid(port):
    try:
        return get(port, timeout=2)[1].split("pid=")[1]
    except OSError:
        return None


def test_term_lets_a_slow_request_in_flight_complete(master_factory):
    m = master_factory("-w", "1", APP)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=get(m.port, "/slow?1.0")))
    t.start()
    time.sleep(0.3)
    m.signal(signal.SIGTERM)
    t.join(10)
    assert result["r"][0] == 200
    assert m.wait(15) == 0


def test_term_stops_accepting_new_connections(master_factory):
    m = master_factory("-w", "1", APP)
    m.signal(signal.SIGTERM)
    assert m.wait(15) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", m.port), timeout=1).close()


def test_hup_under_constant_load_fails_no_request_and_replaces_workers(master_factory):
    m = master_factory("-w", "2", APP)
    before = pids_seen(m.port)
    failures, done, count = [], threading.Event(), [0]

    def load():
        while not done.is_set():
            try:
                status, _ = get(m.port, timeout=5)
                if status != 200:
                    failures.append(status)
                count[0] += 1
            except OSError as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    m.signal(signal.SIGHUP)
    replaced = wait_for(lambda: not (pids_seen(m.port, 10) & before), timeout=15)
    time.sleep(0.5)
    done.set()
    for t in threads:
        t.join(10)
    assert replaced and failures == [] and count[0] > 50


def test_blocked_worker_is_killed_after_timeout_and_replaced(master_factory):
    m = master_factory("-w", "1", "--timeout", "1", APP)
    first = get(m.port)[1].split("pid=")[1]
    t0 = time.monotonic()
    with pytest.raises(OSError):
        get(m.port, "/block?30", timeout=20)
    assert time.monotonic() - t0 < 10
    assert wait_for(lambda: _answer_pid(m.port) not in (None, first))
    assert "blocked for more than" in m.log()


def test_ttin_and_ttou_add_and_remove_a_worker(master_factory):
    m = master_factory("-w", "1", APP)
    assert wait_for(lambda: len(children(m.pid)) == 1)
    m.signal(signal.SIGTTIN)
    assert wait_for(lambda: len(children(m.pid)) == 2)
    m.signal(signal.SIGTTOU)
    assert wait_for(lambda: len(children(m.pid)) == 1)


def test_usr1_reopens_the_access_log_file(master_factory, tmp_path):
    logfile = tmp_path / "access.log"
    m = master_factory("-w", "1", "--access-logfile", str(logfile), APP)
    get(m.port)
    assert wait_for(lambda: logfile.exists() and "GET / HTTP/1.1" in logfile.read_text())
    rotated = tmp_path / "access.log.1"
    logfile.rename(rotated)
    m.signal(signal.SIGUSR1)
    time.sleep(0.5)
    assert wait_for(lambda: (get(m.port) and logfile.exists() and "GET / HTTP/1.1" in logfile.read_text()),
                    timeout=10)


def test_usr2_starts_a_new_master_on_the_same_socket(master_factory, tmp_path):
    pidfile = tmp_path / "lichen.pid"
    m = master_factory("-w", "1", "--pid", str(pidfile), APP)
    assert wait_for(lambda: pidfile.exists())
    m.signal(signal.SIGUSR2)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() not in ("", str(m.pid)), timeout=15)
    new_pid = int(pidfile.read_text())
    m.signal(signal.SIGTERM)
    assert m.wait(15) == 0
    try:
        assert get(m.port)[0] == 200  # served by the new master's worker
    finally:
        os.kill(new_pid, signal.SIGKILL)


def test_max_requests_restarts_the_worker(master_factory):
    m = master_factory("-w", "1", "--max-requests", "5", APP)
    first = get(m.port)[1].split("pid=")[1]
    for _ in range(6):
        get(m.port)
    assert wait_for(lambda: _answer_pid(m.port) not in (None, first))


def test_reload_restarts_workers_when_a_source_file_changes(master_factory, tmp_path):
    mod = tmp_path / "reloadme.py"
    mod.write_text("import os\ndef app(e, sr):\n    sr('200 OK', [])\n    return [b'v1 pid=%d' % os.getpid()]\n")
    m = master_factory("-w", "1", "--reload", "--chdir", str(tmp_path), "reloadme:app")
    assert get(m.port)[1].startswith("v1")
    time.sleep(1.1)
    mod.write_text("import os\ndef app(e, sr):\n    sr('200 OK', [])\n    return [b'v2 pid=%d' % os.getpid()]\n")
    assert wait_for(lambda: (_body(m.port) or "").startswith("v2"), timeout=15)


def _body(port):
    try:
        return get(port, timeout=2)[1]
    except OSError:
        return None


def test_systemd_socket_activation_serves_on_the_passed_socket(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    fd = listener.fileno()

    def to_fd3():
        os.dup2(fd, 3)
        os.set_inheritable(3, True)

    # LISTEN_PID must be the server's own PID: exec through a shell that knows it.
    # fd 3 is in pass_fds because subprocess closes other fds after preexec_fn.
    import subprocess
    import sys
    proc = subprocess.Popen(["sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS=1 exec "{sys.executable}" -m lichen -w 1 {APP}'],
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            pass_fds=(fd, 3), preexec_fn=to_fd3, start_new_session=True,
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    listener.close()
    try:
        wait_port(port)
        assert get(port)[0] == 200
    finally:
        kill_group(proc)


def test_sd_notify_sends_ready(master_factory, tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(15)
    try:
        master_factory("-w", "1", APP, env={"NOTIFY_SOCKET": path})
        assert b"READY=1" in s.recv(1024)
    finally:
        s.close()


def test_unix_socket_bind_with_umask(tmp_path):
    path = str(tmp_path / "app.sock")
    m = Master("-b", f"unix:{path}", "--umask", "007", APP)
    try:
        assert wait_for(lambda: os.path.exists(path))
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o770)
        import http.client

        class UnixConn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)

        assert wait_for(lambda: _unix_get(UnixConn) == 200)
    finally:
        m.close()


def _unix_get(cls):
    try:
        c = cls("localhost", timeout=2)
        c.request("GET", "/")
        return c.getresponse().status
    except OSError:
        return None


def test_fd_bind_serves_on_an_inherited_socket():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    m = Master("-w", "1", "-b", f"fd://{fd}", APP, pass_fds=(fd,))
    listener.close()
    try:
        wait_port(port)
        assert get(port)[0] == 200
    finally:
        m.close()


def test_twistd_style_tcp_bind_listens_on_the_port():
    port = free_port()
    m = Master("-w", "1", "--port", f"tcp:{port}:interface=127.0.0.1", "--wsgi", "tests.apps.sample.app")
    try:
        wait_port(port)
        status, body = get(port)
        assert status == 200 and body.startswith("app ")
    finally:
        m.close()


def test_uwsgi_style_http_and_module_options_serve_the_app():
    port = free_port()
    m = Master("--http", f"127.0.0.1:{port}", "--module", APP)
    try:
        wait_port(port)
        assert get(port)[0] == 200
    finally:
        m.close()


def test_int_is_a_fast_stop_that_does_not_wait_for_requests_in_flight(master_factory):
    m = master_factory("-w", "1", APP)
    result = {}

    def slow():
        try:
            result["r"] = get(m.port, "/slow?10", timeout=15)
        except OSError as e:
            result["r"] = e

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    m.signal(signal.SIGINT)
    assert m.wait(10) == 0
    assert time.monotonic() - t0 < 4.0  # not the 10 s of the request
    t.join(15)
    assert isinstance(result["r"], OSError)  # cut, not answered


def _server_header(port):
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().getheader("Server")
    except OSError:
        return None


def test_hup_reads_the_config_file_again_below_the_command_line(master_factory, tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("workers = 2\nserver_header = 'one'\n")
    m = master_factory("-c", str(conf), "-w", "1", APP)
    assert _server_header(m.port) == "one"
    conf.write_text("workers = 3\nserver_header = 'two'\n")
    m.signal(signal.SIGHUP)
    assert wait_for(lambda: _server_header(m.port) == "two", timeout=15)
    assert wait_for(lambda: len(children(m.pid)) == 1)
    time.sleep(0.5)
    assert len(children(m.pid)) == 1  # -w 1 on the command line still wins over the file


def test_hup_with_a_broken_config_file_keeps_the_old_configuration(master_factory, tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("server_header = 'one'\n")
    m = master_factory("-c", str(conf), APP)
    conf.write_text("workers = 'many'\n")
    m.signal(signal.SIGHUP)
    assert wait_for(lambda: "config reload failed" in m.log())
    assert "workers: expected an integer" in m.log()
    assert _server_header(m.port) == "one"
