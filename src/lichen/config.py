# lichen.config: the `lichen` command's configuration, generated from the
# settings table.
#
# Strategy: lichen.settings.TABLE declares every setting once; this module
# reads it four ways: the argparse options (flags, aliases, help with the
# default), config files (`-c lichen.conf.py`, Python like gunicorn's, where
# a setting answers to its name and its config-file aliases), environment
# variables, and the README's reference tables. Precedence: defaults < a
# setting's own environment variables < config file < LICHEN_CMD_ARGS <
# command line. Each value is converted and validated where it is read, so an
# error is one line naming what the user wrote (`--workers: must be >= 1`,
# `lichen.conf.py: keepalive: ...`, `LICHEN_CMD_ARGS: --workers: ...`). The
# result is one immutable CommandSettings inside a Config, which HUP reads
# again from the same sources.
from __future__ import annotations

import argparse
import difflib
import os
import runpy
import shlex
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NoReturn

from lichen.listeners import parse_bind
from lichen.settings import PROCESS, SERVER, TABLE, CommandSettings, SettingError, Spec

__all__ = ["Config", "ConfigError", "parse_args", "build_parser", "load_config_file", "from_environment",
           "reference"]

CMD_ARGS = "LICHEN_CMD_ARGS"
_GROUPS = ((PROCESS, "the lichen command"), (SERVER, "server settings (also WSGIServer keyword arguments)"))
_METAVARS = {"int": "N", "float": "S", "str": "TEXT"}


class ConfigError(Exception):
    """A bad command line, config file or environment. str() is one line
    naming the option as the user wrote it; `setting` is the setting to
    blame, if any."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


def _check_binds(binds: tuple[str, ...]) -> None:
    for spec in binds:
        parse_bind(spec)


# Checks that need another lichen module, which lichen.settings may not import.
_MORE_CHECKS: dict[str, Callable[[Any], None]] = {"bind": _check_binds}


def _read(spec: Spec, value: Any, where: str) -> Any:
    """`value` as `spec`'s type, validated; an error names `where`."""
    try:
        value = spec.coerce(value)
        more = _MORE_CHECKS.get(spec.name)
        if more is not None:
            more(value)
    except SettingError as e:
        raise ConfigError(f"{where}: {e.problem}", spec.name) from None
    except ValueError as e:
        raise ConfigError(f"{where}: {e}", spec.name) from None
    return value


def _ordered() -> list[Spec]:
    """The table, the command's own settings first (as in --help)."""
    return [spec for scope, _ in _GROUPS for spec in TABLE.values() if spec.scope == scope]


@dataclass(frozen=True)
class Config:
    """The `lichen` command's configuration: its settings (`cfg.workers` is
    `cfg.settings.workers`), the sources they were read from, and whether to
    only print them."""

    settings: CommandSettings = field(default_factory=CommandSettings)
    config_file: str | None = None
    print_config: bool = False
    argv: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:
        if name in TABLE:
            return getattr(self.settings, name)
        raise AttributeError(name)

    @property
    def app(self) -> str | None:
        """The WSGI app to load (None: the demo app)."""
        return self.settings.wsgi_app

    def reread(self) -> Config:
        """The configuration read again from the same command line and
        environment and the config file as it is now (for HUP)."""
        return parse_args(list(self.argv), self.environ)

    def describe(self) -> str:
        """The effective settings, written as a config file would set them."""
        lines = [f"# config file: {self.config_file}"] if self.config_file else []
        lines += [f"{spec.name} = {getattr(self.settings, spec.name)!r}" for spec in _ordered()]
        return "\n".join(lines)


def _version() -> str:
    from lichen import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)  # one line, like every other bad value; the CLI exits 2


def _shown(spec: Spec) -> str:
    return ", ".join(spec.default) if spec.repeat else str(spec.default)


def _help(spec: Spec) -> str:
    shown = spec.default is not None and spec.default is not False
    return spec.help + (f" (default: {_shown(spec)})" if shown else "")


def _add_option(group: Any, spec: Spec) -> None:
    text = _help(spec).replace("%", "%%")  # argparse %-formats help texts
    if spec.positional:
        group.add_argument(spec.name, nargs="?", metavar=spec.metavar, help=text)
        text = f"the {spec.metavar} as an option"
    kwargs: dict[str, Any] = {"dest": spec.name, "help": text}
    if spec.switch:
        # A switch that is on by default also gets --no-<flag>.
        kwargs["action"] = argparse.BooleanOptionalAction if spec.default else "store_true"
    else:
        kwargs["metavar"] = spec.metavar or _METAVARS[spec.base]
        if spec.repeat:
            kwargs["action"] = "append"
    group.add_argument(*spec.flags, **kwargs)
    for flag, value in spec.presets:
        group.add_argument(flag, dest=spec.name, action="store_const", const=value,
                           help=f"the same as {spec.flag} {value}")


