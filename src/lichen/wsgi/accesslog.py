# lichen.wsgi.accesslog: the access log (one line per request) and the error
# log of a WSGIServer.
#
# Strategy: an access line is gevent's (the library's default) or an
# access_log_format: a %-format over a mapping whose values are computed on
# demand, so a format that names three atoms costs three look-ups. Every
# atom whose text the client (or the app) chose is escaped as nginx does:
# '"', '\', control characters and anything not ASCII become \xHH, so a
# request cannot forge or split a log line. The numeric atoms (T M D B) are
# ints, so %(D)d works as in gunicorn. Both logs take gevent's targets:
# 'default' (sys.stderr, looked up when written to), None, a logging.Logger
# (records, at INFO for access lines), or any object with write(); gevent's
# LoggingLogAdapter turns a Logger into such an object. The error log is
# also wsgi.errors, and receives the tracebacks of the application.
from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback
from typing import Any, Callable

__all__ = ["AccessLog", "ErrorLog", "LoggingLogAdapter", "escape", "gevent_line", "writer", "STDERR"]

fallback = logging.getLogger("lichen.error")

# Anything but printable ASCII less '"' and '\': C0 controls, DEL, C1
# controls and every other non-ASCII character. (Written as the safe set:
# a class up to U+10FFFF takes re 17 ms to compile.)
_UNSAFE = re.compile(r'[^ !#-\[\]-~]')


def _hex(m: re.Match) -> str:
    char = m.group()
    code = ord(char)
    # Environ text is latin-1, one character per byte received: the byte's
    # own value. Wider characters can only come from the app: their UTF-8.
    data = (code,) if code < 0x100 else char.encode("utf-8", "surrogatepass")
    return "".join([f"\\x{b:02X}" for b in data])


def escape(value: Any) -> str:
    """``value`` as text safe for a log line: ``"``, ``\\``, control and
    non-ASCII characters become ``\\xHH`` (uppercase hex, as nginx writes
    them); a character above U+00FF becomes its UTF-8 bytes so."""
    if type(value) is not str:
        value = str(value)
    # The common case, checked at C speed: printable ASCII, nothing to quote.
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return _UNSAFE.sub(_hex, value)


class _Atoms(dict):
    """Lazy atoms: h l u t r m U q H s B b f a T M D L p {x}i {x}o {x}e."""

    def __init__(self, env: dict, resp: Any, elapsed: float) -> None:
        super().__init__()
        self.env = env
        self.resp = resp
        self.elapsed = elapsed

    def __missing__(self, key: str) -> str | int:
        env, resp = self.env, self.resp
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2], key[-1]
            if kind == "i":
                h = name.upper().replace("-", "_")
                return escape(env.get("HTTP_" + h) or env.get(h) or "-")
            if kind == "o":  # the app may echo request data in its headers
                low = name.lower()
                for k, v in resp.headers or ():
                    if k.lower() == low:
                        return escape(v)
                return "-"
            if kind == "e":
                return escape(env.get(name, "-"))
            return "-"
        fn = _ATOMS.get(key)
        return fn(env, resp, self.elapsed) if fn else "-"


def _env_text(key: str, default: str = "-") -> Callable[[dict, Any, float], str]:
    """The atom of an environ entry the client chose, escaped."""
    return lambda env, r, e: escape(env.get(key, default))


def _request_line(env: dict, resp: Any, _e: float) -> str:
    return escape(f"{env.get('REQUEST_METHOD', '-')} {env.get('RAW_URI', '-')} {env.get('SERVER_PROTOCOL', '-')}")


def _status(env: dict, resp: Any, _e: float) -> str:
    code = resp.status_code
    return str(code) if code else escape((resp.status or "-")[:3])


_ATOMS: dict[str, Callable[[dict, Any, float], Any]] = {
    # A proxy header may have set REMOTE_ADDR, an app REMOTE_USER.
    "h": lambda env, r, e: escape(env.get("REMOTE_ADDR") or "-"),
    "l": lambda env, r, e: "-",
    "u": lambda env, r, e: escape(env.get("REMOTE_USER") or "-"),
    "t": lambda env, r, e: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": _request_line,
    "m": _env_text("REQUEST_METHOD"),
    "U": _env_text("PATH_INFO"),
    "q": _env_text("QUERY_STRING", ""),
    "H": _env_text("SERVER_PROTOCOL"),
    "s": _status,
    "B": lambda env, r, e: r.bytes_sent,
    "b": lambda env, r, e: str(r.bytes_sent) if r.bytes_sent else "-",
    "f": _env_text("HTTP_REFERER"),
    "a": _env_text("HTTP_USER_AGENT"),
    "T": lambda env, r, e: int(e),
    "M": lambda env, r, e: int(e * 1000),
    "D": lambda env, r, e: int(e * 1_000_000),
    "L": lambda env, r, e: f"{e:.6f}",
    "p": lambda env, r, e: f"<{os.getpid()}>",
}


