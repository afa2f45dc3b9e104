# The application side of WSGIServer end to end, through the real server on
# a socket: wsgi.file_wrapper sent with os.sendfile from a real file, and a
# client that disconnects while the app streams; then the access log's
# escaping and the framer's pass-through API, as unit tests. Every other
# application behaviour of the driver is tested over the fake transport, in
# test_wsgi_driver_app.py.
# Strategy: each end-to-end test serves a small purpose-built app and checks
# what a blocking client reads plus the records of `lichen.error`.
from __future__ import annotations

import io
import logging
import os

import pytest

from wsgi_helpers import (ServerThread, data_file, endless_app, file_app, get, logs,  # noqa: F401 (fixtures)
                          records, wait_until)


# wsgi.file_wrapper, disconnects ------------------------------------------------------------
@pytest.fixture
def sendfile_calls(monkeypatch):
    calls = []
    real = os.sendfile

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(os, "sendfile", counting)
    return calls


def test_file_wrapper_with_a_real_file_uses_sendfile_and_delivers_exact_bytes(data_file, sendfile_calls):
    path, data = data_file
    opened = []
    with ServerThread(file_app(path, opened=opened)) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        for _ in range(2):  # keep-alive holds: the framing was accounted for
            r = c.read_response()
            assert r.header("content-length") == str(len(data))
            assert r.body == data
    assert len(sendfile_calls) >= 2
    assert all(f.closed for f in opened)  # close() of the wrapper closes the file


def test_a_file_wrapper_after_write_continues_the_same_response(data_file):
    path, data = data_file

    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        write(b"head-start:")
        return environ["wsgi.file_wrapper"](open(path, "rb"), 8192)

    with ServerThread(app) as srv, srv.connect() as c:
        c.send(get("/") + get("/"))
        for _ in range(2):  # one head each, and the body framed as it began
            r = c.read_response()
            assert r.status == 200
            assert r.body == b"head-start:" + data


def test_iterable_close_is_called_when_the_client_disconnects(logs):
    log = []
    with ServerThread(endless_app(log)) as srv:
        c = srv.connect()
        c.send(get("/"))
        c.read_head()
        c.close()
        wait_until(lambda: log)
    assert log == ["closed"]
    assert not records(logs, level=logging.WARNING)  # a client going away is not an error


# Access log escaping (no server) -------------------------------------------------------
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
