# The websocket opening handshake as a pure function (lichen.websocket.handshake)
# and the permessage-deflate negotiation (lichen.websocket.deflate).
# Strategy: requests are parsed by lichen.http's RequestParser from raw bytes,
# then judged with no socket; each row of the table is one rule of RFC 6455
# 4.2.1 and the status it is answered with.
from __future__ import annotations

import zlib

import pytest
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode, ParseFailed

from lichen.http import Request, RequestParser
from lichen.websocket.deflate import MIN_COMPRESSED, BoundedDeflate, negotiate
from lichen.websocket.handshake import Handshake, Rejection, accept_key, check_request, switching_head
from ws_helpers import KEY, handshake_request


def parse(raw: bytes) -> Request:
    p = RequestParser()
    p.feed(raw)
    ev = p.next_event()
    assert isinstance(ev, Request)
    return ev


def test_the_accept_key_is_the_rfc_example():
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_handshake_gives_its_key_protocols_and_extension_offers():
    hs = check_request(parse(handshake_request(extra="Sec-WebSocket-Protocol: chat, superchat\r\n"
                                                     "Sec-WebSocket-Extensions: permessage-deflate; "
                                                     "client_max_window_bits\r\n")))
    assert isinstance(hs, Handshake)
    assert hs.key == KEY.encode()
    assert hs.protocols == ("chat", "superchat")
    assert hs.extensions == ("permessage-deflate; client_max_window_bits",)


@pytest.mark.parametrize("upgrade", ["", "h2c", "foo, bar"])
def test_a_request_that_does_not_ask_for_a_websocket_is_a_plain_request(upgrade):
    assert check_request(parse(handshake_request(upgrade=upgrade))) is None


def test_upgrade_and_connection_tokens_are_case_insensitive_and_listed():
    req = parse(handshake_request(upgrade="foo, WebSocket", connection="keep-alive, UPGRADE"))
    assert isinstance(check_request(req), Handshake)


@pytest.mark.parametrize("kw, status", [
    ({"method": "POST"}, 400),
    ({"http": "1.0"}, 400),
    ({"connection": "keep-alive"}, 400),
    ({"connection": ""}, 400),
    ({"key": ""}, 400),
    ({"key": "not base64!"}, 400),
    ({"key": "c2hvcnQ="}, 400),            # base64 of 5 bytes, not 16
    ({"version": ""}, 426),
    ({"version": "8"}, 426),
    ({"version": "13, 8"}, 426),
], ids=["post", "http10", "no-upgrade-in-connection", "no-connection", "no-key", "bad-key", "short-key",
        "no-version", "old-version", "two-versions"])
def test_a_broken_handshake_is_rejected_with_its_status(kw, status):
    result = check_request(parse(handshake_request(**kw)))
    assert isinstance(result, Rejection)
    assert result.status == status


def test_the_version_rejection_names_the_version_we_speak():
    result = check_request(parse(handshake_request(version="8")))
    assert result.fields == b"Sec-WebSocket-Version: 13\r\n"


def test_a_handshake_with_a_body_is_rejected():
    raw = handshake_request(extra="Content-Length: 3\r\n") + b"abc"
    assert check_request(parse(raw)).status == 400


def test_two_keys_are_rejected():
    raw = handshake_request(extra=f"Sec-WebSocket-Key: {KEY}\r\n")
    assert check_request(parse(raw)).status == 400


def test_a_subprotocol_that_is_no_token_is_rejected():
    raw = handshake_request(extra="Sec-WebSocket-Protocol: a b\r\n")
    assert check_request(parse(raw)).status == 400


def test_the_101_head_accepts_the_key_and_names_the_chosen_protocol():
    hs = Handshake(b"dGhlIHNhbXBsZSBub25jZQ==", ("chat",), ())
    head = switching_head(hs, "chat", "permessage-deflate", date=b"D", server=b"lichen")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" in head
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    assert b"Sec-WebSocket-Protocol: chat\r\n" in head
    assert b"Sec-WebSocket-Extensions: permessage-deflate\r\n" in head
    assert head.endswith(b"\r\n\r\n")


def test_a_protocol_the_client_did_not_offer_cannot_be_chosen():
    hs = Handshake(KEY.encode(), ("chat",), ())
    with pytest.raises(ValueError):
        switching_head(hs, "other", None, date=b"D", server=None)


# permessage-deflate ----------------------------------------------------------------
def test_deflate_is_accepted_without_context_takeover_either_way():
    ext, answer = negotiate(("x-unknown", "permessage-deflate; client_max_window_bits"), 1 << 20)
    assert isinstance(ext, BoundedDeflate)
    assert answer.startswith("permessage-deflate; ")
    assert "client_no_context_takeover" in answer and "server_no_context_takeover" in answer


@pytest.mark.parametrize("offers", [(), ("x-webkit-deflate-frame",),
                                    ("permessage-deflate; server_max_window_bits=99",)])
def test_no_acceptable_deflate_offer_means_no_extension(offers):
    assert negotiate(offers, 1 << 20) == (None, None)


def _compressed_frame(payload: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    data = data[:-4]
    key = b"\x01\x02\x03\x04"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    n = len(masked)
    head = bytes([0xC2]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + key + masked


def _proto(max_message: int) -> FrameProtocol:
    ext, _ = negotiate(("permessage-deflate",), max_message)
    return FrameProtocol(False, [ext])


def test_a_compressed_message_within_the_limit_inflates():
    proto = _proto(100_000)
    proto.receive_bytes(_compressed_frame(b"a" * 50_000))
    frames = list(proto.received_frames())
    assert b"".join(f.payload for f in frames) == b"a" * 50_000


def test_a_compressed_message_that_inflates_past_the_limit_fails_with_1009():
    proto = _proto(10_000)
    proto.receive_bytes(_compressed_frame(b"a" * 10_000_000))  # ~10 KB on the wire
    with pytest.raises(ParseFailed) as e:
        list(proto.received_frames())
    assert e.value.code == CloseReason.MESSAGE_TOO_BIG


def test_small_messages_go_out_uncompressed_and_large_ones_compressed():
    proto = _proto(1 << 20)
    small = proto.send_data(b"x" * (MIN_COMPRESSED - 1))
    large = proto.send_data(b"x" * 10_000)
    assert small[0] & 0x40 == 0 and small[0] & 0x0F == Opcode.BINARY
    assert large[0] & 0x40 and len(large) < 1000
