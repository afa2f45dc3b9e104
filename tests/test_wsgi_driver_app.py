# The application side of the driver, over the fake transport: start_response
# rules (exc_info, header and status validation), app-declared Content-Length,
# the write() callable and bytes-like body items, wsgi.file_wrapper with
# sendfile, close() of the iterable, application errors before and after the
# head, clients that go away or stop reading, and the access log.
# Strategy: each test serves a small purpose-built app through
# fake_transport.harness and checks what reached the client (parsed back
# with fake_transport.parse, or raw), whether the connection was kept, and
# the records of `lichen.error` / `lichen.access`. test_wsgi_app.py keeps
# sendfile of a real file and a client disconnect end to end.
from __future__ import annotations

import io
import logging
import os
import re
import socket
import sys
from array import array
from wsgiref.validate import validator

import pytest

from fake_transport import harness
from lichen.settings import Settings
from lichen.wsgi import WSGIServer
from wsgi_helpers import (Body, data_file, endless_app, file_app, get, hello_app, logs,  # noqa: F401 (fixtures)
                          records)


def answer(app, *pieces, **settings):
    """The one response of `app` to `pieces` (nothing may follow it)."""
    [r] = harness(app, **settings).responses(*pieces)
    return r


# start_response ----------------------------------------------------------------------
def test_start_response_with_exc_info_before_the_head_replaces_the_response(logs):
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain"), ("X-Second", "2")], sys.exc_info())
        return [b"sorry"]

    r = answer(app, get("/"))
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

    h = harness(app)
    out = h.serve(get("/"))
    assert out.startswith(b"HTTP/1.1 200 OK")
    assert out.endswith(b"7\r\npartial\r\n") and h.closed  # no last chunk: the client sees it is incomplete
    errs = records(logs)
    assert errs and errs[0].exc_info and "late boom" in str(errs[0].exc_info[1])


def test_a_second_start_response_without_exc_info_is_an_error(logs):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b""]

    assert answer(app, get("/")).status == 500
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
def test_an_invalid_response_header_is_500_with_a_log_line_and_nothing_injected(logs, headers):
    def app(environ, start_response):
        start_response("200 OK", headers)
        return [b"body"]

    h = harness(app)
    [r] = h.responses(get("/") + get("/"))  # closed: the second request is not served
    assert r.status == 500 and h.closed
    assert b"Injected" not in r.raw_head and b"Injected" not in r.body
    assert records(logs)


BAD_STATUSES = ["200", "20 OK", "2000 OK", "600 Nope", "099 Low", "200 OK\r\nInjected: yes", "200 OK\x00",
                " 200 OK", "abc OK"]


@pytest.mark.parametrize("status", BAD_STATUSES)
def test_an_invalid_status_is_500_with_a_log_line(logs, status):
    def app(environ, start_response):
        start_response(status, [])
        return [b"body"]

    r = answer(app, get("/"))
    assert r.status == 500 and b"Injected" not in r.raw_head
    assert records(logs)


def test_the_status_must_be_a_str(logs):
    def app(environ, start_response):
        start_response(b"200 OK", [])
        return [b"body"]

    assert answer(app, get("/")).status == 500
    assert records(logs)


def test_a_body_before_start_response_is_500(logs):
    def app(environ, start_response):
        yield b"oops"

    assert answer(app, get("/")).status == 500
    assert records(logs)


def test_a_str_body_item_is_500(logs):
    def app(environ, start_response):
        start_response("200 OK", [])
        return ["text"]

    assert answer(app, get("/")).status == 500
    assert records(logs)


def test_the_write_callable_sends_the_body():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")
        write(b"b")
        return [b"c"]

    rs = harness(validator(app)).responses(get("/") + get("/"))
    assert [r.body for r in rs] == [b"abc", b"abc"]


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
    h = harness(app, log=out, access_log_format="%(B)s")
    for _ in range(2):  # the second response parses only if the first was framed exactly
        [r] = h.responses(get(path))
        assert r.status == 200 and r.body == expected
        assert r.header("content-length") in (None, str(len(expected)))
    assert h.parked  # nothing extra, still open
    assert out.getvalue().split() == [str(len(expected))] * 2  # bytes_sent counts bytes too


