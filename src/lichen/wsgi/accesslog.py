# lichen.wsgi.accesslog: one access log line per request, gunicorn's atoms.
#
# Strategy: the format is a %-format over a mapping whose values are computed
# on demand, so a format that names three atoms costs three look-ups. The
# line goes to a logging.Logger (default `lichen.access`) or to any object
# with a write() method (gevent's `log=` convention).
from __future__ import annotations

import logging
import os
import time
from typing import Any

__all__ = ["AccessLog"]


class _Atoms(dict):
    """Lazy atoms: h l u t r m U q H s B b f a T M D L p {x}i {x}o {x}e."""

    def __init__(self, env: dict, resp: Any, elapsed: float) -> None:
        super().__init__()
        self.env = env
        self.resp = resp
        self.elapsed = elapsed

    def __missing__(self, key: str) -> str:
        env, resp = self.env, self.resp
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2], key[-1]
            if kind == "i":
                h = name.upper().replace("-", "_")
                return env.get("HTTP_" + h) or env.get(h) or "-"
            if kind == "o":
                low = name.lower()
                for k, v in resp.headers or ():
                    if k.lower() == low:
                        return v
                return "-"
            if kind == "e":
                return str(env.get(name, "-"))
            return "-"
        fn = _ATOMS.get(key)
        return fn(env, resp, self.elapsed) if fn else "-"


def _request_line(env: dict, resp: Any, _e: float) -> str:
    return f"{env.get('REQUEST_METHOD', '-')} {env.get('RAW_URI', '-')} {env.get('SERVER_PROTOCOL', '-')}"


def _length(resp: Any) -> int:
    return resp.bytes_sent


_ATOMS = {
    "h": lambda env, r, e: env.get("REMOTE_ADDR") or "-",
    "l": lambda env, r, e: "-",
    "u": lambda env, r, e: env.get("REMOTE_USER") or "-",
    "t": lambda env, r, e: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": _request_line,
    "m": lambda env, r, e: env.get("REQUEST_METHOD", "-"),
    "U": lambda env, r, e: env.get("PATH_INFO", "-"),
    "q": lambda env, r, e: env.get("QUERY_STRING", ""),
    "H": lambda env, r, e: env.get("SERVER_PROTOCOL", "-"),
    "s": lambda env, r, e: str(r.status_code or (r.status or "-")[:3]),
    "B": lambda env, r, e: str(_length(r)),
    "b": lambda env, r, e: str(_length(r)) if _length(r) else "-",
    "f": lambda env, r, e: env.get("HTTP_REFERER", "-"),
    "a": lambda env, r, e: env.get("HTTP_USER_AGENT", "-"),
    "T": lambda env, r, e: str(int(e)),
    "M": lambda env, r, e: str(int(e * 1000)),
    "D": lambda env, r, e: str(int(e * 1_000_000)),
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
