# lichen.wsgi.accesslog: one access log line per request, gunicorn's atoms.
#
# Strategy: the format is a %-format over a mapping whose values are computed
# on demand, so a format that names three atoms costs three look-ups. Every
# atom whose text the client (or the app) chose is escaped as nginx does:
# '"', '\', control characters and anything not ASCII become \xHH, so a
# request cannot forge or split a log line. The numeric atoms (T M D B) are
# ints, so %(D)d works as in gunicorn. The line goes to a logging.Logger
# (default `lichen.access`) or to any object with a write() method (gevent's
# `log=` convention).
from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Callable

__all__ = ["AccessLog", "escape"]

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


class AccessLog:
    """Formats and emits access log lines."""

    def __init__(self, target: Any, fmt: str) -> None:
        self.fmt = fmt
        if target == "default":
            target = logging.getLogger("lichen.access")
        self.logger = target if isinstance(target, logging.Logger) else None
        self.stream = None if self.logger is not None else target
        try:
            fmt % _Atoms({}, _Dummy(), 0.0)
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"access_log_format is invalid: {e}") from None

    @property
    def enabled(self) -> bool:
        if self.logger is not None:
            return self.logger.isEnabledFor(logging.INFO)
        return self.stream is not None

    def log(self, env: dict, resp: Any, elapsed: float) -> None:
        line = self.fmt % _Atoms(env, resp, elapsed)
        if self.logger is not None:
            self.logger.info(line)
        else:
            self.stream.write(line + "\n")


class _Dummy:
    headers: list = []
    status = "200 OK"
    status_code = 200
    bytes_sent = 0
