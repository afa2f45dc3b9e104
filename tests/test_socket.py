# Spec tests for lichen.socket: the cooperative socket's methods with stdlib
# semantics, try-first system calls, waking waiters on close, fd reuse, name
# resolution through the thread pool, scale (2000 echo clients) and fd hygiene.
from __future__ import annotations

import errno
import gc
import io
import os
import socket as stdlib_socket
import threading
import time

import pytest

from helpers import Ticker, describe_fds, hub_hygiene, open_fds, raise_nofile_limit  # noqa: F401
from lichen import socket as ls
from lichen.hub import Timeout, get_hub, joinall, sleep, spawn, wait_read


def elapsed_since(t0: float) -> float:
    return time.monotonic() - t0


def tcp_pair() -> tuple[ls.socket, ls.socket]:
    """(client, server-side) of a fresh loopback TCP connection."""
    server = ls.create_server(("127.0.0.1", 0))
    try:
        client = ls.socket(ls.AF_INET, ls.SOCK_STREAM)
        client.connect(server.getsockname())
        conn, _ = server.accept()
    finally:
        server.close()
    return client, conn


@pytest.fixture
def tcp():
    c, s = tcp_pair()
    yield c, s
    c.close()
    s.close()


@pytest.fixture
def pair():
    a, b = ls.socketpair()
    yield a, b
    a.close()
    b.close()


def refused_port() -> int:
    """A loopback port with nothing listening on it."""
    s = stdlib_socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fill_send_buffer(sock: ls.socket) -> int:
    """Write into `sock` without blocking until the kernel refuses more."""
    total = 0
    chunk = b"f" * 65536
    while True:
        try:
            total += sock.raw.send(chunk)
        except BlockingIOError:
            return total


# accept / connect ----------------------------------------------------------------
def test_accept_returns_a_connected_cooperative_socket_and_the_peer_address():
    server = ls.create_server(("127.0.0.1", 0))
    client = ls.socket(ls.AF_INET, ls.SOCK_STREAM)
    try:
        acceptor = spawn(server.accept)
        sleep(0)  # the acceptor waits: nothing is pending yet
        assert not acceptor.ready()
        client.connect(server.getsockname())
        conn, addr = acceptor.get(timeout=2)
        with conn:
            assert isinstance(conn, ls.socket)
            assert addr == client.getsockname()
            assert conn.getpeername() == client.getsockname()
            assert conn.gettimeout() is None
    finally:
        client.close()
        server.close()


def test_connect_connects_to_a_listening_server(tcp):
    client, conn = tcp
    assert client.getpeername() == conn.getsockname()


def test_connect_ex_returns_zero_on_success():
    server = ls.create_server(("127.0.0.1", 0))
    try:
        with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as c:
            assert c.connect_ex(server.getsockname()) == 0
            server.accept()[0].close()
    finally:
        server.close()


def test_connect_ex_to_a_refused_port_returns_econnrefused():
    with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as c:
        assert c.connect_ex(("127.0.0.1", refused_port())) == errno.ECONNREFUSED


def test_connect_to_a_refused_port_raises_connection_refused_error():
    with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as c:
        with pytest.raises(ConnectionRefusedError):
            c.connect(("127.0.0.1", refused_port()))


def test_connect_ex_on_a_non_blocking_socket_returns_einprogress_without_waiting():
    server = ls.create_server(("127.0.0.1", 0))
    try:
        with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as c:
            c.setblocking(False)
            assert c.connect_ex(server.getsockname()) in (0, errno.EINPROGRESS)
    finally:
        server.close()


def test_create_server_returns_a_listening_cooperative_socket():
    server = ls.create_server(("127.0.0.1", 0), backlog=5)
    try:
        assert isinstance(server, ls.socket)
        host, port = server.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert server.getsockopt(ls._stdlib.SOL_SOCKET, ls._stdlib.SO_ACCEPTCONN) == 1
    finally:
        server.close()


def test_create_connection_to_a_numeric_address_returns_a_connected_socket():
    server = ls.create_server(("127.0.0.1", 0))
    try:
        with ls.create_connection(server.getsockname()) as c:
            assert isinstance(c, ls.socket)
            conn, _ = server.accept()
            conn.sendall(b"hi")
            assert c.recv(2) == b"hi"
            conn.close()
    finally:
        server.close()


