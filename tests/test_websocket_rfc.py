# RFC 6455 on lichen, case by case, with a client written here on raw sockets:
# fragments, control frames between fragments, UTF-8 split across fragments,
# masking, reserved bits and opcodes, the close handshake and its codes,
# oversize messages, slow and vanishing clients, bad handshakes, and how the
# websocket meets HTTP (the 101 only once the app uses it, the access log).
# Strategy: one WSGIServer in a thread per test (small limits), apps routed
# by path; the client sends exactly the bytes each case needs and reads the
# server's frames one by one. Every wait is bounded.
from __future__ import annotations

import logging
import socket
import struct
import time

import pytest

from lichen.websocket import WebSocketError, WebSocketHandler
from wsgi_helpers import ServerThread, errlog, wait_until  # noqa: F401 (fixture)
from ws_helpers import RawWS, close_payload, echo_app, frame, handshake_request

LIMIT = 1000  # websocket_max_message in these tests

seen: dict = {}  # what the apps saw, for the test to check


def app(environ, start_response):
    path = environ["PATH_INFO"]
    ws = environ.get("wsgi.websocket")
    if path == "/refuse":
        start_response("403 Forbidden", [("Content-Length", "2")])
        return [b"no"]
    if path == "/protocol":
        ws.accept("chat")
        ws.send(f"{ws.protocol} {ws.path} {ws.origin}")
        return echo_app(environ, start_response)
    if path == "/server-close":
        ws.receive()
        ws.close(4000, b"bye")
        seen["after_close"] = ws.receive()
        return []
    if path == "/return":
        ws.send("hello")
        return []
    if path == "/raise":
        ws.send("hello")
        raise RuntimeError("the app failed")
    if path == "/record":
        seen["message"] = ws.receive()
        seen["code"] = ws.close_code
        seen["closed"] = ws.closed
        return []
    if path == "/flood":
        try:
            while True:
                ws.send(b"x" * 65536)
        except WebSocketError as e:
            seen["flood"] = e
        return []
    if path == "/plain":
        seen["has_ws"] = "wsgi.websocket" in environ
        start_response("200 OK", [("Content-Length", "5")])
        return [b"plain"]
    return echo_app(environ, start_response)


@pytest.fixture
def srv():
    seen.clear()
    with ServerThread(app, websocket_max_message=LIMIT, write_timeout=1.0, websocket_close_timeout=1.0) as s:
        yield s


def open_ws(srv, path="/ws", **kw) -> RawWS:
    return RawWS.open(srv.address, path, **kw)


# Messages ---------------------------------------------------------------------------
def test_a_text_message_is_echoed(srv):
    with open_ws(srv) as ws:
        ws.send_text("héllo")
        assert ws.read_message() == (0x1, "héllo".encode())


def test_a_binary_message_is_echoed(srv):
    with open_ws(srv) as ws:
        ws.send(frame(0x2, b"\x00\xff"))
        assert ws.read_message() == (0x2, b"\x00\xff")


def test_messages_that_arrive_together_are_each_received_in_order(srv):
    with open_ws(srv) as ws:
        ws.send(frame(0x1, b"one") + frame(0x1, b"two") + frame(0x2, b"three"))
        assert [ws.read_message() for _ in range(3)] == [(0x1, b"one"), (0x1, b"two"), (0x2, b"three")]


def test_a_message_glued_to_the_handshake_is_received(srv):
    ws = RawWS(srv.address)
    with ws:
        assert ws.handshake(handshake_request("/ws") + frame(0x1, b"early")) == 101
        assert ws.read_message() == (0x1, b"early")


def test_fragments_make_one_message(srv):
    with open_ws(srv) as ws:
        ws.send(frame(0x1, b"ab", fin=False) + frame(0x0, b"cd", fin=False) + frame(0x0, b"ef"))
        assert ws.read_message() == (0x1, b"abcdef")


