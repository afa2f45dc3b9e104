# lichen.config: the `lichen` command's configuration, generated from the
# settings table.
#
# Strategy: lichen.settings.TABLE declares every setting once; this module
# reads it four ways: the argparse options (flags, aliases, help with the
# default), config files (`-c lichen.conf.py`, Python like gunicorn's, where
# a setting answers to its name and its config-file aliases; without -c,
# ./lichen.conf.py or ./gunicorn.conf.py when there is one, as gunicorn reads
# its own), environment variables, and the README's reference tables.
# Precedence: defaults < a setting's own environment variables ($PORT,
# $WEB_CONCURRENCY) < config file < LICHEN_CMD_ARGS (or gunicorn's
# GUNICORN_CMD_ARGS when it alone is set) < command line. Each value
# is converted and validated where it is read, so an error is one line naming
# what the user wrote (`--workers: must be >= 1`, `lichen.conf.py: keepalive:
# ...`, `LICHEN_CMD_ARGS: --workers: ...`). A gunicorn.conf.py runs as it is:
# its hook functions are collected (lichen.hooks), other globals are ignored
# with a debug line (a warning when the name is close to a setting's), and
# gunicorn settings lichen has no use for get a note (lichen.compat). Notes
# are kept in the Config for the command to log once logging is set up. The
# result is one immutable CommandSettings inside a Config, which HUP reads
# again from the same sources.
from __future__ import annotations

import argparse
import difflib
import logging
import os
import runpy
import shlex
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NoReturn

from lichen.apploader import AppLoadError, parse_app_spec
from lichen.compat import (ALWAYS_NOTE, GUNICORN_ONLY, TWISTD_PORT, gunicorn_argv, proxy_mode, twistd_web,
                           worker_class_note)
from lichen.hooks import HOOKS, Hooks, check_hook
from lichen.listeners import parse_bind
from lichen.process import resolve_user
from lichen.settings import PROCESS, SERVER, TABLE, CommandSettings, SettingError, Spec, worker_kind

__all__ = ["Config", "ConfigError", "ConfigFile", "parse_args", "build_parser", "load_config_file",
           "read_config_file", "from_environment", "reference", "DEFAULT_CONFIG_FILES"]

CMD_ARGS = "LICHEN_CMD_ARGS"
CMD_ARGS_VARIABLES = (CMD_ARGS, "GUNICORN_CMD_ARGS")  # the first one set is read
# Read from the working directory when -c names no file, the first found.
DEFAULT_CONFIG_FILES = ("lichen.conf.py", "gunicorn.conf.py")
Note = tuple[int, str]  # (logging level, message)
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


def _check_app(app: str | None) -> None:
    # Only the spelling: the app is imported by the workers (or --preload).
    if app is not None:
        try:
            parse_app_spec(app)
        except AppLoadError as e:
            raise ValueError(str(e)) from None


# Checks that need another lichen module, which lichen.settings may not import.
_MORE_CHECKS: dict[str, Callable[[Any], None]] = {
    "bind": _check_binds,
    "wsgi_app": _check_app,
    "user": lambda v: resolve_user(v, None) if v is not None else None,
    "group": lambda v: resolve_user(None, v) if v is not None else None,
}


def _join(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _number_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Python values a gunicorn.conf.py gives that the table's types spell otherwise.
_FROM_PYTHON: dict[str, Callable[[Any], Any]] = {
    "forwarded_allow_ips": _join, "proxy_allow_ips": _join, "user": _number_as_text, "group": _number_as_text,
    "proxy_protocol": proxy_mode,
}


def _read(spec: Spec, value: Any, where: str, python: bool = False) -> Any:
    """`value` as `spec`'s type, validated; an error names `where`.
    `python`: a config file's value, which may be spelt as gunicorn's."""
    try:
        if python and spec.name in _FROM_PYTHON:
            value = _FROM_PYTHON[spec.name](value)
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
    hooks: Hooks = field(default_factory=Hooks, repr=False)
    notes: tuple[Note, ...] = ()  # what to log once logging is set up
    check_config: bool = False
    cwd: str | None = None  # where a config file was looked for

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
        return parse_args(list(self.argv), self.environ, cwd=self.cwd)

    def describe(self) -> str:
        """The effective settings, written as a config file would set them."""
        lines = [f"# config file: {self.config_file}"] if self.config_file else []
        if self.hooks:
            lines.append(f"# hooks (from the config file): {', '.join(self.hooks.names())}")
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
        group.add_argument(spec.name + "_positional", nargs="?", metavar=spec.metavar, help=text)
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
                epilog=f"Precedence: defaults < config file < {CMD_ARGS} (default arguments; or GUNICORN_CMD_ARGS) "
                       "< command line.")
    p.add_argument("-c", "--config", dest="config_file", metavar="FILE",
                   help="a Python config file (lichen.conf.py) setting `name = value`")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective configuration (as a config file would set it) and exit")
    p.add_argument("--check-config", action="store_true",
                   help="load the configuration and the app as a worker would, print OK or the reason it "
                        "fails, and exit 0 or 1")
    p.add_argument("-v", "--version", action="version", version=f"lichen {_version()}")
    for scope, title in _GROUPS:
        group = p.add_argument_group(title)
        for spec in TABLE.values():
            if spec.scope == scope:
                _add_option(group, spec)
    same = p.add_argument_group("accepted for other servers' command lines, without effect")
    same.add_argument("--master", dest="ignored:--master", action="store_true",
                      help="uWSGI's: lichen always runs a master")
    same.add_argument("--nodaemon", dest="ignored:--nodaemon", action="store_true",
                      help="twistd's (-n before twistd's `web`): lichen stays in the foreground unless -D")
    for name, (_, flag, takes_value, why) in GUNICORN_ONLY.items():
        if flag is not None:
            kwargs: dict[str, Any] = {"metavar": "VALUE"} if takes_value else {"action": "store_true"}
            same.add_argument(flag, dest=f"ignored:{flag}", help=f"gunicorn's {name}: {why}", **kwargs)
    return p


