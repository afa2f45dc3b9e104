# Trusted-proxy rules, the RFC 7239 Forwarded grammar and the PROXY protocol
# parser (lichen.proxy), as pure functions over environ dicts and bytes.
import struct

import pytest

from lichen.config import parse_args
from lichen.proxy import (PROXY_V2_SIGNATURE, AllowList, ProxyHeaderError, ProxyHeaders, ProxyProtocolError,
                          _parse_forwarded, apply_proxy_headers, parse_proxy_protocol)
from lichen.settings import Settings


def env(remote="127.0.0.1", **headers):
    e = {"REMOTE_ADDR": remote, "REMOTE_PORT": "5555", "wsgi.url_scheme": "http", "SERVER_NAME": "backend",
         "SERVER_PORT": "8000", "SCRIPT_NAME": "", "HTTP_HOST": "backend:8000"}
    e.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    return e


CFG = ProxyHeaders()


def applied(cfg=CFG, **headers):
    """The environ of a request from the trusted 127.0.0.1, after the rules."""
    e = env(**headers)
    apply_proxy_headers(e, cfg)
    return e


def trusting_host(**kw):
    """Rules for a proxy that overwrites X-Forwarded-Host/-Port/-Prefix."""
    return ProxyHeaders(trust_forwarded_host=True, **kw)


def test_allow_list_matches_addresses_and_networks():
    allow = AllowList("127.0.0.1, 10.0.0.0/8, ::1")
    assert "127.0.0.1" in allow and "10.1.2.3" in allow and "::1" in allow
    assert "192.168.1.1" not in allow


def test_allow_list_trusts_unix_socket_peers():
    assert "" in AllowList("127.0.0.1")


def test_allow_list_star_trusts_everyone():
    assert "203.0.113.9" in AllowList("*")


def test_allow_list_matches_ipv4_mapped_ipv6_peers():
    assert "::ffff:127.0.0.1" in AllowList("127.0.0.1")


def test_allow_list_rejects_garbage_with_the_offending_item():
    with pytest.raises(ValueError, match="nonsense"):
        AllowList("127.0.0.1,nonsense")


def test_x_forwarded_for_rightmost_untrusted_hop_becomes_remote_addr():
    e = env(x_forwarded_for="6.6.6.6, 203.0.113.7, 127.0.0.1")
    apply_proxy_headers(e, CFG)
    assert e["REMOTE_ADDR"] == "203.0.113.7"


def test_x_forwarded_for_hop_port_becomes_remote_port():
    e = env(x_forwarded_for="203.0.113.7:4711")
    apply_proxy_headers(e, CFG)
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("203.0.113.7", "4711")


def test_x_forwarded_proto_sets_url_scheme():
    e = env(x_forwarded_proto="https")
    apply_proxy_headers(e, CFG)
    assert e["wsgi.url_scheme"] == "https" and e["HTTPS"] == "on"


def test_x_forwarded_host_sets_http_host_and_server_name():
    e = env(x_forwarded_host="example.com:8443")
    apply_proxy_headers(e, trusting_host())
    assert (e["HTTP_HOST"], e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.com:8443", "example.com", "8443")


def test_x_forwarded_port_sets_server_port():
    e = env(x_forwarded_host="example.com", x_forwarded_proto="https", x_forwarded_port="8443")
    apply_proxy_headers(e, trusting_host())
    assert e["SERVER_PORT"] == "8443" and e["HTTP_HOST"] == "example.com:8443"


def test_x_forwarded_prefix_sets_script_name():
    e = env(x_forwarded_prefix="/app/")
    apply_proxy_headers(e, trusting_host())
    assert e["SCRIPT_NAME"] == "/app"


def test_x_real_ip_is_honoured_from_a_trusted_peer():
    e = env(x_real_ip="203.0.113.7")
    apply_proxy_headers(e, CFG)
    assert e["REMOTE_ADDR"] == "203.0.113.7"


def test_rfc7239_forwarded_header_is_honoured():
    e = env(forwarded='for="[2001:db8::1]:4711";proto=https;host=example.com')
    apply_proxy_headers(e, trusting_host())
    assert (e["REMOTE_ADDR"], e["wsgi.url_scheme"], e["HTTP_HOST"]) == ("2001:db8::1", "https", "example.com")


def test_proxy_headers_from_an_untrusted_peer_are_removed():
    e = env(remote="203.0.113.50", x_forwarded_for="1.2.3.4", x_forwarded_proto="https", x_real_ip="1.2.3.4",
            forwarded="for=1.2.3.4", x_forwarded_host="evil.example")
    apply_proxy_headers(e, CFG)
    assert e["REMOTE_ADDR"] == "203.0.113.50" and e["wsgi.url_scheme"] == "http"
    assert not any(k in e for k in ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_REAL_IP",
                                    "HTTP_FORWARDED", "HTTP_X_FORWARDED_HOST"))


def test_disagreeing_x_real_ip_and_x_forwarded_for_is_an_error():
    with pytest.raises(ProxyHeaderError):
        apply_proxy_headers(env(x_forwarded_for="203.0.113.7", x_real_ip="203.0.113.8"), CFG)


