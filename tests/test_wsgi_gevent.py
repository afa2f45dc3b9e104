# gevent.pywsgi's WSGIServer surface on lichen's WSGIServer: `application`
# optional and set later, `environ`/`base_env`/`get_environ()`,
# `handler_class` (lichen.wsgi.WSGIHandler: get_environ, log_request,
# format_request, handle_error), and the `log`/`error_log` targets with
# gevent's access line. Strategy: through the fake transport (no socket),
# one function call per request; stderr by capsys, loggers by caplog.
# tests/test_gevent_scripts.py runs whole gevent scripts; the stream
# server's side (spawn, ssl_args, stop, accepting, listeners) is in
# tests/test_gevent_server.py.
from __future__ import annotations

import io
import logging
import re

import pytest

from fake_transport import harness, status_of
from lichen.settings import Settings
from lichen.wsgi import Driver, LoggingLogAdapter, WSGIHandler, WSGIServer
from wsgi_helpers import ServerThread, errlog, error_lines, get, hello_app, logs  # noqa: F401 (fixtures)

# gevent's access line: client, local time, request line, status, bytes, seconds.
GEVENT_LINE = re.compile(r'^127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "GET /g\?x=1 HTTP/1\.1" 200 '
                         r'(\d+) \d+\.\d{6}$')


def boom(environ, start_response):
    raise RuntimeError("kaboom")


# The application -------------------------------------------------------------------
def test_a_server_without_an_application_answers_500_saying_why_until_one_is_set(errlog):
    h = harness(None)
    assert status_of(h.serve(get("/"))) == 500
    assert any("has no application" in str(r.exc_info[1]) for r in errlog.records if r.exc_info)
    assert h.server.application is None
    h = harness(None)
    h.server.application = hello_app
    assert h.serve(get("/later")).endswith(b"hello /later") and h.server.application is hello_app


def test_an_application_set_later_runs_in_the_threads_of_threads_n():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [str(environ["wsgi.multithread"]).encode()]

    with ServerThread(None, threads=2) as srv:
        srv.call(setattr, srv.server, "application", app)
        assert srv.request(get("/")).body == b"True"


# The environ -------------------------------------------------------------------------
def test_environ_is_base_env_then_the_environ_argument_then_the_address():
    server = WSGIServer(("127.0.0.1", 0), hello_app, environ={"my.key": 1, "SERVER_NAME": "example.org"})
    try:
        env = server.environ
        assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["wsgi.version"] == (1, 0) and env["my.key"] == 1
        assert env["wsgi.url_scheme"] == "http" and env["wsgi.errors"] is server.error_log
        assert "SERVER_PORT" not in env  # not bound yet
        server.init_socket()
        assert env["SERVER_PORT"] == str(server.server_port) and env["SERVER_NAME"] == "example.org"
        copy = server.get_environ()
        assert copy == env and copy is not env
    finally:
        server.close()


def test_the_environ_argument_and_base_env_of_a_subclass_reach_every_request():
    class Server(WSGIServer):
        base_env = dict(WSGIServer.base_env, SERVER_SOFTWARE="mine/1.0")

    h = harness(lambda env, sr: (sr("200 OK", []), [f"{env['SERVER_SOFTWARE']} {env['x']}".encode()])[1],
                server_class=Server, environ={"x": "y"})
    assert h.serve(get("/")).endswith(b"mine/1.0 y")


def test_a_subclass_get_environ_is_asked_for_every_request():
    class Server(WSGIServer):
        calls = 0

        def get_environ(self):
            env = super().get_environ()
            Server.calls += 1
            env["per.request"] = Server.calls
            env["SERVER_NAME"] = "from-get-environ"
            return env

    def app(environ, start_response):
        start_response("200 OK", [])
        return [f"{environ['per.request']} {environ['PATH_INFO']} {environ['SERVER_NAME']}".encode()]

    h = harness(app, server_class=Server)
    assert h.serve(get("/a")).endswith(b"1 /a from-get-environ")
    assert h.serve(get("/b")).endswith(b"2 /b from-get-environ")