def build_parser() -> argparse.ArgumentParser:
    """The command line: a few options about the configuration itself, then
    one option per setting, generated from the table."""
    p = _Parser(prog="lichen", argument_default=argparse.SUPPRESS,
                description="Serve a WSGI application with lichen (a prefork master with greenlet workers).",
                epilog=f"Precedence: defaults < config file < {CMD_ARGS} (default arguments) < command line.")
    p.add_argument("-c", "--config", dest="config_file", metavar="FILE",
                   help="a Python config file (lichen.conf.py) setting `name = value`")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration (as a config file would set it) and exit")
    p.add_argument("-v", "--version", action="version", version=f"lichen {_version()}")
    for scope, title in _GROUPS:
        group = p.add_argument_group(title)
        for spec in TABLE.values():
            if spec.scope == scope:
                _add_option(group, spec)
    return p


def _from_flags(parsed: dict[str, Any], where: str) -> dict[str, Any]:
    return {name: _read(TABLE[name], raw, where + TABLE[name].flag) for name, raw in parsed.items()
            if name in TABLE}


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings whose own environment variables are set (the first of a
    setting's variables that is set wins)."""
    values = {}
    for spec in TABLE.values():
        var = next((v for v in spec.env if environ.get(v)), None)
        if var is not None:
            values[spec.name] = _read(spec, environ[var], var)
    return values


def load_config_file(path: str) -> dict[str, Any]:
    """The settings a Python config file sets: its public globals, each a
    setting's name or config-file alias (functions, classes and modules are
    left alone). Raises ConfigError."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        namespace = runpy.run_path(path)
    except Exception as e:
        raise ConfigError(f"config file {path!r} failed: {type(e).__name__}: {e}") from None
    by_name = {name: spec for spec in TABLE.values() for name in spec.names}
    values: dict[str, Any] = {}
    written_as: dict[str, str] = {}
    for key, value in namespace.items():
        if key.startswith("_") or callable(value) or isinstance(value, types.ModuleType):
            continue
        spec = by_name.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, by_name, n=1)
            raise ConfigError(f"{path}: unknown setting {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        if spec.name in written_as:
            raise ConfigError(f"{path}: {written_as[spec.name]} and {key} both set {spec.name}", spec.name)
        written_as[spec.name] = key
        values[spec.name] = _read(spec, value, f"{path}: {key}")
    return values


def parse_args(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration from the command line (default: sys.argv), the
    environment (default: os.environ) and the config file they name.
    Raises ConfigError; --help and --version exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if environ is None else environ)
    parser = build_parser()
    cli = vars(parser.parse_args(args))
    try:
        env_args = vars(parser.parse_args(shlex.split(env.get(CMD_ARGS, ""))))
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{CMD_ARGS}: {e}") from None
    meta = {**env_args, **cli}
    config_file = meta.get("config_file")
    values = from_environment(env)
    if config_file:
        values.update(load_config_file(config_file))
    values.update(_from_flags(env_args, f"{CMD_ARGS}: "))
    values.update(_from_flags(cli, ""))
    try:
        settings = CommandSettings(**values)
    except SettingError as e:  # each value passed alone: only a rule across settings lands here
        raise ConfigError(f"{TABLE[e.setting].flag}: {e.problem}", e.setting) from None
    return Config(settings, config_file, bool(meta.get("print_config")), tuple(args), env)


def _flags_cell(spec: Spec) -> str:
    cells = [spec.metavar] if spec.positional and spec.metavar else []
    flags = ", ".join(f"`{f}`" for f in spec.flags)
    arg = "" if spec.switch else f" {spec.metavar or _METAVARS[spec.base]}"
    cells.append(flags + arg)
    cells += [f"`{flag}` (= {value})" for flag, value in spec.presets]
    if spec.switch and spec.default:
        cells.append(", ".join(f"`--no-{f[2:]}`" for f in spec.flags if f.startswith("--")))
    return ", ".join(cells)


def reference(scope: str) -> str:
    """The markdown table of the settings of `scope` the README shows."""
    rows = ["| setting (config file) | command line | default | meaning |", "| --- | --- | --- | --- |"]
    for spec in TABLE.values():
        if spec.scope != scope:
            continue
        names = ", ".join(f"`{n}`" for n in spec.names) + "".join(f", env `{v}`" for v in spec.env)
        meaning = spec.help.replace("|", "\\|")
        rows.append(f"| {names} | {_flags_cell(spec)} | `{_shown(spec)}` | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m lichen.config: the README's tables
    print(reference(PROCESS), reference(SERVER), sep="\n\n")
