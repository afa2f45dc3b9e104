# Differential tests of the C response core (lichen._fastresponse), the base
# of lichen.wsgi.response.Response: its start_response, and whole(), which
# sends the common whole response in one piece and otherwise declines.
# Strategy: the Python path is the oracle. An `Oracle` response is the same
# class with whole() always declining, so it answers with the Python code
# alone (send_all_at_once for a body known whole, write() for an iterable's
# first item). Every generated response goes through `compare()`: where
# whole() takes it, the bytes sent and the state left (status code,
# keep-alive, head length, bytes sent, framer) are the oracle's, and the
# oracle too sent it whole in one piece; where the oracle refuses it
# (LocalProtocolError), whole() declined; whole() itself never raises on what
# an app gives and leaves a declined response untouched. Responses come from
# hypothesis: statuses, header names and values that are often valid and
# sometimes not (CR, LF, NUL, non-latin-1, hop-by-hop, Content-Length right,
# wrong, repeated, odd), bodies, HEAD and HTTP/1.0 requests, keep-alive, a
# stopping server and a will_close answer. One test per start_response rule
# and per decline follows.
from __future__ import annotations

import contextlib
import errno
import gc
import socket
import struct
import sys
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lichen.http import LocalProtocolError
from lichen.http.framing import LengthFramer
from lichen._fastresponse import recv_nowait
from lichen.wsgi.response import FINISHED, Response, ResponseStateError

DATE = b"Thu, 03 Dec 2026 08:00:00 GMT"


@dataclass
class Req:
    method: str = "GET"
    http_version: str = "1.1"


class Owner:
    def __init__(self, stopping: bool = False) -> None:
        self.stopping = stopping


class Oracle(Response):
    """The Python path alone: whole() never takes a response."""

    __slots__ = ()

    def whole(self, body, declared=False):
        return False


def make(cls=Response, req=None, keep=True, server=b"lichen", owner=None, will_close=None):
    sent: list[bytes] = []
    r = cls(sent.append, req or Req(), keep, DATE, server, owner)
    if will_close is not None:
        r.will_close = will_close
    return r, sent


def state(r) -> tuple:
    f = r.framer
    framer = None if f is None else (type(f).__name__, f.complete, f.must_close)
    return (r.head_sent, r.keep_alive, r.status_code, r.head_bytes, r.bytes_sent, framer)


def oracle_answer(r, body: bytes, declared: bool) -> None:
    if declared:
        r.write(body)
    else:
        r.send_all_at_once(body)


def compare(status, headers, body, declared=False, req=None, keep=True, server=b"lichen", stopping=False,
            closes=None) -> bool:
    """Answer the same response through whole() and through the oracle;
    returns whether whole() took it."""
    will_close = None if closes is None else (lambda: closes)
    c, c_sent = make(req=req, keep=keep, server=server, owner=Owner(stopping), will_close=will_close)
    o, o_sent = make(Oracle, req=req, keep=keep, server=server, owner=Owner(stopping), will_close=will_close)
    c(status, headers)
    o(status, headers)
    before = state(c)
    took = c.whole(body, declared)
    try:
        oracle_answer(o, body, declared)
    except LocalProtocolError:
        assert not took, "whole() sent a response the Python path refuses"
        assert state(c) == before and c_sent == []
        return False
    if not took:
        assert state(c) == before and c_sent == []
        return False
    assert len(o_sent) == 1, "whole() took a response the Python path does not send whole"
    assert c_sent == o_sent
    assert state(c) == state(o)
    return True


# -- generated responses ----------------------------------------------------------------------

TOKEN = st.text(st.sampled_from("abcXYZ09-_.!#$%&'*+^`|~"), min_size=1, max_size=12)
ODD_NAME = st.sampled_from(["", "Bad Name", "Bad:Name", "X\r\nY", "Nämé", "X\x00", "€uro", "Tab\tName"])
SPECIAL = st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH", "Date", "date", "Server",
                           "SERVER", "Connection", "connection", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer",
                           "Upgrade", "Proxy-Connection", "Content-Type", "Set-Cookie", "ETag"])