# handler_class ---------------------------------------------------------------------------
class Recording(WSGIHandler):
    """Adds a key to the environ, and records what log_request sees."""

    seen: list = []

    def get_environ(self):
        env = super().get_environ()
        env["handler.id"] = id(self)
        return env

    def log_request(self):
        Recording.seen.append(dict(
            handler=self, requestline=self.requestline, command=self.command, path=self.path,
            version=self.request_version, status=self.status, code=self.code, length=self.response_length,
            client=self.client_address, took=self.time_finish - self.time_start, host=self.headers.get("Host"),
            sent=self.headers_sent, app_env=self.environ))


@pytest.fixture
def recording():
    Recording.seen = []
    yield Recording
    Recording.seen = []


def test_a_handler_class_get_environ_adds_keys_and_log_request_sees_geventss_attributes(recording):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(environ["handler.id"]).encode()]

    h = harness(app, handler_class=Recording)
    out = h.serve(get("/g?x=1"))
    [seen] = Recording.seen
    assert out.endswith(str(id(seen["handler"])).encode())
    assert seen["requestline"] == "GET /g?x=1 HTTP/1.1" and (seen["command"], seen["path"], seen["version"]) == (
        "GET", "/g?x=1", "HTTP/1.1")
    assert seen["status"] == b"200 OK" and seen["code"] == 200 and seen["length"] == len(out)
    assert seen["client"] == ("127.0.0.1", 5555) and seen["took"] >= 0 and seen["host"] == "x" and seen["sent"]
    assert seen["app_env"]["handler.id"] == id(seen["handler"])


def test_each_request_gets_a_handler_of_its_own(recording):
    h = harness(hello_app, handler_class=Recording)
    h.serve(get("/1") + get("/2"))
    assert [s["path"] for s in Recording.seen] == ["/1", "/2"]
    assert Recording.seen[0]["handler"] is not Recording.seen[1]["handler"]


def test_a_handler_class_given_as_a_class_attribute_is_used(recording):
    class Server(WSGIServer):
        handler_class = Recording

    harness(hello_app, server_class=Server).serve(get("/c"))
    assert [s["path"] for s in Recording.seen] == ["/c"]


def test_format_request_of_a_handler_class_is_what_the_default_log_request_writes():
    class Short(WSGIHandler):
        def format_request(self):
            return f"{self.code} {self.path}"

    out = io.StringIO()
    harness(hello_app, handler_class=Short, log=out).serve(get("/f"))
    assert out.getvalue() == "200 /f\n"


def test_the_default_format_request_is_the_servers_access_line():
    class Plain(WSGIHandler):
        pass

    out = io.StringIO()
    harness(hello_app, handler_class=Plain, log=out).serve(get("/g?x=1"))
    assert GEVENT_LINE.match(out.getvalue().rstrip("\n")), out.getvalue()


def test_handle_error_hears_of_the_applications_exception_and_the_client_gets_500(errlog):
    heard = []

    class Handler(WSGIHandler):
        def handle_error(self, t, v, tb):
            heard.append((t, str(v), tb is not None, self.path))

    h = harness(boom, handler_class=Handler)
    assert status_of(h.serve(get("/e"))) == 500
    assert heard == [(RuntimeError, "kaboom", True, "/e")]
    assert "kaboom" not in error_lines(errlog)  # the override logged nothing


def test_the_default_handle_error_logs_the_traceback_and_the_status_is_500(errlog, recording):
    h = harness(boom, handler_class=Recording)
    assert status_of(h.serve(get("/e"))) == 500
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in errlog.records)
    [seen] = Recording.seen
    assert seen["code"] == 500 and seen["status"] == b"500 Internal Server Error" and seen["length"] > 0