def test_a_ping_between_fragments_is_answered_and_the_message_still_assembled(srv):
    with open_ws(srv) as ws:
        ws.send(frame(0x1, b"ab", fin=False) + frame(0x9, b"p1") + frame(0x0, b"cd"))
        assert ws.read_frame() == (True, 0xA, b"p1")
        assert ws.read_message() == (0x1, b"abcd")


def test_utf8_split_across_fragments_is_one_valid_message(srv):
    data = "é€😀".encode()
    with open_ws(srv) as ws:
        ws.send(frame(0x1, data[:1], fin=False) + frame(0x0, data[1:4], fin=False) + frame(0x0, data[4:]))
        assert ws.read_message() == (0x1, data)


def test_a_message_of_exactly_the_limit_passes(srv):
    with open_ws(srv) as ws:
        ws.send(frame(0x2, b"z" * LIMIT))
        assert ws.read_message() == (0x2, b"z" * LIMIT)


def test_data_sent_with_the_handshake_is_not_lost(srv):
    with RawWS(srv.address) as ws:
        assert ws.handshake(handshake_request() + frame(0x1, b"early")) == 101
        assert ws.read_message() == (0x1, b"early")


# Failing the connection --------------------------------------------------------------
@pytest.mark.parametrize("data, code", [
    (frame(0x1, b"\xff\xfe"), 1007),                                   # not UTF-8
    (frame(0x1, b"ok \xe2\x82", fin=False) + frame(0x0, b"!"), 1007),  # bad sequence across fragments
    (frame(0x1, b"cut \xe2\x82"), 1007),                               # message ends inside a character
    (frame(0x1, b"unmasked", mask=False), 1002),
    (frame(0x3, b""), 1002),                                           # reserved opcode
    (frame(0x1, b"x", rsv1=True), 1002),                               # RSV1 with no extension
    (frame(0x0, b"lonely"), 1002),                                     # continuation with no start
    (frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002),            # new message inside one
    (frame(0x9, b"p", fin=False), 1002),                               # fragmented control frame
    (frame(0x9, b"p" * 126), 1002),                                    # control frame over 125 bytes
    (frame(0x8, b"\x03"), 1002),                                       # close payload of one byte
    (frame(0x8, close_payload(1005)), 1002),                           # a code never sent on the wire
    (frame(0x8, close_payload(999)), 1002),
    (frame(0x8, close_payload(1000, b"\xff")), 1007),                  # close reason not UTF-8
    (frame(0x2, b"z" * (LIMIT + 1)), 1009),                            # one frame over the limit
    (frame(0x2, b"z" * 600, fin=False) + frame(0x0, b"z" * 600), 1009),  # fragments over the limit
    (frame(0x1, "é".encode() * 501), 1009),                            # 1002 bytes of text, 501 characters
], ids=["bad-utf8", "bad-utf8-across-fragments", "truncated-utf8", "unmasked", "reserved-opcode", "rsv1",
        "orphan-continuation", "interleaved-message", "fragmented-ping", "long-ping", "one-byte-close",
        "close-1005", "close-999", "close-reason-not-utf8", "too-big", "too-big-fragmented", "too-big-text"])
def test_bad_input_fails_the_connection_with_its_code(srv, data, code):
    with open_ws(srv) as ws:
        ws.send(data)
        assert ws.read_close() == code
        assert ws.at_eof()


def test_a_failed_connection_is_logged_as_one_info_line(srv, errlog):
    with open_ws(srv) as ws:
        ws.send(frame(0x1, b"unmasked", mask=False))
        assert ws.read_close() == 1002
    wait_until(lambda: "failed with 1002" in errlog.text)
    assert all(r.levelno == logging.INFO for r in errlog.records if "websocket" in r.getMessage())


# The close handshake -----------------------------------------------------------------
@pytest.mark.parametrize("code, reason", [(1000, b""), (1001, b"going"), (4001, b"app code"), (3000, b"")])
def test_a_client_close_is_echoed_with_its_code(srv, code, reason):
    with open_ws(srv) as ws:
        ws.send_close(code, reason)
        _fin, op, payload = ws.read_frame()
        assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == code and payload[2:] == reason
        assert ws.at_eof()


