# benchmarks/servers.py: one small launcher per server in the HTTP benchmark (lichen and its peers).
#
# Strategy: the parent side (`SERVERS`, `start`, `Running.stop`) builds each server's command
# line, starts it pinned to CPU 0 (`taskset -c 0`) in its own session/process group, waits
# until its port accepts and answers, and later kills the whole group and waits for the port
# to be released. Servers with a Python API are run by this same file as a child
# (`python servers.py NAME PORT`, the `serve_*` functions); the others (gunicorn, granian,
# uWSGI, nginx) by their own executables. All serve apps.py on 127.0.0.1 only.
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))
BIN = os.path.dirname(sys.executable)
HOST = "127.0.0.1"

# The same knobs for every server that has them, so that the idle scenario measures
# memory per connection and not a configured cap or timeout (see README).
BACKLOG = 4096
MAX_CONNECTIONS = 60000
KEEPALIVE_S = 300


def nofile_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------- child side
def _app(cooperate: str | None = None):
    """apps.app; with `cooperate`, its /park and /events endpoints use that library's sleep and Event."""
    sys.path.insert(0, HERE)
    import apps

    if cooperate:
        apps.cooperate(cooperate)
    return apps.app


def serve_lichen(port: int) -> None:
    from lichen.wsgi import WSGIServer

    server = WSGIServer((HOST, port), _app("lichen"), log=None, backlog=BACKLOG,
                        max_connections=MAX_CONNECTIONS, keepalive_timeout=float(KEEPALIVE_S))
    server.serve_forever()


def _serve_gevent(port: int, nodelay: bool) -> None:
    from gevent.pywsgi import WSGIHandler, WSGIServer

    class NoDelayHandler(WSGIHandler):
        """gevent.pywsgi's handler with TCP_NODELAY set on the accepted socket."""

        def __init__(self, sock, address, server, rfile=None):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().__init__(sock, address, server, rfile)

    kw = {"handler_class": NoDelayHandler} if nodelay else {}
    WSGIServer((HOST, port), _app("gevent"), log=None, backlog=BACKLOG, **kw).serve_forever()


def serve_gevent(port: int) -> None:
    _serve_gevent(port, nodelay=False)


def serve_gevent_nodelay(port: int) -> None:
    _serve_gevent(port, nodelay=True)


def serve_meinheld(port: int) -> None:
    from meinheld import server

    server.set_access_logger(None)
    server.set_keepalive(KEEPALIVE_S)  # meinheld ships with keep-alive off
    server.set_picoev_max_fd(nofile_limit())  # default 4096 fds
    server.set_backlog(BACKLOG)
    server.listen((HOST, port))
    server.run(_app())


def serve_waitress(port: int) -> None:
    import waitress

    waitress.serve(_app(), host=HOST, port=port, backlog=BACKLOG, connection_limit=MAX_CONNECTIONS,
                   channel_timeout=KEEPALIVE_S, asyncore_use_poll=True, _quiet=True)


def serve_bjoern(port: int) -> None:
    import bjoern

    bjoern.run(_app(), HOST, port, listen_backlog=BACKLOG)


def serve_fastwsgi(port: int) -> None:
    import fastwsgi

    fastwsgi.server.backlog = BACKLOG
    fastwsgi.run(_app(), host=HOST, port=port, loglevel=fastwsgi.LL_ERROR)


# --------------------------------------------------------------------------- parent side
@dataclass
class Server:
    name: str
    dists: tuple[str, ...]  # PyPI distributions whose versions are reported (empty: not Python)
    modules: tuple[str, ...]  # must be importable in the benchmark venv
    command: Callable[[int, str], list[str]]  # (port, tmpdir) -> argv (before taskset)
    config: str  # the non-default settings, for the README/results
    executable: str | None = None  # must exist (non-Python servers)
    wsgi: bool = True  # runs apps.py (False: nginx, the static ceiling)
    cooperative: bool = False  # runs apps.py with its own sleep and Event (the long-poll and SSE scenarios)
    notes: list[str] = field(default_factory=list)

    def unavailable(self) -> str | None:
        """Why this server cannot run here, or None."""
        for mod in self.modules:
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"Python module {mod!r} is not installed in the benchmark venv"
        if self.executable and not (os.path.exists(self.executable) or shutil.which(self.executable)):
            return f"{self.executable} not found"
        return None

    def version(self) -> str:
        if self.name == "nginx":
            return nginx_version()
        if self.name == "lichen":
            return lichen_version()
        out = []
        for d in self.dists:
            try:
                out.append(f"{d} {importlib.metadata.version(d)}")
            except importlib.metadata.PackageNotFoundError:
                out.append(f"{d} ?")
        return ", ".join(out)


