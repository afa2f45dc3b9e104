# The application side of WSGIServer: start_response rules (exc_info,
# header and status validation), app-declared Content-Length, the write()
# callable, wsgi.file_wrapper with os.sendfile, close() of the iterable,
# application errors before/after the head, client disconnects, and the
# access log.
# Strategy: each test serves a small purpose-built app and checks the raw
# bytes on the wire plus the records of `lichen.error` / `lichen.access`.
from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
import time
from array import array
from wsgiref.validate import validator

import pytest

from wsgi_helpers import ClosedError, ServerThread, get, hello_app


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="lichen")
    return caplog


def records(caplog, name="lichen.error", level=logging.ERROR):
    return [r for r in caplog.records if r.name == name and r.levelno >= level]


def serve(app, **kw):
    return ServerThread(app, **kw)


# start_response ----------------------------------------------------------------------
def test_start_response_with_exc_info_before_the_head_replaces_the_response(logs):
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain"), ("X-Second", "2")], sys.exc_info())
        return [b"sorry"]

    with serve(app) as srv:
        r = srv.request(get("/"))
    assert r.status == 500 and r.reason == "Oops"
    assert r.header("x-second") == "2" and r.header("x-first") is None
    assert r.body == b"sorry"


def test_start_response_with_exc_info_after_the_head_reraises_and_closes(logs):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("late boom")
        except ValueError:
            start_response("500 Oops", [], sys.exc_info())
        return [b"never"]

    with serve(app) as srv, srv.connect() as c:
        c.send(get("/"))
        raw = c.read_until_close()
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert raw.endswith(b"7\r\npartial\r\n")  # no last chunk: the client sees it is incomplete
    errs = records(logs)
    assert errs and errs[0].exc_info and "late boom" in str(errs[0].exc_info[1])


def test_second_start_response_without_exc_info_is_an_error(logs):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b""]

    with serve(app) as srv:
        assert srv.request(get("/")).status == 500
    assert records(logs)


BAD_HEADERS = {
    "space_in_name": [("Bad Name", "v")],
    "colon_in_name": [("X:Y", "v")],
    "empty_name": [("", "v")],
    "crlf_in_value": [("X-A", "v\r\nInjected: yes")],
    "lf_in_value": [("X-A", "v\nInjected: yes")],
    "cr_in_value": [("X-A", "v\rInjected: yes")],
    "nul_in_value": [("X-A", "v\x00")],
    "crlf_in_name": [("X-A\r\nInjected", "yes")],
    "non_latin1_value": [("X-A", "\u20ac")],
    "bytes_header": [(b"X-A", b"v")],
    "not_a_tuple": ["X-A: v"],
    "bad_content_length": [("Content-Length", "-1")],
}


@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_invalid_response_header_is_500_with_log_line_and_nothing_injected(logs, headers):
    def app(environ, start_response):
        start_response("200 OK", headers)
        return [b"body"]

    with serve(app) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        r = c.read_response()
        assert r.status == 500
        assert b"Injected" not in r.raw_head and b"Injected" not in r.body
        assert c.read_until_close() == b""  # closed: the second request is not served
    assert records(logs)


BAD_STATUSES = ["200", "20 OK", "2000 OK", "600 Nope", "099 Low", "200 OK\r\nInjected: yes", "200 OK\x00",
                " 200 OK", "abc OK"]


@pytest.mark.parametrize("status", BAD_STATUSES)
def test_invalid_status_is_500_with_log_line(logs, status):
    def app(environ, start_response):
        start_response(status, [])
        return [b"body"]

    with serve(app) as srv:
        r = srv.request(get("/"))
    assert r.status == 500
    assert b"Injected" not in r.raw_head
    assert records(logs)


def test_status_must_be_a_str(logs):
    def app(environ, start_response):
        start_response(b"200 OK", [])
        return [b"body"]

    with serve(app) as srv:
        assert srv.request(get("/")).status == 500
    assert records(logs)


def test_body_before_start_response_is_500(logs):
    def app(environ, start_response):
        yield b"oops"

    with serve(app) as srv:
        assert srv.request(get("/")).status == 500
    assert records(logs)


