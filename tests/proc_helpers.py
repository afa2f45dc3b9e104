# Helpers for tests that run `lichen` as a real process: free ports, waiting
# for a listener, simple HTTP requests, and a Master fixture object that is
# always cleaned up by PID (process group).
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def wait_for(predicate, timeout=10.0, step=0.05):
    """True once predicate() is true, False if it is not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def get(port, path="/", headers=None, timeout=10.0, host="127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def children(pid):
    """PIDs of pid's child processes (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill_group(proc, timeout=10.0):
    """SIGKILL the process group `proc` leads (started with
    start_new_session=True) and reap `proc`; a group already gone is fine."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.wait(timeout)


class Master:
    """`python -m lichen ...` in its own process group."""

    def __init__(self, *args, env=None, cwd=ROOT, pass_fds=(), preexec_fn=None, stderr_path=None):
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.proc = subprocess.Popen([sys.executable, "-m", "lichen", *args], cwd=cwd, env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=self._err, start_new_session=True,
                                     pass_fds=pass_fds, preexec_fn=preexec_fn)
        self.pid = self.proc.pid

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def log(self):
        if not self.stderr_path:
            return ""
        with open(self.stderr_path) as f:
            return f.read()

    def close(self):
        try:
            kill_group(self.proc)
        except subprocess.TimeoutExpired:
            pass
        if self._err is not subprocess.DEVNULL:
            self._err.close()
