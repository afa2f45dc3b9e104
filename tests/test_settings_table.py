# The settings table (lichen.settings.TABLE) and what is generated from it
# (lichen.config): every setting declared once; every flag, alias and
# config-file name reaching its setting; the environment; errors that carry
# the setting's name; the server's view (WSGIServer keywords, settings=); the
# README's reference tables.
# Strategy: walk the table rather than list settings by hand, so a setting
# added later is covered by these tests without touching them; a few
# settings whose values need a particular shape get a sample of their own.
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys

import pytest

from lichen.config import ConfigError, build_parser, parse_args, reference
from lichen.settings import PROCESS, SERVER, TABLE, CommandSettings, SettingError, Settings, Spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A value that is not the default, as text and as the setting then holds it.
SAMPLES = {
    "bind": ("unix:/tmp/lichen-test.sock", ("unix:/tmp/lichen-test.sock",)),
    "umask": ("027", 0o27),
    "log_level": ("debug", "debug"),
    "forwarded_allow_ips": ("10.0.0.0/8", "10.0.0.0/8"),
    "proxy_allow_ips": ("10.0.0.0/8", "10.0.0.0/8"),
    "wsgi_app": ("pkg.module:create_app('x')", "pkg.module:create_app('x')"),
    "worker_class": ("gevent", "gevent"),
    "user": ("nobody", "nobody"),
    "group": ("65534", "65534"),
    "raw_env": ("A=1", ("A=1",)),
    "reload_extra_files": ("extra.txt", ("extra.txt",)),
    "logconfig_dict": ("{'version': 1}", {"version": 1}),
    "cert_reqs": ("required", 2),
    "ciphers": ("ECDHE+AESGCM", "ECDHE+AESGCM"),
}
_BY_TYPE = {"int": ("7", 7), "float": ("7.5", 7.5), "str": ("X-Sample", "X-Sample")}
# Settings that are only valid beside others (a rule across settings).
NEEDS = {"keyfile": {"certfile": "c.pem"}, "ca_certs": {"certfile": "c.pem"}, "ciphers": {"certfile": "c.pem"},
         "cert_reqs": {"certfile": "c.pem", "ca_certs": "ca.pem"}}


def needed_args(spec: Spec) -> list[str]:
    return [a for name, value in NEEDS.get(spec.name, {}).items() for a in (TABLE[name].flag, value)]


def needed_lines(spec: Spec) -> str:
    return "".join(f"{name} = {value!r}\n" for name, value in NEEDS.get(spec.name, {}).items())


def sample(spec: Spec) -> tuple[str, object]:
    if spec.name in SAMPLES:
        return SAMPLES[spec.name]
    return _BY_TYPE[spec.base]


def _flag_cases():
    for spec in TABLE.values():
        for flag in spec.flags:
            yield pytest.param(spec, flag, id=flag)


def _name_cases():
    for spec in TABLE.values():
        for name in spec.names:
            yield pytest.param(spec, name, id=name)


# Declared once ----------------------------------------------------------------------
def test_every_setting_is_declared_once_with_one_scope():
    fields = [f.name for f in dataclasses.fields(CommandSettings)]
    assert sorted(fields) == sorted(TABLE) and len(set(fields)) == len(fields)
    assert [f.name for f in dataclasses.fields(Settings)] == [n for n, s in TABLE.items() if s.scope == SERVER]
    assert {s.scope for s in TABLE.values()} == {SERVER, PROCESS}


def test_no_flag_and_no_config_file_name_answers_for_two_settings():
    flags = [f for s in TABLE.values() for f in (*s.flags, *(p for p, _ in s.presets))]
    flags += ["-c", "--config", "--print-config", "-v", "--version", "-h", "--help"]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)
    names = [n for s in TABLE.values() for n in s.names]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    env = [v for s in TABLE.values() for v in s.env]
    assert len(env) == len(set(env))


@pytest.mark.parametrize("spec", TABLE.values(), ids=list(TABLE))
def test_every_entry_is_complete_and_its_default_valid(spec):
    assert spec.help and spec.flags and spec.names[0] == spec.name
    assert spec.base in ("int", "float", "str", "bool", "dict")
    spec.validate(spec.default)


# Command line -----------------------------------------------------------------------
@pytest.mark.parametrize("spec,flag", list(_flag_cases()))
def test_every_flag_and_alias_sets_its_setting(spec, flag):
    if spec.switch:
        args, expected = [flag], True
        if spec.default:  # on by default: its --no- form is the one that changes it
            args, expected = ["--no-" + flag[2:]], False
    else:
        text, expected = sample(spec)
        args = [flag, text]
    assert expected != spec.default
    cfg = parse_args(args + needed_args(spec), environ={})
    assert getattr(cfg.settings, spec.name) == expected


