# lichen.hooks: gunicorn's server hooks, as a config file defines them.
#
# Strategy: a config file's functions named like gunicorn's hooks (on_starting,
# post_fork, pre_request, ...) become a Hooks object that the master and its
# workers call at the moments gunicorn would, with objects that carry the
# attributes hook code uses (the master as `server`: pid, cfg, log,
# num_workers; lichen.process.Worker as `worker`: pid, age, alive, log).
# Hook arguments are checked once, when the config file is read, so a
# misspelt signature is a one-line config error. A hook that raises is
# logged and the server goes on; the caller asks for the exception instead
# where a failure must stop the start (on_starting, when_ready in the master;
# post_fork, post_worker_init in a worker, a boot error as gunicorn has it).
# pre_request/post_request wrap the app in a small WSGI middleware in the
# worker (only when one of them is defined): post_request runs when the
# server closes the response iterable, i.e. after the last byte of a
# streamed body was sent or the client went away. lichen.gunicorn.Worker
# uses the same middleware for the hooks of gunicorn's own config.
# Standard library only: the master imports this module too.
from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Iterable, Iterator, Mapping

__all__ = ["HOOKS", "Hooks", "HookError", "check_hook", "HookRequest", "HookResponse", "request_hooks"]

log = logging.getLogger("lichen.error")

# Each hook's parameters, as gunicorn documents them.
HOOKS: dict[str, tuple[str, ...]] = {
    "on_starting": ("server",),
    "on_reload": ("server",),
    "when_ready": ("server",),
    "pre_fork": ("server", "worker"),
    "post_fork": ("server", "worker"),
    "post_worker_init": ("worker",),
    "worker_int": ("worker",),
    "worker_abort": ("worker",),
    "pre_exec": ("server",),
    "pre_request": ("worker", "req"),
    "post_request": ("worker", "req", "environ", "resp"),
    "child_exit": ("server", "worker"),
    "worker_exit": ("server", "worker"),
    "nworkers_changed": ("server", "new_value", "old_value"),
    "on_exit": ("server",),
}
# gunicorn also takes a post_request of two or three parameters.
_SHORTER = {"post_request": (2, 3)}


class HookError(Exception):
    """A hook raised where that must stop the start; str() is one line."""


def _accepts(fn: Callable[..., Any], n: int) -> bool:
    try:
        inspect.signature(fn).bind(*range(n))
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): trust it
        return True
    return True


def check_hook(name: str, fn: Any) -> Callable[..., Any]:
    """`fn` as hook `name` is called: raises ValueError saying what it must
    take; a shorter post_request is adapted to gunicorn's four arguments."""
    params = HOOKS[name]
    if not callable(fn):
        raise ValueError(f"{name} must be a function, got {type(fn).__name__}")
    if _accepts(fn, len(params)):
        return fn
    for n in _SHORTER.get(name, ()):
        if _accepts(fn, n):
            return lambda *args: fn(*args[:n])
    raise ValueError(f"{name} must take {len(params)} argument{'s' if len(params) > 1 else ''} "
                     f"({', '.join(params)})")


class Hooks:
    """The hooks a config file defines, by name; `logger` (default
    lichen.error) gets the traceback of one that raises."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None, logger: Any = None) -> None:
        self.functions = dict(functions or {})
        self.log = logger if logger is not None else log

    def __contains__(self, name: str) -> bool:
        return name in self.functions

    def __bool__(self) -> bool:
        return bool(self.functions)

    def names(self) -> list[str]:
        """The hooks defined, in gunicorn's order."""
        return [n for n in HOOKS if n in self.functions]

    def run(self, name: str, *args: Any, fatal: bool = False) -> None:
        """Call hook `name` if it is defined. An exception is logged with its
        traceback, or with `fatal` raised again as a one-line HookError."""
        fn = self.functions.get(name)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception as e:
            if fatal:
                raise HookError(f"the {name} hook failed: {type(e).__name__}: {e}") from e
            self.log.exception("the %s hook raised", name)


class HookRequest:
    """What pre_request and post_request see of a request, with the
    attributes of gunicorn's request: method, uri, path, query, fragment,
    version (a tuple), scheme, headers (upper-cased names, as gunicorn has
    them), remote_addr, and the environ itself."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.uri = environ.get("RAW_URI") or (self.path + ("?" + self.query if self.query else ""))
        self.fragment = ""
        protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        major, _, minor = protocol.partition("/")[2].partition(".")
        self.version = (int(major or 1), int(minor or 0)) if (major + minor).isdigit() else (1, 1)
        self.scheme = environ.get("wsgi.url_scheme", "http")
        self.remote_addr = environ.get("REMOTE_ADDR", "")
        self.headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")]
        for key, name in (("CONTENT_TYPE", "CONTENT-TYPE"), ("CONTENT_LENGTH", "CONTENT-LENGTH")):
            if environ.get(key):
                self.headers.append((name, environ[key]))


class HookResponse:
    """What post_request sees of the response: status ('200 OK', None if
    the app failed before starting one), status_code, headers, sent (body
    bytes the app produced), response_length (its Content-Length, if set)."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = 0

    @property
    def status_code(self) -> int | None:
        """The status as a number."""
        return int(self.status.split(None, 1)[0]) if self.status else None

    @property
    def response_length(self) -> int | None:
        """The Content-Length the app set, if it set one."""
        for name, value in self.headers:
            if name.lower() == "content-length" and value.strip().isdigit():
                return int(value)
        return None


class _Body:
    """The app's response iterable, counting what it yields; close() closes
    it, then runs post_request once."""

    def __init__(self, inner: Iterable[bytes], resp: HookResponse, done: Callable[[], None]) -> None:
        self.inner = inner
        self.resp = resp
        self.done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        for data in self.inner:
            self.resp.sent += len(data)
            yield data

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            done, self.done = self.done, None
            if done is not None:
                done()


def request_hooks(app: Callable[..., Any], hooks: Hooks, worker: Any) -> Callable[..., Any]:
    """`app` wrapped to call pre_request(worker, req) before it and
    post_request(worker, req, environ, resp) when its response is closed;
    `app` itself when neither hook is defined (nothing to pay). The wrapper
    counts `worker.nr`. A response body goes through the wrapper's
    iterable, so the server frames it as any iterable (chunked unless the
    app set Content-Length) and does not take the sendfile path."""
    if "pre_request" not in hooks and "post_request" not in hooks:
        return app

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        worker.nr += 1
        req = HookRequest(environ)
        resp = HookResponse()
        hooks.run("pre_request", worker, req)

        def recording_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            resp.status, resp.headers = status, list(headers)
            write = start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            def counting_write(data: bytes) -> Any:
                resp.sent += len(data)
                return write(data)

            return counting_write

        def done() -> None:
            hooks.run("post_request", worker, req, environ, resp)

        try:
            result = app(environ, recording_start_response)
        except BaseException:
            done()
            raise
        return _Body(result, resp, done)

    return wrapped