def test_str_body_item_is_500(logs):
    def app(environ, start_response):
        start_response("200 OK", [])
        return ["text"]

    with serve(app) as srv:
        assert srv.request(get("/")).status == 500
    assert records(logs)


def test_write_callable_sends_the_body():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c"]

    with serve(validator(app)) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        assert c.read_response().body == b"abc"
        assert c.read_response().body == b"abc"


WIDE = array("I", [1, 2, 3, 4])  # 4 items, 16 bytes


class _WideFile:
    """Not a regular file: file_wrapper iterates it; reads give wide items."""

    def __init__(self) -> None:
        self.left = 2

    def read(self, size: int) -> memoryview:
        self.left -= 1
        return memoryview(WIDE) if self.left >= 0 else memoryview(b"")


WIDE_BODIES = {  # path -> (what the app does, the body that must arrive)
    "/write": (lambda env, write: write(memoryview(WIDE)) or [], WIDE.tobytes()),
    "/declared": (lambda env, write: write(memoryview(WIDE)) or [], WIDE.tobytes()),
    "/iter": (lambda env, write: iter([memoryview(WIDE), bytearray(b"!")]), WIDE.tobytes() + b"!"),
    "/list": (lambda env, write: [memoryview(WIDE)], WIDE.tobytes()),
    "/list-array": (lambda env, write: [WIDE], WIDE.tobytes()),
    "/list-many": (lambda env, write: [memoryview(WIDE), WIDE], WIDE.tobytes() * 2),
    "/file": (lambda env, write: env["wsgi.file_wrapper"](_WideFile()), WIDE.tobytes() * 2),
}


@pytest.mark.parametrize("path", list(WIDE_BODIES))
def test_bytes_like_body_items_are_framed_by_bytes_not_items(path):
    body, expected = WIDE_BODIES[path]

    def app(environ, start_response):
        headers = [("Content-Length", "16")] if path == "/declared" else []
        return body(environ, start_response("200 OK", headers))

    out = io.StringIO()
    with serve(app, log=out, access_log_format="%(B)s") as srv, srv.connect() as c:
        for _ in range(2):  # the second response parses only if the first was framed exactly
            c.send(get(path))
            r = c.read_response()
            assert r.status == 200 and r.body == expected
            assert r.header("content-length") in (None, str(len(expected)))
        assert not c.is_closed(0.1) and c.buf == b""  # nothing extra, still open
    assert out.getvalue().split() == [str(len(expected))] * 2  # bytes_sent counts bytes too


def test_hop_by_hop_headers_from_the_app_are_dropped():
    def app(environ, start_response):
        start_response("200 OK", [("Transfer-Encoding", "gzip"), ("Keep-Alive", "timeout=1"),
                                  ("Upgrade", "h2"), ("Content-Length", "2")])
        return [b"ok"]

    with serve(app) as srv:
        r = srv.request(get("/"))
    assert r.body == b"ok"
    assert not {"transfer-encoding", "keep-alive", "upgrade"} & set(r.header_names)


def test_app_date_and_server_headers_win():
    def app(environ, start_response):
        start_response("200 OK", [("Date", "Mon, 01 Jan 2001 00:00:00 GMT"), ("Server", "mine"),
                                  ("Content-Length", "0")])
        return []

    with serve(app) as srv:
        r = srv.request(get("/"))
    assert r.header_all("date") == ["Mon, 01 Jan 2001 00:00:00 GMT"]
    assert r.header_all("server") == ["mine"]


# App-declared Content-Length ----------------------------------------------------------
def cl_app(declared, chunks):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(declared))])
        if environ["PATH_INFO"] == "/gen":
            return iter(chunks)
        return list(chunks)
    return app


@pytest.mark.parametrize("path", ["/list", "/gen"])
def test_body_longer_than_content_length_is_cut_and_the_connection_closed(path):
    with serve(cl_app(5, [b"0123", b"456789"])) as srv, srv.connect() as c:
        c.send(get(path) + get(path))
        r = c.read_response()
        assert r.body == b"01234"
        assert c.read_until_close() == b""  # no excess bytes, no second response


