# lichen.listeners (the --bind spellings, binding, hand-over of inherited
# sockets) and lichen.process (log files reopened on USR1), in process.
# Strategy: real sockets on 127.0.0.1 and unix paths under tmp_path; the
# environment is a plain dict, so nothing leaks into the test process.
from __future__ import annotations

import logging
import os
import socket
import stat

import pytest

from lichen.listeners import ListenError, bind, open_listeners, parse_bind
from lichen.process import reopen_log_files


@pytest.mark.parametrize("spec,expected", [
    ("127.0.0.1:80", (socket.AF_INET, ("127.0.0.1", 80))),
    ("[::1]:81", (socket.AF_INET6, ("::1", 81))),
    ("unix:/run/x.sock", (socket.AF_UNIX, "/run/x.sock")),
    ("fd://3", (None, 3)),
    ("tcp:8080", (socket.AF_INET, ("", 8080))),
    ("tcp:8080:interface=127.0.0.1", (socket.AF_INET, ("127.0.0.1", 8080))),
    (r"tcp:8080:backlog=50:interface=\:\:1", (socket.AF_INET6, ("::1", 8080))),
    # As gunicorn reads them: a host alone is port 8000, ':port' every interface.
    ("localhost", (socket.AF_INET, ("localhost", 8000))),
    ("localhost:9000", (socket.AF_INET, ("localhost", 9000))),
    (":5000", (socket.AF_INET, ("", 5000))),
    ("", (socket.AF_INET, ("", 8000))),
    ("tcp://127.0.0.1:5000", (socket.AF_INET, ("127.0.0.1", 5000))),
    ("tcp://:5000", (socket.AF_INET, ("", 5000))),
    ("[::]:8000", (socket.AF_INET6, ("::", 8000))),
    ("[::1]", (socket.AF_INET6, ("::1", 8000))),
    ("unix:///run/x.sock", (socket.AF_UNIX, "/run/x.sock")),
    ("unix://x.sock", (socket.AF_UNIX, "x.sock")),
    ("8080", (socket.AF_INET, ("", 8080))),  # twistd's --port 8080
])
def test_parse_bind_reads_every_spelling(spec, expected):
    assert parse_bind(spec) == expected


@pytest.mark.parametrize("spec", ["fd://", "fd://x", "fd://-1", "tcp:", "tcp:http", "unix:", ":99999",
                                  "127.0.0.1:notaport", "localhost:", "[::1", "[::1]:x", "[::1]8000", "::1:8000",
                                  "tcp://host:port", "some host:80", "/path/to.sock"])
def test_parse_bind_rejects_a_bad_spelling_naming_it(spec):
    with pytest.raises(ValueError, match="listener"):
        parse_bind(spec)


def test_bind_applies_the_umask_to_a_unix_socket_only_while_binding(tmp_path):
    path = tmp_path / "app.sock"
    before = os.umask(0o022)
    try:
        with bind(f"unix:{path}", 16, umask=0o077) as sock:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o700 and not sock.getblocking()
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)


def test_bind_takes_an_inherited_fd():
    listener = socket.create_server(("127.0.0.1", 0))
    fd = os.dup(listener.fileno())
    with bind(f"fd://{fd}", 16) as sock:
        assert sock.getsockname() == listener.getsockname()
    listener.close()


def test_open_listeners_closes_what_it_bound_and_names_the_failing_address(tmp_path):
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    path = tmp_path / "first.sock"
    with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
        open_listeners([f"unix:{path}", f"127.0.0.1:{port}"], 16, environ={})
    busy.close()
    # The unix socket bound first was closed: binding it again finds it stale, not busy.
    bind(f"unix:{path}", 16).close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connects(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_a_bind_on_every_ipv6_interface_takes_ipv4_too_as_under_gunicorn():
    port = _free_port()
    socks = open_listeners([f"[::]:{port}"], 16, environ={})
    try:
        assert _connects("127.0.0.1", port) and _connects("::1", port)
    finally:
        for s in socks:
            s.close()


def test_ipv4_and_ipv6_wildcards_on_one_port_bind_side_by_side():
    port = _free_port()
    socks = open_listeners([f"0.0.0.0:{port}", f"[::]:{port}"], 16, environ={})
    try:
        assert len(socks) == 2 and _connects("127.0.0.1", port) and _connects("::1", port)
    finally:
        for s in socks:
            s.close()


def test_open_listeners_takes_a_parent_masters_sockets_and_forgets_the_variable():
    listener = socket.create_server(("127.0.0.1", 0))
    fd = os.dup(listener.fileno())
    environ = {"LICHEN_FDS": str(fd)}
    socks = open_listeners(["127.0.0.1:1"], 16, environ=environ)  # the bind list is not used
    try:
        assert [s.getsockname() for s in socks] == [listener.getsockname()] and environ == {}
    finally:
        for s in socks:
            s.close()
        listener.close()


def test_reopen_log_files_writes_to_a_new_file_after_rotation_and_never_truncates(tmp_path):
    path = tmp_path / "error.log"
    handler = logging.FileHandler(path)
    logger = logging.getLogger("lichen.error")
    logger.addHandler(handler)
    try:
        logger.error("before")
        path.rename(tmp_path / "error.log.1")
        reopen_log_files()
        logger.error("after")
        reopen_log_files()  # same file again: appended to, not emptied
        logger.error("again")
        handler.flush()
        assert path.read_text() == "after\nagain\n"
        assert (tmp_path / "error.log.1").read_text() == "before\n"
    finally:
        logger.removeHandler(handler)
        handler.close()
