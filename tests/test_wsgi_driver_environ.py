# The PEP 3333 side of the driver, over the fake transport: the environ of a
# request and the wsgi.input stream (read/readline/readlines/iteration, exact
# body boundaries, draining of unread bodies and its cap, a body cut short).
# Strategy: apps record the environ (or answer with repr() of what they read)
# and are wrapped in wsgiref.validate.validator, which fails the request
# (500 + error log, caught by strict_log) on any PEP 3333 violation; the
# harness's server is one bound to 127.0.0.1:80, its client 127.0.0.1:5555.
# test_wsgi_environ.py keeps the addresses a real socket gives, and a large
# body, end to end.
from __future__ import annotations

import logging
from wsgiref.validate import validator

import pytest

from fake_transport import Silent, harness
from wsgi_helpers import get, post, post_chunked, strict_log  # noqa: F401 (strict_log: a fixture)


def recording_app(seen):
    """Records each environ (with the body it read as "body") and answers 'ok'."""
    def app(environ, start_response):
        seen.append(dict(environ))
        seen[-1]["body"] = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 1 << 20)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    return validator(app)


def environ_of(data: bytes, **settings) -> dict:
    """The environ the app saw for the one request in `data`."""
    seen: list[dict] = []
    [r] = harness(recording_app(seen), **settings).responses(data)
    assert r.status == 200, r
    return seen[-1]


# The environ -----------------------------------------------------------------------
def test_environ_has_the_cgi_keys_of_the_request(strict_log):
    env = environ_of(b"POST /a/b?x=1&y=%20 HTTP/1.1\r\nHost: h.example:81\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc", peer=("10.1.2.3", 4567))
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == env["REQUEST_URI"] == "/a/b?x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == "80"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "10.1.2.3" and env["REMOTE_PORT"] == "4567"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "3"
    assert env["HTTP_HOST"] == "h.example:81"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["body"] == b"abc"


def test_environ_has_the_wsgi_keys(strict_log):
    env = environ_of(get("/"))
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


def test_a_chunked_request_has_no_content_length_and_a_terminated_input(strict_log):
    env = environ_of(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] == ""
    assert env["wsgi.input_terminated"] is True
    assert env["body"] == b"abc"


def test_a_request_without_body_has_no_content_type_or_length(strict_log):
    env = environ_of(get("/"))
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env


def test_path_info_is_percent_decoded_as_latin1(strict_log):
    env = environ_of(get("/caf%C3%A9/a%2Fb%20c?q=%C3%A9"))
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b c"
    assert env["QUERY_STRING"] == "q=%C3%A9"  # the query stays raw
    assert env["RAW_URI"] == "/caf%C3%A9/a%2Fb%20c?q=%C3%A9"


def test_a_request_without_query_has_an_empty_query_string(strict_log):
    assert environ_of(get("/p"))["QUERY_STRING"] == ""


# The C fast lane builds the environ of a plain head; the parser (which a
# chunked body sends a request to) that of any other: both must agree.
LANES = pytest.mark.parametrize("lane", ["fast_lane", "parser"])


def with_headers(lane: str, extra: str) -> bytes:
    """A request with the header lines `extra`, for `lane`."""
    if lane == "fast_lane":
        return get("/", extra=extra)
    return b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n%s\r\n0\r\n\r\n" % extra.encode("latin-1")


@LANES
def test_headers_become_http_keys(lane, strict_log):
    env = environ_of(with_headers(lane, "X-Foo-Bar: 1\r\nAccept:  text/html  \r\nUser-Agent: t/1\r\n"))
    assert env["HTTP_X_FOO_BAR"] == "1"
    assert env["HTTP_ACCEPT"] == "text/html"  # surrounding whitespace stripped
    assert env["HTTP_USER_AGENT"] == "t/1"


@LANES
def test_headers_with_an_underscore_are_dropped(lane, strict_log):
    assert environ_of(with_headers(lane, "X_Foo: spoof\r\nX-Foo: real\r\n"))["HTTP_X_FOO"] == "real"


@LANES
def test_repeated_headers_are_joined_with_a_comma(lane, strict_log):
    env = environ_of(with_headers(lane, "Accept: a\r\nX-Multi: 1\r\nAccept: b\r\n"))
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_X_MULTI"] == "1"


@LANES
def test_repeated_cookie_headers_are_joined_with_a_semicolon(lane, strict_log):
    assert environ_of(with_headers(lane, "Cookie: a=1\r\nCookie: b=2\r\n"))["HTTP_COOKIE"] == "a=1; b=2"


@LANES
def test_header_values_are_latin1_strings(lane, strict_log):
    assert environ_of(with_headers(lane, "X-Bin: caf\xe9\r\n"))["HTTP_X_BIN"] == "caf\xe9"


def test_an_http10_request_has_http10_server_protocol(strict_log):
    env = environ_of(b"GET /ten HTTP/1.0\r\n\r\n")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in env


def test_an_absolute_form_target_sets_path_and_host(strict_log):
    env = environ_of(b"GET http://Real.example/p/q?z=1 HTTP/1.1\r\nHost: other\r\n\r\n")
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

    h = harness(app)
    for _ in range(3):
        h.serve(get("/"))
    assert seen == [False, False, False]


def test_the_environ_argument_adds_keys_to_every_request(strict_log):
    assert environ_of(get("/"), environ={"my.key": "v"})["my.key"] == "v"


