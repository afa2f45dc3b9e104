# lichen.cli: the `lichen` command (and `python -m lichen`).
#
# Strategy: parse options (lichen.config), set up logging (lichen's own
# handlers, then a --log-config* file or dict on top), log the notes the
# configuration left (gunicorn settings without effect, twistd's default
# port...), then hand over to the prefork master (lichen.arbiter): at once, as
# a daemon (-D: the command returns when the workers serve), or for
# --check-config only. A bad option value, config file or log file ends the
# command at once with status 2 and one line naming the option; a start that
# fails (a port in use, an app that cannot be imported, a hook...) with
# status 1 and one line giving the cause: `lichen: <why>`; neither prints a
# traceback unless --log-level debug logs it. Nothing here loads the hub:
# only the workers do.
from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from typing import Any, TextIO

from lichen.config import Config, ConfigError, parse_args
from lichen.process import capture_output, daemonize

__all__ = ["main", "configure_logging"]

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
log = logging.getLogger("lichen.error")


def _handler(target: str, dash: TextIO, flag: str, fmt: str) -> logging.Handler:
    """A handler writing to file `target`, or to `dash` for '-'."""
    try:
        handler = logging.StreamHandler(dash) if target == "-" else logging.FileHandler(target)
    except OSError as e:
        raise ConfigError(f"{flag}: cannot open {target!r}: {e.strerror or e}") from None
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def _replace_handlers(logger: logging.Logger, handler: logging.Handler | None) -> None:
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if handler is not None:
        logger.addHandler(handler)


def _as_lichens(config: dict[str, Any]) -> dict[str, Any]:
    """A gunicorn logging dict configures gunicorn.error and gunicorn.access:
    the same entries configure lichen.error and lichen.access (unless named)."""
    loggers = dict(config.get("loggers") or {})
    for name in ("error", "access"):
        if f"gunicorn.{name}" in loggers and f"lichen.{name}" not in loggers:
            loggers[f"lichen.{name}"] = loggers[f"gunicorn.{name}"]
    if loggers:
        config = {**config, "loggers": loggers}
    # Loggers lichen made before this call must keep working.
    return {"disable_existing_loggers": False, **config}


def _log_config(cfg: Config) -> None:
    """Apply --log-config, --log-config-dict or --log-config-json."""
    st = cfg.settings
    try:
        if st.logconfig:
            if not os.path.isfile(st.logconfig):
                raise ConfigError(f"--log-config: no such file {st.logconfig!r}")
            logging.config.fileConfig(st.logconfig, disable_existing_loggers=False)
        elif st.logconfig_dict is not None:
            logging.config.dictConfig(_as_lichens(st.logconfig_dict))
        elif st.logconfig_json:
            try:
                with open(st.logconfig_json) as f:
                    config = json.load(f)
            except OSError as e:
                raise ConfigError(f"--log-config-json: cannot read {st.logconfig_json!r}: {e.strerror}") from None
            if not isinstance(config, dict):
                raise ConfigError(f"--log-config-json: {st.logconfig_json} holds no JSON object")
            logging.config.dictConfig(_as_lichens(config))
    except ConfigError:
        raise
    except Exception as e:  # the logging module's own errors, of many kinds
        flag = "--log-config" if st.logconfig else "--log-config-dict" if st.logconfig_dict else "--log-config-json"
        cause = f"{type(e).__name__}: {e}".replace("\n", " ")
        raise ConfigError(f"{flag}: {cause}") from None


def configure_logging(cfg: Config) -> None:
    """Error log to stderr or --error-logfile; the access log to the same
    place unless --access-logfile names another ('-' is stdout); then a
    logging configuration the user gave."""
    level = getattr(logging, cfg.log_level.upper())  # the settings table checked the name
    error = _handler(cfg.error_logfile, sys.stderr, "--error-logfile", LOG_FORMAT)
    access = _handler(cfg.access_logfile, sys.stdout, "--access-logfile", "%(message)s") \
        if cfg.access_logfile else None
    root = logging.getLogger()
    _replace_handlers(root, error)
    root.setLevel(level)
    access_log = logging.getLogger("lichen.access")
    _replace_handlers(access_log, access)
    if access is not None:
        access_log.propagate = False
        access_log.setLevel(logging.INFO)
    _log_config(cfg)


def _report(cfg: Config, line: str, detached: Any) -> None:
    """The one line saying why the start failed: on stderr (to the command
    that started a daemon), and in the error log when that is a file."""
    if detached is not None:
        detached.failed(line)
    else:
        print(line, file=sys.stderr, flush=True)
    if cfg.error_logfile != "-" or cfg.settings.logconfig or cfg.settings.logconfig_dict or \
            cfg.settings.logconfig_json:
        log.error("%s", line)


def main(argv: list[str] | None = None) -> int:
    """Run the `lichen` command; returns its exit status."""
    try:
        cfg = parse_args(argv)
        if cfg.print_config:
            try:
                print(cfg.describe(), flush=True)
            except BrokenPipeError:  # `lichen --print-config | head`: the reader has had enough
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        configure_logging(cfg)
    except ConfigError as e:
        print(f"lichen: error: {e}", file=sys.stderr)
        return 2
    for level, message in cfg.notes:
        log.log(level, message)
    from lichen.arbiter import Arbiter

    if cfg.check_config:
        checker = Arbiter(cfg)
        if checker.check() == 0:
            print("OK")
            return 0
        print(f"lichen: {checker.failure}", file=sys.stderr)
        return 1
    detached = daemonize() if cfg.settings.daemon else None
    if cfg.settings.capture_output and cfg.error_logfile != "-":
        try:
            capture_output(cfg.error_logfile)
        except OSError as e:
            _report(cfg, f"lichen: --capture-output: cannot open {cfg.error_logfile!r}: {e.strerror}", detached)
            return 1
    arbiter = Arbiter(cfg, detached)
    code = arbiter.run()
    if arbiter.failure:
        _report(cfg, f"lichen: {arbiter.failure}", detached)
    return code
