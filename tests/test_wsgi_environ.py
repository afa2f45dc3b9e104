# The PEP 3333 side of WSGIServer end to end, through the real server on a
# socket: the addresses only a socket gives (SERVER_NAME/PORT of the
# listener, REMOTE_ADDR/PORT of the client, a unix socket's empty ones) and a
# large body read whole; then wsgi.input against a reference, as unit tests.
# Every other environ and wsgi.input behaviour of the driver is tested over
# the fake transport, in test_wsgi_driver_environ.py.
# Strategy: the apps record what they saw into a list the test inspects,
# wrapped in wsgiref.validate.validator where it matters, which fails the
# request (500 + error log, caught by strict_log) on any PEP 3333 violation.
from __future__ import annotations

from wsgiref.validate import validator

import pytest

from wsgi_helpers import Client, ServerThread, get, post, post_chunked, strict_log  # noqa: F401 (a fixture)


def test_environ_has_the_addresses_of_the_listener_and_the_client(strict_log):
    seen = []

    def app(environ, start_response):
        seen.append({k: environ[k] for k in ("SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT")})
        start_response("204 No Content", [])
        return []

    with ServerThread(validator(app)) as srv, srv.connect() as c:
        c.send(get("/"))
        assert c.read_response().status == 204
        client_port = c.sock.getsockname()[1]
    assert seen == [{"SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(srv.port), "REMOTE_ADDR": "127.0.0.1",
                     "REMOTE_PORT": str(client_port)}]


def test_unix_socket_request_has_empty_remote_addr(tmp_path, strict_log):
    seen = []

    def app(environ, start_response):
        seen.append((environ["REMOTE_ADDR"], environ["SERVER_PORT"]))
        start_response("204 No Content", [])
        return []

    path = str(tmp_path / "s.sock")
    with ServerThread(app, listener="unix:" + path) as srv, Client.connect(path) as c:
        c.send(get("/"))
        assert c.read_response().status == 204
    assert seen == [("", "")]


def test_input_read_without_size_returns_the_whole_body():
    with ServerThread(lambda e, s: (s("200 OK", []), [e["wsgi.input"].read()])[1]) as srv:
        assert srv.request(post(b"x" * 100000)).body == b"x" * 100000
        assert srv.request(post_chunked(b"a" * 70000, b"b" * 70000)).body == b"a" * 70000 + b"b" * 70000


# Input against a reference, over every way of splitting the body --------------------------------
def _input_over(pieces):
    from lichen.wsgi.input import Input

    it = iter(pieces)
    return Input(lambda: next(it, b""), not any(pieces))


@pytest.mark.parametrize("seed", range(40))
def test_input_reads_match_a_bytesio_whatever_the_chunking(seed):
    import io
    import random

    rnd = random.Random(seed)
    body = bytes(rnd.choice(b"ab\n") for _ in range(rnd.randrange(0, 300)))
    cuts = sorted(rnd.sample(range(1, len(body)), min(len(body) - 1, rnd.randrange(0, 12)))) if len(body) > 1 else []
    pieces = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])] if body else []
    inp, ref = _input_over(pieces), io.BytesIO(body)
    for _ in range(60):
        op = rnd.choice(["read", "readn", "readline", "readlinen", "read1"])
        n = rnd.randrange(0, 40)
        if op == "read":
            assert inp.read() == ref.read()
        elif op == "readn":
            assert inp.read(n) == ref.read(n)
        elif op == "readline":
            assert inp.readline() == ref.readline()
        elif op == "readlinen":
            assert inp.readline(n) == ref.readline(n)
        else:
            got = inp.read1(n or 1)
            assert got == ref.read(len(got)) and (got or ref.read(1) == b"")
    assert inp.read() == ref.read()
    assert inp.finished


def test_input_of_known_length_is_finished_with_its_last_piece_without_asking_for_more():
    from lichen.wsgi.input import Input

    asked = []

    def next_chunk():
        asked.append(1)
        return [b"abc", b"de"][len(asked) - 1] if len(asked) <= 2 else b""

    inp = Input(next_chunk, False, None, 5)
    assert inp.read(5) == b"abcde"
    assert inp.finished and len(asked) == 2
    assert inp.read() == b"" and len(asked) == 2


def test_input_over_a_whole_body_reads_it_and_is_finished_once_read():
    from lichen.wsgi.input import Input

    inp = Input.whole(b"abc\ndef")
    assert not inp.finished and inp.bytes_read == 7
    assert inp.readline() == b"abc\n"
    assert inp.read(10) == b"def"
    assert inp.finished and inp.read() == b""
