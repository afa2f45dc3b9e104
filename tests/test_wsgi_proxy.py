# Proxy headers end to end: a real WSGIServer on loopback (a trusted proxy
# address by default) and a raw client standing in for a proxy that passes
# the client's own headers through, as stock nginx does. What reaches the
# app's environ and the access log, and what is answered with 400.
from __future__ import annotations

import logging

from wsgi_helpers import ServerThread, get


def serve(**settings):
    """A server whose app records each environ in srv.seen."""
    seen: list[dict] = []

    def app(environ, start_response):
        seen.append(dict(environ))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    srv = ServerThread(app, **settings)
    srv.seen = seen
    return srv


def test_client_x_forwarded_host_does_not_reach_http_host_by_default():
    with serve() as srv:
        r = srv.request(get("/reset", host="shop.example", extra="X-Forwarded-Host: evil.example\r\n"))
    assert r.status == 200
    assert srv.seen[0]["HTTP_HOST"] == "shop.example" and "HTTP_X_FORWARDED_HOST" not in srv.seen[0]


def test_x_forwarded_host_reaches_http_host_when_trusted():
    with serve(trust_forwarded_host=True) as srv:
        r = srv.request(get("/", host="backend", extra="X-Forwarded-Host: shop.example\r\n"))
    assert r.status == 200 and srv.seen[0]["HTTP_HOST"] == "shop.example"


def test_forwarded_unbalanced_quote_spoof_is_answered_400():
    # The client's line opens a quote; its proxy appends the real address.
    extra = 'Forwarded: for="_x\r\nForwarded: for=203.0.113.7\r\n'
    with serve() as srv:
        r = srv.request(get("/", extra=extra))
    assert r.status == 400 and srv.seen == []


def test_ipv6_scope_id_never_reaches_remote_addr_or_the_access_log(caplog):
    caplog.set_level(logging.INFO, logger="lichen")
    with serve() as srv:
        r = srv.request(get("/", extra='X-Forwarded-For: fe80::1%x y"\r\n'))
    assert r.status == 200 and srv.seen[0]["REMOTE_ADDR"] == "fe80::1"
    access = [rec.getMessage() for rec in caplog.records if rec.name == "lichen.access"]
    assert access and access[0].startswith("fe80::1 - - ")
