# lichen.cli: the `lichen` command (and `python -m lichen`).
#
# Strategy: parse arguments into Settings and a list of binds, load the app
# from "module:attr" (or serve the demo app), configure logging to stderr,
# and run one WSGIServer until SIGINT/SIGTERM, which stop it gracefully.
from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from typing import Any, Callable

__all__ = ["main", "load_app"]


def load_app(spec: str) -> Callable[..., Any]:
    """Import "module:attr" (attr defaults to `application`, then `app`)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise SystemExit(f"lichen: bad APP {spec!r}; expected module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SystemExit(f"lichen: cannot import {module_name!r}: {e}") from None
    names = [attr] if attr else ["application", "app"]
    for name in names:
        obj = getattr(module, name, None)
        if obj is not None:
            if not callable(obj):
                raise SystemExit(f"lichen: {module_name}:{name} is not callable")
            return obj
    raise SystemExit(f"lichen: {module_name!r} has no attribute {' or '.join(names)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lichen", description="Serve a WSGI application with lichen.")
    p.add_argument("app", nargs="?", help="the WSGI app as module:attribute (default: lichen's demo app)")
    p.add_argument("-b", "--bind", action="append", help="address to listen on: host:port, [::1]:port, "
                   "unix:/path (repeatable; default 127.0.0.1:8000)")
    p.add_argument("--keep-alive", type=float, dest="keepalive_timeout", help="keep-alive idle timeout (s)")
    p.add_argument("--log-level", default="info", help="logging level (debug, info, warning, error)")
    p.add_argument("--no-access-log", action="store_true", help="turn the access log off")
    p.add_argument("--certfile", help="TLS certificate (PEM)")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    from lichen.wsgi import WSGIServer

    if args.app:
        app = load_app(args.app)
    else:
        from lichen.demo import app
    binds = args.bind or ["127.0.0.1:8000"]
    settings = {}
    if args.keepalive_timeout is not None:
        settings["keepalive_timeout"] = args.keepalive_timeout
    server = WSGIServer(binds, app, log=None if args.no_access_log else "default",
                        certfile=args.certfile, keyfile=args.keyfile, **settings)
    server.init_socket()
    scheme = "https" if server.ssl_context else "http"
    for sock in server.sockets:
        addr = sock.getsockname()
        where = f"{scheme}://{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else f"unix:{addr}"
        logging.getLogger("lichen.error").info("lichen serving %s on %s", args.app or "the demo app", where)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        logging.getLogger("lichen.error").info("stopping")
        server.stop()
    return 0