def _from_flags(parsed: dict[str, Any], where: str) -> dict[str, Any]:
    values = {name: _read(TABLE[name], raw, where + TABLE[name].flag) for name, raw in parsed.items()
              if name in TABLE}
    for name, raw in parsed.items():
        if name.endswith("_positional") and raw is not None:
            setting = name.removesuffix("_positional")
            if setting in values and values[setting] != raw:
                raise ConfigError(f"{where}{TABLE[setting].flag}: the app is named twice ({raw!r} and "
                                  f"{values[setting]!r})", setting)
            values[setting] = _read(TABLE[setting], raw, where + TABLE[setting].metavar)
    return values


def _ignored_flags(parsed: dict[str, Any], where: str) -> list[Note]:
    notes = []
    for name, raw in parsed.items():
        flag = name.removeprefix("ignored:")
        if name.startswith("ignored:") and raw and flag not in ("--master", "--nodaemon"):
            why = next(w for _, f, _, w in GUNICORN_ONLY.values() if f == flag)
            notes.append((logging.INFO, f"{where}{flag}: a gunicorn option without effect in lichen ({why})"))
    return notes


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings whose own environment variables are set (the first of a
    setting's variables that is set wins), e.g. $PORT as bind 0.0.0.0:$PORT."""
    values = {}
    for spec in TABLE.values():
        var = next((v for v in spec.env if environ.get(v)), None)
        if var is not None:
            values[spec.name] = _read(spec, spec.env_format.format(environ[var]), var)
    return values


@dataclass(frozen=True)
class ConfigFile:
    """What a config file says: settings, hooks, and notes on the rest."""

    values: dict[str, Any]
    hooks: dict[str, Callable[..., Any]]
    notes: list[Note]


def read_config_file(path: str) -> ConfigFile:
    """Run a Python config file (lichen.conf.py, or a gunicorn.conf.py as it
    is) and read its public globals: settings by name or config-file alias,
    gunicorn's hook functions, gunicorn settings lichen does without (a
    note), anything else ignored (a debug line; a warning when the name is
    close to a setting's). Raises ConfigError."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        namespace = runpy.run_path(path)
    except Exception as e:
        raise ConfigError(f"config file {path!r} failed: {type(e).__name__}: {e}") from None
    by_name = {name: spec for spec in TABLE.values() for name in spec.names}
    found = ConfigFile({}, {}, [])
    written_as: dict[str, str] = {}
    for key, value in namespace.items():
        if key.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if key in HOOKS:
            try:
                found.hooks[key] = check_hook(key, value)
            except ValueError as e:
                raise ConfigError(f"{path}: {e}") from None
            continue
        spec = by_name.get(key)
        if spec is None:
            found.notes.append(_unknown(path, key, value, by_name))
            continue
        if spec.name in written_as:
            raise ConfigError(f"{path}: {written_as[spec.name]} and {key} both set {spec.name}", spec.name)
        written_as[spec.name] = key
        found.values[spec.name] = _read(spec, value, f"{path}: {key}", python=True)
    return found


def _unknown(path: str, key: str, value: Any, by_name: Mapping[str, Spec]) -> Note:
    """The note on a global that is no setting and no hook."""
    if key in GUNICORN_ONLY:
        default, _, _, why = GUNICORN_ONLY[key]
        level = logging.INFO if key in ALWAYS_NOTE or value != default else logging.DEBUG
        return level, f"{path}: {key}: a gunicorn setting without effect in lichen ({why})"
    if not callable(value) and key.islower():
        close = difflib.get_close_matches(key, [*by_name, *HOOKS], n=1, cutoff=0.8)
        if close:
            return logging.WARNING, f"{path}: {key} is no setting (did you mean {close[0]!r}?); ignored"
    return logging.DEBUG, f"{path}: {key} is no setting; ignored"


def load_config_file(path: str) -> dict[str, Any]:
    """The settings a Python config file sets (see read_config_file)."""
    return read_config_file(path).values


def _default_config_file(cwd: str) -> str | None:
    for name in DEFAULT_CONFIG_FILES:
        path = os.path.join(cwd, name)
        if os.path.isfile(path):
            return path
    return None


def _cross_checks(st: CommandSettings) -> None:
    """Rules across settings; raises ConfigError naming the flag."""
    if st.wsgi_file and st.wsgi_app:
        raise ConfigError(f"--wsgi-file: the app is named twice (--wsgi-file {st.wsgi_file} and {st.wsgi_app})",
                          "wsgi_file")
    if not st.certfile:
        for name in ("keyfile", "ca_certs", "ciphers"):
            if getattr(st, name):
                raise ConfigError(f"{TABLE[name].flag}: needs --certfile", name)
    if st.cert_reqs and not st.ca_certs:
        raise ConfigError("--cert-reqs: verifying client certificates needs --ca-certs", "cert_reqs")
    given = [TABLE[n].flag for n in ("logconfig", "logconfig_dict", "logconfig_json") if getattr(st, n)]
    if len(given) > 1:
        raise ConfigError(f"{given[1]}: give one of {', '.join(given)}", "logconfig")


def _notes_on(st: CommandSettings, cli: Mapping[str, Any]) -> list[Note]:
    """Notes on settings that do less than a user may expect."""
    notes: list[Note] = []
    note = worker_class_note(st.worker_class, worker_kind(st.worker_class) or "lichen", st.threads)
    if note:
        notes.append((logging.INFO, note))
    pid = cli.get("pidfile")
    if pid is not None and pid.isdigit():
        notes.append((logging.WARNING, f"-p {pid} is gunicorn's --pid: the PID goes to a file named {pid!r} "
                                       "(uWSGI's process count is --processes or -w)"))
    if st.reload and st.preload_app:
        notes.append((logging.WARNING, "--reload with --preload: the master holds the app, so changed code "
                                       "loads only after a restart"))
    if st.reload_extra_files and not st.reload:
        notes.append((logging.INFO, "--reload-extra-file: without --reload no file is watched"))
    if st.capture_output and st.error_logfile == "-":
        notes.append((logging.INFO, "--capture-output: the error log is stderr already"))
    if st.daemon and st.error_logfile == "-":
        notes.append((logging.WARNING, "--daemon: the error log is stderr, which a daemon has not: give "
                                       "--error-logfile FILE to keep it"))
    return notes


def parse_args(argv: list[str] | None = None, environ: Mapping[str, str] | None = None,
               cwd: str | None = None) -> Config:
    """The configuration from the command line (default: sys.argv), the
    environment (default: os.environ) and the config file they name (or
    the one found in `cwd`, default the working directory). Raises
    ConfigError; --help and --version exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if environ is None else environ)
    cwd = cwd or os.getcwd()
    parser = build_parser()
    cli = vars(parser.parse_args(gunicorn_argv(args)))
    twistd = twistd_web(cli, args)
    args_var = next((v for v in CMD_ARGS_VARIABLES if env.get(v)), CMD_ARGS)
    try:
        env_args = vars(parser.parse_args(gunicorn_argv(shlex.split(env.get(args_var, "")))))
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{args_var}: {e}") from None
    meta = {**env_args, **cli}
    notes: list[Note] = []
    config_file = meta.get("config_file")
    if config_file is None:
        config_file = _default_config_file(cwd)
        if config_file:
            notes.append((logging.INFO, f"reading {config_file} (found in the working directory; -c names "
                                        "another, -c '' none)"))
    values = from_environment(env)
    hooks: dict[str, Callable[..., Any]] = {}
    if config_file:
        found = read_config_file(config_file)
        values.update(found.values)
        hooks, notes = found.hooks, notes + found.notes
    values.update(_from_flags(env_args, f"{args_var}: "))
    values.update(_from_flags(cli, ""))
    notes += _ignored_flags(env_args, f"{args_var}: ") + _ignored_flags(cli, "")
    if twistd and "bind" not in values:
        values["bind"] = (TWISTD_PORT,)
        notes.append((logging.INFO, f"twistd's web: listening on {TWISTD_PORT} (every interface), its default"))
    try:
        settings = CommandSettings(**values)
    except SettingError as e:  # each value passed alone: only a rule across settings lands here
        raise ConfigError(f"{TABLE[e.setting].flag}: {e.problem}", e.setting) from None
    _cross_checks(settings)
    notes += _notes_on(settings, cli)
    return Config(settings, config_file or None, bool(meta.get("print_config")), tuple(args), env,
                  Hooks(hooks), tuple(notes), bool(meta.get("check_config")), cwd)


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
        env = spec.env_format.replace("{}", "$")
        names = ", ".join(f"`{n}`" for n in spec.names) + "".join(
            f", env `{v}`" + (f" (as `{env.replace('$', '$' + v)}`)" if env != "$" else "") for v in spec.env)
        meaning = spec.help.replace("|", "\\|")
        rows.append(f"| {names} | {_flags_cell(spec)} | `{_shown(spec)}` | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m lichen.config: the README's tables
    print(reference(PROCESS), reference(SERVER), sep="\n\n")