def test_hop_by_hop_headers_from_the_app_are_dropped():
    def app(environ, start_response):
        start_response("200 OK", [("Transfer-Encoding", "gzip"), ("Keep-Alive", "timeout=1"),
                                  ("Upgrade", "h2"), ("Content-Length", "2")])
        return [b"ok"]

    r = answer(app, get("/"))
    assert r.body == b"ok"
    assert not {"transfer-encoding", "keep-alive", "upgrade"} & set(r.header_names)


def test_the_apps_date_and_server_headers_win():
    def app(environ, start_response):
        start_response("200 OK", [("Date", "Mon, 01 Jan 2001 00:00:00 GMT"), ("Server", "mine"),
                                  ("Content-Length", "0")])
        return []

    r = answer(app, get("/"))
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
def test_a_body_longer_than_its_content_length_is_cut_and_the_connection_closed(path):
    h = harness(cl_app(5, [b"0123", b"456789"]))
    assert [r.body for r in h.responses(get(path) + get(path))] == [b"01234"]  # no excess bytes, no second response
    assert h.closed


@pytest.mark.parametrize("path", ["/list", "/gen"])
def test_a_body_shorter_than_its_content_length_closes_the_connection(path):
    h = harness(cl_app(10, [b"abc"]))
    out = h.serve(get(path) + get(path))
    assert out.split(b"\r\n\r\n", 1)[1] in (b"abc", b"")  # whatever arrived is only this response's
    assert h.closed


def test_an_exact_content_length_keeps_the_connection():
    h = harness(cl_app(6, [b"abc", b"def"]))
    assert [r.body for r in h.responses(get("/gen") + get("/list"))] == [b"abcdef", b"abcdef"]
    assert h.parked


def test_an_iterables_one_item_that_is_its_declared_body_goes_out_whole_in_one_send():
    h = harness(cl_app(6, [b"abcdef"]))
    [gen] = h.responses(get("/gen"))
    assert len(h.sock.sends) == 1 and h.parked
    [lst] = harness(cl_app(6, [b"abcdef"])).responses(get("/list"))
    assert (gen.status, gen.headers, gen.body) == (lst.status, lst.headers, lst.body)


def test_items_after_an_iterables_complete_first_item_are_not_sent_and_close_the_connection():
    h = harness(cl_app(4, [b"0123", b"456"]))
    assert [r.body for r in h.responses(get("/gen") + get("/gen"))] == [b"0123"]
    assert h.closed


def test_a_head_response_from_an_iterable_of_several_items_keeps_the_connection():
    h = harness(cl_app(6, [b"abc", b"def"]))
    rs = h.responses(b"HEAD /gen HTTP/1.1\r\nHost: x\r\n\r\n", methods=["HEAD"])
    assert [(r.status, r.body, r.header("content-length")) for r in rs] == [(200, b"", "6")]
    assert h.parked


def test_conflicting_app_content_lengths_are_500(logs):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2"), ("Content-Length", "3")])
        return [b"ab"]

    assert answer(app, get("/")).status == 500


# wsgi.file_wrapper ------------------------------------------------------------------------
def test_a_file_wrapper_over_a_regular_file_is_sent_with_sendfile_and_closed(data_file):
    path, data = data_file
    opened = []
    h = harness(file_app(path, opened=opened))
    rs = h.responses(get("/") + get("/"))
    assert [(r.header("content-length"), r.body) for r in rs] == [(str(len(data)), data)] * 2
    assert h.parked  # keep-alive holds: the framing was accounted for
    assert h.sock.sendfiles == [(0, len(data), len(data))] * 2
    assert len(opened) == 2 and all(f.closed for f in opened)  # close() of the wrapper closes the file


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), TimeoutError("write timeout")],
                         ids=["reset", "write_timeout"])
def test_a_client_that_stops_reading_a_sendfile_body_closes_the_file_and_the_connection(logs, data_file, error):
    path, data = data_file
    opened = []
    h = harness(file_app(path, opened=opened))
    h.sock.stop_reading(after=1000, error=error)  # the head goes out; the file does not
    assert h.serve(get("/")).startswith(b"HTTP/1.1 200 OK")
    assert h.closed and len(opened) == 1 and opened[0].closed
    assert not records(logs, level=logging.WARNING)  # a client going away is not an error


def test_a_file_wrappers_head_is_sent_with_msg_more_ahead_of_the_file(data_file):
    path, data = data_file
    h = harness(file_app(path))
    h.serve(get("/"))
    [(head, flags)] = h.sock.sends
    assert head.endswith(b"\r\n\r\n") and flags == socket.MSG_MORE
    assert h.sock.sendfiles == [(0, len(data), len(data))]