def _self(name: str) -> Callable[[int, str], list[str]]:
    return lambda port, tmp: [sys.executable, os.path.abspath(__file__), name, str(port)]


def _gunicorn(port: int, tmp: str) -> list[str]:
    return [os.path.join(BIN, "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"{HOST}:{port}",
            "--worker-connections", str(MAX_CONNECTIONS), "--keep-alive", str(KEEPALIVE_S),
            "--backlog", str(BACKLOG), "--log-level", "warning", "--chdir", HERE, "apps:app"]


def _granian(port: int, tmp: str) -> list[str]:
    return [os.path.join(BIN, "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port),
            "--workers", "1", "--backlog", str(BACKLOG), "--backpressure", str(MAX_CONNECTIONS),
            "--log-level", "warning", "--working-dir", HERE, "apps:app"]


def _uwsgi(port: int, tmp: str) -> list[str]:
    return [os.path.join(BIN, "pyuwsgi"), "--http11-socket", f"{HOST}:{port}", "--processes", "1",
            "--chdir", HERE, "--module", "apps:app", "--listen", str(BACKLOG), "--disable-logging",
            "--die-on-term", "--need-app"]


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile {nofile};
# far above the fd limit: nginx closes idle keep-alive connections once fewer than 1/16 of
# worker_connections are free, which at 19,000 of 20,000 would drop idle ones
events {{ worker_connections {max_conn}; }}
http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    keepalive_timeout {keepalive}s;
    keepalive_requests 100000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port} backlog={backlog};
        location = /64k {{ root {tmp}; default_type application/octet-stream; }}
        location / {{ return 200 "Hello, World!"; }}
    }}
}}
"""


def _nginx(port: int, tmp: str) -> list[str]:
    with open(os.path.join(tmp, "64k"), "wb") as f:
        f.write(b"x" * 65536)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, host=HOST, port=port, backlog=BACKLOG,
                                  keepalive=KEEPALIVE_S, nofile=nofile_limit(), max_conn=MAX_CONNECTIONS))
    # -e: the error log before the config is read; -p: prefix (no /var paths); daemon off in the config
    return [nginx_path() or "nginx", "-p", tmp, "-e", os.path.join(tmp, "error.log"), "-c", conf]


def nginx_path() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.path.exists(p)), None)


def nginx_version() -> str:
    exe = nginx_path()
    if not exe:
        return "nginx ?"
    r = subprocess.run([exe, "-v"], capture_output=True, text=True)
    return (r.stderr or r.stdout).strip().replace("nginx version: ", "")


def lichen_version() -> str:
    if SRC not in sys.path:
        sys.path.insert(0, SRC)
    try:
        import lichen

        v = getattr(lichen, "__version__", None) or importlib.metadata.version("lichen")
    except Exception:  # noqa: BLE001 - report, do not fail
        v = "?"
    try:
        rev = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        rev = ""
    return f"lichen {v}" + (f" ({rev})" if rev else "")


_S = Server
SERVERS: dict[str, Server] = {s.name: s for s in [
    _S("lichen", (), ("greenlet", "cffi", "httptools"), _self("lichen"),
       f"WSGIServer(log=None, backlog={BACKLOG}, max_connections={MAX_CONNECTIONS}, "
       f"keepalive_timeout={KEEPALIVE_S})", cooperative=True),
    _S("gevent", ("gevent",), ("gevent",), _self("gevent"),
       f"gevent.pywsgi.WSGIServer(log=None, backlog={BACKLOG}), as shipped (Nagle on)", cooperative=True),
    _S("gevent+nodelay", ("gevent",), ("gevent",), _self("gevent_nodelay"),
       "the same with a WSGIHandler subclass that sets TCP_NODELAY on each accepted socket", cooperative=True),
    _S("meinheld", ("meinheld", "greenlet"), ("meinheld",), _self("meinheld"),
       f"set_keepalive({KEEPALIVE_S}) (default: off), set_picoev_max_fd(RLIMIT_NOFILE), "
       f"set_backlog({BACKLOG}), access log off"),
    _S("waitress", ("waitress",), ("waitress",), _self("waitress"),
       f"serve(backlog={BACKLOG}, connection_limit={MAX_CONNECTIONS}, channel_timeout={KEEPALIVE_S}, "
       "asyncore_use_poll=True), 4 threads (default)"),
    _S("gunicorn", ("gunicorn", "gevent"), ("gunicorn", "gevent"), _gunicorn,
       f"-k gevent -w 1 --worker-connections {MAX_CONNECTIONS} --keep-alive {KEEPALIVE_S} --backlog {BACKLOG}"),
    _S("granian", ("granian",), ("granian",), _granian,
       f"--interface wsgi --workers 1 --backlog {BACKLOG} --backpressure {MAX_CONNECTIONS}"),
    _S("uwsgi", ("pyuwsgi",), ("pyuwsgi",), _uwsgi,
       f"pyuwsgi --http11-socket --processes 1 --listen {BACKLOG} --disable-logging (no master)"),
    _S("bjoern", ("bjoern",), ("bjoern",), _self("bjoern"), f"bjoern.run(listen_backlog={BACKLOG})"),
    _S("fastwsgi", ("fastwsgi",), ("fastwsgi",), _self("fastwsgi"),
       f"fastwsgi.run(loglevel=LL_ERROR), backlog {BACKLOG}"),
    _S("nginx", (), (), _nginx,
       "static ceiling: `return 200 \"Hello, World!\"`, /64k a static file, POST body discarded; "
       f"worker_processes 1, worker_connections {MAX_CONNECTIONS}, sendfile on, keepalive_requests unlimited", executable="nginx",
       wsgi=False),
]}


# --------------------------------------------------------------------------- running one
class ServerFailed(RuntimeError):
    pass


def free_port(start: int = 20000, stop: int = 30000) -> int:
    """A port outside the ephemeral range (so clients never hold it) that binds now."""
    for _ in range(200):
        port = free_port.next  # type: ignore[attr-defined]
        free_port.next = start + (port + 1 - start) % (stop - start)  # type: ignore[attr-defined]
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise ServerFailed("no free port in 20000-29999")


free_port.next = 20000 + os.getpid() % 10000  # type: ignore[attr-defined]


def http_exchange(port: int, raw: bytes, timeout: float = 2.0,
                  check_close: bool = False) -> tuple[str, bytes, bool | None]:
    """Send one raw request; return (status line, body, server closed the connection after it).
    The body is read by Content-Length, so servers that ignore `Connection: close` do not hang
    us; `closed` is only probed (0.3 s wait for EOF) with check_close."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("connection closed before the response header")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                       if k.strip().lower() == "content-length"), None)
        if length is None:
            raise OSError(f"no Content-Length in the response: {lines[0]!r}")
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("connection closed inside the response body")
            body += chunk
        closed = None
        if check_close:
            s.settimeout(0.3)
            try:
                closed = s.recv(1) == b""
            except TimeoutError:
                closed = False
            except ConnectionResetError:
                closed = True
        return lines[0], body, closed


