# lichen.wsgi.environ: the PEP 3333 environ of one request.
#
# Strategy: everything that is the same for every request of a server (wsgi.*,
# SERVER_NAME/PORT, SCRIPT_NAME) is built once here (base_environ); each
# request copies that dict and adds its REMOTE_ADDR/PORT and what the request
# carries. The server does that second step in C, for requests from both
# lanes (lichen._fastenv, src/_http/environ.c); request_environ() below states
# the same rules in Python and is the oracle the tests hold that builder to
# (tests/test_wsgi_environ_c.py): a change to the rules is made in both.
from __future__ import annotations

import sys
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = ["BASE_ENV", "base_environ", "request_environ", "header_key"]

_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_KEYS: dict[bytes, str | None] = {}


def header_key(name: bytes) -> str | None:
    """The environ key of a lower-cased header name; None for names the
    environ drops: those with `_`, so that `X-Foo_Bar` cannot pose as
    `X-Foo-Bar` (a spoofing trick against proxies that strip one spelling),
    and `Proxy` (httpoxy)."""
    try:
        return _KEYS[name]
    except KeyError:
        pass
    if b"_" in name or name == b"proxy":
        # (A Proxy header must never become HTTP_PROXY: code that reads
        # proxy settings CGI-style would send its requests to the client's
        # proxy: "httpoxy".)
        key = None
    else:
        key = _SPECIAL.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    if len(_KEYS) < 4096:  # bounded: clients choose header names
        _KEYS[name] = key
    return key


#: The keys every server's environ starts from (WSGIServer.base_env, which a
#: subclass may change, as gevent's).
BASE_ENV: dict[str, Any] = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "lichen", "SCRIPT_NAME": "",
                            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False,
                            "wsgi.run_once": False}


def base_environ(server_name: str | None, server_port: str | None, url_scheme: str, errors: Any, file_wrapper: Any,
                 extra: dict[str, Any] | None = None, base: dict[str, Any] = BASE_ENV) -> dict[str, Any]:
    """What every request's environ of a server starts from: `base`, the
    server's wsgi.* keys, SERVER_NAME/PORT (unless None: not known yet),
    then `extra` (which wins; a wsgi.errors of None there is `errors`)."""
    env = dict(base)
    if server_name is not None:
        env["SERVER_NAME"] = server_name
        env["SERVER_PORT"] = server_port
    env["wsgi.url_scheme"] = url_scheme
    env["wsgi.input_terminated"] = True
    env["wsgi.file_wrapper"] = file_wrapper
    if extra:
        env.update(extra)
    if env.get("wsgi.errors") is None:
        env["wsgi.errors"] = errors if errors is not None else sys.stderr
    return env


def _remote(remote: Any) -> tuple[str, str]:
    """REMOTE_ADDR and REMOTE_PORT of a peer address."""
    if isinstance(remote, tuple) and len(remote) >= 2:
        host = remote[0]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]  # an IPv4 client of a dual-stack listener
        return host, str(remote[1])
    return "", ""  # unix socket peers have no address


def request_environ(base: dict[str, Any], remote: Any, req: Any, wsgi_input: Any) -> dict[str, Any]:
    """The environ for `req` (a lichen.http Request) from peer `remote`.

    The reference statement of the rules: the server uses the C builder
    (lichen._fastenv.EnvironBuilder), which the tests hold equal to this.
    Built from the server's base environ each time: a per-connection copy
    kept between requests would cost every idle connection half a KiB."""
    env = base.copy()
    env["REMOTE_ADDR"], env["REMOTE_PORT"] = _remote(remote)
    env["REQUEST_METHOD"] = req.method
    path = req.path
    if b"%" in path:
        path = unquote_to_bytes(path)
    env["PATH_INFO"] = path.decode("latin-1")
    env["QUERY_STRING"] = req.query.decode("latin-1")
    uri = req.target.decode("latin-1")
    env["RAW_URI"] = uri
    env["REQUEST_URI"] = uri
    env["SERVER_PROTOCOL"] = "HTTP/1.0" if req.http_version == "1.0" else "HTTP/1.1"
    env["wsgi.input"] = wsgi_input
    get = _KEYS.get
    for name, value in req.headers:
        key = get(name, 0)
        if key == 0:
            key = header_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in env and key.startswith("HTTP_"):
            # Repeated fields are one comma-separated list; cookies use "; ".
            text = env[key] + ("; " if key == "HTTP_COOKIE" else ", ") + text
        env[key] = text
    if req.host is not None:
        # In absolute-form the target's authority replaces any Host header.
        env["HTTP_HOST"] = req.host.decode("latin-1")
    return env