def test_create_connection_timeout_argument_becomes_the_socket_timeout():
    server = ls.create_server(("127.0.0.1", 0))
    try:
        with ls.create_connection(server.getsockname(), timeout=1.5) as c:
            assert c.gettimeout() == 1.5
            server.accept()[0].close()
    finally:
        server.close()


def test_create_connection_to_a_refused_port_raises():
    with pytest.raises(ConnectionRefusedError):
        ls.create_connection(("127.0.0.1", refused_port()))


def test_create_connection_resolves_localhost_in_the_thread_pool_without_blocking_the_hub(monkeypatch):
    real = stdlib_socket.getaddrinfo
    resolved_in = []

    def slow_getaddrinfo(host, *args, **kwargs):
        if host == "localhost":
            resolved_in.append(threading.get_ident())
            time.sleep(0.3)  # a slow resolver: would freeze the hub if called inline
        return real(host, *args, **kwargs)

    server = ls.create_server(("127.0.0.1", 0))
    try:
        monkeypatch.setattr(stdlib_socket, "getaddrinfo", slow_getaddrinfo)
        with Ticker(0.01) as ticker:
            before = ticker.count
            with ls.create_connection(("localhost", server.getsockname()[1])) as c:
                ticks = ticker.count - before
                conn, _ = server.accept()
                conn.sendall(b"via localhost")
                assert c.recv(100) == b"via localhost"
                conn.close()
        assert resolved_in and resolved_in[0] != threading.get_ident()
        assert ticks >= 10  # ~30 expected in 0.3 s
    finally:
        server.close()


def test_getaddrinfo_answers_numeric_hosts_without_the_thread_pool(monkeypatch):
    import lichen.threadpool

    monkeypatch.setattr(lichen.threadpool, "_default", None)
    infos = ls.getaddrinfo("127.0.0.1", 80, ls.AF_INET, ls.SOCK_STREAM)
    assert infos[0][4] == ("127.0.0.1", 80)
    assert lichen.threadpool._default is None  # no pool was created


# recv / send ----------------------------------------------------------------------
def test_recv_returns_what_the_peer_sent(tcp):
    client, conn = tcp
    spawn(lambda: (sleep(0.01), conn.sendall(b"hello")))
    assert client.recv(100) == b"hello"


def test_recv_returns_empty_bytes_at_end_of_stream(tcp):
    client, conn = tcp
    conn.close()
    assert client.recv(100) == b""


def test_recv_into_fills_the_buffer_and_returns_the_count(tcp):
    client, conn = tcp
    buf = bytearray(10)
    spawn(lambda: (sleep(0.01), conn.sendall(b"abcdef")))
    n = client.recv_into(buf)
    assert n == 6 and bytes(buf[:n]) == b"abcdef"


def test_recv_into_honours_nbytes(tcp):
    client, conn = tcp
    conn.sendall(b"abcdef")
    buf = bytearray(10)
    assert client.recv_into(buf, 3) == 3
    assert bytes(buf[:3]) == b"abc"


