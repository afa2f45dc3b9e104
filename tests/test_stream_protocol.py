# The stream server owns everything of a connection that is not the
# protocol: shown with a tiny line-echo protocol served through the same
# machinery as HTTP — accept, dispatch to workers, parking between lines, the
# idle sweep, the PROXY preamble, TLS, and graceful stop.
# Strategy: a StreamServer in a thread (its own hub) whose `protocol` echoes
# each complete line back with the peer's address; blocking stdlib clients.
from __future__ import annotations

import concurrent.futures
import socket
import ssl
import threading
import time

import pytest

from helpers import make_self_signed_cert
from lichen import hub as lhub
from lichen.server import StreamServer
from lichen.sync import Event


def line_echo(channel) -> None:
    """Echo complete lines as `<peer host> <line>`; a partial line must be
    completed within 2 s. Between lines, park: the channel waits alone."""
    buf = bytearray(4096)
    line = b""
    while True:
        n = channel.sock.recv_into_nowait(buf) if not line else channel.sock.recv_into_by(buf, time.monotonic() + 2)
        if n is None:
            channel.park()
            return
        if n == 0:
            channel.close()
            return
        channel.active()
        line += bytes(buf[:n])
        while b"\n" in line:
            one, _, line = line.partition(b"\n")
            peer = channel.peer[0] if isinstance(channel.peer, tuple) else "unix"
            channel.sock.send_all_by(f"{peer} ".encode() + one + b"\n", 5.0)


class EchoThread:
    """A StreamServer with the line-echo protocol, in a background thread."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.server: StreamServer | None = None
        self.hub = None
        self._ready = threading.Event()
        self._stop: Event | None = None
        self._timeout = 0.0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.hub = lhub.get_hub()
            self._stop = Event()
            self.server = StreamServer(("127.0.0.1", 0), **self.kwargs)
            self.server.protocol = line_echo
            self.server.start()
        except BaseException as e:
            self.error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self._stop.wait()
            self.server.stop(self._timeout)
            lhub.wait(1.0)
        except BaseException as e:  # reported by stop()
            self.error = e

    def __enter__(self) -> EchoThread:
        self._thread.start()
        assert self._ready.wait(10) and self.error is None, self.error
        return self

    def __exit__(self, *exc) -> None:
        self.stop(0.0)

    def stop(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._timeout = timeout
            self.hub.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)
        if self.error is not None:
            raise self.error

    def call(self, fn):
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

        self.hub.call_soon_threadsafe(lhub.spawn, run)
        return fut.result(5)

    def connect(self) -> socket.socket:
        return socket.create_connection(self.server.address, timeout=5)


def read_line(sock: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        out += chunk
    return out


def test_a_line_echo_protocol_is_served_through_the_stream_server():
    with EchoThread() as srv:
        clients = [srv.connect() for _ in range(20)]
        for i, c in enumerate(clients):
            c.sendall(b"hello %d\nagain %d\n" % (i, i))
        for i, c in enumerate(clients):
            assert read_line(c) == b"127.0.0.1 hello %d\n" % i
            assert read_line(c) == b"127.0.0.1 again %d\n" % i
            c.close()


def test_a_parked_connection_holds_no_greenlet():
    with EchoThread() as srv, srv.connect() as c:
        c.sendall(b"one\n")
        assert read_line(c) == b"127.0.0.1 one\n"
        time.sleep(0.1)
        parked = srv.call(lambda: [(ch.busy, ch.worker) for ch in srv.server.connections])
        assert parked == [(False, None)]
        assert srv.call(lambda: len(srv.server.idle)) == 1
        c.sendall(b"two\n")  # and it is served again when the client speaks
        assert read_line(c) == b"127.0.0.1 two\n"


def test_a_line_split_across_packets_is_completed_in_one_worker():
    with EchoThread() as srv, srv.connect() as c:
        c.sendall(b"spl")
        time.sleep(0.1)
        c.sendall(b"it\n")
        assert read_line(c) == b"127.0.0.1 split\n"


def test_an_idle_connection_is_closed_after_the_idle_timeout():
    with EchoThread(keepalive_timeout=0.3) as srv, srv.connect() as c:
        c.sendall(b"x\n")
        assert read_line(c) == b"127.0.0.1 x\n"
        start = time.monotonic()
        assert c.recv(10) == b""
        assert 0.2 < time.monotonic() - start < 1.5


def test_the_proxy_header_comes_before_the_protocol():
    with EchoThread(proxy_protocol=True) as srv, srv.connect() as c:
        c.sendall(b"PROXY TCP4 198.51.100.4 127.0.0.1 1234 80\r\n")
        time.sleep(0.1)
        c.sendall(b"hi\n")
        assert read_line(c) == b"198.51.100.4 hi\n"


def test_tls_is_set_up_before_the_protocol(tmp_path):
    cert, key = make_self_signed_cert(str(tmp_path))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)
    with EchoThread(ssl_context=server_ctx) as srv:
        with client_ctx.wrap_socket(srv.connect(), server_hostname="localhost") as c:
            c.sendall(b"secret\n")
            assert read_line(c) == b"127.0.0.1 secret\n"


def test_stop_closes_parked_connections_at_once():
    srv = EchoThread().__enter__()
    c = srv.connect()
    try:
        c.sendall(b"x\n")
        assert read_line(c) == b"127.0.0.1 x\n"
        time.sleep(0.1)
        start = time.monotonic()
        srv.stop(5.0)  # a graceful stop does not wait for a parked connection
        assert time.monotonic() - start < 2.0
        assert c.recv(10) == b""
    finally:
        c.close()


@pytest.mark.parametrize("cap", [1, 3])
def test_the_connection_cap_holds_for_any_protocol(cap):
    with EchoThread(max_connections=cap) as srv:
        held = [srv.connect() for _ in range(cap)]
        for c in held:
            c.sendall(b"a\n")
            read_line(c)
        extra = srv.connect()  # accepted by the kernel, not yet by the server
        extra.sendall(b"late\n")
        extra.settimeout(0.3)
        with pytest.raises(socket.timeout):
            extra.recv(10)
        held[0].close()  # a slot frees: the waiting one is served
        extra.settimeout(5)
        assert read_line(extra) == b"127.0.0.1 late\n"
        for c in held[1:] + [extra]:
            c.close()
