# The PEP 3333 side of WSGIServer: the environ of a request and the
# wsgi.input stream (read/readline/readlines/iteration, exact body
# boundaries, draining of unread bodies and its cap).
# Strategy: apps record the environ (or what they read) into a list the test
# inspects; several apps are wrapped in wsgiref.validate.validator, which
# fails the request (500 + error log) on any PEP 3333 violation.
from __future__ import annotations

import logging
import socket
from wsgiref.validate import validator

import pytest

from wsgi_helpers import Client, ServerThread, get


@pytest.fixture
def recorder():
    """An app that records each environ and answers 'ok'; validator-wrapped."""
    seen: list[dict] = []

    def app(environ, start_response):
        seen.append(dict(environ))
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 1 << 20)
        seen[-1]["body"] = body
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(validator(app)) as srv:
        srv.seen = seen
        yield srv


@pytest.fixture
def strict_log(caplog):
    """Fails the test if lichen logged an error (e.g. a validator assertion)."""
    caplog.set_level(logging.INFO, logger="lichen")
    yield caplog
    errors = [r.getMessage() for r in caplog.records if r.name.startswith("lichen") and r.levelno >= logging.ERROR]
    assert not errors, errors


def one_env(srv, data: bytes) -> dict:
    with srv.connect() as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200, r
        local = c.sock.getsockname()
    env = srv.seen[-1]
    env["_client"] = local
    return env