def test_recvfrom_on_udp_returns_the_datagram_and_the_sender_address():
    rx = ls.socket(ls.AF_INET, ls.SOCK_DGRAM)
    tx = ls.socket(ls.AF_INET, ls.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        tx.bind(("127.0.0.1", 0))
        receiver = spawn(rx.recvfrom, 100)
        sleep(0.01)
        assert not receiver.ready()  # it waits cooperatively
        assert tx.sendto(b"datagram", rx.getsockname()) == 8
        data, addr = receiver.get(timeout=2)
        assert data == b"datagram" and addr == tx.getsockname()
    finally:
        rx.close()
        tx.close()


def test_recvfrom_into_on_udp_fills_the_buffer():
    rx = ls.socket(ls.AF_INET, ls.SOCK_DGRAM)
    tx = ls.socket(ls.AF_INET, ls.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        spawn(lambda: (sleep(0.01), tx.sendto(b"xyz", rx.getsockname())))
        buf = bytearray(8)
        n, addr = rx.recvfrom_into(buf)
        assert bytes(buf[:n]) == b"xyz" and addr[0] == "127.0.0.1"
    finally:
        rx.close()
        tx.close()


def test_send_returns_the_number_of_bytes_sent(tcp):
    client, conn = tcp
    assert client.send(b"12345") == 5
    assert conn.recv(10) == b"12345"


def test_send_waits_for_buffer_space_then_sends(tcp):
    client, conn = tcp
    fill_send_buffer(client)
    sender = spawn(client.send, b"after")
    sleep(0.02)
    assert not sender.ready()  # blocked on a full buffer

    def drain():
        while True:
            if conn.recv(1 << 20).endswith(b"after"):
                return

    d = spawn(drain)
    assert sender.get(timeout=2) > 0
    d.get(timeout=2)


def test_sendall_delivers_8mb_through_a_slow_reader(tcp):
    client, conn = tcp
    client.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 65536)
    conn.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 65536)
    payload = os.urandom(1 << 20) * 8
    state = {"sending": False, "reads_during_send": 0}

    def slow_reader():
        chunks = []
        got = 0
        while got < len(payload):
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if state["sending"]:
                state["reads_during_send"] += 1
            sleep(0.001)
        return b"".join(chunks)

    reader = spawn(slow_reader)
    state["sending"] = True
    t0 = time.monotonic()
    assert client.sendall(payload) is None
    state["sending"] = False
    assert reader.get(timeout=10) == payload
    # The reader ran while sendall was in progress: sendall met EAGAIN and
    # yielded to the hub instead of spinning or blocking the thread.
    assert state["reads_during_send"] > 0
    assert elapsed_since(t0) < 5


def test_sendall_accepts_a_memoryview_of_non_byte_items(tcp):
    import array

    client, conn = tcp
    data = array.array("i", range(1000))
    client.sendall(memoryview(data))
    expected = data.tobytes()
    got = b""
    while len(got) < len(expected):
        got += conn.recv(65536)
    assert got == expected


def test_sendall_timeout_bounds_the_whole_call(tcp):
    client, _conn = tcp  # the peer never reads
    client.settimeout(0.1)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        client.sendall(b"x" * (64 << 20))
    assert 0.09 <= elapsed_since(t0) < 1


# sendfile -----------------------------------------------------------------------------
def _reader_of(sock: ls.socket, n: int, state: dict | None = None):
    def read():
        chunks, got = [], 0
        while got < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if state is not None and state.get("sending"):
                state["reads_during_send"] = state.get("reads_during_send", 0) + 1
            sleep(0.0005)
        return b"".join(chunks)

    return spawn(read)


def test_sendfile_sends_the_whole_file_cooperatively_and_leaves_the_position_at_its_end(tcp, tmp_path):
    client, conn = tcp
    client.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 65536)
    content = os.urandom(3 << 20)
    path = tmp_path / "blob"
    path.write_bytes(content)
    state = {"sending": False}
    reader = _reader_of(conn, len(content), state)
    with open(path, "rb") as f:
        state["sending"] = True
        sent = client.sendfile(f)
        state["sending"] = False
        assert sent == len(content)
        assert f.tell() == len(content)
    assert reader.get(timeout=10) == content
    assert state.get("reads_during_send", 0) > 0  # other greenlets ran meanwhile


def test_sendfile_with_offset_and_count_sends_that_slice(tcp, tmp_path):
    client, conn = tcp
    content = bytes(range(256)) * 100
    path = tmp_path / "blob"
    path.write_bytes(content)
    reader = _reader_of(conn, 1000)
    with open(path, "rb") as f:
        assert client.sendfile(f, offset=100, count=1000) == 1000
        assert f.tell() == 1100
    assert reader.get(timeout=5) == content[100:1100]


def test_sendfile_of_an_empty_file_sends_nothing(tcp, tmp_path):
    client, _ = tcp
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert client.sendfile(f) == 0


def test_sendfile_of_an_object_without_fileno_falls_back_to_read_and_send(tcp):
    client, conn = tcp
    content = os.urandom(200_000)
    f = io.BytesIO(content)
    reader = _reader_of(conn, len(content))
    assert client.sendfile(f) == len(content)
    assert f.tell() == len(content)
    assert reader.get(timeout=5) == content


