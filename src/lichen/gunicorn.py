# lichen.gunicorn: a gunicorn worker class, for
# `gunicorn -k lichen.gunicorn.Worker myproject:app`.
#
# Strategy: gunicorn's arbiter forks and supervises; this worker serves the
# inherited listeners with one lichen WSGIServer on the worker's hub and
# calls gunicorn's notify() (its heartbeat) from the hub, so a blocked loop
# is noticed by gunicorn's --timeout. SIGTERM makes gunicorn clear `alive`,
# and the worker then stops gracefully within --graceful-timeout. What the
# user configured in gunicorn is translated once, by `server_options`, into
# lichen's settings: the access log (gunicorn's logger and format), trusted
# proxies, the PROXY protocol, the request limits, worker_connections, TLS
# (client certificates included). gunicorn's pre_request/post_request hooks
# run around each request through the middleware the `lichen` command uses
# for a gunicorn.conf.py's hooks (lichen.hooks), with this worker as
# `worker`; only hooks the user set, so a plain config pays nothing and
# keeps the sendfile path for file responses.
from __future__ import annotations

import os
from typing import Any, Callable

from gunicorn.workers.base import Worker as _GunicornWorker

from lichen.hooks import Hooks, request_hooks
from lichen.hub import sleep

__all__ = ["Worker", "server_options", "request_hook_functions"]

_REQUEST_HOOKS = ("pre_request", "post_request")


def _listed(value: Any) -> str:
    """gunicorn keeps address lists as lists (or '*'); lichen as text."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v).strip() for v in value)
    return str(value)


def server_options(cfg: Any, log: Any) -> dict[str, Any]:
    """WSGIServer keyword arguments for a gunicorn Config (`cfg`) and its
    Logger (`log`)."""
    settings: dict[str, Any] = {
        "keepalive_timeout": float(cfg.keepalive),
        "graceful_timeout": float(cfg.graceful_timeout),
        "max_connections": int(cfg.worker_connections),
        "forwarded_allow_ips": _listed(cfg.forwarded_allow_ips),
        "proxy_allow_ips": _listed(cfg.proxy_allow_ips),
        # gunicorn 27 takes off/v1/v2/auto (older ones a bool); lichen reads
        # both versions whenever it expects a header at all.
        "proxy_protocol": str(cfg.proxy_protocol).lower() not in ("off", "false", "0", "none", ""),
        "access_log_format": cfg.access_log_format,
    }
    # gunicorn's 0 means "no limit"; lichen always has one, so 0 keeps its default.
    if cfg.limit_request_line:
        settings["max_request_line"] = int(cfg.limit_request_line)
    if cfg.limit_request_fields:
        settings["max_header_count"] = int(cfg.limit_request_fields)
    if cfg.limit_request_field_size:
        settings["max_field_size"] = int(cfg.limit_request_field_size)
    options: dict[str, Any] = {
        "log": log.access_log if cfg.accesslog else None,
        "error_log": log.error_log,
    }
    if cfg.is_ssl:
        from lichen.tls import server_context

        options["ssl_context"] = server_context(cfg.certfile, cfg.keyfile, ca_certs=cfg.ca_certs,
                                                cert_reqs=cfg.cert_reqs, ciphers=cfg.ciphers,
                                                ssl_version=cfg.ssl_version)
    options.update(settings)
    return options


def request_hook_functions(cfg: Any) -> dict[str, Callable[..., Any]]:
    """The pre_request/post_request hooks a gunicorn Config (`cfg`) holds
    that are not gunicorn's defaults (its pre_request only logs the request
    line at debug level), as gunicorn calls them: post_request with four
    arguments whatever its own arity (gunicorn's validator adapts it)."""
    found = {}
    for name in _REQUEST_HOOKS:
        setting = cfg.settings[name]
        if setting.get() is not setting.default:
            found[name] = setting.get()
    return found


class Worker(_GunicornWorker):
    """gunicorn worker running lichen's WSGI server."""

    def run(self) -> None:
        from lichen.wsgi import WSGIServer

        listeners = [s.sock for s in self.sockets]
        server = WSGIServer(listeners, self.hooked(self.wsgi), **server_options(self.cfg, self.log))
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
            server.stop(float(self.cfg.graceful_timeout))

    def hooked(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """`app` with gunicorn's pre_request(worker, req) before each
        request and post_request(worker, req, environ, resp) once its
        response is closed; `app` itself when neither is set. A hook that
        raises is logged to gunicorn's error log and the request goes on."""
        return request_hooks(app, Hooks(request_hook_functions(self.cfg), self.log), self)