def test_the_app_is_the_positional_argument_too():
    assert parse_args(["pkg.mod:app"], environ={}).app == "pkg.mod:app"


def test_a_preset_flag_sets_its_value():
    assert parse_args(["--stall-detector"], environ={}).settings.stall_threshold == 1.0
    assert parse_args(["--stall-threshold", "2.5"], environ={}).settings.stall_threshold == 2.5


def test_help_shows_each_default_once_and_every_flag():
    text = build_parser().format_help()
    for spec in TABLE.values():
        for flag in spec.flags:
            assert flag in text
    assert "(default: 75.0)" in text and "--no-defer-accept" in text


# Config file ------------------------------------------------------------------------
@pytest.mark.parametrize("spec,name", list(_name_cases()))
def test_every_config_file_name_and_alias_sets_its_setting(spec, name, tmp_path):
    expected = (not spec.default) if spec.switch else sample(spec)[1]
    conf = tmp_path / "lichen.conf.py"
    conf.write_text(f"{name} = {expected!r}\n" + needed_lines(spec))
    assert getattr(parse_args(["-c", str(conf)], environ={}).settings, spec.name) == expected


def test_config_file_values_may_be_text_as_on_the_command_line(tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("workers = '3'\nkeepalive = 5\nbind = '127.0.0.1:1'\numask = '007'\nreload = 'yes'\n")
    st = parse_args(["-c", str(conf)], environ={}).settings
    assert (st.workers, st.keepalive_timeout, st.bind, st.umask, st.reload) == (3, 5.0, ("127.0.0.1:1",), 7, True)


def test_a_setting_written_twice_in_a_config_file_is_rejected(tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("keepalive = 5\nkeepalive_timeout = 6\n")
    with pytest.raises(ConfigError, match="keepalive and keepalive_timeout both set keepalive_timeout"):
        parse_args(["-c", str(conf)], environ={})


def test_an_unknown_config_file_name_is_ignored_with_a_warning_naming_the_closest(tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("wrokers = 3\nPORT = '8000'\n")
    cfg = parse_args(["-c", str(conf)], environ={})
    assert cfg.workers == 1
    assert (logging.WARNING, f"{conf}: wrokers is no setting (did you mean 'workers'?); ignored") in cfg.notes
    assert (logging.DEBUG, f"{conf}: PORT is no setting; ignored") in cfg.notes


def test_print_config_output_is_a_config_file_giving_the_same_settings(tmp_path):
    cfg = parse_args(["-w", "3", "--keep-alive", "9", "-b", "unix:/tmp/a.sock", "--umask", "007",
                      "--server-header", "none", "tests.apps.sample:app"], environ={})
    conf = tmp_path / "printed.conf.py"
    conf.write_text(cfg.describe())
    assert parse_args(["-c", str(conf)], environ={}).settings == cfg.settings


# Environment ------------------------------------------------------------------------
def test_lichen_cmd_args_sit_between_the_config_file_and_the_command_line(tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("workers = 2\ntimeout = 5\nmax_requests = 7\n")
    cfg = parse_args(["-c", str(conf), "-w", "4"], environ={"LICHEN_CMD_ARGS": "-w 3 -t 6"})
    assert (cfg.workers, cfg.timeout, cfg.max_requests) == (4, 6.0, 7)


def test_a_settings_own_variable_gives_its_default_below_the_config_file(monkeypatch, tmp_path):
    # No entry has a variable of its own yet (WEB_CONCURRENCY and PORT are for later);
    # one is given here to prove the table carries them.
    monkeypatch.setitem(TABLE, "workers", dataclasses.replace(TABLE["workers"], env=("WEB_CONCURRENCY",)))
    assert parse_args([], environ={"WEB_CONCURRENCY": "5"}).workers == 5
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("workers = 2\n")
    assert parse_args(["-c", str(conf)], environ={"WEB_CONCURRENCY": "5"}).workers == 2
    with pytest.raises(ConfigError, match="^WEB_CONCURRENCY: expected an integer") as e:
        parse_args([], environ={"WEB_CONCURRENCY": "many"})
    assert e.value.setting == "workers"


# Errors carry the name --------------------------------------------------------------
@pytest.mark.parametrize("spec", TABLE.values(), ids=list(TABLE))
def test_a_value_of_the_wrong_type_names_its_setting(spec):
    with pytest.raises(SettingError) as e:
        CommandSettings(**{spec.name: object()})
    assert e.value.setting == spec.name and str(e.value).startswith(spec.name + ": ")


@pytest.mark.parametrize("args,flag,setting", [
    (["-w", "0"], "--workers", "workers"),
    (["--keepalive-timeout", "-1"], "--keep-alive", "keepalive_timeout"),
    (["--header-timeout", "x"], "--header-timeout", "header_timeout"),
    (["--log-level", "loud"], "--log-level", "log_level"),
    (["--umask", "8"], "--umask", "umask"),
    (["-b", "127.0.0.1:notaport"], "--bind", "bind"),
    (["--forwarded-allow-ips", "10.0.0.0/8,bogus"], "--forwarded-allow-ips", "forwarded_allow_ips"),
])
def test_a_bad_command_line_value_names_its_flag_from_the_setting(args, flag, setting):
    with pytest.raises(ConfigError) as e:
        parse_args(args, environ={})
    assert e.value.setting == setting and str(e.value).startswith(flag + ": ")


def test_a_bad_lichen_cmd_args_value_says_where_it_came_from():
    with pytest.raises(ConfigError, match="^LICHEN_CMD_ARGS: --workers: ") as e:
        parse_args([], environ={"LICHEN_CMD_ARGS": "-w 0"})
    assert e.value.setting == "workers"


@pytest.mark.parametrize("args,conf,env,expected", [
    (["-w", "0"], None, {}, "--workers: must be >= 1"),
    (["--header-timeout", "x"], None, {}, "--header-timeout: expected a number"),
    (["-c", "{conf}"], 'workers = "a"\n', {}, "lichen.conf.py: workers: expected an integer"),
    (["-c", "{conf}"], "keepalive = -1\n", {}, "lichen.conf.py: keepalive: must be >= 0"),
    ([], None, {"LICHEN_CMD_ARGS": "--max-body -5"}, "LICHEN_CMD_ARGS: --max-body: must be > 0"),
    (["-b", "tcp:http"], None, {}, "--bind: bad port"),
    (["-w"], None, {}, "-w/--workers/--processes: expected one argument"),
])
def test_the_command_reports_a_bad_value_in_one_line_and_exits_2(tmp_path, args, conf, env, expected):
    if conf is not None:
        (tmp_path / "lichen.conf.py").write_text(conf)
    args = [a.format(conf=tmp_path / "lichen.conf.py") for a in args]
    out = subprocess.run([sys.executable, "-m", "lichen", *args], capture_output=True, text=True, timeout=30,
                         cwd=ROOT, env={**os.environ, **env})
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1 and expected in out.stderr and "Traceback" not in out.stderr


# The server's view ------------------------------------------------------------------
def test_server_keywords_and_settings_object_both_work():
    from lichen.wsgi import WSGIServer
    from wsgi_helpers import hello_app

    assert WSGIServer(("127.0.0.1", 0), hello_app, keepalive_timeout=30).settings.keepalive_timeout == 30
    server = WSGIServer(("127.0.0.1", 0), hello_app, settings=Settings(max_body=5), header_timeout=3)
    assert (server.settings.max_body, server.settings.header_timeout) == (5, 3)


def test_a_process_setting_given_to_a_server_is_a_clear_error():
    from lichen.wsgi import WSGIServer
    from wsgi_helpers import hello_app

    with pytest.raises(SettingError, match="a setting of the lichen command") as e:
        WSGIServer(("127.0.0.1", 0), hello_app, workers=4)
    assert e.value.setting == "workers"
    with pytest.raises(TypeError):
        Settings(workers=4)


def test_an_unknown_server_keyword_lists_the_known_ones():
    from lichen.wsgi import WSGIServer
    from wsgi_helpers import hello_app

    with pytest.raises(SettingError, match="known: backlog, max_connections, keepalive_timeout") as e:
        WSGIServer(("127.0.0.1", 0), hello_app, keep_alive=5)
    assert e.value.setting == "keep_alive" and "workers" not in str(e.value)


def test_the_commands_settings_are_a_settings_its_server_takes():
    from lichen.wsgi import WSGIServer
    from wsgi_helpers import hello_app

    st = parse_args(["-w", "3", "--keep-alive", "4"], environ={}).settings
    assert isinstance(st, Settings)
    assert WSGIServer(("127.0.0.1", 0), hello_app, settings=st).settings.keepalive_timeout == 4.0


# Docs -------------------------------------------------------------------------------
def test_the_readme_tables_are_the_generated_ones():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for scope in (PROCESS, SERVER):
        assert reference(scope) in readme, f"README's {scope} table is stale: run python -m lichen.config"