def test_a_server_without_a_handler_class_makes_no_handler(monkeypatch):
    def refuse(*args):
        raise AssertionError("a handler was made")

    monkeypatch.setattr(WSGIHandler, "__init__", refuse)
    h = harness(hello_app)
    assert h.server.request_handler is None and h.server.handler_class is WSGIHandler
    assert h.serve(get("/")).endswith(b"hello /")


def test_handler_class_is_a_handler_or_a_driver():
    with pytest.raises(TypeError, match="WSGIHandler"):
        WSGIServer(("127.0.0.1", 0), hello_app, handler_class=dict)

    class MyDriver(Driver):
        pass

    h = harness(hello_app, handler_class=MyDriver)
    assert h.serve(get("/d")).endswith(b"hello /d") and h.server.request_handler is None


def test_handle_is_not_an_argument_of_a_wsgi_server():
    with pytest.raises(TypeError, match="takes an application, not handle="):
        WSGIServer(("127.0.0.1", 0), handle=hello_app)


# run_application() and detach(): around the application, and a protocol switch ---------------
def test_run_application_overridden_in_gevents_way_sends_the_result_it_kept():
    class Around(WSGIHandler):
        def run_application(self):
            self.environ["around"] = "yes"
            super().run_application()  # (gevent's returns nothing: the result is on self)

    h = harness(lambda env, sr: (sr("200 OK", []), [b"around " + env["around"].encode()])[1], handler_class=Around)
    assert h.serve(get("/")).endswith(b"around yes")


def test_run_application_may_answer_without_the_application():
    class Gate(WSGIHandler):
        def run_application(self):
            if self.path == "/closed":
                self.start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"no"]
            return super().run_application()

    h = harness(hello_app, handler_class=Gate)
    assert status_of(h.serve(get("/closed"))) == 403
    assert h.serve(get("/open")).endswith(b"hello /open")


UPGRADE = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n"


class Shout(WSGIHandler):
    """A protocol switch: after a 101 the connection echoes lines in capitals
    until "bye"; other requests go to the application."""

    logged: list = []

    def run_application(self):
        if self.environ.get("HTTP_UPGRADE") != "shout":
            return super().run_application()
        pending = self.detach()
        self.socket.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n")
        while True:
            while b"\n" not in pending:
                data = self.socket.recv(4096)
                if not data:
                    return None
                pending += data
            line, _, pending = pending.partition(b"\n")
            if line == b"fail":
                raise RuntimeError("the protocol failed")
            self.socket.sendall(line.upper() + b"\n")
            if line == b"bye":
                return None

    def log_request(self):
        Shout.logged.append(self.requestline)


def test_a_handler_that_detaches_speaks_its_own_protocol_and_lichen_closes_after():
    Shout.logged = []
    with ServerThread(hello_app, handler_class=Shout) as srv, srv.connect() as c:
        c.send(UPGRADE + b"first\n")  # (a line sent with the head: detach() hands it over)
        assert c.read_head().status == 101
        c.send(b"second\nbye\n")
        assert c.read_until_close() == b"FIRST\nSECOND\nBYE\n"
        assert srv.request(get("/plain")).body == b"hello /plain"  # (the server goes on)
    assert Shout.logged == ["GET /echo HTTP/1.1", "GET /plain HTTP/1.1"]


def test_an_error_after_detach_is_handled_and_no_500_is_written_on_the_connection(errlog):
    with ServerThread(hello_app, handler_class=Shout) as srv, srv.connect() as c:
        c.send(UPGRADE)
        assert c.read_head().status == 101
        c.send(b"one\nfail\n")
        assert c.read_until_close() == b"ONE\n"
    assert any(r.exc_info and "the protocol failed" in str(r.exc_info[1]) for r in errlog.records)


# log= ------------------------------------------------------------------------------------
def test_log_default_writes_geventss_line_to_stderr(capsys):
    out = harness(hello_app, log="default").serve(get("/g?x=1"))
    err = capsys.readouterr().err
    m = GEVENT_LINE.match(err.rstrip("\n"))
    assert m and int(m.group(1)) == len(out), err  # the bytes sent, head included


