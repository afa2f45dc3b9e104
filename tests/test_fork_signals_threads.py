# Spec tests for process-level behaviour: signals reaching the main greenlet
# through the hub, and os.fork giving the child a fresh, working hub while the
# parent's greenlets never run there. Each test runs a `sys.executable -c`
# script, bounded by timeouts; processes are killed by PID on the way out.
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from helpers import Script, hub_hygiene  # noqa: F401  (autouse fixture)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


# Signals --------------------------------------------------------------------------
SLEEP_THEN_REPORT = """
import time
from lichen.hub import get_hub, sleep, spawn
get_hub()
try:
    print("ready", flush=True)
    sleep(30)
    print("slept 30 s without interruption", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt in main", flush=True)
    t0 = time.monotonic()
    sleep(0.05)
    value = spawn(lambda: "spawned ok").get()
    print("after:", value, round(time.monotonic() - t0, 2), flush=True)
"""


def test_sigint_during_a_blocking_hub_wait_raises_keyboard_interrupt_in_main_promptly():
    with Script(SLEEP_THEN_REPORT) as s:
        s.expect("ready", timeout=10)
        time.sleep(0.2)  # well inside sleep(30): the hub is blocked in epoll_wait
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGINT)
        line = s.readline(timeout=3)
        elapsed = time.monotonic() - t0
        assert line == "KeyboardInterrupt in main", s.lines
        assert elapsed < 1.0


def test_the_hub_keeps_working_after_a_keyboard_interrupt():
    with Script(SLEEP_THEN_REPORT) as s:
        s.expect("ready", timeout=10)
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGINT)
        s.expect("KeyboardInterrupt in main", timeout=3)
        line = s.expect("after:", timeout=3)
        assert line.startswith("after: spawned ok")
        assert float(line.split()[-1]) < 0.5
        rc, _, err = s.finish(timeout=5)
        assert rc == 0, err


def test_sigint_while_the_main_greenlet_joins_a_sleeping_greenlet_reaches_main():
    code = """
    from lichen.hub import spawn, sleep
    g = spawn(sleep, 30)
    sleep(0)
    try:
        print("ready", flush=True)
        g.join()
        print("joined", flush=True)
    except KeyboardInterrupt:
        print("KeyboardInterrupt in main", flush=True)
    """
    with Script(code) as s:
        s.expect("ready", timeout=10)
        time.sleep(0.2)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGINT)
        assert s.readline(timeout=3) == "KeyboardInterrupt in main", s.lines
        assert time.monotonic() - t0 < 1.0


def test_sigint_while_a_spawned_greenlet_runs_reaches_the_main_greenlet():
    code = """
    import time
    from lichen.hub import spawn, sleep
    def busy():
        print("ready", flush=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)  # holds the hub: the signal arrives in this greenlet
    g = spawn(busy)
    try:
        g.join()
        print("joined", flush=True)
    except KeyboardInterrupt:
        print("KeyboardInterrupt in main", flush=True)
    """
    with Script(code) as s:
        s.expect("ready", timeout=10)
        time.sleep(0.2)
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGINT)
        assert s.readline(timeout=3) == "KeyboardInterrupt in main", s.lines
        assert time.monotonic() - t0 < 1.0


# Fork ----------------------------------------------------------------------------------
FORK_ECHO_SERVER = """
import json, os, sys, time
from lichen import socket as ls
from lichen.hub import Timeout, joinall, sleep, spawn, wait_read

PREFORK_LISTENER = sys.argv[1] == "prefork"
sleep(0.01)  # the parent's hub has run before the fork
if PREFORK_LISTENER:
    listener = ls.create_server(("127.0.0.1", 0))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    status = 1
    try:
        os.close(r)
        if not PREFORK_LISTENER:
            listener = ls.create_server(("127.0.0.1", 0))
        os.write(w, b"%d" % listener.getsockname()[1])
        os.close(w)

        def handle(conn):
            with conn:
                while True:
                    data = conn.recv(1024)
                    if not data:
                        return
                    conn.sendall(b"child %d: " % os.getpid() + data)

        with Timeout(5):
            handlers = []
            for _ in range(2):
                conn, _ = listener.accept()
                handlers.append(spawn(handle, conn))
            joinall(handlers)
        status = 0
    except BaseException as e:
        print("child error:", repr(e), flush=True)
    finally:
        os._exit(status)

print("CHILD", pid, flush=True)
os.close(w)
wait_read(r, timeout=5)
port = int(os.read(r, 32))
os.close(r)
if PREFORK_LISTENER:
    listener.close()

def client(msg):
    with ls.create_connection(("127.0.0.1", port), timeout=3) as c:
        c.sendall(msg)
        c.shutdown(ls._stdlib.SHUT_WR)
        out = b""
        while True:
            chunk = c.recv(1024)
            if not chunk:
                return out.decode()
            out += chunk

sleep(0.1)  # connect late: the child's accept has to wait on its hub
clients = [spawn(client, b"one"), spawn(client, b"two")]
joinall(clients, timeout=5)
deadline = time.monotonic() + 5
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done or time.monotonic() > deadline:
        break
    sleep(0.01)
print("RESULT", json.dumps({"replies": [g.value for g in clients], "errors": [repr(g.exception) for g in clients if g.exception],
                             "child": pid, "child_status": status if done else None}), flush=True)
"""


