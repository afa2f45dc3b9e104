# Tests for lichen.http.response: head building, framing (bytes-like bodies
# included), the bounded head caches, canned responses.
# Strategy: build heads for the (status, headers, request) combinations that
# matter, parse the result back with a tiny helper, and check the header set,
# the keep-alive decision and what the Framer puts on the wire.  One
# behaviour per test.
from __future__ import annotations

import pytest

from lichen.http import (
    CONTINUE_RESPONSE,
    Framer,
    LocalProtocolError,
    build_head,
    build_simple_response,
)

DATE = b"Wed, 26 Nov 2025 06:00:00 GMT"


def build(status="200 OK", headers=(), *, http_version="1.1", method="GET",
          keep_alive=True, server=b"lichen"):
    return build_head(status, list(headers), http_version=http_version,
                      method=method, keep_alive=keep_alive, date=DATE,
                      server=server)


def split_head(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    assert raw.endswith(b"\r\n\r\n")
    lines = raw[:-4].split(b"\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        fields.append((name, value))
    return lines[0], fields


def names(raw: bytes) -> list[bytes]:
    return [n.lower() for n, _ in split_head(raw)[1]]


def field(raw: bytes, name: bytes) -> bytes | None:
    values = [v for n, v in split_head(raw)[1] if n.lower() == name]
    assert len(values) <= 1
    return values[0] if values else None


# -- status line ----------------------------------------------------------


def test_status_line_is_http11():
    raw, _, _ = build("404 Not Found")
    assert split_head(raw)[0] == b"HTTP/1.1 404 Not Found"


def test_status_line_for_http10_request_is_http11():
    raw, _, _ = build(http_version="1.0", headers=[("Content-Length", "0")])
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")


def test_empty_reason_phrase_is_allowed():
    raw, _, _ = build("200 ")
    assert raw.startswith(b"HTTP/1.1 200 \r\n")


def test_latin1_reason_phrase_is_encoded():
    raw, _, _ = build("200 Caf\u00e9")
    assert raw.startswith(b"HTTP/1.1 200 Caf\xe9\r\n")


@pytest.mark.parametrize("status", [
    "200", "20 OK", "2000 OK", "abc OK", "600 Nope", "099 Low", " 200 OK",
    "200\tOK", "200 OK\r\nX-Injected: 1", "200 O\nK", "200 O\rK", "200 O\x00K", "",
])
def test_invalid_status_raises_local_protocol_error(status):
    with pytest.raises(LocalProtocolError) as info:
        build(status)
    assert info.value.status == 500


def test_non_latin1_status_raises():
    with pytest.raises(LocalProtocolError):
        build("200 \u2603")


def test_non_str_status_raises():
    with pytest.raises(LocalProtocolError):
        build(b"200 OK")  # type: ignore[arg-type]


# -- header validation ----------------------------------------------------


@pytest.mark.parametrize("name", ["Bad Name", "X:Y", "", "X\r\nY", "X\nY", "Caf\u00e9",
                                  "X\x00", "(x)", "a/b", "X\t"])
def test_invalid_header_name_raises(name):
    with pytest.raises(LocalProtocolError):
        build(headers=[(name, "v")])


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00b"])
def test_header_value_with_cr_lf_or_nul_raises(value):
    with pytest.raises(LocalProtocolError):
        build(headers=[("X-Test", value)])


def test_header_value_with_crlf_in_a_later_header_raises():
    with pytest.raises(LocalProtocolError):
        build(headers=[("A", "ok"), ("B", "fine"), ("C", "bad\r\n")])


def test_non_latin1_header_value_raises():
    with pytest.raises(LocalProtocolError):
        build(headers=[("X-Test", "\u2603")])


def test_non_str_header_value_raises():
    with pytest.raises(LocalProtocolError):
        build(headers=[("X-Test", 5)])  # type: ignore[list-item]


def test_non_str_header_name_raises():
    with pytest.raises(LocalProtocolError):
        build(headers=[(b"X-Test", "v")])  # type: ignore[list-item]


def test_malformed_header_item_raises():
    with pytest.raises(LocalProtocolError):
        build(headers=[("X-Test", "v", "extra")])  # type: ignore[list-item]


def test_latin1_header_value_is_encoded():
    raw, _, _ = build(headers=[("X-Name", "Caf\u00e9")])
    assert b"X-Name: Caf\xe9\r\n" in raw


def test_app_headers_keep_their_case_and_order():
    raw, _, _ = build(headers=[("X-B", "2"), ("x-a", "1"), ("Set-Cookie", "a=1"),
                               ("Set-Cookie", "b=2"), ("Content-Length", "0")])
    assert split_head(raw)[1][:5] == [(b"X-B", b"2"), (b"x-a", b"1"), (b"Set-Cookie", b"a=1"),
                                      (b"Set-Cookie", b"b=2"), (b"Content-Length", b"0")]


def test_head_ends_with_blank_line():
    raw, _, _ = build(headers=[("Content-Length", "0")])
    assert raw.endswith(b"\r\n\r\n") and raw.count(b"\r\n\r\n") == 1


# -- Date / Server --------------------------------------------------------


def test_date_is_added():
    raw, _, _ = build()
    assert field(raw, b"date") == DATE


def test_app_date_is_kept_and_not_duplicated():
    raw, _, _ = build(headers=[("Date", "Thu, 01 Jan 1970 00:00:00 GMT")])
    assert field(raw, b"date") == b"Thu, 01 Jan 1970 00:00:00 GMT"


def test_server_is_added():
    raw, _, _ = build()
    assert field(raw, b"server") == b"lichen"


def test_app_server_wins():
    raw, _, _ = build(headers=[("Server", "myapp")])
    assert field(raw, b"server") == b"myapp"


def test_no_server_header_when_server_is_none():
    raw, _, _ = build(server=None)
    assert field(raw, b"server") is None


# -- framing: Content-Length ----------------------------------------------


def test_content_length_response_uses_length_framing():
    raw, framer, keep_alive = build(headers=[("Content-Length", "5")])
    assert field(raw, b"content-length") == b"5"
    assert field(raw, b"transfer-encoding") is None
    assert keep_alive is True
    assert framer.frame(b"hel") == b"hel"
    assert framer.frame(b"lo") == b"lo"
    assert framer.end() == b""
    assert framer.complete is True and framer.must_close is False


def test_content_length_writes_beyond_length_are_cut():
    _, framer, _ = build(headers=[("Content-Length", "5")])
    assert framer.frame(b"hel") == b"hel"
    assert framer.frame(b"lo world") == b"lo"
    assert framer.frame(b"more") == b""
    assert framer.end() == b""
    assert framer.complete is True


def test_content_length_short_body_is_incomplete_and_must_close():
    _, framer, _ = build(headers=[("Content-Length", "5")])
    framer.frame(b"hel")
    framer.end()
    assert framer.complete is False
    assert framer.must_close is True


def test_content_length_zero_is_complete_without_writes():
    _, framer, _ = build(headers=[("Content-Length", "0")])
    assert framer.end() == b""
    assert framer.complete is True and framer.must_close is False


def test_content_length_with_surrounding_spaces_is_accepted():
    _, framer, _ = build(headers=[("Content-Length", " 3 ")])
    framer.frame(b"abcdef")
    assert framer.complete is True


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "0x10", "+3", "\u0663"])
def test_invalid_content_length_from_app_raises(value):
    with pytest.raises(LocalProtocolError):
        build(headers=[("Content-Length", value)])


