# lichen.cli: the `lichen` command (and `python -m lichen`).
#
# Strategy: parse options (lichen.config), set up logging, and hand over to
# the prefork master (lichen.arbiter). The master binds, the workers load the
# app; a wrong app path or a failing factory ends the command with a
# non-zero status and a one-line reason.
from __future__ import annotations

import logging
import sys

from lichen.config import Config, ConfigError, parse_args

__all__ = ["main", "configure_logging"]

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def _handler(target: str) -> logging.Handler:
    if target == "-":
        return logging.StreamHandler(sys.stderr)
    return logging.FileHandler(target)


def configure_logging(cfg: Config) -> None:
    """Error log to stderr or --error-logfile; the access log to the same
    place unless --access-logfile names another ('-' is stdout)."""
    level = getattr(logging, str(cfg.log_level).upper(), None)
    if not isinstance(level, int):
        raise ConfigError(f"--log-level: unknown level {cfg.log_level!r}")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = _handler(cfg.error_logfile or "-")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    access = logging.getLogger("lichen.access")
    for h in list(access.handlers):
        access.removeHandler(h)
    if cfg.access_logfile:
        ah = logging.StreamHandler(sys.stdout) if cfg.access_logfile == "-" else logging.FileHandler(cfg.access_logfile)
        ah.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(ah)
        access.propagate = False
        access.setLevel(logging.INFO)


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