# makefile -------------------------------------------------------------------------------
def test_makefile_reads_lines(tcp):
    client, conn = tcp
    rf = client.makefile("r", encoding="utf-8", newline="")
    spawn(lambda: (conn.sendall(b"first line\r\n"), sleep(0.01), conn.sendall(b"second\nrest"), conn.close()))
    assert rf.readline() == "first line\r\n"
    assert rf.readline() == "second\n"
    assert rf.read() == "rest"
    rf.close()


def test_makefile_writes_after_flush(tcp):
    client, conn = tcp
    wf = client.makefile("wb")
    wf.write(b"buffered ")
    wf.write(b"output")
    wf.flush()
    assert conn.recv(100) == b"buffered output"
    wf.close()


def test_makefile_read_write_mode_does_both(tcp):
    client, conn = tcp
    f = client.makefile("rwb")
    f.write(b"ping\n")
    f.flush()
    assert conn.recv(10) == b"ping\n"
    conn.sendall(b"pong\n")
    assert f.readline() == b"pong\n"
    f.close()


def test_makefile_rejects_an_unknown_mode(tcp):
    client, _ = tcp
    with pytest.raises(ValueError):
        client.makefile("ra")


def test_a_makefile_file_stays_readable_after_the_socket_is_closed(tcp):
    client, conn = tcp
    rf = client.makefile("rb")
    client.close()  # as http.client does once the response owns the connection
    sender = spawn(lambda: (sleep(0.02), conn.sendall(b"late data\n")))
    try:
        assert rf.readline() == b"late data\n"
    finally:
        sender.join()
        rf.close()


def test_the_fd_is_closed_when_both_the_socket_and_its_file_are_closed(tcp):
    client, _ = tcp
    fd = client.fileno()
    f = client.makefile("rb")
    client.close()
    os.fstat(fd)  # still open: the file holds it
    f.close()
    with pytest.raises(OSError):
        os.fstat(fd)


# shutdown / close / fileno --------------------------------------------------------------
def test_shutdown_write_gives_the_peer_eof_but_keeps_reading(tcp):
    client, conn = tcp
    client.shutdown(stdlib_socket.SHUT_WR)
    assert conn.recv(10) == b""
    conn.sendall(b"still open")
    assert client.recv(100) == b"still open"


def test_close_marks_the_socket_closed_and_is_idempotent(tcp):
    client, _ = tcp
    client.close()
    client.close()
    assert client.closed
    assert client.fileno() == -1
    with pytest.raises(OSError):
        client.recv(1)


def test_fileno_is_the_underlying_descriptor(tcp):
    client, _ = tcp
    assert client.fileno() == client.raw.fileno() >= 0
    os.fstat(client.fileno())


def test_context_manager_closes_the_socket():
    with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as s:
        pass
    assert s.closed


# timeouts and blocking mode --------------------------------------------------------------
def test_settimeout_and_gettimeout_round_trip(pair):
    a, _ = pair
    assert a.gettimeout() is None
    a.settimeout(2)
    assert a.gettimeout() == 2.0 and isinstance(a.gettimeout(), float)
    a.settimeout(None)
    assert a.gettimeout() is None


def test_settimeout_rejects_a_negative_value(pair):
    a, _ = pair
    with pytest.raises(ValueError):
        a.settimeout(-1)


def test_recv_with_a_timeout_raises_timeout_error(pair):
    a, _ = pair
    a.settimeout(0.05)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        a.recv(1)
    assert 0.04 <= elapsed_since(t0) < 0.5


def test_the_timeout_applies_per_operation_and_data_in_time_is_returned(pair):
    a, b = pair
    a.settimeout(0.5)
    spawn(lambda: (sleep(0.02), b.sendall(b"in time")))
    assert a.recv(10) == b"in time"


def test_accept_with_a_timeout_raises_timeout_error():
    server = ls.create_server(("127.0.0.1", 0))
    try:
        server.settimeout(0.05)
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_setblocking_false_makes_a_would_block_call_raise_blocking_io_error(pair):
    a, _ = pair
    a.setblocking(False)
    assert a.gettimeout() == 0.0 and a.getblocking() is False
    with pytest.raises(BlockingIOError):
        a.recv(1)
    fill_send_buffer(a)
    with pytest.raises(BlockingIOError):
        a.send(b"x" * 65536)