@pytest.mark.parametrize("path", ["/list", "/gen"])
def test_body_shorter_than_content_length_closes_the_connection(path):
    with serve(cl_app(10, [b"abc"])) as srv, srv.connect() as c:
        c.send(get(path) + get(path))
        with pytest.raises(ClosedError):
            c.read_response()
        assert c.buf == b"abc" or c.buf == b""  # whatever arrived is only this response's


def test_exact_content_length_keeps_the_connection():
    with serve(cl_app(6, [b"abc", b"def"])) as srv, srv.connect() as c:
        c.send(get("/gen") + get("/list"))
        assert c.read_response().body == b"abcdef"
        assert c.read_response().body == b"abcdef"


def test_conflicting_app_content_lengths_are_500(logs):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2"), ("Content-Length", "3")])
        return [b"ab"]

    with serve(app) as srv:
        assert srv.request(get("/")).status == 500


# wsgi.file_wrapper ------------------------------------------------------------------------
@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def sendfile_calls(monkeypatch):
    calls = []
    real = os.sendfile

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, "sendfile", counting)
    return calls


def file_app(path, headers=(), seek=0, status="200 OK", opened=None):
    def app(environ, start_response):
        f = open(path, "rb")
        if opened is not None:
            opened.append(f)
        f.seek(seek)
        start_response(status, [("Content-Type", "application/octet-stream"), *headers])
        return environ["wsgi.file_wrapper"](f, 8192)
    return app


def test_file_wrapper_with_a_real_file_uses_sendfile_and_delivers_exact_bytes(data_file, sendfile_calls):
    path, data = data_file
    opened = []
    with serve(file_app(path, opened=opened)) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        for _ in range(2):  # keep-alive holds: the framing was accounted for
            r = c.read_response()
            assert r.header("content-length") == str(len(data))
            assert r.body == data
    assert len(sendfile_calls) >= 2
    assert all(f.closed for f in opened)  # close() of the wrapper closes the file


def test_file_wrapper_head_and_file_start_leave_together(data_file, sendfile_calls, monkeypatch):
    from lichen.wsgi import exchange as wsgi_exchange

    sends = []
    orig = wsgi_exchange.Exchange.sendall
    monkeypatch.setattr(wsgi_exchange.Exchange, "sendall", lambda self, d: (sends.append(d), orig(self, d))[1])
    path, data = data_file
    with serve(file_app(path)) as srv:
        assert srv.request(get("/")).body == data
    assert sends == []  # the head went out with MSG_MORE, not as a separate sendall


def test_file_wrapper_honours_the_file_position(data_file, sendfile_calls):
    path, data = data_file
    with serve(file_app(path, seek=1000)) as srv:
        r = srv.request(get("/"))
    assert r.body == data[1000:]


def test_file_wrapper_with_shorter_app_content_length_sends_exactly_that(data_file, sendfile_calls):
    path, data = data_file
    with serve(file_app(path, headers=[("Content-Length", "1000")])) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        assert c.read_response().body == data[:1000]
        assert c.read_response().body == data[:1000]


def test_file_wrapper_with_longer_app_content_length_closes(data_file, sendfile_calls):
    path, data = data_file
    with serve(file_app(path, headers=[("Content-Length", str(len(data) + 10))])) as srv, srv.connect() as c:
        c.send(get("/"))
        with pytest.raises(ClosedError):
            c.read_response()


def test_file_wrapper_on_head_sends_no_body(data_file, sendfile_calls):
    path, data = data_file
    with serve(file_app(path)) as srv, srv.connect() as c:
        c.send(get("/", method="HEAD") + get("/x"))
        r = c.read_response("HEAD")
        assert r.header("content-length") == str(len(data))
        assert c.read_response().body == data
    assert len(sendfile_calls) >= 1


def test_file_wrapper_on_304_sends_no_body(data_file, sendfile_calls):
    path, data = data_file
    with serve(file_app(path, status="304 Not Modified")) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        assert c.read_response().status == 304
        assert c.read_response().status == 304
        assert c.buf == b""
    assert sendfile_calls == []