def test_a_close_without_a_code_is_answered_without_one(srv):
    with open_ws(srv) as ws:
        ws.send_close(None)
        assert ws.read_close() is None
        assert ws.at_eof()


def test_after_the_client_closes_receive_returns_none_and_close_code_is_its_code(srv):
    with open_ws(srv, "/record") as ws:
        ws.send_close(4002)
        assert ws.read_close() == 4002
    wait_until(lambda: "code" in seen)
    assert seen == {"message": None, "code": 4002, "closed": True}


def test_the_app_closes_with_its_code_and_the_server_ends_the_connection_after_the_answer(srv):
    with open_ws(srv, "/server-close") as ws:
        ws.send_text("go")
        assert ws.read_close() == 4000
        ws.send_close(4000)
        assert ws.at_eof()
    wait_until(lambda: "after_close" in seen)
    assert seen["after_close"] is None


def test_an_app_that_returns_without_closing_closes_with_1000(srv):
    with open_ws(srv, "/return") as ws:
        assert ws.read_message() == (0x1, b"hello")
        assert ws.read_close() == 1000
        ws.send_close(1000)
        assert ws.at_eof()


def test_an_app_that_raises_closes_with_1011(srv, errlog):
    with open_ws(srv, "/raise") as ws:
        assert ws.read_message() == (0x1, b"hello")
        assert ws.read_close() == 1011
    wait_until(lambda: "the app failed" in errlog.text)


def test_an_unanswered_close_is_cut_after_the_close_timeout(srv):
    with open_ws(srv, "/return") as ws:
        start = time.monotonic()
        assert ws.read_message() == (0x1, b"hello")
        assert ws.read_close() == 1000
        assert ws.at_eof(timeout=5.0)  # (no answer from us)
        assert 0.8 < time.monotonic() - start < 3.0


# Slow and vanishing clients ------------------------------------------------------------
def test_a_client_that_vanishes_ends_receive_with_1006(srv):
    ws = open_ws(srv, "/record")
    ws.sock.close()
    wait_until(lambda: "code" in seen)
    assert seen == {"message": None, "code": 1006, "closed": True}


def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(srv):
    ws = open_ws(srv, "/flood")
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        wait_until(lambda: "flood" in seen, timeout=10.0)
    finally:
        ws.close()
    assert isinstance(seen["flood"], WebSocketError)


# Meeting HTTP ---------------------------------------------------------------------------
@pytest.mark.parametrize("kw, status", [({"version": "8"}, 426), ({"key": "short"}, 400),
                                        ({"method": "POST"}, 400), ({"connection": "close"}, 400)])
def test_a_bad_handshake_is_answered_in_http_and_closed(srv, kw, status):
    with RawWS(srv.address) as ws:
        assert ws.handshake(handshake_request(**kw)) == status
        assert ws.header("connection") == "close"
        if status == 426:
            assert ws.header("sec-websocket-version") == "13"
        assert ws.at_eof()


def test_the_app_may_still_answer_in_plain_http(srv):
    with RawWS(srv.address) as ws:
        assert ws.handshake(handshake_request("/refuse")) == 403
        assert ws.body == b"no"
        assert ws.header("connection") == "close"


def test_a_chosen_subprotocol_is_in_the_101_and_the_websocket(srv):
    with RawWS(srv.address) as ws:
        extra = "Sec-WebSocket-Protocol: other, chat\r\nOrigin: http://example.test\r\n"
        assert ws.handshake(handshake_request("/protocol", extra=extra)) == 101
        assert ws.header("sec-websocket-protocol") == "chat"
        assert ws.read_message() == (0x1, b"chat /protocol http://example.test")