def test_a_file_wrapper_honours_the_file_position(data_file):
    path, data = data_file
    h = harness(file_app(path, seek=1000))
    assert [r.body for r in h.responses(get("/"))] == [data[1000:]]
    assert h.sock.sendfiles == [(1000, len(data) - 1000, len(data) - 1000)]


def test_a_file_wrapper_with_a_shorter_app_content_length_sends_exactly_that(data_file):
    path, data = data_file
    h = harness(file_app(path, headers=[("Content-Length", "1000")]))
    assert [r.body for r in h.responses(get("/") + get("/"))] == [data[:1000]] * 2


def test_a_file_wrapper_with_a_longer_app_content_length_closes(data_file):
    path, data = data_file
    h = harness(file_app(path, headers=[("Content-Length", str(len(data) + 10))]))
    out = h.serve(get("/") + get("/"))
    assert out.endswith(data) and out.count(b"HTTP/1.1 ") == 1  # short by 10 bytes: the close says so
    assert h.closed


def test_a_file_wrapper_on_head_sends_no_body(data_file):
    path, data = data_file
    h = harness(file_app(path))
    hd, g = h.responses(get("/", method="HEAD") + get("/x"), methods=("HEAD",))
    assert hd.header("content-length") == str(len(data)) and g.body == data
    assert len(h.sock.sendfiles) == 1  # the GET's


def test_a_file_wrapper_on_304_sends_no_body(data_file):
    path, data = data_file
    h = harness(file_app(path, status="304 Not Modified"))
    assert [r.status for r in h.responses(get("/") + get("/"))] == [304, 304]
    assert h.sock.sendfiles == []


def test_a_file_wrapper_over_a_non_file_is_iterated(logs):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 20000), 4096)

    h = harness(app)
    assert [r.body for r in h.responses(get("/"))] == [b"x" * 20000]
    assert h.sock.sendfiles == [] and not records(logs)


def test_a_file_wrapper_over_http10_keep_alive(data_file):
    path, data = data_file
    rs = harness(file_app(path)).responses(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
    assert [(r.header("connection"), r.body) for r in rs] == [("keep-alive", data)] * 2


# close() and application errors --------------------------------------------------------
def test_the_iterables_close_is_called_after_a_normal_response():
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a", b"b"], log=log)

    assert answer(app, get("/")).body == b"ab"
    assert log == ["closed"]


def test_an_app_exception_mid_iteration_closes_the_iterable_and_the_connection(logs):
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a", b"b", b"c"], fail_at=2, log=log)

    h = harness(app)
    out = h.serve(get("/"))
    assert out.endswith(b"1\r\nb\r\n") and h.closed  # body cut without the last chunk
    assert log == ["closed"]
    errs = records(logs)
    assert len(errs) == 1 and errs[0].exc_info is not None
    assert "mid-iteration failure" in str(errs[0].exc_info[1])


def test_an_app_exception_before_the_head_is_500_with_a_short_body_and_the_traceback_logged(logs):
    def app(environ, start_response):
        raise KeyError("kaput")

    h = harness(app)
    [r] = h.responses(get("/"))
    assert r.status == 500
    assert 0 < len(r.body) < 100 and b"kaput" not in r.body  # nothing internal leaks
    assert h.closed
    errs = records(logs)
    assert len(errs) == 1 and errs[0].exc_info is not None
    assert "Traceback" in logs.text and "kaput" in logs.text


def test_an_app_exception_in_a_generator_before_the_first_chunk_is_500(logs):
    log = []

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body([b"a"], fail_at=0, log=log)

    assert answer(app, get("/")).status == 500
    assert log == ["closed"]
    assert len(records(logs)) == 1


def test_an_exception_in_close_is_logged_and_closes_the_connection(logs):
    class Bad(Body):
        def close(self):
            raise RuntimeError("close failed")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "1")])
        return Bad([b"a"])

    h = harness(app)
    assert [r.body for r in h.responses(get("/"))] == [b"a"] and h.closed
    assert any("close failed" in str(r.exc_info[1]) for r in records(logs) if r.exc_info)


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "broken pipe"),
                                   TimeoutError("write timeout")], ids=["reset", "epipe", "write_timeout"])