def test_file_wrapper_over_a_non_file_is_iterated(logs):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 20000), 4096)

    with serve(app) as srv:
        r = srv.request(get("/"))
    assert r.body == b"x" * 20000
    assert not records(logs)


def test_file_wrapper_over_http10_keep_alive(data_file, sendfile_calls):
    path, data = data_file
    with serve(file_app(path)) as srv, srv.connect() as c:
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
        for _ in range(2):
            r = c.read_response()
            assert r.header("connection") == "keep-alive" and r.body == data


# close() and application errors --------------------------------------------------------
class Body:
    """A response iterable that records close() and may raise."""

    def __init__(self, chunks, fail_at=None, log=None):
        self.chunks = chunks
        self.fail_at = fail_at
        self.log = log if log is not None else []

    def __iter__(self):
        for i, ch in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("mid-iteration failure")
            yield ch

    def close(self):
        self.log.append("closed")


def test_iterable_close_is_called_after_a_normal_response():
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a", b"b"], log=log)

    with serve(app) as srv:
        assert srv.request(get("/")).body == b"ab"
    assert log == ["closed"]


def test_app_exception_mid_iteration_closes_the_iterable_and_the_connection(logs):
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a", b"b", b"c"], fail_at=2, log=log)

    with serve(app) as srv, srv.connect() as c:
        c.send(get("/"))
        raw = c.read_until_close()
    assert raw.endswith(b"1\r\nb\r\n")  # body cut without the last chunk
    assert log == ["closed"]
    errs = records(logs)
    assert len(errs) == 1 and errs[0].exc_info is not None
    assert "mid-iteration failure" in str(errs[0].exc_info[1])


def test_app_exception_before_the_head_is_500_with_short_body_and_traceback_logged(logs):
    def app(environ, start_response):
        raise KeyError("kaput")

    with serve(app) as srv, srv.connect() as c:
        c.send(get("/"))
        r = c.read_response()
        assert r.status == 500
        assert 0 < len(r.body) < 100 and b"kaput" not in r.body  # nothing internal leaks
        assert c.is_closed()
    errs = records(logs)
    assert len(errs) == 1 and errs[0].exc_info is not None
    assert "Traceback" in logs.text and "kaput" in logs.text


def test_app_exception_in_a_generator_before_the_first_chunk_is_500(logs):
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a"], fail_at=0, log=log)

    with serve(app) as srv:
        assert srv.request(get("/")).status == 500
    assert log == ["closed"]
    assert len(records(logs)) == 1


def test_exception_in_close_is_logged_and_closes_the_connection(logs):
    class Bad(Body):
        def close(self):
            raise RuntimeError("close failed")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "1")])
        return Bad([b"a"])

    with serve(app) as srv, srv.connect() as c:
        c.send(get("/"))
        assert c.read_response().body == b"a"
        assert c.is_closed()
    assert any("close failed" in str(r.exc_info[1]) for r in records(logs) if r.exc_info)


def test_iterable_close_is_called_when_the_client_disconnects(logs):
    done = threading.Event()
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])

        def gen():
            try:
                while True:
                    yield b"x" * 65536
            finally:
                done.set()

        class Wrapped(Body):
            def __iter__(self):
                return gen()
        return Wrapped([], log=log)

    with serve(app) as srv:
        c = srv.connect()
        c.send(get("/"))
        c.read_head()
        c.close()
        assert done.wait(5)
        time.sleep(0.05)
    assert log == ["closed"]
    assert not records(logs, level=logging.WARNING)  # a client going away is not an error


def test_client_disconnect_while_app_reads_body_is_not_logged_as_error(logs):
    got = threading.Event()

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        finally:
            got.set()
        start_response("200 OK", [])
        return [b""]

    with serve(app) as srv:
        c = srv.connect()
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.05)
        c.close()
        assert got.wait(5)
        time.sleep(0.05)
    assert not records(logs, level=logging.WARNING)


# Access log -------------------------------------------------------------------------------
ACCESS_DEFAULT = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /p\?q=1 HTTP/1\.1" 200 8 "ref" "ua/1"$')