def gevent_line(env: dict, resp: Any, elapsed: float | None) -> str:
    """gevent's access line: `127.0.0.1 - - [2025-01-31 12:00:00] "GET /
    HTTP/1.1" 200 114 0.000084`: the client, local time, the request line,
    the status, the bytes sent (head included; '-' for none) and the seconds
    taken ('-' when unknown)."""
    length = resp.head_bytes + resp.bytes_sent
    return '%s - - [%s] "%s" %s %s %s' % (escape(env.get("REMOTE_ADDR") or "-"), time.strftime("%Y-%m-%d %H:%M:%S"),
                                          _request_line(env, resp, 0.0), _status(env, resp, 0.0), length or "-",
                                          "-" if elapsed is None else f"{elapsed:.6f}")


class _Stderr:
    """sys.stderr as it is when written to (a test or a daemon may replace it)."""

    def write(self, data: str) -> None:
        sys.stderr.write(data)

    def writelines(self, lines: Any) -> None:
        sys.stderr.writelines(lines)

    def flush(self) -> None:
        sys.stderr.flush()


class _Nowhere:
    """log=None: gevent's server.log is never None, it writes nothing."""

    def write(self, data: str) -> None:
        pass

    def writelines(self, lines: Any) -> None:
        pass

    def flush(self) -> None:
        pass


STDERR = _Stderr()


class LoggingLogAdapter:
    """A Logger as a file-like object (gevent.pywsgi's class of that name):
    each write() is one record at `level`, its trailing newline dropped."""

    def __init__(self, logger: Any, level: int = logging.INFO) -> None:
        self._logger = logger
        self._level = level

    def write(self, msg: str) -> None:
        if msg and msg.endswith("\n"):
            msg = msg[:-1]
        if msg:
            self._logger.log(self._level, msg)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def writer(target: Any, level: int = logging.INFO) -> Any:
    """gevent's `log=` / `error_log=` value as an object with write():
    'default' is sys.stderr, None writes nothing, a Logger (or anything with
    log() but no write()) becomes a LoggingLogAdapter at `level`."""
    if isinstance(target, str):
        if target != "default":
            raise TypeError(f"a log is 'default', None, a Logger or an object with write(), not {target!r}")
        return STDERR
    if target is None:
        return _Nowhere()
    if not hasattr(target, "write"):
        if not hasattr(target, "log"):
            raise TypeError(f"a log is 'default', None, a Logger or an object with write(), not {target!r}")
        return LoggingLogAdapter(target, level)
    return target


class AccessLog:
    """Formats and emits access log lines: gevent's line when `fmt` is
    None, else the access_log_format `fmt`."""

    def __init__(self, target: Any, fmt: str | None) -> None:
        self.fmt = fmt
        self.logger = target if isinstance(target, logging.Logger) else None
        self.stream = None if self.logger is not None else writer(target)
        if fmt is not None:
            try:
                fmt % _Atoms({}, _Dummy(), 0.0)
            except (KeyError, ValueError, TypeError) as e:
                raise ValueError(f"access_log_format is invalid: {e}") from None

    @property
    def enabled(self) -> bool:
        if self.logger is not None:
            return self.logger.isEnabledFor(logging.INFO)
        return True

    def line(self, env: dict, resp: Any, elapsed: float | None) -> str:
        """The line of one request (`elapsed`: seconds, None when unknown)."""
        if self.fmt is None:
            return gevent_line(env, resp, elapsed)
        return self.fmt % _Atoms(env, resp, elapsed or 0.0)

    def emit(self, line: str) -> None:
        """Write one line (a handler's log_request() may bring its own)."""
        if self.logger is not None:
            self.logger.info(line)
        else:
            self.stream.write(line + "\n")

    def log(self, env: dict, resp: Any, elapsed: float) -> None:
        self.emit(self.line(env, resp, elapsed))


class ErrorLog:
    """`error_log=` of a WSGIServer, and its wsgi.errors: 'default'
    (sys.stderr), a Logger, an object with write(), or None (no lines;
    application tracebacks still reach the `lichen.error` logger, as
    gevent's still reach its hub's stderr)."""

    def __init__(self, target: Any) -> None:
        self.logger = target if isinstance(target, logging.Logger) else None
        self.stream = None if self.logger is not None or target is None else writer(target, logging.ERROR)

    def log(self, msg: str, *args: Any, level: int = logging.ERROR) -> None:
        """One line (`msg % args`)."""
        if self.logger is not None:
            self.logger.log(level, msg, *args)
        elif self.stream is not None:
            self.stream.write((msg % args if args else msg) + "\n")

    def exception(self, msg: str, *args: Any, exc_info: Any = None) -> None:
        """One line and a traceback: of `exc_info` (type, value, traceback),
        else of the exception being handled."""
        info = exc_info or sys.exc_info()
        if self.logger is not None:
            self.logger.error(msg, *args, exc_info=info)
        elif self.stream is not None:
            self.stream.write((msg % args if args else msg) + "\n" + "".join(traceback.format_exception(*info)))
        else:
            fallback.error(msg, *args, exc_info=info)

    def write(self, data: str) -> None:  # wsgi.errors
        if self.logger is not None:
            self.logger.error(data.rstrip("\n"))
        elif self.stream is not None:
            self.stream.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.stream is not None and hasattr(self.stream, "flush"):
            self.stream.flush()


class _Dummy:
    headers: list = []
    status = "200 OK"
    status_code = 200
    bytes_sent = 0
    head_bytes = 0