NAME = st.one_of(TOKEN, TOKEN, TOKEN, SPECIAL, SPECIAL, ODD_NAME)
VALUE = st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
                  st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
                  st.text(st.characters(min_codepoint=0, max_codepoint=300), max_size=8),
                  st.sampled_from(["close", "keep-alive", " 3 ", "\t3", "03", "-1", "3x", "", "９"]),
                  st.integers(0, 40).map(str))
PLAIN_HEADER = st.tuples(TOKEN.filter(lambda n: n.lower() != "te"),
                         st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20))
HEADER = st.one_of(PLAIN_HEADER, PLAIN_HEADER, PLAIN_HEADER, st.tuples(NAME, VALUE))
GOOD_STATUS = st.sampled_from(["200 OK", "201 Created", "404 Not Found", "500 Oops", "599 ", "302 Found",
                                "200 Ünïcödé"])
ODD_STATUS = st.sampled_from(["204 No Content", "304 Not Modified", "100 Continue", "200 OK\r\nX: y", "600 Nope",
                              "099 Low", "20 OK", "200OK", "200 €", "2x0 OK", "200 nul\x00"])
STATUS = st.one_of(GOOD_STATUS, GOOD_STATUS, GOOD_STATUS, ODD_STATUS, st.text(max_size=10))
BODY = st.binary(max_size=40)
REQ = st.builds(Req, st.sampled_from(["GET", "GET", "POST", "HEAD"]), st.sampled_from(["1.1", "1.1", "1.1", "1.0"]))


@settings(max_examples=1500, deadline=None)
@given(STATUS, st.lists(HEADER, max_size=6), BODY, st.booleans(), st.booleans(), REQ, st.booleans(),
       st.sampled_from([b"lichen", None]), st.booleans(), st.sampled_from([None, False, True]))
def test_whole_sends_what_the_python_path_sends_or_declines(status, headers, body, own_length, declared, req, keep,
                                                            server, stopping, closes):
    if own_length:  # (the app's own, right Content-Length: what an iterable's first item needs)
        headers = headers + [("Content-Length", str(len(body)))]
    compare(status, headers, body, declared, req, keep, server, stopping, closes)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(TOKEN, st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20)),
                max_size=8), BODY, st.booleans(), st.booleans())
def test_whole_takes_plain_responses_of_any_valid_headers(headers, body, keep, stopping):
    headers = [(n, v) for n, v in headers if n.lower() not in
               ("content-length", "connection", "keep-alive", "te", "trailer", "upgrade", "transfer-encoding")]
    assert compare("200 OK", headers, body, keep=keep, stopping=stopping)


@settings(max_examples=500, deadline=None)
@given(st.one_of(TOKEN, NAME, st.text(max_size=6)), st.text(st.characters(min_codepoint=0, max_codepoint=300),
                                                           max_size=6), BODY)
def test_whole_judges_one_header_of_any_characters_as_the_python_path_does(name, value, body):
    compare("200 OK", [(name, value)], body)


# -- what whole() takes -----------------------------------------------------------------------

def test_a_list_body_gets_its_content_length_date_and_server():
    r, sent = make()
    r("200 OK", [("Content-Type", "text/plain")])
    assert r.whole(b"hello")
    assert sent == [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nDate: " + DATE +
                    b"\r\nServer: lichen\r\n\r\nhello"]
    assert (r.status_code, r.keep_alive, r.bytes_sent, r.framer) == (200, True, 5, FINISHED)


def test_the_apps_own_content_length_date_and_server_stay_where_it_put_them():
    r, sent = make()
    r("200 OK", [("Server", "mine"), ("Content-Length", "2"), ("Date", "today")])
    assert r.whole(b"ok")
    assert sent == [b"HTTP/1.1 200 OK\r\nServer: mine\r\nContent-Length: 2\r\nDate: today\r\n\r\nok"]


def test_an_iterables_first_item_is_whole_only_when_the_apps_content_length_says_so():
    r, sent = make()
    r("200 OK", [("Content-Length", "3")])
    assert r.whole(b"abc", True)
    assert isinstance(r.framer, LengthFramer) and r.framer.complete
    r.framer.frame(b"more")  # (an item after the declared body)
    assert r.framer.must_close
    r2, _ = make()
    r2("200 OK", [])
    assert not r2.whole(b"abc", True)


