# A real Flask application served end-to-end by WSGIServer: routes, JSON,
# form POST, cookies, errors, a streaming response and send_file (which
# goes through wsgi.file_wrapper).
# Strategy: one server for the module; a blocking raw-socket client.
from __future__ import annotations

import json
import logging
import os
from urllib.parse import urlencode

import pytest

flask = pytest.importorskip("flask")

from wsgi_helpers import ServerThread, get  # noqa: E402


def make_app(tmp_file: str) -> flask.Flask:
    app = flask.Flask("lichen_test")

    @app.get("/")
    def index():
        return "hello from flask"

    @app.get("/user/<name>")
    def user(name):
        return flask.jsonify(name=name, args=flask.request.args.to_dict())

    @app.post("/json")
    def post_json():
        data = flask.request.get_json()
        return flask.jsonify(got=data, scheme=flask.request.scheme), 201

    @app.post("/form")
    def form():
        return f"{flask.request.form['a']}+{flask.request.form['b']}"

    @app.get("/cookie")
    def cookie():
        resp = flask.make_response(flask.request.cookies.get("in", "none"))
        resp.set_cookie("out", "v1")
        resp.set_cookie("out2", "v2")
        return resp

    @app.get("/stream")
    def stream():
        def gen():
            for i in range(5):
                yield f"part{i};"
        return flask.Response(flask.stream_with_context(gen()), mimetype="text/plain")

    @app.get("/file")
    def file():
        return flask.send_file(tmp_file, mimetype="application/octet-stream")

    @app.get("/fail")
    def fail():
        raise RuntimeError("flask view failed")

    return app


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("flask") / "blob.bin"
    content = os.urandom(100_000)
    path.write_bytes(content)
    return str(path), content


@pytest.fixture(scope="module")
def srv(data):
    with ServerThread(make_app(data[0])) as s:
        yield s


def test_flask_route_returns_text(srv):
    r = srv.request(get("/"))
    assert r.status == 200 and r.body == b"hello from flask"
    assert r.header("content-type").startswith("text/html")


def test_flask_route_with_variable_and_query_returns_json(srv):
    r = srv.request(get("/user/caf%C3%A9?x=1&y=%20z"))
    assert r.status == 200
    assert json.loads(r.body) == {"name": "café", "args": {"x": "1", "y": " z"}}


def test_flask_json_post(srv):
    body = json.dumps({"a": [1, 2]}).encode()
    r = srv.request(b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert r.status == 201
    assert json.loads(r.body) == {"got": {"a": [1, 2]}, "scheme": "http"}


def test_flask_form_post_urlencoded(srv):
    body = urlencode({"a": "x y", "b": "é"}).encode()
    r = srv.request(b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert r.body == "x y+é".encode()


def test_flask_form_post_chunked(srv):
    body = b"a=1&b=2"
    r = srv.request(b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n3\r\na=1\r\n4\r\n&b=2\r\n0\r\n\r\n")
    assert r.status == 200 and r.body == b"1+2", body


def test_flask_cookies_in_and_out(srv):
    r = srv.request(get("/cookie", extra="Cookie: in=abc\r\nCookie: other=1\r\n"))
    assert r.body == b"abc"
    assert sorted(v.split(";")[0] for v in r.header_all("set-cookie")) == ["out2=v2", "out=v1"]


def test_flask_streaming_response_is_chunked(srv):
    r = srv.request(get("/stream"))
    assert r.chunked
    assert r.body == b"part0;part1;part2;part3;part4;"


def test_flask_send_file_delivers_the_file(srv, data):
    with srv.connect() as c:
        c.send(get("/file") + get("/file", method="HEAD") + get("/"))
        r = c.read_response()
        assert r.body == data[1] and r.header("content-length") == str(len(data[1]))
        h = c.read_response("HEAD")
        assert h.header("content-length") == str(len(data[1]))
        assert c.read_response().body == b"hello from flask"


def test_flask_404_and_405(srv):
    assert srv.request(get("/nope")).status == 404
    assert srv.request(get("/json")).status == 405


def test_flask_view_exception_is_500(srv, caplog):
    caplog.set_level(logging.ERROR)
    r = srv.request(get("/fail"))
    assert r.status == 500


def test_flask_keep_alive_mix_of_requests(srv):
    with srv.connect() as c:
        body = b'{"k": 1}'
        c.send(get("/") + b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body) + get("/stream") + get("/user/u"))
        assert c.read_response().body == b"hello from flask"
        assert json.loads(c.read_response().body)["got"] == {"k": 1}
        assert c.read_response().body.startswith(b"part0;")
        assert json.loads(c.read_response().body)["name"] == "u"
