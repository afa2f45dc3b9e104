# Shared helpers for the tests of lichen's lower layers (loop, hub, socket,
# tls, threadpool, fork/signals/threads).
#
# - fd_count()/open_fds(): file descriptors of this process, from /proc.
# - make_self_signed_cert(): a throw-away CA-flagged cert for "localhost" and
#   127.0.0.1, made with `cryptography`; make_pki(): a CA, and a server and a
#   client certificate it signed.
# - Ticker: a greenlet that counts how often it got to run; used to prove
#   that the hub kept scheduling (or did not switch at all) during a call.
# - hub_hygiene: an autouse fixture (import it into a test module) that fails
#   a test which leaves anything armed in the main thread's hub.
# - Script: a `sys.executable -c` subprocess with line reading under a
#   timeout and kill-by-PID cleanup.
from __future__ import annotations

import datetime
import ipaddress
import os
import resource
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable

import pytest

from lichen.hub import get_hub, sleep, spawn


# File descriptors -------------------------------------------------------------
def open_fds() -> set[int]:
    """The fd numbers open in this process (the listing's own fd excluded)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:  # the directory fd used by listdir, already closed
            continue
        fds.add(fd)
    return fds


def fd_count() -> int:
    return len(open_fds())


def describe_fds(fds: set[int]) -> list[str]:
    out = []
    for fd in sorted(fds):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            out.append(f"{fd} -> ?")
    return out


def raise_nofile_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (at most the hard
    limit); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


# TLS material -----------------------------------------------------------------
def make_self_signed_cert(directory: str) -> tuple[str, str]:
    """Write cert.pem and key.pem for CN=localhost (SAN localhost, 127.0.0.1)
    into `directory`; returns their paths. The cert is its own CA, so a client
    context made with `cafile=cert.pem` trusts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = os.path.join(directory, "cert.pem")
    keyfile = os.path.join(directory, "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return certfile, keyfile


def make_pki(directory: str) -> dict[str, str]:
    """A throw-away CA and two certificates it signed, written as PEM files
    into `directory`: "ca" (the CA's certificate), "cert"/"key" (a server's,
    for localhost and 127.0.0.1), "client_cert"/"client_key" (a client's,
    CN=client). Returns their paths by those names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    paths: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        paths[name] = os.path.join(directory, f"{name}.pem")
        with open(paths[name], "wb") as f:
            f.write(data)

    def issue(cn: str, key: Any, issuer: Any, issuer_key: Any, ca: bool, extensions: list) -> Any:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(issuer)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        # (Key identifiers and a CA's key usage: what strict verification,
        # Python 3.13's default, asks of a chain.)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        for ext in extensions:
            builder = builder.add_extension(ext, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lichen test CA")])
    ca = issue("lichen test CA", ca_key, ca_name, ca_key, True, [])
    write("ca", ca.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = issue("localhost", server_key, ca_name, ca_key, False,
                   [san, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])])
    write("cert", server.public_bytes(serialization.Encoding.PEM))
    write("key", pem_key(server_key))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = issue("client", client_key, ca_name, ca_key, False,
                   [x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
    write("client_cert", client.public_bytes(serialization.Encoding.PEM))
    write("client_key", pem_key(client_key))
    return paths


# Greenlet helpers ---------------------------------------------------------------
class Ticker:
    """A greenlet counting its turns: `interval=0` ticks on every hub pass
    (sleep(0)), a positive interval ticks on a timer. Use as a context
    manager; `count` is the number of ticks so far."""

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = interval
        self.count = 0
        self.glet = None

    def _run(self) -> None:
        while True:
            sleep(self.interval)
            self.count += 1

    def __enter__(self) -> "Ticker":
        self.glet = spawn(self._run)
        sleep(0)  # let it start
        return self

    def __exit__(self, *exc: Any) -> None:
        self.glet.kill()


def _referenced_active(hub: Any) -> list[Any]:
    return [w for w in list(hub.loop.watchers.values()) if w.active and not w._unref]


@pytest.fixture(autouse=True)
def hub_hygiene():
    """After each test: nothing armed may be left in the main thread's hub
    (every blocking helper cleans up after itself; tests join what they
    spawn). A leftover is closed so later tests are not affected."""
    hub = get_hub()
    # Whatever earlier tests (of other modules) left behind is not ours to judge.
    already = {id(w) for w in _referenced_active(hub)}
    refs_before = hub._refs
    yield hub
    if hub.loop.destroyed:
        return
    # Let queued callbacks (link callbacks, late wake-ups) run out.
    for _ in range(3):
        sleep(0)
    leftovers = [w for w in _referenced_active(hub) if id(w) not in already]
    refs = hub._refs - refs_before
    for w in leftovers:
        w.close()
    if leftovers or refs:
        pytest.fail(f"test left work armed in the hub: watchers={leftovers!r} refs={refs}")


@pytest.fixture
def idle_hub():
    """For tests that need the main hub to run dry (LoopExit, wait()): fail
    fast, instead of hanging, if something from an earlier test still holds
    the loop alive."""
    hub = get_hub()
    for _ in range(3):
        sleep(0)
    busy = _referenced_active(hub)
    if busy or hub._refs or hub._queue:
        pytest.fail(f"precondition: the hub is not idle before the test (left by an earlier test): "
                    f"watchers={busy!r} refs={hub._refs} queued={len(hub._queue)}")
    return hub


# Subprocesses ----------------------------------------------------------------
class Script:
    """`sys.executable -c code` with stdout lines readable under a timeout.
    Always use as a context manager: the process (and any PIDs registered
    with `track`) are killed by PID on exit."""

    def __init__(self, code: str, *args: str, env: dict | None = None) -> None:
        self.code = textwrap.dedent(code)
        self.args = args
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._buf = b""
        self.lines: list[str] = []
        self.pids: list[int] = []

    def __enter__(self) -> "Script":
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.code, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        return self

    def track(self, pid: int) -> None:
        self.pids.append(pid)

    def readline(self, timeout: float) -> str | None:
        """Next stdout line (without newline), or None on timeout/EOF."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text

    def expect(self, prefix: str, timeout: float) -> str:
        """Read lines until one starts with `prefix`; fail on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                self.fail(f"no line starting with {prefix!r} within {timeout}s")
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait for exit; returns (returncode, rest of stdout, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        rest = self._buf + out
        self._buf = b""
        self.lines.extend(rest.decode(errors="replace").splitlines())
        return self.proc.returncode, rest.decode(errors="replace"), err.decode(errors="replace")

    def fail(self, msg: str) -> None:
        self.kill()
        try:
            _, _, err = self.finish(2)
        except Exception:
            err = "?"
        pytest.fail(f"{msg}\nstdout so far: {self.lines!r}\nstderr: {err}")

    def kill(self) -> None:
        for pid in [*self.pids, self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def __exit__(self, typ: Any, *exc: Any) -> None:
        # Tracked PIDs are only killed when something went wrong: after a
        # clean run the script has reaped them and the numbers may be reused.
        if self.proc.poll() is None or self.proc.returncode != 0 or typ is not None:
            self.kill()
        try:
            self.proc.communicate(timeout=5)
        except Exception:
            pass


def run_in_thread(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Run `fn` in a new thread (it gets a hub of its own) and return its
    result; what it raises is raised here, and a thread still running after
    `timeout` seconds is a failure, not something a test can miss."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)} still running after {timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")