def test_a_stopping_owner_or_will_close_makes_the_head_say_connection_close():
    for owner, will_close in ((Owner(True), None), (Owner(False), lambda: True)):
        r, sent = make(owner=owner, will_close=will_close)
        r("200 OK", [])
        assert r.whole(b"")
        assert sent[0].endswith(b"Connection: close\r\n\r\n") and r.keep_alive is False


def test_will_close_is_not_asked_when_the_request_does_not_keep_the_connection():
    asked = []
    r, sent = make(keep=False, will_close=lambda: asked.append(1))
    r("200 OK", [])
    assert r.whole(b"x") and asked == [] and b"Connection: close\r\n" in sent[0]


def test_the_keep_alive_answer_asks_the_owner_then_will_close_and_needs_start_response():
    asked = []
    r, _ = make(owner=Owner(False), will_close=lambda: asked.append(1) or False)
    with pytest.raises(ResponseStateError, match="did not call start_response"):
        r._keep_alive_now()
    r("200 OK", [])
    assert r._keep_alive_now() is True and asked == [1]
    r2, _ = make(owner=Owner(True), will_close=lambda: asked.append(2))
    r2("200 OK", [])
    assert r2._keep_alive_now() is False and asked == [1]  # (stopping: will_close not asked)
    r3, _ = make(will_close=lambda: True)
    r3("200 OK", [])
    assert r3._keep_alive_now() is False


def test_an_error_from_send_propagates_after_the_head_counts_as_sent():
    def send(data):
        raise ConnectionResetError("gone")

    r = Response(send, Req(), True, DATE, b"lichen")
    r("200 OK", [])
    with pytest.raises(ConnectionResetError):
        r.whole(b"abc")
    assert r.head_sent and r.bytes_sent == 0


# -- what whole() declines --------------------------------------------------------------------

@pytest.mark.parametrize("req, status, headers, body", [
    (Req("HEAD"), "200 OK", [], b"x"),
    (Req("GET", "1.0"), "200 OK", [], b"x"),
    (Req(), "204 No Content", [], b""),
    (Req(), "304 Not Modified", [], b""),
    (Req(), "101 Switching Protocols", [], b""),
    (Req(), "200 OK", [("Connection", "close")], b"x"),
    (Req(), "200 OK", [("Transfer-Encoding", "chunked")], b"x"),
    (Req(), "200 OK", [("Content-Length", "2"), ("Content-Length", "2")], b"xx"),
    (Req(), "200 OK", [("Content-Length", "3")], b"xx"),
    (Req(), "200 OK", [("Content-Length", "x")], b"xx"),
    (Req(), "200 OK", [["X-List", "pair"]], b"x"),
    (Req(), "200 OK", [("X-Many", "v")] * 65, b"x"),
    (Req(), "200 OK", [("X-Bad", "a\r\nb")], b"x"),
    (Req(), "200 OK", [("X-Bad", "a\rb")], b"x"),
    (Req(), "200 OK", [("X-Bad", "a\nb")], b"x"),
    (Req(), "200 OK", [("X-Bad", "a\x00b")], b"x"),
    (Req(), "200 OK", [("X Bad", "v")], b"x"),
    (Req(), "200 OK", [("X\x00Bad", "v")], b"x"),
    (Req(), "200 OK", [("", "v")], b"x"),
    (Req(), "200 nul\x00", [], b"x"),
    (Req(), "200 cr\r", [], b"x"),
    (Req(), "200 OK", [("X-Wide", "€")], b"x"),
    (Req(), "2000 OK", [], b"x"),
    (Req(), "200 OK", [], bytearray(b"x")),
])
def test_whole_declines_what_the_python_path_must_answer(req, status, headers, body):
    r, sent = make(req=req)
    r(status, headers)
    before = state(r)
    assert r.whole(body) is False
    assert sent == [] and state(r) == before


def test_whole_declines_before_start_response_and_after_the_head():
    r, sent = make()
    assert not r.whole(b"x")
    r("200 OK", [])
    assert r.whole(b"x")
    assert not r.whole(b"y") and len(sent) == 1


# -- start_response ---------------------------------------------------------------------------

def test_calling_the_response_is_start_response_and_returns_write():
    r, _ = make()
    write = r("200 OK", [("A", "b")])
    assert write == r.write and (r.status, r.headers) == ("200 OK", [("A", "b")])
    r2, _ = make()
    assert r2.start_response("201 Created", []) == r2.write and r2.status == "201 Created"