def test_a_plain_request_sees_no_websocket(srv):
    with RawWS(srv.address) as ws:
        assert ws.handshake(b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") == 200
    assert seen["has_ws"] is False


def test_the_access_log_has_one_line_with_101_and_the_bytes_sent(caplog):
    caplog.set_level(logging.INFO, logger="lichen.access")
    with ServerThread(app, access_log_format="%(r)s %(s)s %(b)s") as srv:
        with open_ws(srv, "/return") as ws:
            assert ws.read_message() == (0x1, b"hello")
            assert ws.read_close() == 1000
            ws.send_close(1000)
            assert ws.at_eof()
        wait_until(lambda: [r for r in caplog.records if r.name == "lichen.access"])
    lines = [r.getMessage() for r in caplog.records if r.name == "lichen.access"]
    assert lines == ["GET /return HTTP/1.1 101 11"]  # "hello" (7 bytes) and the close (4)


def test_with_websockets_off_an_upgrade_is_a_plain_request():
    seen.clear()
    with ServerThread(app, websocket=False) as srv:
        with RawWS(srv.address) as ws:
            assert ws.handshake(handshake_request("/plain")) == 200
    assert seen["has_ws"] is False


def test_gevent_websockets_handler_class_is_accepted():
    with ServerThread(echo_app, handler_class=WebSocketHandler) as srv:
        with open_ws(srv) as ws:
            ws.send_text("ported")
            assert ws.read_message() == (0x1, b"ported")


# Deadlines kept by the sweep ---------------------------------------------------------------
def test_a_silent_client_is_pinged_and_one_that_answers_stays_open():
    with ServerThread(echo_app, websocket_ping_interval=0.2, websocket_idle_timeout=1.0) as srv:
        with open_ws(srv) as ws:
            for _ in range(3):  # well past the idle timeout, answering each ping
                fin, op, payload = ws.read_frame()
                assert op == 0x9
                ws.send(frame(0xA, payload))
            ws.send_text("still here")
            assert ws.read_message() == (0x1, b"still here")


def test_a_client_that_answers_nothing_is_closed_after_the_idle_timeout():
    with ServerThread(echo_app, websocket_ping_interval=0.1, websocket_idle_timeout=0.5) as srv:
        with open_ws(srv) as ws:
            start = time.monotonic()
            assert ws.read_close() == 1011  # (after the pings)
            assert ws.at_eof()
            assert 0.4 < time.monotonic() - start < 3.0


def test_a_graceful_stop_sends_1001_and_waits_for_the_answer():
    srv = ServerThread(echo_app, stop_timeout=5.0).start()
    try:
        ws = open_ws(srv)
        srv.stop_async(5.0)
        assert ws.read_close() == 1001
        time.sleep(0.2)
        assert srv.stop_returned_at is None  # still waiting for our answer
        ws.send_close(1001)
        assert ws.at_eof()
        wait_until(lambda: srv.stop_returned_at is not None)
    finally:
        srv.stop(0)


# permessage-deflate through the server ----------------------------------------------------
def _deflated(payload: bytes) -> bytes:
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_a_compressed_message_is_inflated_and_answered(srv):
    with open_ws(srv, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n") as ws:
        assert ws.header("sec-websocket-extensions").startswith("permessage-deflate")
        ws.send(frame(0x1, _deflated(b"squeeze " * 100), rsv1=True))
        fin, op, payload = ws.read_frame()  # 800 bytes: compressed on the way back too
        import zlib

        assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == b"squeeze " * 100


def test_a_compressed_message_that_inflates_past_the_limit_closes_with_1009(srv):
    bomb = _deflated(b"\0" * 5_000_000)  # a few kilobytes on the wire
    with open_ws(srv, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n") as ws:
        ws.send(frame(0x2, bomb, rsv1=True))
        assert ws.read_close() == 1009
        assert ws.at_eof()


def test_two_greenlets_sending_at_once_never_interleave_frames():
    from lichen.hub import spawn

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        senders = [spawn(lambda b=b: [ws.send(b * 70_000) for _ in range(20)]) for b in (b"a", b"b")]
        for g in senders:
            g.join()
        return []

    with ServerThread(app) as srv:
        with open_ws(srv) as ws:
            got = [ws.read_message() for _ in range(40)]
    assert all(op == 0x2 and payload in (b"a" * 70_000, b"b" * 70_000) for op, payload in got)