def test_conflicting_content_length_from_app_raises():
    with pytest.raises(LocalProtocolError):
        build(headers=[("Content-Length", "3"), ("Content-Length", "4")])


def test_identical_content_length_from_app_is_sent_once():
    raw, _, _ = build(headers=[("Content-Length", "3"), ("content-length", "3")])
    assert names(raw).count(b"content-length") == 1


# -- bytes-like bodies: lengths count bytes, not items --------------------

from array import array  # noqa: E402

WIDE = array("I", [1, 2, 3, 4])  # 4 items, 16 bytes


@pytest.mark.parametrize("data, expected", [
    (bytearray(b"abc"), b"abc"),
    (memoryview(WIDE), WIDE.tobytes()),
    (WIDE, WIDE.tobytes()),
    (memoryview(b"abcdef")[::2], b"ace"),  # not contiguous
])
def test_body_bytes_gives_every_byte_of_a_bytes_like_item(data, expected):
    from lichen.http.response import body_bytes

    assert body_bytes(data) == expected and type(body_bytes(data)) is bytes


@pytest.mark.parametrize("data", ["text", 5, None])
def test_body_bytes_rejects_what_is_not_bytes_like(data):
    from lichen.http.response import body_bytes

    with pytest.raises(TypeError):
        body_bytes(data)