def test_a_second_start_response_without_exc_info_is_an_error():
    r, _ = make()
    r("200 OK", [])
    with pytest.raises(ResponseStateError, match="already called"):
        r("500 Oops", [])
    assert issubclass(ResponseStateError, RuntimeError) and ResponseStateError.__module__ == "lichen.wsgi.response"


def test_exc_info_replaces_the_response_before_the_head_went_out():
    r, _ = make()
    r("200 OK", [])
    try:
        raise ValueError("boom")
    except ValueError:
        r("500 Oops", [("X", "y")], sys.exc_info())
    assert r.status == "500 Oops"


def test_exc_info_after_the_head_went_out_raises_it_with_its_traceback():
    r, _ = make()
    r("200 OK", [])
    r.whole(b"x")
    try:
        raise KeyError("late")
    except KeyError:
        info = sys.exc_info()
    with pytest.raises(KeyError, match="late") as caught:
        r("500 Oops", [], info)
    assert caught.value is info[1] and caught.value.__traceback__ is not None


@pytest.mark.parametrize("status, headers, error", [
    (b"200 OK", [], "status must be str"),
    ("200 OK", (("A", "b"),), "headers must be a list"),
])
def test_start_response_type_errors(status, headers, error):
    r, _ = make()
    with pytest.raises(TypeError, match=error):
        r(status, headers)


def test_a_response_in_a_cycle_with_its_send_is_collected():
    freed = []

    class Holder:
        def send(self, data):
            pass

        def __del__(self):
            freed.append(1)

    h = Holder()
    h.resp = Response(h.send, Req(), True, DATE, None, h)
    h.resp("200 OK", [])
    del h
    gc.collect()
    assert freed == [1]


# -- the raw socket whole() tries first -------------------------------------------------------