# The environ -----------------------------------------------------------------------
def test_environ_has_the_cgi_keys(recorder, strict_log):
    env = one_env(recorder, b"POST /a/b?x=1&y=%20 HTTP/1.1\r\nHost: h.example:81\r\n"
                            b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc")
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/a/b?x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(recorder.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(env["_client"][1])
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert env["HTTP_HOST"] == "h.example:81"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["body"] == b"abc"


def test_environ_has_the_wsgi_keys(recorder, strict_log):
    env = one_env(recorder, get("/"))
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert callable(env["wsgi.file_wrapper"])
    errors = env["wsgi.errors"]
    assert all(callable(getattr(errors, m)) for m in ("write", "writelines", "flush"))
    assert hasattr(env["wsgi.input"], "read")


def test_chunked_request_has_no_content_length_and_a_terminated_input(recorder, strict_log):
    env = one_env(recorder, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nabc\r\n0\r\n\r\n")
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] == ""
    assert env["wsgi.input_terminated"] is True
    assert env["body"] == b"abc"


def test_request_without_body_has_no_content_type_or_length(recorder, strict_log):
    env = one_env(recorder, get("/"))
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env


def test_path_info_is_percent_decoded_as_latin1(recorder, strict_log):
    env = one_env(recorder, get("/caf%C3%A9/a%2Fb%20c?q=%C3%A9"))
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b c"
    assert env["QUERY_STRING"] == "q=%C3%A9"  # the query stays raw
    assert env["RAW_URI"] == "/caf%C3%A9/a%2Fb%20c?q=%C3%A9"


def test_request_without_query_has_empty_query_string(recorder, strict_log):
    env = one_env(recorder, get("/p"))
    assert env["QUERY_STRING"] == ""


def test_headers_become_http_keys(recorder, strict_log):
    env = one_env(recorder, get("/", extra="X-Foo-Bar: 1\r\nAccept:  text/html  \r\nUser-Agent: t/1\r\n"))
    assert env["HTTP_X_FOO_BAR"] == "1"
    assert env["HTTP_ACCEPT"] == "text/html"  # surrounding whitespace stripped
    assert env["HTTP_USER_AGENT"] == "t/1"


def test_headers_with_underscore_are_dropped(recorder, strict_log):
    env = one_env(recorder, get("/", extra="X_Foo: spoof\r\nX-Foo: real\r\n"))
    assert env["HTTP_X_FOO"] == "real"


def test_repeated_headers_are_joined_with_comma(recorder, strict_log):
    env = one_env(recorder, get("/", extra="Accept: a\r\nX-Multi: 1\r\nAccept: b\r\n"))
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_X_MULTI"] == "1"


def test_repeated_cookie_headers_are_joined_with_semicolon(recorder, strict_log):
    env = one_env(recorder, get("/", extra="Cookie: a=1\r\nCookie: b=2\r\n"))
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_header_values_are_latin1_strings(recorder, strict_log):
    env = one_env(recorder, get("/", extra="X-Bin: caf\xe9\r\n"))
    assert env["HTTP_X_BIN"] == "caf\xe9"


def test_http10_request_has_http10_server_protocol(recorder, strict_log):
    with recorder.connect() as c:
        c.send(b"GET /ten HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200
    assert recorder.seen[-1]["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in recorder.seen[-1]


def test_absolute_form_target_sets_path_and_host(recorder, strict_log):
    env = one_env(recorder, b"GET http://Real.example/p/q?z=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert env["PATH_INFO"] == "/p/q"
    assert env["QUERY_STRING"] == "z=1"
    assert env["HTTP_HOST"] == "Real.example"


def test_each_request_gets_a_fresh_environ(strict_log):
    seen = []

    def app(environ, start_response):
        seen.append("X_MARK" in environ)
        environ["X_MARK"] = 1
        environ["REMOTE_ADDR"] = "spoofed"
        start_response("200 OK", [("Content-Length", "0")])
        return [environ["REMOTE_ADDR"].encode()[:0]]

    with ServerThread(app) as srv, srv.connect() as c:
        for _ in range(3):
            c.send(get("/"))
            c.read_response()
    assert seen == [False, False, False]


def test_environ_argument_adds_keys_to_every_request(strict_log):
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("my.key"))
        start_response("204 No Content", [])
        return []

    with ServerThread(app, environ={"my.key": "v"}) as srv:
        srv.request(get("/"))
    assert seen == ["v"]


def test_wsgi_errors_writes_to_the_error_log(caplog):
    caplog.set_level(logging.INFO, logger="lichen.error")

    def app(environ, start_response):
        environ["wsgi.errors"].write("app says hi\n")
        environ["wsgi.errors"].flush()
        start_response("204 No Content", [])
        return []

    with ServerThread(app) as srv:
        assert srv.request(get("/")).status == 204
    assert "app says hi" in [r.getMessage() for r in caplog.records if r.name == "lichen.error"]


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


# wsgi.input ------------------------------------------------------------------------
def reading_server(read):
    """A server whose app answers with repr(read(wsgi.input)), validated."""
    def app(environ, start_response):
        body = repr(read(environ["wsgi.input"])).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return ServerThread(validator(app))


def post(body: bytes, path: str = "/") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)


def post_chunked(*chunks: bytes) -> bytes:
    out = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    for ch in chunks:
        out += b"%x\r\n%s\r\n" % (len(ch), ch)
    return out + b"0\r\n\r\n"


def ask(srv, data: bytes):
    with srv.connect() as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200, r
        return eval(r.body)  # noqa: S307 - our own repr


def test_input_read_n_returns_at_most_n_bytes_in_order(strict_log):
    with reading_server(lambda i: [i.read(3), i.read(4), i.read(100), i.read(5)]) as srv:
        assert ask(srv, post(b"abcdefghij")) == [b"abc", b"defg", b"hij", b""]
        assert ask(srv, post_chunked(b"ab", b"cdefg", b"hij")) == [b"abc", b"defg", b"hij", b""]


def test_input_read_without_size_returns_the_whole_body():
    with ServerThread(lambda e, s: (s("200 OK", []), [e["wsgi.input"].read()])[1]) as srv:
        assert srv.request(post(b"x" * 100000)).body == b"x" * 100000
        assert srv.request(post_chunked(b"a" * 70000, b"b" * 70000)).body == b"a" * 70000 + b"b" * 70000


def test_input_read_zero_returns_empty(strict_log):
    with reading_server(lambda i: [i.read(0), i.read(2)]) as srv:
        assert ask(srv, post(b"abc")) == [b"", b"ab"]


def test_input_readline_returns_lines_and_respects_size(strict_log):
    with reading_server(lambda i: [i.readline(), i.readline(2), i.readline(), i.readline(), i.readline()]) as srv:
        assert ask(srv, post(b"one\ntwo\nthree")) == [b"one\n", b"tw", b"o\n", b"three", b""]


def test_input_readline_across_chunk_boundaries(strict_log):
    with reading_server(lambda i: [i.readline(), i.readline()]) as srv:
        assert ask(srv, post_chunked(b"on", b"e", b"\ntw", b"o\n")) == [b"one\n", b"two\n"]


def test_input_readlines_and_iteration(strict_log):
    with reading_server(lambda i: i.readlines()) as srv:
        assert ask(srv, post(b"a\nb\n\nc")) == [b"a\n", b"b\n", b"\n", b"c"]
    with reading_server(lambda i: list(i)) as srv:
        assert ask(srv, post_chunked(b"a\nb", b"\nc\n")) == [b"a\n", b"b\n", b"c\n"]


def test_input_of_request_without_body_is_empty(strict_log):
    with reading_server(lambda i: [i.read(10), i.readline()]) as srv:
        assert ask(srv, get("/")) == [b"", b""]
        assert ask(srv, post(b"")) == [b"", b""]


def test_input_never_reads_past_the_body_into_the_next_request(strict_log):
    with reading_server(lambda i: [i.read(1000), i.readline(), i.read(1)]) as srv, srv.connect() as c:
        c.send(post(b"abc") + post_chunked(b"de", b"f") + post(b"last"))
        assert [eval(c.read_response().body) for _ in range(3)] == [
            [b"abc", b"", b""], [b"def", b"", b""], [b"last", b"", b""]]


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_unread_body_is_discarded_before_the_next_request(chunked, strict_log):
    with reading_server(lambda i: i.read(2)) as srv, srv.connect() as c:
        body = b"x" * 50000
        first = post_chunked(body[:20000], body[20000:]) if chunked else post(body)
        c.send(first + post(b"next"))
        assert eval(c.read_response().body) == b"xx"
        assert eval(c.read_response().body) == b"ne"


def test_unread_body_that_arrives_after_the_response_is_discarded(strict_log):
    with reading_server(lambda i: b"") as srv, srv.connect() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        assert eval(c.read_response().body) == b""
        c.send(b"abcdef" + get("/"))
        assert eval(c.read_response().body) == b""


def test_unread_body_beyond_max_discard_closes_the_connection():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app, max_discard=1000) as srv, srv.connect() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        r = c.read_response()
        assert r.body == b"ok"
        assert r.header("connection") == "close"  # announced: the rest cannot be drained
        assert c.is_closed()


def test_unread_body_within_max_discard_keeps_the_connection():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with ServerThread(app, max_discard=1000) as srv, srv.connect() as c:
        c.send(post(b"x" * 900) + get("/"))
        r = c.read_response()
        assert r.body == b"ok" and r.header("connection") is None
        assert c.read_response().body == b"ok"


def test_input_read_sees_the_client_half_close_as_an_incomplete_body():
    results = []

    def app(environ, start_response):
        try:
            results.append(environ["wsgi.input"].read())
        except OSError as e:  # ClientGone is a ConnectionError
            results.append(type(e).__name__)
            raise
        start_response("200 OK", [])
        return [b""]

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_close() == b""
    assert results == ["ClientGone"]


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