def test_disagreeing_forwarded_and_x_forwarded_proto_is_an_error():
    with pytest.raises(ProxyHeaderError):
        apply_proxy_headers(env(forwarded="proto=http", x_forwarded_proto="https"), CFG)


def test_non_ip_forwarded_client_is_an_error():
    with pytest.raises(ProxyHeaderError):
        apply_proxy_headers(env(x_forwarded_for="not-an-ip"), CFG)


def test_unknown_forwarded_proto_is_an_error():
    with pytest.raises(ProxyHeaderError):
        apply_proxy_headers(env(x_forwarded_proto="gopher"), CFG)


def test_header_names_are_configurable():
    cfg = trusting_host(host_header="X-FHost")
    e = env(x_fhost="example.org", x_forwarded_host="ignored.example")
    apply_proxy_headers(e, cfg)
    assert e["HTTP_HOST"] == "example.org"


def test_environ_without_proxy_headers_is_untouched():
    e = env()
    before = dict(e)
    apply_proxy_headers(e, CFG)
    assert e == before


# Trust defaults: client address and scheme only ------------------------------------
def test_x_forwarded_host_is_ignored_and_removed_by_default():
    e = applied(x_forwarded_host="evil.example")
    assert (e["HTTP_HOST"], e["SERVER_NAME"]) == ("backend:8000", "backend") and "HTTP_X_FORWARDED_HOST" not in e


def test_x_forwarded_port_is_ignored_and_removed_by_default():
    e = applied(x_forwarded_port="8443")
    assert e["SERVER_PORT"] == "8000" and "HTTP_X_FORWARDED_PORT" not in e


def test_x_forwarded_prefix_is_ignored_and_removed_by_default():
    e = applied(x_forwarded_prefix="/admin")
    assert e["SCRIPT_NAME"] == "" and "HTTP_X_FORWARDED_PREFIX" not in e


def test_forwarded_host_is_ignored_by_default():
    e = applied(forwarded="for=203.0.113.7;host=evil.example")
    assert (e["REMOTE_ADDR"], e["HTTP_HOST"]) == ("203.0.113.7", "backend:8000")


def test_client_address_and_scheme_are_trusted_by_default():
    e = applied(x_forwarded_for="203.0.113.7", x_forwarded_proto="https", x_forwarded_host="evil.example")
    assert (e["REMOTE_ADDR"], e["wsgi.url_scheme"], e["HTTP_HOST"]) == ("203.0.113.7", "https", "backend:8000")


def test_trust_forwarded_host_setting_reaches_the_proxy_rules():
    assert ProxyHeaders.from_settings(Settings(trust_forwarded_host=True)).trust_forwarded_host
    assert not ProxyHeaders.from_settings(Settings()).trust_forwarded_host


def test_trust_forwarded_host_is_a_command_line_flag():
    assert parse_args(["--trust-forwarded-host", "m:app"]).settings.trust_forwarded_host is True


# RFC 7239 Forwarded grammar ----------------------------------------------------------
def test_forwarded_unbalanced_quote_is_400():
    with pytest.raises(ProxyHeaderError, match="quoted-string"):
        _parse_forwarded('for="_x')


def test_forwarded_open_quote_cannot_swallow_the_element_a_proxy_appends():
    # Two Forwarded lines, the client's and its proxy's, reach us joined.
    with pytest.raises(ProxyHeaderError):
        applied(forwarded='for="_x, for=203.0.113.7')


def test_forwarded_quoted_pairs_are_unescaped():
    assert _parse_forwarded('by="a\\\\b\\"c\\d"') == [{"by": 'a\\b"cd'}]


def test_forwarded_escaped_quote_does_not_end_a_quoted_string():
    assert _parse_forwarded('for="_a\\",b";proto=https') == [{"for": '_a",b', "proto": "https"}]


def test_forwarded_parameter_repeated_in_one_element_is_400():
    with pytest.raises(ProxyHeaderError, match="repeated"):
        _parse_forwarded("for=192.0.2.1;For=203.0.113.7")


def test_forwarded_whitespace_around_equals_is_400():
    with pytest.raises(ProxyHeaderError, match="whitespace around"):
        _parse_forwarded("for = 192.0.2.1")


def test_forwarded_whitespace_around_comma_and_semicolon_is_allowed():
    assert _parse_forwarded(" for=192.0.2.1 ;\tproto=https , for=203.0.113.7 ") == [
        {"for": "192.0.2.1", "proto": "https"}, {"for": "203.0.113.7"}]


def test_forwarded_empty_list_elements_are_ignored():
    e = applied(forwarded=", for=203.0.113.7;proto=https, ,")
    assert (e["REMOTE_ADDR"], e["wsgi.url_scheme"]) == ("203.0.113.7", "https")


def test_forwarded_bad_character_in_a_token_is_400():
    with pytest.raises(ProxyHeaderError):
        _parse_forwarded("by=a@b;for=203.0.113.7")


