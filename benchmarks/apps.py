# benchmarks/apps.py: the one WSGI application every server runs in the HTTP benchmark.
#
# Strategy: three endpoints routed on PATH_INFO with no framework, so the
# numbers measure the servers and not the app: `/` answers "Hello, World!",
# `/64k` a 64 KiB body, `/post` reads the whole request body and answers its
# length. Bodies are prebuilt bytes and every response carries Content-Length,
# so each server can keep connections alive. `app` and `application` are
# the same callable (different servers look for different names).
from __future__ import annotations

from typing import Any, Callable, Iterable

HELLO = b"Hello, World!"
BIG = b"x" * 65536
_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_BIG_HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))]
_NOT_FOUND = b"not found"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO") or "/"
    if path == "/":
        start_response("200 OK", _HELLO_HEADERS)
        return [HELLO]
    if path == "/64k":
        start_response("200 OK", _BIG_HEADERS)
        return [BIG]
    if path == "/post":
        stream = environ["wsgi.input"]
        length = environ.get("CONTENT_LENGTH")
        total = 0
        if length:  # read exactly the declared length, in chunks
            remaining = int(length)
            while remaining > 0:
                chunk = stream.read(min(remaining, 65536))
                if not chunk:
                    break
                total += len(chunk)
                remaining -= len(chunk)
        else:  # chunked or unknown length: read to the end
            while chunk := stream.read(65536):
                total += len(chunk)
        body = str(total).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(_NOT_FOUND)))])
    return [_NOT_FOUND]


application = app