def _http_get_ok(port: int) -> bool:
    try:
        status, body, _ = http_exchange(port, b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        return " 200 " in status + " "
    except OSError:
        return False


@dataclass
class Running:
    server: Server
    port: int
    proc: subprocess.Popen
    tmp: str
    log_path: str

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session=True: the leader's pid is the group id

    def pids(self) -> list[int]:
        """The server's processes: everything in its process group (master and workers)."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getpgid(int(entry)) == self.pgid:
                        out.append(int(entry))
                except OSError:
                    pass
        return out

    def rss_kib(self) -> int:
        """VmRSS summed over the server's processes (children included), in KiB."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def log_tail(self, n: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL what is left after 2 s, wait for the port to be free."""
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and (self.alive() or self.pids()):
                time.sleep(0.05)
                self.proc.poll()
            if not self.alive() and not self.pids():
                break
        self.proc.poll()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # released: nothing accepts on it any more
            with socket.socket() as s:
                if s.connect_ex((HOST, self.port)) != 0:
                    break
            time.sleep(0.05)
        shutil.rmtree(self.tmp, ignore_errors=True)


def start(server: Server, timeout: float = 20.0) -> Running:
    """Start `server` pinned to CPU 0 and return once its port accepts and `GET /` answers 200."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix=f"lichen-bench-{server.name.replace('+', '-')}-")
    os.chmod(tmp, 0o755)  # nginx's worker (user nobody) reads its static file from here
    argv = server.command(port, tmp)
    if shutil.which("taskset"):
        argv = ["taskset", "-c", "0", *argv]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, HERE] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    log_path = os.path.join(tmp, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=HERE, env=env, start_new_session=True)
    run = Running(server, port, proc, tmp, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not run.alive():
            tail = run.log_tail()
            run.stop()
            raise ServerFailed(f"{server.name} exited with {proc.returncode} at start-up:\n{tail}")
        with socket.socket() as s:
            accepting = s.connect_ex((HOST, port)) == 0
        if accepting and _http_get_ok(port):
            return run
        time.sleep(0.05)
    tail = run.log_tail()
    run.stop()
    raise ServerFailed(f"{server.name} did not answer on port {port} within {timeout:.0f} s:\n{tail}")


if __name__ == "__main__":  # child: python servers.py NAME PORT
    name, port_arg = sys.argv[1], int(sys.argv[2])
    globals()[f"serve_{name}"](port_arg)