def expected(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nDate: %s\r\n\r\n%s" % (len(body), DATE, body)


@contextlib.contextmanager
def socket_of(cls: type):
    """A non-blocking socket of class `cls` (the raw one) and its peer."""
    a, peer = socket.socketpair()
    raw = cls(fileno=a.detach())
    raw.setblocking(False)
    try:
        yield raw, peer
    finally:
        raw.close()
        peer.close()


@pytest.fixture
def pair():
    with socket_of(socket.socket) as both:
        yield both


def with_raw(raw: socket.socket, body: bytes):
    sent: list[bytes] = []
    r = Response(sent.append, Req(), True, DATE, None, None, raw)
    r("200 OK", [("Content-Length", str(len(body)))])
    return r, sent


def received(peer: socket.socket) -> bytes:
    """What is waiting in the peer's socket now."""
    peer.setblocking(False)
    got = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return got
        if not chunk:
            return got
        got += chunk


def test_a_whole_response_the_raw_socket_takes_never_reaches_send(pair):
    raw, peer = pair
    r, sent = with_raw(raw, b"hello")
    assert r.whole(b"hello")
    assert sent == [] and received(peer) == expected(b"hello")
    assert r.bytes_sent == 5


class NoSend(socket.socket):
    """A socket whose send() method must not be used."""

    def send(self, *args):
        raise AssertionError("socket.send() called")


def test_the_raw_try_is_a_system_call_on_the_descriptor_not_socket_send():
    with socket_of(NoSend) as (raw, peer):
        r, sent = with_raw(raw, b"hello")
        assert r.whole(b"hello")
        assert sent == [] and received(peer) == expected(b"hello")


def test_after_a_short_raw_send_the_rest_goes_to_send(pair):
    raw, peer = pair
    body = b"x" * (8 << 20)  # more than the socket buffers hold: the raw send is short
    r, sent = with_raw(raw, body)
    assert r.whole(body)
    got = received(peer)
    assert len(sent) == 1 and got and got + sent[0] == expected(body)


def test_when_the_raw_socket_is_full_send_gets_everything(pair):
    raw, peer = pair
    with pytest.raises(BlockingIOError):
        while True:
            raw.send(b"f" * 65536)
    r, sent = with_raw(raw, b"hello")
    assert r.whole(b"hello")
    assert sent == [expected(b"hello")]


def test_when_the_peer_is_gone_send_gets_everything(pair):
    raw, peer = pair
    peer.close()
    r, sent = with_raw(raw, b"hello")
    assert r.whole(b"hello")  # (no SIGPIPE either: the send says MSG_NOSIGNAL)
    assert sent == [expected(b"hello")]


def test_a_closed_raw_socket_is_never_written_to_send_gets_everything(pair):
    raw, peer = pair
    raw.close()  # (its old descriptor number may belong to another connection by now)
    r, sent = with_raw(raw, b"hello")
    assert r.whole(b"hello")
    assert sent == [expected(b"hello")]


def test_an_error_asking_the_raw_socket_for_its_descriptor_propagates():
    class Broken:
        def fileno(self):
            raise KeyboardInterrupt

    r, sent = with_raw(Broken(), b"hello")
    with pytest.raises(KeyboardInterrupt):
        r.whole(b"hello")
    assert sent == []


# -- the driver's raw read ---------------------------------------------------------------------

def test_recv_nowait_reads_what_is_there_into_the_buffer(pair):
    raw, peer = pair
    peer.sendall(b"GET / HTTP/1.1\r\n\r\n")
    buf = bytearray(64)
    assert recv_nowait(raw, buf) == 18
    assert bytes(buf[:18]) == b"GET / HTTP/1.1\r\n\r\n"


def test_recv_nowait_takes_no_more_than_the_buffer_holds(pair):
    raw, peer = pair
    peer.sendall(b"abcdef")
    buf = bytearray(4)
    assert recv_nowait(raw, buf) == 4 and buf == b"abcd"
    assert recv_nowait(raw, buf) == 2 and buf[:2] == b"ef"


def test_recv_nowait_is_none_when_nothing_has_arrived(pair):
    raw, _ = pair
    assert recv_nowait(raw, bytearray(16)) is None


def test_recv_nowait_is_zero_at_eof(pair):
    raw, peer = pair
    peer.close()
    assert recv_nowait(raw, bytearray(16)) == 0


def test_recv_nowait_is_zero_after_a_reset():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        served, _ = listener.accept()
    try:
        served.setblocking(False)
        served.sendall(b"unread")  # (the client closes with it unread: a reset)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        deadline = time.monotonic() + 5
        while (n := recv_nowait(served, bytearray(16))) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert n == 0
    finally:
        served.close()


def test_recv_nowait_on_a_closed_socket_is_ebadf(pair):
    raw, _ = pair
    raw.close()
    with pytest.raises(OSError) as e:
        recv_nowait(raw, bytearray(16))
    assert e.value.errno == errno.EBADF


def test_recv_nowait_wants_a_writable_buffer(pair):
    raw, _ = pair
    with pytest.raises(TypeError):
        recv_nowait(raw, b"read-only")


class NoRecv(socket.socket):
    """A socket whose recv_into() method must not be used."""

    def recv_into(self, *args):
        raise AssertionError("socket.recv_into() called")


def test_recv_nowait_is_a_system_call_on_the_descriptor_not_socket_recv_into():
    with socket_of(NoRecv) as (raw, peer):
        peer.sendall(b"x")
        assert recv_nowait(raw, bytearray(4)) == 1


# -- must_close and the date ------------------------------------------------------------------

def test_must_close_follows_the_framer():
    r, _ = make()
    assert r.must_close is False  # (no framer yet)
    r.framer = LengthFramer(3)
    assert r.must_close is True  # incomplete
    r.framer.frame(b"abc")
    assert r.must_close is False
    r.framer.frame(b"d")
    assert r.must_close is True  # overflowed


@given(st.floats(0, 253402300799.99))
def test_http_date_is_the_imf_fixdate_of_the_second(t):
    from email.utils import formatdate

    from lichen._fastresponse import http_date

    assert http_date(t) == formatdate(int(t), usegmt=True).encode("ascii")


def test_http_date_of_now_is_this_seconds_and_refuses_what_no_date_can_say():
    import time

    from lichen._fastresponse import http_date

    before = http_date(time.time())
    now = http_date()
    assert now in (before, http_date(time.time()))
    for bad in (-1, 253402300800, float("nan")):
        with pytest.raises(ValueError):
            http_date(bad)