def test_wsgi_errors_writes_to_the_error_log(caplog):
    caplog.set_level(logging.INFO, logger="lichen.error")

    def app(environ, start_response):
        environ["wsgi.errors"].write("app says hi\n")
        environ["wsgi.errors"].flush()
        start_response("204 No Content", [])
        return []

    assert [r.status for r in harness(app).responses(get("/"))] == [204]
    assert "app says hi" in [r.getMessage() for r in caplog.records if r.name == "lichen.error"]


# wsgi.input ------------------------------------------------------------------------
def reading(read):
    """A harness whose app answers with repr(read(wsgi.input)), validated."""
    def app(environ, start_response):
        body = repr(read(environ["wsgi.input"])).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return harness(validator(app))


def reads(h, *pieces) -> list:
    """What the app read, for each request in `pieces` (all answered 200)."""
    rs = h.responses(*pieces)
    assert all(r.status == 200 for r in rs), rs
    return [eval(r.body) for r in rs]  # noqa: S307 - our own repr


def test_input_read_n_returns_at_most_n_bytes_in_order(strict_log):
    h = reading(lambda i: [i.read(3), i.read(4), i.read(100), i.read(5)])
    assert reads(h, post(b"abcdefghij")) == [[b"abc", b"defg", b"hij", b""]]
    assert reads(h, post_chunked(b"ab", b"cdefg", b"hij")) == [[b"abc", b"defg", b"hij", b""]]


def test_input_read_without_size_returns_the_whole_body():
    h = harness(lambda e, s: (s("200 OK", []), [e["wsgi.input"].read()])[1])
    assert [r.body for r in h.responses(post(b"x" * 100000))] == [b"x" * 100000]
    assert [r.body for r in h.responses(post_chunked(b"a" * 70000, b"b" * 70000))] == [b"a" * 70000 + b"b" * 70000]


def test_input_read_zero_returns_empty(strict_log):
    assert reads(reading(lambda i: [i.read(0), i.read(2)]), post(b"abc")) == [[b"", b"ab"]]


def test_input_readline_returns_lines_and_respects_size(strict_log):
    h = reading(lambda i: [i.readline(), i.readline(2), i.readline(), i.readline(), i.readline()])
    assert reads(h, post(b"one\ntwo\nthree")) == [[b"one\n", b"tw", b"o\n", b"three", b""]]


def test_input_readline_across_chunk_boundaries(strict_log):
    h = reading(lambda i: [i.readline(), i.readline()])
    assert reads(h, post_chunked(b"on", b"e", b"\ntw", b"o\n")) == [[b"one\n", b"two\n"]]


def test_input_readlines_and_iteration(strict_log):
    assert reads(reading(lambda i: i.readlines()), post(b"a\nb\n\nc")) == [[b"a\n", b"b\n", b"\n", b"c"]]
    assert reads(reading(lambda i: list(i)), post_chunked(b"a\nb", b"\nc\n")) == [[b"a\n", b"b\n", b"c\n"]]


def test_the_input_of_a_request_without_body_is_empty(strict_log):
    h = reading(lambda i: [i.read(10), i.readline()])
    assert reads(h, get("/")) == [[b"", b""]]
    assert reads(h, post(b"")) == [[b"", b""]]


def test_input_never_reads_past_the_body_into_the_next_request(strict_log):
    h = reading(lambda i: [i.read(1000), i.readline(), i.read(1)])
    assert reads(h, post(b"abc") + post_chunked(b"de", b"f") + post(b"last")) == [
        [b"abc", b"", b""], [b"def", b"", b""], [b"last", b"", b""]]


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_an_unread_body_is_discarded_before_the_next_request(chunked, strict_log):
    body = b"x" * 50000
    first = post_chunked(body[:20000], body[20000:]) if chunked else post(body)
    assert reads(reading(lambda i: i.read(2)), first + post(b"next")) == [b"xx", b"ne"]


def test_an_unread_body_that_arrives_after_the_response_is_discarded(strict_log):
    h = reading(lambda i: b"")
    # (the response goes out before the client sends the body)
    assert reads(h, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n", Silent(0.05),
                 b"abcdef" + get("/")) == [b"", b""]


def ok_app(environ, start_response):
    """Answers 'ok' without reading the body."""
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def test_an_unread_body_beyond_max_discard_closes_the_connection():
    h = harness(ok_app, max_discard=1000)
    [r] = h.responses(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
    assert r.body == b"ok"
    assert r.header("connection") == "close" and h.closed  # announced: the rest cannot be drained


def test_an_unread_body_within_max_discard_keeps_the_connection():
    h = harness(ok_app, max_discard=1000)
    r, again = h.responses(post(b"x" * 900) + get("/"))
    assert r.body == b"ok" and r.header("connection") is None
    assert again.body == b"ok" and h.parked


def test_input_read_sees_the_client_closing_as_an_incomplete_body():
    results = []

    def app(environ, start_response):
        try:
            results.append(environ["wsgi.input"].read())
        except OSError as e:  # ClientGone is a ConnectionError
            results.append(type(e).__name__)
            raise
        start_response("200 OK", [])
        return [b""]

    h = harness(app)
    assert h.serve(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", b"") == b""
    assert results == ["ClientGone"] and h.closed
