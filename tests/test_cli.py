# The command line's app loading and options (lichen.apploader, lichen.config).
import os
import subprocess
import sys

import pytest

from lichen.apploader import AppLoadError, load_app, parse_app_spec
from lichen.config import ConfigError, parse_args

HERE = os.path.dirname(os.path.abspath(__file__))


def call(app, path="/"):
    out = {}

    def sr(status, headers, exc_info=None):
        out["status"] = status

    body = b"".join(app({"PATH_INFO": path}, sr))
    return out["status"], body


def test_module_colon_attribute_form_loads_the_app():
    assert call(load_app("tests.apps.sample:app"))[1].startswith(b"app ")


def test_module_colon_factory_call_form_calls_the_factory():
    assert call(load_app("tests.apps.sample:create_app()"))[1].startswith(b"factory debug=True")


def test_factory_with_literal_arguments_gets_them():
    assert call(load_app("tests.apps.sample:create_app('prod', debug=False)"))[1].startswith(b"prod debug=False")


def test_factory_arguments_are_never_evaluated():
    with pytest.raises(AppLoadError, match="literals"):
        load_app("tests.apps.sample:create_app(__import__('os').getcwd())")


def test_dotted_twistd_form_loads_the_attribute():
    assert call(load_app("tests.apps.sample.app"))[1].startswith(b"app ")


def test_bare_module_form_uses_application():
    assert call(load_app("tests.apps.sample"))[1].startswith(b"app ")


def test_missing_module_is_a_one_line_error():
    with pytest.raises(AppLoadError, match="No module named 'nosuchmodule'") as e:
        load_app("nosuchmodule:app")
    assert "\n" not in str(e.value)


def test_missing_attribute_is_an_error_naming_it():
    with pytest.raises(AppLoadError, match="has no attribute 'nope'"):
        load_app("tests.apps.sample:nope")


def test_factory_that_raises_is_an_error_with_its_reason():
    with pytest.raises(AppLoadError, match="factory exploded"):
        load_app("tests.apps.sample:broken_factory()")


def test_non_callable_target_is_an_error():
    with pytest.raises(AppLoadError, match="not a WSGI callable"):
        load_app("tests.apps.sample:not_callable")


def test_star_arguments_are_rejected():
    with pytest.raises(AppLoadError):
        parse_app_spec("m:f(*args)")


def test_pythonpath_and_chdir_are_applied(tmp_path):
    (tmp_path / "elsewhere_app.py").write_text(
        "def app(e, sr):\n    sr('200 OK', [])\n    return [b'elsewhere']\n")
    cwd = os.getcwd()
    try:
        assert call(load_app("elsewhere_app:app", chdir=str(tmp_path)))[1] == b"elsewhere"
    finally:
        os.chdir(cwd)


def test_bind_is_repeatable_and_defaults_to_localhost_8000():
    assert parse_args([], environ={}).bind == ("127.0.0.1:8000",)
    assert parse_args(["-b", "127.0.0.1:1", "--bind", "unix:/tmp/x.sock"], environ={}).bind == (
        "127.0.0.1:1", "unix:/tmp/x.sock")


def test_uwsgi_and_twistd_spellings_are_aliases():
    cfg = parse_args(["--http", "127.0.0.1:5000", "--module", "myproject:app"], environ={})
    assert cfg.bind == ("127.0.0.1:5000",) and cfg.app == "myproject:app"
    cfg = parse_args(["--port", "tcp:8080", "--wsgi", "myproject.app"], environ={})
    assert cfg.bind == ("tcp:8080",) and cfg.app == "myproject.app"


def test_invalid_value_is_rejected_with_the_option_name():
    with pytest.raises(ConfigError, match="--workers"):
        parse_args(["-w", "0"], environ={})
    with pytest.raises(ConfigError, match="header.timeout"):
        parse_args(["--header-timeout", "-1"], environ={})


def test_config_file_sets_options_and_command_line_wins(tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("workers = 3\nbind = ['127.0.0.1:9999']\nkeepalive = 5\n")
    cfg = parse_args(["-c", str(conf), "-w", "2"], environ={})
    assert (cfg.workers, cfg.bind, cfg.settings.keepalive_timeout) == (2, ("127.0.0.1:9999",), 5.0)


def test_config_file_with_unknown_setting_is_ignored_with_a_warning(tmp_path):
    conf = tmp_path / "lichen.conf.py"
    conf.write_text("wrokers = 3\n")
    cfg = parse_args(["-c", str(conf)], environ={})
    assert cfg.workers == 1 and any("wrokers" in message for _, message in cfg.notes)


def test_lichen_cmd_args_apply_below_the_command_line():
    cfg = parse_args(["-w", "4"], environ={"LICHEN_CMD_ARGS": "-w 2 --max-requests 10"})
    assert (cfg.workers, cfg.max_requests) == (4, 10)


def test_gunicorn_cmd_args_is_read_as_gunicorn_reads_it():
    cfg = parse_args([], environ={"GUNICORN_CMD_ARGS": "--workers=3 --bind=127.0.0.1:7000"})
    assert (cfg.workers, cfg.bind) == (3, ("127.0.0.1:7000",))


def test_lichen_cmd_args_wins_over_gunicorn_cmd_args():
    cfg = parse_args([], environ={"GUNICORN_CMD_ARGS": "-w 3", "LICHEN_CMD_ARGS": "-w 2"})
    assert cfg.workers == 2


def test_a_bad_gunicorn_cmd_args_value_names_the_variable():
    with pytest.raises(ConfigError, match="^GUNICORN_CMD_ARGS: --workers: must be >= 1"):
        parse_args([], environ={"GUNICORN_CMD_ARGS": "-w 0"})


def test_print_config_shows_effective_settings():
    out = subprocess.run([sys.executable, "-m", "lichen", "--print-config", "-w", "3", "--keep-alive", "9"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "workers = 3" in out.stdout and "keepalive_timeout = 9.0" in out.stdout


def test_wrong_app_path_exits_nonzero_with_one_line_reason():
    out = subprocess.run([sys.executable, "-m", "lichen", "-b", "127.0.0.1:0", "nosuchmodule:app"],
                         capture_output=True, text=True, timeout=30, cwd=os.path.dirname(HERE))
    assert out.returncode != 0
    reasons = [line for line in out.stderr.splitlines() if "No module named 'nosuchmodule'" in line]
    assert len(reasons) == 1


def test_bad_option_value_exits_2():
    out = subprocess.run([sys.executable, "-m", "lichen", "--workers", "zero"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "--workers" in out.stderr


def test_help_lists_every_option_and_exits_0():
    out = subprocess.run([sys.executable, "-m", "lichen", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--bind", "--workers", "--timeout", "--graceful-timeout", "--keep-alive", "--max-requests",
                 "--reload", "--forwarded-allow-ips", "--proxy-protocol", "--threads", "--stall-detector",
                 "--access-log-format", "--print-config"):
        assert flag in out.stdout


def test_version_prints_lichens_version():
    import lichen
    out = subprocess.run([sys.executable, "-m", "lichen", "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"lichen {lichen.__version__}"