def _run_fork_echo(mode: str) -> dict:
    with Script(FORK_ECHO_SERVER, mode) as s:
        child = int(s.expect("CHILD", timeout=10).split()[1])
        s.track(child)
        line = s.expect("RESULT", timeout=10)
        rc, _, err = s.finish(timeout=5)
        result = json.loads(line.split(" ", 1)[1])
        result["stdout"], result["stderr"], result["rc"] = s.lines, err, rc
        assert result["child"] == child
        return result


def test_a_forked_child_gets_a_working_hub_and_serves_a_cooperative_echo_server():
    result = _run_fork_echo("inchild")
    child = result["child"]
    assert result["errors"] == [], result
    assert result["replies"] == [f"child {child}: one", f"child {child}: two"], result
    assert result["child_status"] == 0, result
    assert result["rc"] == 0, result["stderr"]


def test_a_listening_socket_created_before_fork_accepts_in_the_child():
    result = _run_fork_echo("prefork")
    child = result["child"]
    assert result["replies"] == [f"child {child}: one", f"child {child}: two"], result


GREENLETS_ACROSS_FORK = """
import json, os, sys, time
from lichen.hub import joinall, sleep, spawn, spawn_later, wait

marker = sys.argv[1]
def write_marker(tag):
    with open(marker, "a") as f:
        f.write(f"{tag} {os.getpid()}\\n")

def sleeper():
    sleep(0.2)
    write_marker("sleeping")

parent = os.getpid()
gs = [spawn(sleeper), spawn_later(0.2, write_marker, "spawn_later")]
sleep(0.01)  # the sleeper is now blocked on its timer
gs.append(spawn(write_marker, "queued"))  # spawned but not yet started at fork time
pid = os.fork()
if pid == 0:
    status = 1
    try:
        t0 = time.monotonic()
        sleep(0.5)  # the child's own hub runs past the parent's timers
        wait()
        status = 0 if time.monotonic() - t0 >= 0.45 else 2
    except BaseException as e:
        print("child error:", repr(e), flush=True)
    finally:
        os._exit(status)

print("CHILD", pid, flush=True)
joinall(gs, timeout=5)
deadline = time.monotonic() + 5
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done or time.monotonic() > deadline:
        break
    sleep(0.01)
print("RESULT", json.dumps({"parent": parent, "child": pid, "child_status": status if done else None,
                             "marker": open(marker).read().split("\\n")}), flush=True)
"""


def test_greenlets_of_the_parent_do_not_run_in_a_forked_child(tmp_path):
    marker = tmp_path / "marker"
    with Script(GREENLETS_ACROSS_FORK, str(marker)) as s:
        child = int(s.expect("CHILD", timeout=10).split()[1])
        s.track(child)
        result = json.loads(s.expect("RESULT", timeout=10).split(" ", 1)[1])
        rc, _, err = s.finish(timeout=5)
    assert rc == 0, err
    assert result["child_status"] == 0, (result, s.lines)
    lines = sorted(line for line in result["marker"] if line)
    parent = result["parent"]
    assert lines == sorted([f"sleeping {parent}", f"spawn_later {parent}", f"queued {parent}"])
    assert str(child) not in "".join(result["marker"])


def test_a_forked_child_can_use_the_thread_pool_and_signals():
    code = """
    import os, signal, time
    from lichen.hub import sleep
    from lichen.socket import getaddrinfo
    from lichen.threadpool import get_threadpool
    get_threadpool().apply(time.sleep, 0.01)  # the parent's pool has threads
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            infos = getaddrinfo("localhost", 80)  # a name: goes through the pool
            assert any(i[4][0] == "127.0.0.1" for i in infos), infos
            assert get_threadpool().apply(os.getpid) == os.getpid()
            try:
                signal.setitimer(signal.ITIMER_REAL, 0.1)
                signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
                t0 = time.monotonic()
                sleep(10)
            except KeyboardInterrupt:
                status = 0 if time.monotonic() - t0 < 1 else 3
        except BaseException as e:
            print("child error:", repr(e), flush=True)
        finally:
            os._exit(status)
    print("CHILD", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("STATUS", os.waitstatus_to_exitcode(status), flush=True)
    """
    with Script(code) as s:
        child = int(s.expect("CHILD", timeout=10).split()[1])
        s.track(child)
        status = s.expect("STATUS", timeout=10)
        rc, _, err = s.finish(timeout=5)
    assert status == "STATUS 0", (s.lines, err)
    assert rc == 0, err