def test_setblocking_true_means_no_timeout(pair):
    a, _ = pair
    a.settimeout(1)
    a.setblocking(True)
    assert a.gettimeout() is None and a.getblocking() is True


def test_settimeout_zero_is_non_blocking(pair):
    a, _ = pair
    a.settimeout(0)
    assert a.getblocking() is False
    with pytest.raises(BlockingIOError):
        a.recv(1)


def test_a_new_socket_takes_the_stdlib_default_timeout():
    old = stdlib_socket.getdefaulttimeout()
    stdlib_socket.setdefaulttimeout(2.5)
    try:
        with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as s:
            assert s.gettimeout() == 2.5
    finally:
        stdlib_socket.setdefaulttimeout(old)


# try-first -------------------------------------------------------------------------------
def test_recv_with_data_already_available_does_not_switch_to_the_hub(pair):
    a, b = pair
    b.sendall(b"ready")
    with Ticker(0) as ticker:
        before = ticker.count
        assert a.recv(10) == b"ready"
        assert ticker.count == before
        sleep(0)
        assert ticker.count > before  # the ticker is alive: it did not run above


def test_send_with_buffer_space_does_not_switch_to_the_hub(pair):
    a, b = pair
    with Ticker(0) as ticker:
        before = ticker.count
        a.sendall(b"x" * 1000)
        assert a.send(b"y") == 1
        assert ticker.count == before
    assert b.recv(2000) == b"x" * 1000 + b"y"


def test_accept_with_a_pending_connection_does_not_switch_to_the_hub():
    server = ls.create_server(("127.0.0.1", 0))
    client = stdlib_socket.create_connection(server.getsockname())
    try:
        time.sleep(0.01)
        with Ticker(0) as ticker:
            before = ticker.count
            conn, _ = server.accept()
            assert ticker.count == before
        conn.close()
    finally:
        client.close()
        server.close()


def test_recv_that_must_wait_lets_other_greenlets_run(pair):
    a, b = pair
    spawn_sender = spawn(lambda: (sleep(0.05), b.sendall(b"late")))
    with Ticker(0.005) as ticker:
        before = ticker.count
        assert a.recv(10) == b"late"
        assert ticker.count - before >= 3
    spawn_sender.join()