def test_access_log_writes_one_line_per_request(logs):
    with serve(hello_app) as srv, srv.connect() as c:
        c.send(get("/p?q=1", extra="Referer: ref\r\nUser-Agent: ua/1\r\n") * 3)
        for _ in range(3):
            c.read_response()
    lines = [r.getMessage() for r in logs.records if r.name == "lichen.access"]
    assert len(lines) == 3
    assert all(ACCESS_DEFAULT.match(line) for line in lines), lines


def test_access_log_format_takes_gunicorn_atoms(logs):
    fmt = '%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%({x-req}i)s|%({content-type}o)s|%(h)s|%(p)s|%(D)s'
    with serve(hello_app, access_log_format=fmt) as srv:
        srv.request(get("/path?a=b", extra="X-Req: abc\r\n"))
    line = [r.getMessage() for r in logs.records if r.name == "lichen.access"][0]
    parts = line.split("|")
    assert parts[:10] == ["GET", "/path", "a=b", "HTTP/1.1", "200", "11", "11", "abc", "text/plain", "127.0.0.1"]
    assert parts[10] == f"<{os.getpid()}>" and parts[11].isdigit()


def test_access_log_records_server_errors(logs):
    def app(environ, start_response):
        raise ValueError

    with serve(app, access_log_format="%(s)s %(r)s") as srv:
        srv.request(get("/x"))
    assert [r.getMessage() for r in logs.records if r.name == "lichen.access"] == ["500 GET /x HTTP/1.1"]


def test_access_log_records_the_status_of_a_body_rejected_while_the_app_reads(logs):
    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b""]

    with serve(app, max_body=10, access_log_format="%(s)s") as srv, srv.connect() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n")
        assert c.read_response().status == 413
    assert [r.getMessage() for r in logs.records if r.name == "lichen.access"] == ["413"]


def test_access_log_none_turns_access_logging_off(logs):
    with serve(hello_app, log=None) as srv:
        srv.request(get("/"))
    assert not [r for r in logs.records if r.name == "lichen.access"]


def test_access_log_to_a_file_like_object():
    out = io.StringIO()
    with serve(hello_app, log=out, access_log_format="%(s)s %(U)s") as srv:
        srv.request(get("/f"))
    assert out.getvalue() == "200 /f\n"


def test_access_log_escapes_what_the_client_sent_so_a_line_cannot_be_forged(logs):
    ua = 'ua" 200 1 "-" "evil\\'
    with serve(hello_app) as srv:
        srv.request(b"GET /p%22%0A HTTP/1.1\r\nHost: x\r\nReferer: r\xe9f\x85\r\nUser-Agent: " + ua.encode()
                    + b"\r\n\r\n")
    line = [r.getMessage() for r in logs.records if r.name == "lichen.access"][0]
    assert line.endswith(r' "GET /p%22%0A HTTP/1.1" 200 10 "r\xE9f\x85" "ua\x22 200 1 \x22-\x22 \x22evil\x5C"')


def test_access_log_numeric_atoms_are_ints_as_in_gunicorn():
    out = io.StringIO()
    with serve(hello_app, log=out, access_log_format="%(T)d %(M)d %(D)d %(B)d %(D)s %(T)s %(b)s") as srv:
        srv.request(get("/"))
    t, m, d, b_int, d_str, t_str, b_str = out.getvalue().split()
    assert d == d_str and t == t_str and b_int == b_str == "7"  # "hello /"
    assert int(t) <= int(m) // 1000 + 1 and int(m) == int(d) // 1000


class _LogResp:
    status = "200 OK"
    status_code = 200
    bytes_sent = 0

    def __init__(self, headers=()):
        self.headers = list(headers)


def _log_line(fmt, env=None, headers=()):
    from lichen.wsgi.accesslog import AccessLog

    out = io.StringIO()
    AccessLog(out, fmt).log(env or {}, _LogResp(headers), 1.5)
    return out.getvalue()[:-1]


# One string with every class of character the log escapes, and its escape.
NASTY = 'a"b\\c\x00\t\n\x1f\x7f\x80\x9f\xa0\xe9\xff\u20ac z'
NASTY_ESCAPED = r"a\x22b\x5Cc\x00\x09\x0A\x1F\x7F\x80\x9F\xA0\xE9\xFF\xE2\x82\xAC z"


