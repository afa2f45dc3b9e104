# lichen.config: the command line's options, declared once.
#
# Strategy: every option is one Option (name, flags, converter, default,
# help); argparse, config files (`-c lichen.conf.py`, Python like gunicorn's),
# LICHEN_CMD_ARGS and --print-config all read that table, and the server
# settings of lichen.settings become `--header-timeout`-style options
# automatically. Precedence: defaults < config file < LICHEN_CMD_ARGS <
# command line. A bad value is rejected with the option's name.
from __future__ import annotations

import argparse
import dataclasses
import os
import runpy
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from lichen.settings import SETTINGS, SettingError, Settings

__all__ = ["Option", "OPTIONS", "Config", "ConfigError", "parse_args"]


class ConfigError(Exception):
    """A bad option value; str() names the option."""


def _positive_int(v: Any) -> int:
    n = int(v)
    if n < 1:
        raise ValueError(f"must be >= 1, got {n}")
    return n


def _non_negative_int(v: Any) -> int:
    n = int(v)
    if n < 0:
        raise ValueError(f"must be >= 0, got {n}")
    return n


def _non_negative_float(v: Any) -> float:
    x = float(v)
    if x < 0:
        raise ValueError(f"must be >= 0, got {x}")
    return x


def _umask(v: Any) -> int:
    if isinstance(v, int):
        return v
    return int(str(v), 8)


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


def _str_list(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


@dataclass(frozen=True)
class Option:
    name: str
    flags: tuple[str, ...]
    convert: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str | None = None
    flag_only: bool = False   # a switch: present means True
    repeat: bool = False      # may be given several times (a list)


OPTIONS: list[Option] = [
    Option("bind", ("-b", "--bind", "--http", "--port"), str, None,
           "address to listen on: host:port, [::1]:port, unix:/path, fd://N, tcp:8080 "
           "(repeatable; default 127.0.0.1:8000; --http and --port are uWSGI's and twistd's spellings)",
           "ADDR", repeat=True),
    Option("workers", ("-w", "--workers"), _positive_int, 1, "worker processes", "N"),
    Option("timeout", ("-t", "--timeout"), _non_negative_float, 30.0,
           "a worker whose event loop is blocked longer than this (s) is killed and replaced; 0 disables", "S"),
    Option("max_requests", ("--max-requests",), _non_negative_int, 0,
           "restart a worker after this many requests (0: never)", "N"),
    Option("max_requests_jitter", ("--max-requests-jitter",), _non_negative_int, 0,
           "add up to this many to max-requests, per worker, so workers don't restart together", "N"),
    Option("reuse_port", ("--reuse-port",), _bool, False, "set SO_REUSEPORT on listening sockets", flag_only=True),
    Option("umask", ("--umask",), _umask, None, "umask (octal) applied when creating unix sockets", "MASK"),
    Option("chdir", ("--chdir",), str, None, "change to this directory before loading the app", "DIR"),
    Option("pythonpath", ("--pythonpath",), str, None, "comma-separated directories to add to sys.path", "DIRS"),
    Option("reload", ("--reload",), _bool, False, "restart workers when a source file changes", flag_only=True),
    Option("access_logfile", ("--access-logfile",), str, None, "access log file ('-' for stdout)", "FILE"),
    Option("access_logformat", ("--access-logformat",), str, None, "access log format (gunicorn's atoms)", "FMT"),
    Option("error_logfile", ("--error-logfile", "--log-file"), str, "-", "error log file ('-' for stderr)", "FILE"),
    Option("log_level", ("--log-level",), str, "info", "debug, info, warning, error or critical", "LEVEL"),
    Option("no_access_log", ("--no-access-log",), _bool, False, "turn the access log off", flag_only=True),
    Option("certfile", ("--certfile",), str, None, "TLS certificate chain (PEM)", "FILE"),
    Option("keyfile", ("--keyfile",), str, None, "TLS private key (PEM)", "FILE"),
    Option("pidfile", ("-p", "--pid"), str, None, "write the master's PID to this file", "FILE"),
]

# Server settings (lichen.settings) become options too, e.g. --header-timeout.
_SETTING_OPTIONS = {name for name in SETTINGS}
_ALIASES = {"keepalive_timeout": ("--keep-alive", "--keepalive-timeout")}


def _setting_converter(name: str) -> Callable[[Any], Any]:
    annotation = str(SETTINGS[name].type)

    def convert(v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.lower() == "none"):
            if "None" in annotation:
                return None
            raise ValueError("must not be None")
        if annotation.startswith("int"):
            return int(v)
        if annotation.startswith("float"):
            return float(v)
        return str(v)

    return convert


for _name, _field in SETTINGS.items():
    _is_bool = str(_field.type) == "bool"
    OPTIONS.append(Option(_name, _ALIASES.get(_name, ("--" + _name.replace("_", "-"),)),
                          _bool if _is_bool else _setting_converter(_name), _field.default,
                          str(_field.metadata["help"]), None if _is_bool else "VALUE", flag_only=_is_bool))

# One flag turns the stall detector on with its default threshold.
OPTIONS.append(Option("stall_detector", ("--stall-detector",), _bool, False,
                      "log the stack of any greenlet that blocks the hub for more than 1 s "
                      "(--stall-threshold S to change it)", flag_only=True))

OPTION_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass
class Config:
    """The effective configuration: option values plus the APP."""

    app: str | None = None
    config_file: str | None = None
    print_config: bool = False
    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        if name in OPTION_BY_NAME:
            return OPTION_BY_NAME[name].default
        raise AttributeError(name)

    def settings(self) -> Settings:
        """The server Settings these options describe (validated)."""
        changes = {k: v for k, v in self.values.items() if k in _SETTING_OPTIONS}
        if self.values.get("stall_detector") and changes.get("stall_threshold") is None:
            changes["stall_threshold"] = 1.0
        if self.values.get("access_logformat"):
            changes["access_log_format"] = self.values["access_logformat"]
        try:
            return Settings(**{**{n: f.default for n, f in SETTINGS.items()}, **changes})
        except SettingError as e:
            raise ConfigError(f"--{str(e).split(' ', 1)[0].replace('_', '-')}: {e}") from None

    @property
    def binds(self) -> list[str]:
        return self.values.get("bind") or ["127.0.0.1:8000"]

    def describe(self) -> str:
        lines = [f"app = {self.app!r}", f"config = {self.config_file!r}"]
        for opt in OPTIONS:
            lines.append(f"{opt.name} = {getattr(self, opt.name)!r}")
        return "\n".join(lines)


def _version() -> str:
    from lichen import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lichen", description="Serve a WSGI application with lichen (a prefork master with greenlet workers).",
        argument_default=argparse.SUPPRESS)
    p.add_argument("app", nargs="?", help="the WSGI app: module:app, module:create_app(), "
                   "\"module:create_app('prod', debug=False)\", or module.app; default: lichen's demo app")
    p.add_argument("--module", "--wsgi", dest="app_option", metavar="APP",
                   help="the app, as uWSGI's --module / twistd's --wsgi spell it")
    p.add_argument("-c", "--config", dest="config_file", metavar="FILE", help="a Python config file (lichen.conf.py)")
    p.add_argument("--print-config", action="store_true", help="print the effective configuration and exit")
    p.add_argument("-v", "--version", action="version", version=f"lichen {_version()}")
    for opt in OPTIONS:
        text = opt.help + (f" (default: {opt.default})" if opt.default not in (None, False) else "")
        # argparse %-formats help texts; defaults such as the access log format contain "%".
        kwargs: dict[str, Any] = {"dest": opt.name, "help": text.replace("%", "%%")}
        if opt.flag_only:
            kwargs["action"] = "store_true"
        else:
            kwargs["metavar"] = opt.metavar
            if opt.repeat:
                kwargs["action"] = "append"
        p.add_argument(*opt.flags, **kwargs)
    return p