def test_a_client_that_goes_away_or_stops_reading_closes_the_iterable_and_the_connection(logs, error):
    log = []
    h = harness(endless_app(log))
    h.sock.stop_reading(after=200_000, error=error)
    assert h.serve(get("/")).startswith(b"HTTP/1.1 200 OK")
    assert log == ["closed"] and h.closed
    assert not records(logs, level=logging.WARNING)  # a client going away is not an error


def test_a_client_disconnect_while_the_app_reads_the_body_is_not_logged_as_an_error(logs):
    read = []

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        finally:
            read.append(True)
        start_response("200 OK", [])
        return [b""]

    h = harness(app)
    assert h.serve(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc", b"") == b""
    assert read and h.closed
    assert not records(logs, level=logging.WARNING)


# Access log -------------------------------------------------------------------------------
ACCESS_DEFAULT = re.compile(
    r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /p\?q=1 HTTP/1\.1" 200 8 "ref" "ua/1"$')


ACCESS = logging.getLogger("lichen.access")


def access_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "lichen.access"]


def test_the_access_log_writes_one_line_per_request(logs):
    # (Given lichen's settings, the line is access_log_format's, by default gunicorn's.)
    h = harness(hello_app, log=ACCESS, settings=Settings())
    h.serve(get("/p?q=1", extra="Referer: ref\r\nUser-Agent: ua/1\r\n") * 3)
    lines = access_lines(logs)
    assert len(lines) == 3
    assert all(ACCESS_DEFAULT.match(line) for line in lines), lines


def test_the_access_log_format_takes_gunicorns_atoms(logs):
    fmt = '%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%({x-req}i)s|%({content-type}o)s|%(h)s|%(p)s|%(D)s'
    harness(hello_app, log=ACCESS, access_log_format=fmt).serve(get("/path?a=b", extra="X-Req: abc\r\n"))
    [line] = access_lines(logs)
    parts = line.split("|")
    assert parts[:10] == ["GET", "/path", "a=b", "HTTP/1.1", "200", "11", "11", "abc", "text/plain", "127.0.0.1"]
    assert parts[10] == f"<{os.getpid()}>" and parts[11].isdigit()


def test_the_access_log_records_server_errors(logs):
    def app(environ, start_response):
        raise ValueError

    harness(app, log=ACCESS, access_log_format="%(s)s %(r)s").serve(get("/x"))
    assert access_lines(logs) == ["500 GET /x HTTP/1.1"]


def test_the_access_log_records_the_status_of_a_body_rejected_while_the_app_reads(logs):
    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b""]

    h = harness(app, log=ACCESS, max_body=10, access_log_format="%(s)s")
    [r] = h.responses(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"x" * 32
                      + b"\r\n0\r\n\r\n")
    assert r.status == 413
    assert access_lines(logs) == ["413"]


def test_access_log_none_turns_access_logging_off(logs):
    harness(hello_app, log=None).serve(get("/"))
    assert not access_lines(logs)


def test_the_access_log_can_go_to_a_file_like_object():
    out = io.StringIO()
    harness(hello_app, log=out, access_log_format="%(s)s %(U)s").serve(get("/f"))
    assert out.getvalue() == "200 /f\n"


def test_the_access_log_escapes_what_the_client_sent_so_a_line_cannot_be_forged(logs):
    ua = 'ua" 200 1 "-" "evil\\'
    h = harness(hello_app, log=ACCESS, settings=Settings())
    h.serve(b"GET /p%22%0A HTTP/1.1\r\nHost: x\r\nReferer: r\xe9f\x85\r\nUser-Agent: " + ua.encode() + b"\r\n\r\n")
    [line] = access_lines(logs)
    assert line.endswith(r' "GET /p%22%0A HTTP/1.1" 200 10 "r\xE9f\x85" "ua\x22 200 1 \x22-\x22 \x22evil\x5C"')


def test_the_access_logs_numeric_atoms_are_ints_as_in_gunicorn():
    out = io.StringIO()
    harness(hello_app, log=out, access_log_format="%(T)d %(M)d %(D)d %(B)d %(D)s %(T)s %(b)s").serve(get("/"))
    t, m, d, b_int, d_str, t_str, b_str = out.getvalue().split()
    assert d == d_str and t == t_str and b_int == b_str == "7"  # "hello /"
    assert int(t) <= int(m) // 1000 + 1 and int(m) == int(d) // 1000


def test_an_invalid_access_log_format_is_rejected_at_construction():
    with pytest.raises(ValueError, match="access_log_format is invalid"):
        WSGIServer(("127.0.0.1", 0), hello_app, access_log_format="%(s)s %(")