@pytest.mark.parametrize("fmt, key", [
    ("%(h)s", "REMOTE_ADDR"), ("%(u)s", "REMOTE_USER"), ("%(m)s", "REQUEST_METHOD"), ("%(U)s", "PATH_INFO"),
    ("%(q)s", "QUERY_STRING"), ("%(H)s", "SERVER_PROTOCOL"), ("%(f)s", "HTTP_REFERER"),
    ("%(a)s", "HTTP_USER_AGENT"), ("%({x-echo}i)s", "HTTP_X_ECHO"), ("%({my.var}e)s", "my.var"),
    ("%(r)s", "RAW_URI"),
])
def test_access_log_escapes_every_atom_from_the_client(fmt, key):
    expected = f"- {NASTY_ESCAPED} -" if fmt == "%(r)s" else NASTY_ESCAPED
    assert _log_line(fmt, {key: NASTY}) == expected


def test_access_log_escapes_response_headers_that_may_echo_the_request():
    assert _log_line("%({access-control-allow-origin}o)s",
                     headers=[("Access-Control-Allow-Origin", NASTY)]) == NASTY_ESCAPED


@pytest.mark.parametrize("text, escaped", [
    ('"', r"\x22"), ("\\", r"\x5C"),
    ("\x00\x01\t\n\r\x1b\x1f", r"\x00\x01\x09\x0A\x0D\x1B\x1F"),  # C0 controls
    ("\x7f", r"\x7F"), ("\x80\x85\x9f", r"\x80\x85\x9F"),  # DEL, C1 controls
    ("\xa0\xe9\xff", r"\xA0\xE9\xFF"),  # latin-1: the byte that came in
    ("\u20ac\U0001f600", r"\xE2\x82\xAC\xF0\x9F\x98\x80"),  # wider (from the app): its UTF-8
    ("plain text: (a/b?c=d&e) ~!", "plain text: (a/b?c=d&e) ~!"),
])
def test_access_log_escape_per_class_of_character(text, escaped):
    assert _log_line("%(a)s", {"HTTP_USER_AGENT": text}) == escaped


def test_access_log_numeric_atoms_and_empty_body():
    assert _log_line("%(T)d|%(M)d|%(D)d|%(B)d|%(b)s|%(D)s|%(L)s") == "1|1500|1500000|0|-|1500000|1.500000"


def test_invalid_access_log_format_is_rejected_at_construction():
    with pytest.raises(RuntimeError, match="access_log_format is invalid"):
        serve(hello_app, access_log_format="%(s)s %(").start()


# The Framer pass-through API used by sendfile ---------------------------------------------
def _framer(headers, method="GET", version="1.1", status="200 OK"):
    from lichen.http import build_head

    return build_head(status, headers, http_version=version, method=method, keep_alive=True,
                      date=b"d", server=None)[1]


def test_length_framer_accounts_bytes_sent_around_it():
    f = _framer([("Content-Length", "10")])
    assert f.remaining == 10
    f.advance(4)
    assert f.remaining == 6 and not f.complete and f.must_close
    f.advance(6)
    assert f.remaining == 0 and f.complete and not f.must_close


def test_length_framer_refuses_to_advance_past_its_length():
    from lichen.http import LocalProtocolError

    f = _framer([("Content-Length", "3")])
    with pytest.raises(LocalProtocolError):
        f.advance(4)


def test_length_framer_that_overflowed_must_close():
    f = _framer([("Content-Length", "3")])
    assert f.frame(b"abcdef") == b"abc"
    assert f.complete and f.must_close


def test_no_body_and_close_framers_pass_through_and_chunked_does_not():
    from lichen.http import LocalProtocolError

    assert _framer([], method="HEAD").remaining == 0
    assert _framer([], version="1.0").remaining is None
    chunked = _framer([])
    with pytest.raises(LocalProtocolError):
        chunked.remaining
    with pytest.raises(LocalProtocolError):
        chunked.advance(1)