def _convert(name: str, value: Any, source: str) -> Any:
    opt = OPTION_BY_NAME.get(name)
    if opt is None:
        raise ConfigError(f"{source}: unknown setting {name!r}")
    try:
        if opt.repeat:
            return [opt.convert(v) for v in _str_list(value)]
        return opt.convert(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{opt.flags[-1] if source != 'config file' else name}: invalid value {value!r}: {e}") \
            from None


def load_config_file(path: str) -> dict[str, Any]:
    """Run a gunicorn-style Python config file; its lower-case globals
    that name options are taken."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        namespace = runpy.run_path(path)
    except Exception as e:
        raise ConfigError(f"config file {path!r} failed: {type(e).__name__}: {e}") from None
    values = {}
    for key, value in namespace.items():
        if key.startswith("_") or callable(value) or type(value).__name__ == "module":
            continue
        if key == "keepalive":
            key = "keepalive_timeout"
        if key == "wsgi_app":  # gunicorn's name for the APP in a config file
            values[key] = str(value)
            continue
        if key not in OPTION_BY_NAME:
            raise ConfigError(f"config file {path!r}: unknown setting {key!r}")
        values[key] = _convert(key, value, "config file")
    return values


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Defaults < config file < LICHEN_CMD_ARGS < argv. Raises ConfigError;
    argparse exits with status 2 on malformed flags."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    cli = vars(parser.parse_args(argv))
    env_args = vars(parser.parse_args(shlex.split(environ.get("LICHEN_CMD_ARGS", ""))))
    merged_meta = {**env_args, **cli}
    cfg = Config()
    cfg.config_file = merged_meta.get("config_file")
    values: dict[str, Any] = {}
    if cfg.config_file:
        values.update(load_config_file(cfg.config_file))
    for source in (env_args, cli):
        for key, value in source.items():
            if key in ("app", "app_option", "config_file", "print_config"):
                continue
            values[key] = _convert(key, value, "option")
    cfg.values = values
    cfg.app = merged_meta.get("app") or merged_meta.get("app_option") or values.pop("wsgi_app", None)
    cfg.print_config = bool(merged_meta.get("print_config"))
    cfg.settings()  # validate now, naming the option
    return cfg