# closing wakes waiters --------------------------------------------------------------------
def _catch_errno(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno, time.monotonic()
    return None, time.monotonic()


def test_closing_a_socket_wakes_its_reader_with_ebadf(pair):
    a, _ = pair
    reader = spawn(_catch_errno, a.recv, 10)
    sleep(0.01)
    assert not reader.ready()
    t0 = time.monotonic()
    a.close()
    err, woke = reader.get(timeout=2)
    assert err == errno.EBADF
    assert woke - t0 < 0.1


def test_closing_a_socket_wakes_its_writer_with_ebadf(tcp):
    client, _conn = tcp  # the peer never reads
    writer = spawn(_catch_errno, client.sendall, b"w" * (32 << 20))
    sleep(0.02)
    assert not writer.ready()
    t0 = time.monotonic()
    client.close()
    err, woke = writer.get(timeout=2)
    assert err == errno.EBADF
    assert woke - t0 < 0.1


def test_closing_a_socket_wakes_its_reader_and_writer_at_once(tcp):
    client, _conn = tcp
    reader = spawn(_catch_errno, client.recv, 10)
    writer = spawn(_catch_errno, client.sendall, b"w" * (32 << 20))
    sleep(0.02)
    assert not reader.ready() and not writer.ready()
    t0 = time.monotonic()
    client.close()
    results = [g.get(timeout=2) for g in (reader, writer)]
    assert [r[0] for r in results] == [errno.EBADF, errno.EBADF]
    assert all(r[1] - t0 < 0.1 for r in results)


def test_a_reader_woken_by_close_leaves_nothing_armed(pair):
    a, _ = pair
    hub = get_hub()
    before = set(hub.loop.watchers)
    reader = spawn(_catch_errno, a.recv, 10)
    sleep(0.01)
    a.close()
    reader.join()
    assert set(hub.loop.watchers) <= before


def test_a_second_greenlet_reading_the_same_socket_is_refused(pair):
    a, b = pair
    first = spawn(a.recv, 10)
    sleep(0)
    second = spawn(a.recv, 10)
    second.join()
    assert isinstance(second.exception, RuntimeError)
    b.sendall(b"x")
    assert first.get(timeout=2) == b"x"


def test_a_reused_fd_number_never_wakes_a_stale_waiter():
    a, a_peer = ls.socketpair()
    fd = a.fileno()
    outcome: dict = {}
    new_socks: list = []

    def reader():  # waits on the old socket
        outcome["reader"] = _catch_errno(a.recv, 10)[0]

    def closer():
        sleep(0.02)
        a.close()
        b, b_peer = ls.socketpair()  # takes the lowest free numbers: fd among them
        new_socks.extend([b, b_peer])
        outcome["reused"] = fd in (b.fileno(), b_peer.fileno())
        try:
            wait_read(fd, timeout=0.15)  # nothing was ever written to the new fd
            outcome["new waiter"] = "woken"
        except TimeoutError:
            outcome["new waiter"] = "timed out"

    def make_old_fd_ready_in_the_same_iteration():
        a_peer.raw.send(b"stale")  # the old socket becomes readable...
        time.sleep(0.05)  # ...while closer's timer expires: one loop iteration delivers both

    gs = [spawn(reader), spawn(closer), spawn(make_old_fd_ready_in_the_same_iteration)]
    joinall(gs, timeout=3)
    for s in (a_peer, *new_socks):
        s.close()
    assert outcome == {"reader": errno.EBADF, "reused": True, "new waiter": "timed out"}


def test_a_socket_on_a_reused_fd_number_works_normally():
    a, a_peer = ls.socketpair()
    reader = spawn(_catch_errno, a.recv, 10)
    sleep(0.01)
    fd = a.fileno()
    a.close()
    a_peer.close()
    assert reader.get(timeout=1)[0] == errno.EBADF
    b, b_peer = ls.socketpair()
    try:
        assert fd in (b.fileno(), b_peer.fileno())
        r = spawn(b.recv, 10)
        sleep(0.01)
        b_peer.sendall(b"fresh")
        assert r.get(timeout=1) == b"fresh"
    finally:
        b.close()
        b_peer.close()


def test_a_greenlet_that_stopped_waiting_is_not_hit_by_a_later_close_wakeup(pair):
    a, _ = pair
    outcome = []

    def reader():
        with Timeout(0.05, False):
            a.recv(10)  # leaves by timeout
        try:
            sleep(0.2)  # unrelated to the socket
            outcome.append("slept")
        except OSError as e:
            outcome.append(f"stale {errno.errorcode[e.errno]}")

    def closer():
        sleep(0.04)
        a.close()

    def hog():  # both timers expire while the hub is held: one iteration fires both
        time.sleep(0.1)

    gs = [spawn(reader), spawn(closer), spawn(hog)]
    joinall(gs, timeout=2)
    assert outcome == ["slept"]


# scale ---------------------------------------------------------------------------------
def test_2000_greenlets_each_running_an_echo_client_all_get_their_own_data_back():
    raise_nofile_limit(5000)
    server = ls.create_server(("127.0.0.1", 0), backlog=4096)
    address = server.getsockname()
    handlers = []

    def handle(conn):
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data)

    def serve():
        while True:
            conn, _ = server.accept()
            handlers.append(spawn(handle, conn))

    def client(i):
        msg = b"client %06d|" % i * 8
        with ls.socket(ls.AF_INET, ls.SOCK_STREAM) as s:
            s.connect(address)
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        return got == msg

    acceptor = spawn(serve)
    try:
        t0 = time.monotonic()
        clients = [spawn(client, i) for i in range(2000)]
        finished = joinall(clients, timeout=30)
        assert len(finished) == 2000
        assert all(g.successful() for g in clients), next(g.exception for g in clients if g.exception)
        assert all(g.value for g in clients)
        assert len(joinall(handlers, timeout=10)) == 2000
        assert elapsed_since(t0) < 15
    finally:
        acceptor.kill()
        server.close()