def test_chunk_size_of_a_memoryview_of_wide_items_counts_bytes():
    _, framer, _ = build()
    assert framer.frame(memoryview(WIDE)) == b"10\r\n" + WIDE.tobytes() + b"\r\n"


def test_content_length_framing_of_a_memoryview_of_wide_items_counts_bytes():
    _, framer, _ = build(headers=[("Content-Length", "20")])
    assert framer.frame(memoryview(WIDE)) == WIDE.tobytes()
    assert framer.frame(memoryview(WIDE)) == WIDE.tobytes()[:4]  # cut at the 20th byte
    assert framer.complete and framer.must_close  # overflowed


def test_close_delimited_framing_of_an_array_gives_its_bytes():
    _, framer, _ = build(http_version="1.0")
    assert framer.frame(WIDE) == WIDE.tobytes()


# -- framing: chunked / close-delimited -----------------------------------


def test_http11_without_content_length_is_chunked():
    raw, framer, keep_alive = build()
    assert field(raw, b"transfer-encoding") == b"chunked"
    assert keep_alive is True
    assert framer.frame(b"hello") == b"5\r\nhello\r\n"
    assert framer.frame(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert framer.end() == b"0\r\n\r\n"
    assert framer.complete is True and framer.must_close is False


def test_chunked_empty_write_produces_nothing():
    _, framer, _ = build()
    assert framer.frame(b"") == b""


def test_chunked_not_ended_is_incomplete():
    _, framer, _ = build()
    framer.frame(b"abc")
    assert framer.complete is False and framer.must_close is True


def test_chunked_end_twice_writes_last_chunk_once():
    _, framer, _ = build()
    assert framer.end() == b"0\r\n\r\n"
    assert framer.end() == b""


def test_chunked_write_after_end_raises():
    _, framer, _ = build()
    framer.end()
    with pytest.raises(LocalProtocolError):
        framer.frame(b"late")


def test_http10_without_content_length_is_close_delimited():
    raw, framer, keep_alive = build(http_version="1.0", keep_alive=True)
    assert field(raw, b"transfer-encoding") is None
    assert field(raw, b"content-length") is None
    assert keep_alive is False
    assert framer.frame(b"hello") == b"hello"
    assert framer.end() == b""
    assert framer.must_close is True


def test_http10_is_never_chunked_even_if_app_asks():
    raw, _, keep_alive = build(http_version="1.0", headers=[("Transfer-Encoding", "chunked")])
    assert b"chunked" not in raw.lower()
    assert keep_alive is False


def test_app_transfer_encoding_is_replaced_by_our_framing():
    raw, framer, _ = build(headers=[("Transfer-Encoding", "chunked")])
    assert names(raw).count(b"transfer-encoding") == 1
    assert framer.frame(b"ab") == b"2\r\nab\r\n"


def test_app_transfer_encoding_with_content_length_uses_length():
    raw, framer, _ = build(headers=[("Transfer-Encoding", "chunked"), ("Content-Length", "2")])
    assert field(raw, b"transfer-encoding") is None
    assert framer.frame(b"abc") == b"ab"


# -- bodiless responses ---------------------------------------------------


def test_head_response_discards_body_and_keeps_content_length():
    raw, framer, keep_alive = build(method="HEAD", headers=[("Content-Length", "100")])
    assert field(raw, b"content-length") == b"100"
    assert field(raw, b"transfer-encoding") is None
    assert framer.frame(b"x" * 100) == b""
    assert framer.end() == b""
    assert framer.complete is True and framer.must_close is False
    assert keep_alive is True


def test_head_response_without_content_length_adds_no_framing():
    raw, _, keep_alive = build(method="HEAD")
    assert field(raw, b"transfer-encoding") is None
    assert field(raw, b"content-length") is None
    assert keep_alive is True


def test_head_response_to_http10_keep_alive_stays_alive():
    raw, _, keep_alive = build(method="HEAD", http_version="1.0", keep_alive=True)
    assert keep_alive is True
    assert field(raw, b"connection") == b"keep-alive"


def test_204_has_no_body_and_no_content_length():
    raw, framer, keep_alive = build("204 No Content", headers=[("Content-Length", "0")])
    assert field(raw, b"content-length") is None
    assert field(raw, b"transfer-encoding") is None
    assert framer.frame(b"oops") == b""
    assert keep_alive is True


def test_304_keeps_content_length_but_sends_no_body():
    raw, framer, _ = build("304 Not Modified", headers=[("Content-Length", "42")])
    assert field(raw, b"content-length") == b"42"
    assert framer.frame(b"x" * 42) == b""
    assert framer.complete is True


def test_304_without_content_length_is_not_chunked():
    raw, _, _ = build("304 Not Modified")
    assert field(raw, b"transfer-encoding") is None


def test_1xx_final_response_has_no_body_and_closes():
    raw, framer, keep_alive = build("103 Early Hints")
    assert framer.frame(b"x") == b""
    assert keep_alive is False
    assert field(raw, b"connection") == b"close"


# -- keep-alive / Connection ----------------------------------------------


def test_http11_keep_alive_adds_no_connection_header():
    raw, _, keep_alive = build(headers=[("Content-Length", "0")])
    assert keep_alive is True and field(raw, b"connection") is None


def test_http11_not_keep_alive_adds_connection_close():
    raw, framer, keep_alive = build(keep_alive=False, headers=[("Content-Length", "0")])
    assert keep_alive is False
    assert field(raw, b"connection") == b"close"


def test_app_connection_close_disables_keep_alive():
    raw, _, keep_alive = build(headers=[("Connection", "close"), ("Content-Length", "0")])
    assert keep_alive is False
    assert field(raw, b"connection") == b"close"


def test_app_connection_close_among_tokens_disables_keep_alive():
    _, _, keep_alive = build(headers=[("Connection", "foo, Close")])
    assert keep_alive is False


def test_app_connection_keep_alive_is_dropped():
    raw, _, keep_alive = build(headers=[("Connection", "keep-alive"), ("Content-Length", "0")])
    assert keep_alive is True
    assert field(raw, b"connection") is None


def test_app_connection_keep_alive_cannot_revive_a_closing_connection():
    _, _, keep_alive = build(keep_alive=False, headers=[("Connection", "keep-alive")])
    assert keep_alive is False


@pytest.mark.parametrize("name", ["Keep-Alive", "Upgrade", "TE", "Trailer", "Proxy-Connection"])
def test_hop_by_hop_header_from_app_is_dropped(name):
    raw, _, _ = build(headers=[(name, "x"), ("Content-Length", "0")])
    assert name.lower().encode() not in names(raw)


def test_proxy_authenticate_is_kept():
    raw, _, _ = build("407 Proxy Authentication Required",
                      headers=[("Proxy-Authenticate", "Basic"), ("Content-Length", "0")])
    assert field(raw, b"proxy-authenticate") == b"Basic"


def test_http10_keep_alive_with_length_adds_keep_alive_header():
    raw, _, keep_alive = build(http_version="1.0", keep_alive=True,
                               headers=[("Content-Length", "3")])
    assert keep_alive is True
    assert field(raw, b"connection") == b"keep-alive"


def test_http10_not_keep_alive_adds_no_connection_header():
    raw, _, keep_alive = build(http_version="1.0", keep_alive=False,
                               headers=[("Content-Length", "3")])
    assert keep_alive is False
    assert field(raw, b"connection") is None


def test_http10_with_app_connection_close_does_not_keep_alive():
    raw, _, keep_alive = build(http_version="1.0", keep_alive=True,
                               headers=[("Content-Length", "3"), ("Connection", "close")])
    assert keep_alive is False
    assert field(raw, b"connection") is None


def test_framer_is_a_framer():
    for headers in ([], [("Content-Length", "1")]):
        assert isinstance(build(headers=headers)[1], Framer)
    assert isinstance(build(method="HEAD")[1], Framer)
    assert isinstance(build(http_version="1.0")[1], Framer)


# -- canned responses -----------------------------------------------------


@pytest.mark.parametrize("status, reason", [
    (400, b"Bad Request"), (408, b"Request Timeout"), (413, b"Content Too Large"),
    (414, b"URI Too Long"), (417, b"Expectation Failed"),
    (431, b"Request Header Fields Too Large"), (500, b"Internal Server Error"),
    (501, b"Not Implemented"), (505, b"HTTP Version Not Supported"),
])
def test_simple_response_status_line_and_framing(status, reason):
    raw = build_simple_response(status, "went wrong", date=DATE)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 %d %s" % (status, reason)
    assert b"Content-Type: text/plain; charset=utf-8" in lines
    assert b"Content-Length: %d" % len(body) in lines
    assert b"Connection: close" in lines
    assert b"Date: " + DATE in lines
    assert body == b"went wrong\n"


def test_simple_response_with_keep_alive_omits_connection_close():
    raw = build_simple_response(404, "nope", keep_alive=True, date=DATE)
    assert b"Connection:" not in raw


def test_simple_response_with_empty_message_uses_reason():
    raw = build_simple_response(400, "", date=DATE)
    assert raw.endswith(b"\r\n\r\nBad Request\n")


def test_simple_response_body_is_utf8():
    raw = build_simple_response(400, "caf\u00e9", date=DATE)
    assert raw.endswith("caf\u00e9\n".encode())
    assert b"Content-Length: 6\r\n" in raw


def test_simple_response_with_unknown_status_still_works():
    assert build_simple_response(499, "x", date=DATE).startswith(b"HTTP/1.1 499 ")


def test_simple_response_rejects_out_of_range_status():
    with pytest.raises(ValueError):
        build_simple_response(99, "x", date=DATE)


def test_continue_response_constant():
    assert CONTINUE_RESPONSE == b"HTTP/1.1 100 Continue\r\n\r\n"


# -- build_whole_response --------------------------------------------------

from lichen.http import FINISHED, build_whole_response  # noqa: E402


def whole(body=b"hello", status="200 OK", headers=(), *, method="GET", http_version="1.1",
          keep_alive=True, date=DATE):
    return build_whole_response(status, list(headers), body, http_version=http_version, method=method,
                                keep_alive=keep_alive, date=date, server=b"lichen")


def test_whole_response_is_the_head_build_head_makes_followed_by_the_body():
    head, _framer, keep = build_head("200 OK", [("Content-Type", "text/plain")], http_version="1.1",
                                     method="GET", keep_alive=True, date=DATE, server=b"lichen", length=5)
    assert whole(headers=[("Content-Type", "text/plain")]) == (head + b"hello", 200, keep, len(head))


def test_whole_response_to_head_request_carries_no_body():
    data, code, _keep, head_len = whole(method="HEAD", headers=[("Content-Length", "5")])
    assert data.endswith(b"\r\n\r\n") and len(data) == head_len and code == 200


def test_whole_response_with_204_drops_body():
    data, code, _keep, head_len = whole(status="204 No Content")
    assert len(data) == head_len and code == 204 and b"Content-Length" not in data


def test_whole_response_declines_app_content_length_that_disagrees_with_body():
    assert whole(headers=[("Content-Length", "99")]) is None


def test_whole_response_reports_app_connection_close():
    data, _code, keep, _n = whole(headers=[("Connection", "close")])
    assert keep is False and b"Connection: close\r\n" in data


def test_whole_response_cached_head_follows_the_date():
    later = b"Wed, 26 Nov 2025 06:00:01 GMT"
    first, second = whole(), whole(date=later)
    assert DATE in first[0] and later in second[0] and DATE not in second[0]


def test_whole_response_rejects_invalid_header_like_build_head():
    with pytest.raises(LocalProtocolError):
        whole(headers=[("X-Bad", "a\r\nb")])


def test_whole_response_with_unhashable_header_items_matches_build_head():
    head, _framer, _keep = build_head("200 OK", [["X-List", "v"]], http_version="1.1", method="GET",
                                      keep_alive=True, date=DATE, server=b"lichen", length=5)
    assert whole(headers=[["X-List", "v"]])[0] == head + b"hello"


def test_finished_framer_is_complete_and_sends_nothing_more():
    assert FINISHED.complete and not FINISHED.must_close and FINISHED.end() == b""


def test_whole_response_content_length_counts_bytes_of_a_memoryview_body():
    data, _code, _keep, head_len = whole(body=memoryview(WIDE))
    assert field(data[:head_len], b"content-length") == b"16"
    assert data[head_len:] == WIDE.tobytes()


# -- bounded caches ---------------------------------------------------------


def test_head_caches_stay_bounded_and_keep_caching_new_heads():
    from lichen.http.response import head_cache_info

    # An app that echoes request data (a CORS Origin) into its headers, its
    # status and even its header names makes a new head for every request.
    cap = head_cache_info().maxsize
    for i in range(2 * cap + 10):
        headers = [("Access-Control-Allow-Origin", f"https://o{i}.example"), (f"X-Echo-{i}", "1")]
        build(f"200 R{i}", headers)
        whole(b"ok", f"200 R{i}", headers)
    info = head_cache_info()
    assert max(info.heads, info.whole, info.statuses, info.names) <= cap
    # A head first seen now is cached: the second one is a hit.
    headers = [("Access-Control-Allow-Origin", "https://late.example")]
    before = head_cache_info().misses
    build(headers=headers)
    build(headers=headers)
    assert head_cache_info().misses == before + 1


def test_a_header_line_that_changes_each_time_is_validated_each_time_beside_cached_ones():
    stable = [("Content-Type", "text/plain"), ("Vary", "Cookie")]
    for i in range(3):
        raw, _, _ = build(headers=stable + [("Set-Cookie", f"s={i}")])
        assert field(raw, b"set-cookie") == f"s={i}".encode() and field(raw, b"vary") == b"Cookie"
    with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
        build(headers=stable + [("Set-Cookie", "s=3\r\nX-Injected: 1")])


def test_header_lines_are_cached_one_by_one_and_bounded():
    from lichen.http.response import head_cache_info

    cap = head_cache_info().maxsize
    for i in range(2 * cap + 10):
        build(headers=[("Content-Type", "text/plain"), ("ETag", f'"{i}"')])
    assert 0 < head_cache_info().lines <= cap


def test_a_full_cache_drops_its_oldest_eighth_at_once():
    from lichen.http.response import _CACHE_MAX, _remember

    cache: dict = {}
    for i in range(_CACHE_MAX):
        _remember(cache, i, i, 1)
    _remember(cache, "new", 0, 1)
    assert len(cache) == _CACHE_MAX - _CACHE_MAX // 8 + 1
    assert "new" in cache and _CACHE_MAX - 1 in cache and 0 not in cache


def test_a_declared_whole_response_needs_the_apps_own_content_length():
    kw = dict(http_version="1.1", method="GET", keep_alive=True, date=DATE, server=b"lichen", declared=True)
    data, code, keep, head_len = build_whole_response("200 OK", [("Content-Length", "5")], b"hello", **kw)
    assert data[head_len:] == b"hello" and field(data[:head_len], b"content-length") == b"5"
    assert build_whole_response("200 OK", [], b"hello", **kw) is None  # may be the first of many pieces
    assert build_whole_response("200 OK", [("Content-Length", "9")], b"hello", **kw) is None


def test_a_huge_head_is_not_cached():
    from lichen.http.response import head_cache_info

    headers = [("X-Big", "v" * 10000)]
    before = head_cache_info()
    raw, _, _ = build(headers=headers)
    build(headers=headers)
    after = head_cache_info()
    assert field(raw, b"x-big") == b"v" * 10000
    assert after.misses == before.misses + 2  # the second build found nothing cached
