# lichen.gunicorn: a gunicorn worker class, for
# `gunicorn -k lichen.gunicorn.Worker myproject:app`.
#
# Strategy: gunicorn's arbiter forks and supervises; this worker serves the
# inherited listeners with one lichen WSGIServer on the worker's hub and
# calls gunicorn's notify() (its heartbeat) from the hub, so a blocked loop
# is noticed by gunicorn's --timeout. SIGTERM makes gunicorn clear `alive`,
# and the worker then stops gracefully within --graceful-timeout.
from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.workers.base import Worker as _GunicornWorker

from lichen.hub import sleep
from lichen.settings import Settings

__all__ = ["Worker"]


class Worker(_GunicornWorker):
    """gunicorn worker running lichen's WSGI server."""

    def run(self) -> None:
        from lichen.wsgi import WSGIServer

        cfg = self.cfg
        listeners = [s.sock for s in self.sockets]
        settings: dict[str, Any] = {"keepalive_timeout": float(cfg.keepalive),
                                    "graceful_timeout": float(cfg.graceful_timeout)}
        if cfg.limit_request_line:
            settings["max_request_line"] = int(cfg.limit_request_line)
        if cfg.limit_request_fields:
            settings["max_header_count"] = int(cfg.limit_request_fields)
        ssl_context = None
        if cfg.is_ssl:
            import ssl

            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(cfg.certfile, cfg.keyfile)
        # lichen's loggers and line format, not the library's defaults (gevent's: sys.stderr).
        server = WSGIServer(listeners, self.wsgi, ssl_context=ssl_context, log=logging.getLogger("lichen.access"),
                            error_log=logging.getLogger("lichen.error"), settings=Settings(**settings))
        server.start()
        period = max(min(self.timeout / 2.0, 1.0), 0.1) if self.timeout else 1.0
        try:
            while self.alive:
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("parent changed, shutting down: %s", self)
                    break
                limit = self.max_requests
                if limit and getattr(server, "requests_served", 0) >= limit:
                    self.log.info("autorestarting worker after current requests")
                    break
                sleep(period)
        finally:
            server.stop(float(cfg.graceful_timeout))