def test_log_a_logger_gets_geventss_line_at_info(caplog):
    caplog.set_level(logging.INFO, logger="my.access")
    harness(hello_app, log=logging.getLogger("my.access")).serve(get("/g?x=1"))
    [record] = [r for r in caplog.records if r.name == "my.access"]
    assert record.levelno == logging.INFO and GEVENT_LINE.match(record.getMessage())


def test_log_a_file_or_an_object_with_log_only(caplog):
    out = io.StringIO()
    harness(hello_app, log=out).serve(get("/g?x=1"))
    assert GEVENT_LINE.match(out.getvalue().rstrip("\n"))

    class OnlyLog:
        lines: list = []

        def log(self, level, msg):
            self.lines.append((level, msg))

    harness(hello_app, log=OnlyLog()).serve(get("/g?x=1"))
    [(level, msg)] = OnlyLog.lines
    assert level == logging.INFO and GEVENT_LINE.match(msg)


def test_log_none_writes_nothing_and_server_log_still_has_write(capsys):
    h = harness(hello_app, log=None)
    h.serve(get("/"))
    h.server.log.write("nothing\n")
    assert capsys.readouterr().err == "" and h.server.access_log is None


def test_an_access_log_format_or_lichens_settings_choose_lichens_line():
    out = io.StringIO()
    harness(hello_app, log=out, access_log_format="%(s)s %(U)s").serve(get("/f"))
    assert out.getvalue() == "200 /f\n"
    out = io.StringIO()
    harness(hello_app, log=out, settings=Settings()).serve(get("/f"))
    assert re.match(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:[\d:]+ [+-]\d{4}\] "GET /f HTTP/1\.1" 200 8 "-" "-"$',
                    out.getvalue().rstrip("\n")), out.getvalue()


def test_logging_log_adapter_writes_records():
    logger = logging.getLogger("lichen.test.adapter")
    seen = []
    logger.addHandler(handler := logging.Handler())
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.setLevel(logging.DEBUG)
    try:
        LoggingLogAdapter(logger, logging.WARNING).write("a line\n")
    finally:
        logger.removeHandler(handler)
    assert [(r.levelno, r.getMessage()) for r in seen] == [(logging.WARNING, "a line")]


# error_log= ------------------------------------------------------------------------------
def test_error_log_default_gets_the_applications_traceback_on_stderr(capsys):
    assert status_of(harness(boom, error_log="default").serve(get("/e"))) == 500
    err = capsys.readouterr().err
    assert "error in the WSGI application for GET /e" in err and "Traceback" in err
    assert "RuntimeError: kaboom" in err


def test_error_log_a_file_or_a_logger_gets_the_traceback(caplog):
    out = io.StringIO()
    harness(boom, error_log=out).serve(get("/e"))
    assert "Traceback" in out.getvalue() and "RuntimeError: kaboom" in out.getvalue()
    caplog.set_level(logging.INFO, logger="my.errors")
    harness(boom, error_log=logging.getLogger("my.errors")).serve(get("/e"))
    [record] = [r for r in caplog.records if r.name == "my.errors"]
    assert record.levelno == logging.ERROR and record.exc_info[0] is RuntimeError


def test_error_log_none_still_leaves_the_traceback_to_lichens_logger(errlog, capsys):
    harness(boom, error_log=None).serve(get("/e"))
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in errlog.records)
    assert capsys.readouterr().err == ""


def test_wsgi_errors_is_the_error_log(capsys):
    def app(environ, start_response):
        environ["wsgi.errors"].write("app says hi\n")
        environ["wsgi.errors"].flush()
        start_response("204 No Content", [])
        return []

    h = harness(app, error_log="default")
    h.serve(get("/"))
    assert capsys.readouterr().err == "app says hi\n"
    assert h.server.environ["wsgi.errors"] is h.server.error_log