# file descriptors -----------------------------------------------------------------------
def test_a_batch_of_connect_accept_close_leaks_no_file_descriptors():
    def one_round():
        server = ls.create_server(("127.0.0.1", 0))
        c = ls.create_connection(server.getsockname(), timeout=2)
        conn, _ = server.accept()
        conn.settimeout(1)
        c.sendall(b"x" * 1000)
        assert conn.recv(2000)
        reader = spawn(c.recv, 10)  # a waiter woken by close
        sleep(0)
        c.close()
        reader.join()
        f = conn.makefile("rb")
        f.close()
        conn.close()
        a, b = ls.socketpair()
        a.close()
        b.close()
        server.close()

    one_round()  # warm-up: the hub and thread pool exist from here on
    gc.collect()
    before = open_fds()
    for _ in range(30):
        one_round()
    gc.collect()
    after = open_fds()
    assert after == before, describe_fds(after ^ before)


# The deadline surface (what servers use) ----------------------------------------
def test_recv_into_nowait_is_none_before_data_and_the_count_after(tcp):
    c, s = tcp
    buf = bytearray(16)
    assert s.recv_into_nowait(buf) is None
    c.sendall(b"abc")
    sleep(0.01)
    assert s.recv_into_nowait(buf) == 3 and buf[:3] == b"abc"


def test_recv_into_nowait_is_zero_at_eof(tcp):
    c, s = tcp
    c.close()
    sleep(0.01)
    assert s.recv_into_nowait(bytearray(16)) == 0


def test_recv_into_by_raises_timeout_at_the_deadline(tcp):
    _, s = tcp
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        s.recv_into_by(bytearray(16), time.monotonic() + 0.05)
    assert 0.04 <= elapsed_since(t0) < 0.5


def test_recv_into_by_a_passed_deadline_still_takes_what_is_there(tcp):
    c, s = tcp
    c.sendall(b"x")
    sleep(0.01)
    assert s.recv_into_by(bytearray(4), time.monotonic() - 1) == 1


def test_send_all_by_times_out_when_the_peer_stops_reading(tcp):
    c, s = tcp
    with pytest.raises(TimeoutError):
        s.send_all_by(b"x" * (32 << 20), 0.1)


def test_send_all_by_progress_restarts_the_write_timeout(tcp):
    c, s = tcp
    got = []

    def slow_reader():
        while sum(got) < 4 << 20:
            sleep(0.05)  # each pause is shorter than the timeout, all of them much longer
            got.append(c.recv_into(bytearray(1 << 20)))

    g = spawn(slow_reader)
    s.send_all_by(b"y" * (4 << 20), 0.2)
    g.join(5)
    assert sum(got) == 4 << 20


def test_has_pending_input_sees_data_and_eof_without_consuming(tcp):
    c, s = tcp
    assert not s.has_pending_input()
    c.sendall(b"z")
    sleep(0.01)
    assert s.has_pending_input()
    assert s.recv(1) == b"z"
    c.close()
    sleep(0.01)
    assert s.has_pending_input()


def test_peek_leaves_the_bytes_to_read(tcp):
    c, s = tcp
    c.sendall(b"hello")
    sleep(0.01)
    assert s.peek(3) == b"hel"
    assert s.recv(5) == b"hello"


def test_park_calls_back_once_when_readable(tcp):
    c, s = tcp
    calls = []
    s.park(calls.append)
    sleep(0.02)
    assert calls == []
    c.sendall(b"!")
    sleep(0.02)
    assert len(calls) == 1
    c.sendall(b"!")
    sleep(0.02)
    assert len(calls) == 1  # once: park again for more


def test_unpark_cancels_the_callback(tcp):
    c, s = tcp
    calls = []
    s.park(calls.append)
    s.unpark()
    c.sendall(b"!")
    sleep(0.02)
    assert calls == []
    assert s.recv(1) == b"!"  # and the socket can wait again


def test_linger_close_half_closes_and_drains_what_the_peer_still_sends(tcp):
    c, s = tcp
    c.sendall(b"unread")

    def peer():
        sleep(0.05)
        c.sendall(b"more")  # accepted: the server still reads
        assert c.recv(10) == b""  # our side sees the half-close
        c.close()

    g = spawn(peer)
    t0 = time.monotonic()
    s.linger_close(2.0, 0.5, 1 << 20)
    assert s.closed
    assert elapsed_since(t0) < 1.0  # the peer's close ended it early
    g.get(timeout=2)
