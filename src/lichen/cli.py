# lichen.cli: the `lichen` command (and `python -m lichen`).
#
# Strategy: parse options (lichen.config), set up logging, and hand over to
# the prefork master (lichen.arbiter). A bad option value, config file or
# log file ends the command at once with status 2 and one line naming the
# option. The master binds, the workers load the app; a wrong app path or a
# failing factory ends the command with a non-zero status and a one-line
# reason. Nothing here loads the hub: only the workers do.
from __future__ import annotations

import logging
import sys
from typing import TextIO

from lichen.config import Config, ConfigError, parse_args

__all__ = ["main", "configure_logging"]

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


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


def configure_logging(cfg: Config) -> None:
    """Error log to stderr or --error-logfile; the access log to the same
    place unless --access-logfile names another ('-' is stdout)."""
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


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        if cfg.print_config:
            print(cfg.describe())
            return 0
        configure_logging(cfg)
    except ConfigError as e:
        print(f"lichen: error: {e}", file=sys.stderr)
        return 2
    from lichen.arbiter import Arbiter

    return Arbiter(cfg).run()