def test_forwarded_pair_without_equals_is_400():
    with pytest.raises(ProxyHeaderError, match="without '='"):
        _parse_forwarded("for=203.0.113.7;secure")


def test_forwarded_and_x_forwarded_for_agree_on_the_canonical_address():
    e = applied(forwarded='for="[2001:db8::1]"', x_forwarded_for="2001:DB8::0:1")
    assert e["REMOTE_ADDR"] == "2001:db8::1"


# Client addresses from headers are normalised ----------------------------------------
def test_ipv6_scope_id_never_reaches_remote_addr():
    e = applied(x_forwarded_for='fe80::1%x y"')
    assert e["REMOTE_ADDR"] == "fe80::1"


def test_forwarded_ipv6_scope_id_is_dropped_and_the_port_kept():
    e = applied(forwarded='for="[fe80::1%25eth0]:4711"')
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("fe80::1", "4711")


def test_ipv6_client_address_is_canonicalised():
    e = applied(x_forwarded_for="2001:DB8::0:1")
    assert e["REMOTE_ADDR"] == "2001:db8::1"


def test_ipv4_mapped_client_address_becomes_ipv4():
    e = applied(x_real_ip="::ffff:1.2.3.4")
    assert e["REMOTE_ADDR"] == "1.2.3.4"


@pytest.mark.parametrize("port", ["99999", "0", "\u00b2"])
def test_forwarded_port_that_is_not_a_port_leaves_remote_port_empty(port):
    e = applied(x_forwarded_for=f"203.0.113.7:{port}")
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("203.0.113.7", "")


def test_x_forwarded_port_with_non_ascii_digits_is_an_error():
    with pytest.raises(ProxyHeaderError):
        applied(trusting_host(), x_forwarded_port="\u00b2")


def test_unclosed_ipv6_bracket_is_not_an_address():
    with pytest.raises(ProxyHeaderError):
        applied(x_forwarded_for="[2001:db8::1")


def test_obfuscated_forwarded_client_keeps_the_peer_address():
    e = applied(forwarded='for="_hidden"')
    assert e["REMOTE_ADDR"] == "127.0.0.1"


# PROXY protocol ----------------------------------------------------------------------
def test_proxy_v1_tcp4_header_is_parsed():
    data = b"PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\nGET / HTTP/1.1\r\n"
    n, src, dst = parse_proxy_protocol(data)
    assert data[n:].startswith(b"GET") and src == ("192.0.2.1", 56324) and dst == ("192.0.2.2", 443)


def test_proxy_v1_tcp6_header_is_parsed():
    n, src, _ = parse_proxy_protocol(b"PROXY TCP6 2001:db8::1 2001:db8::2 1000 80\r\n")
    assert src == ("2001:db8::1", 1000)


def test_proxy_v1_unknown_keeps_the_socket_address():
    assert parse_proxy_protocol(b"PROXY UNKNOWN\r\n")[1:] == (None, None)


def test_proxy_v1_incomplete_header_needs_more_data():
    assert parse_proxy_protocol(b"PROXY TCP4 192.0.2.1") is None


def test_proxy_v1_malformed_header_is_rejected():
    with pytest.raises(ProxyProtocolError):
        parse_proxy_protocol(b"PROXY TCP4 192.0.2.1 ::1 1 2\r\n")


def test_proxy_v1_overlong_header_is_rejected():
    with pytest.raises(ProxyProtocolError):
        parse_proxy_protocol(b"PROXY TCP4 " + b"1" * 200)


def v2(cmd=1, fam=0x11, body=b""):
    return PROXY_V2_SIGNATURE + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def test_proxy_v2_ipv4_header_is_parsed():
    body = bytes([192, 0, 2, 1, 192, 0, 2, 2]) + struct.pack("!HH", 56324, 443)
    n, src, dst = parse_proxy_protocol(v2(body=body) + b"GET")
    assert n == 16 + 12 and src == ("192.0.2.1", 56324) and dst == ("192.0.2.2", 443)


def test_proxy_v2_ipv6_header_is_parsed():
    import ipaddress
    body = ipaddress.IPv6Address("2001:db8::1").packed + ipaddress.IPv6Address("::1").packed + struct.pack("!HH", 7, 8)
    assert parse_proxy_protocol(v2(fam=0x21, body=body))[1] == ("2001:db8::1", 7)


def test_proxy_v2_local_command_keeps_the_socket_address():
    assert parse_proxy_protocol(v2(cmd=0))[1:] == (None, None)


def test_proxy_v2_partial_header_needs_more_data():
    assert parse_proxy_protocol(v2(body=b"\x00" * 12)[:20]) is None


def test_proxy_v2_bad_signature_is_rejected():
    with pytest.raises(ProxyProtocolError):
        parse_proxy_protocol(b"\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x00")


def test_connection_without_proxy_header_is_rejected():
    with pytest.raises(ProxyProtocolError):
        parse_proxy_protocol(b"GET / HTTP/1.1\r\n")
