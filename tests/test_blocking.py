# Blocking apps without monkey-patching (threads=N, lichen.blocking) and the
# stall detector (lichen.stall).
import logging
import socket
import threading
import time
import urllib.request

from lichen import blocking
from lichen.hub import get_hub, sleep, spawn
from lichen.stall import StallDetector
from wsgi_helpers import ServerThread


def sleepy_app(environ, start_response):
    time.sleep(0.3)  # a blocking call, as a database driver would make
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept:" + body]


def fetch_all(port, n, path="/", data=None):
    results = []

    def one():
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
        with urllib.request.urlopen(req, timeout=10) as r:
            results.append((r.status, r.read(), r.headers.get("Content-Length")))

    threads = [threading.Thread(target=one) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return results, time.monotonic() - t0


def test_threads_setting_runs_blocking_requests_concurrently():
    with ServerThread(sleepy_app, threads=10) as srv:
        results, elapsed = fetch_all(srv.port, 10)
    assert len(results) == 10 and elapsed < 1.5  # serially it would take 3 s


def test_blocking_app_reads_the_request_body_through_the_hub():
    with ServerThread(sleepy_app, threads=2) as srv:
        results, _ = fetch_all(srv.port, 1, data=b"payload")
    assert results[0][:2] == (200, b"slept:payload")


def test_blocking_app_list_body_keeps_its_content_length():
    with ServerThread(sleepy_app, threads=2) as srv:
        results, _ = fetch_all(srv.port, 1, data=b"abc")
    assert results[0][2] == str(len(b"slept:abc"))


def test_blocking_app_streams_a_generator_body_in_order():
    def gen_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            for i in range(5):
                time.sleep(0.01)
                yield b"%d," % i
        return body()

    with ServerThread(gen_app, threads=2) as srv:
        results, _ = fetch_all(srv.port, 3)
    assert [r[1] for r in results] == [b"0,1,2,3,4,"] * 3


def test_blocking_app_write_callable_works_from_the_thread():
    def write_app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first ")
        return [b"second"]

    with ServerThread(write_app, threads=2) as srv:
        results, _ = fetch_all(srv.port, 1)
    assert results[0][1] == b"first second"


def test_blocking_app_exception_is_a_500():
    def failing(environ, start_response):
        raise RuntimeError("boom in a thread")

    with ServerThread(failing, threads=2) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 500")
        s.close()


def test_blocking_decorator_marks_one_mounted_app_while_the_rest_stays_cooperative():
    seen = {}

    @blocking(threads=4)
    def slow(environ, start_response):
        seen["slow_thread"] = threading.current_thread().name
        time.sleep(0.3)
        start_response("200 OK", [])
        return [b"slow"]

    def fast(environ, start_response):
        seen["fast_thread"] = threading.current_thread().name
        start_response("200 OK", [])
        return [b"fast"]

    def dispatcher(environ, start_response):
        return (slow if environ["PATH_INFO"].startswith("/slow") else fast)(environ, start_response)

    with ServerThread(dispatcher) as srv:
        results, elapsed = fetch_all(srv.port, 8, "/slow")
        fast_results, _ = fetch_all(srv.port, 1, "/fast")
    assert elapsed < 1.5 and {r[1] for r in results} == {b"slow"}
    assert fast_results[0][1] == b"fast"
    assert seen["slow_thread"].startswith("lichen-app") and seen["fast_thread"] == "wsgi-server"


def test_idle_connections_hold_no_thread_in_threads_mode():
    with ServerThread(sleepy_app, threads=4) as srv:
        before = threading.active_count()
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(200)]
        time.sleep(0.2)
        during = threading.active_count()
        results, _ = fetch_all(srv.port, 2)
        for s in socks:
            s.close()
    assert during == before and len(results) == 2


def test_stall_detector_logs_the_blocking_stack_once(caplog):
    hub = get_hub()
    detector = StallDetector(hub, 0.2).start()
    try:
        with caplog.at_level(logging.WARNING, logger="lichen.stall"):
            def culprit_blocking_function():
                time.sleep(0.7)
            spawn(culprit_blocking_function).join()
            sleep(0.1)
    finally:
        detector.stop()
    lines = [r for r in caplog.records if r.name == "lichen.stall"]
    assert len(lines) == 1 and "culprit_blocking_function" in lines[0].getMessage()


def test_stall_detector_is_quiet_while_the_hub_waits_for_io():
    hub = get_hub()
    detector = StallDetector(hub, 0.1).start()
    try:
        sleep(0.5)
    finally:
        detector.stop()
    assert detector.stalls == 0


def test_stall_detector_setting_starts_it_with_the_server(caplog):
    def blocker(environ, start_response):
        time.sleep(0.6)
        start_response("200 OK", [])
        return [b"done"]

    with caplog.at_level(logging.WARNING, logger="lichen.stall"):
        with ServerThread(blocker, stall_threshold=0.2) as srv:
            fetch_all(srv.port, 1)
    assert any(r.name == "lichen.stall" and "blocker" in r.getMessage() for r in caplog.records)
