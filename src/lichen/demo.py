# lichen.demo: the built-in demo WSGI application served by `make serve`
# and by `lichen` without an APP argument.
#
# Strategy: a single page that shows the request's environ (escaped), plus a
# tiny echo endpoint for POST bodies — enough to see a request go through
# every layer and to try the server by hand.
from __future__ import annotations

import html
from typing import Any, Callable, Iterable

__all__ = ["app"]

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>lichen</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse}}td{{border-bottom:1px solid #ddd;padding:2px 8px;vertical-align:top}}
td:first-child{{font-family:monospace;white-space:nowrap}}</style></head>
<body><h1>lichen is serving</h1>
<p>This is lichen's demo app. Your request's WSGI environ:</p>
<table>{rows}</table>
<form method="post" action="/echo"><p>POST to /echo: <input name="text" value="hello"> <button>send</button></p></form>
</body></html>
"""


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Show the environ on GET; echo the body on POST /echo."""
    method = environ["REQUEST_METHOD"]
    if environ.get("PATH_INFO") == "/echo" and method == "POST":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if method not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
        return [b"method not allowed\n"]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(repr(v) if not isinstance(v, str) else v)}</td></tr>"
                   for k, v in sorted(environ.items()))
    body = _PAGE.format(rows=rows).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body]
