# lichen.compat: what the `lichen` command makes of other servers' spellings.
#
# Strategy: most of gunicorn's, uWSGI's and twistd's spellings are plain
# aliases in the settings table (lichen.settings); this module holds the
# rest, which are not settings: gunicorn settings lichen has no use for
# (accepted in a config file or as a flag, with a note instead of an error,
# so a gunicorn.conf.py runs as it is), the note that says what lichen does
# instead of a gunicorn worker class, twistd's `web` command line
# (`lichen [-n] web --wsgi APP`), whose default port is 8080, and gunicorn
# 24's `--proxy-protocol MODE` (lichen's is a switch: it reads v1 and v2
# whenever it expects a header). Data and pure functions only: lichen.config
# reads them.
from __future__ import annotations

from typing import Any

__all__ = ["GUNICORN_ONLY", "ALWAYS_NOTE", "worker_class_note", "twistd_web", "TWISTD_PORT", "proxy_mode",
           "gunicorn_argv"]

TWISTD_PORT = "tcp:8080"  # twistd web's default: port 8080 on every interface

_TLS = "lichen builds its TLS context from --certfile, --keyfile, --ca-certs, --cert-reqs and --ciphers"
_NO_SYSLOG = "lichen logs through the logging module: send it to syslog with --log-config-dict"
_PARSER = "lichen's HTTP parser has rules of its own (see the README: How strict lichen is)"
_NO_STATSD = "lichen sends no metrics"
_NO_PASTE = "lichen loads the app named by APP or --wsgi-file, not from a PasteDeploy file"
_HTTP1 = "lichen speaks HTTP/1.1 only"
_WSGI = "lichen serves WSGI apps"
_NO_DIRTY = "lichen has no dirty workers: run such work with --threads or in a service of its own"
_SIGNALS = "lichen's master is driven by signals (HUP, TTIN, TTOU, USR2...)"

# gunicorn settings lichen has no use for: name -> (gunicorn's default, its
# command-line flag or None, whether the flag takes a value, what lichen does).
# A config file that sets one to its default gets a debug line, to another
# value an info line; a flag always an info line.
GUNICORN_ONLY: dict[str, tuple[Any, str | None, bool, str]] = {
    "reload_engine": ("auto", "--reload-engine", True, "lichen's --reload polls the modification times"),
    "spew": (False, "--spew", False, "lichen has no tracer"),
    "sendfile": (None, "--no-sendfile", False, "lichen sends wsgi.file_wrapper files with sendfile"),
    "worker_tmp_dir": (None, "--worker-tmp-dir", True, "the heartbeat files live in the temporary directory"),
    "initgroups": (False, "--initgroups", False, "workers run with --user have no supplementary groups"),
    "tmp_upload_dir": (None, None, False, "lichen keeps request bodies in the socket until the app reads them"),
    "secure_scheme_headers": (
        {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}, None, False,
        "lichen takes the scheme from --forwarded-proto-header of the proxies in --forwarded-allow-ips"),
    "forwarder_headers": ("SCRIPT_NAME,PATH_INFO", "--forwarder-headers", True,
                          "lichen takes SCRIPT_NAME from --forwarded-prefix-header with --trust-forwarded-host"),
    "header_map": ("drop", "--header-map", True, _PARSER),
    "strip_header_spaces": (False, "--strip-header-spaces", False, _PARSER),
    "permit_unconventional_http_method": (False, "--permit-unconventional-http-method", False, _PARSER),
    "permit_unconventional_http_version": (False, "--permit-unconventional-http-version", False, _PARSER),
    "permit_obsolete_folding": (False, "--permit-obsolete-folding", False, _PARSER),
    "casefold_http_method": (False, "--casefold-http-method", False, _PARSER),
    "tolerate_dangerous_framing": (False, "--tolerate-dangerous-framing", False, _PARSER),
    "disable_redirect_access_to_syslog": (False, "--disable-redirect-access-to-syslog", False, _NO_SYSLOG),
    "logger_class": ("gunicorn.glogging.Logger", "--logger-class", True,
                     "configure lichen's loggers with --log-config-dict"),
    "syslog_addr": ("udp://localhost:514", "--log-syslog-to", True, _NO_SYSLOG),
    "syslog": (False, "--log-syslog", False, _NO_SYSLOG),
    "syslog_prefix": (None, "--log-syslog-prefix", True, _NO_SYSLOG),
    "syslog_facility": ("user", "--log-syslog-facility", True, _NO_SYSLOG),
    "enable_stdio_inheritance": (False, "--enable-stdio-inheritance", False,
                                 "a daemon's stdio is /dev/null; see --capture-output"),
    "statsd_host": (None, "--statsd-host", True, _NO_STATSD),
    "statsd_prefix": ("", "--statsd-prefix", True, _NO_STATSD),
    "dogstatsd_tags": ("", "--dogstatsd-tags", True, _NO_STATSD),
    "default_proc_name": (None, None, False, "see --name"),
    "suppress_ragged_eofs": (True, "--suppress-ragged-eofs", False, _TLS),
    "do_handshake_on_connect": (False, "--do-handshake-on-connect", False, "lichen always completes the "
                                "handshake before reading a request"),
    "ssl_version": (None, "--ssl-version", True, "lichen negotiates the best TLS version both sides have"),
    "ssl_context": (None, None, False, _TLS),
    # Newer gunicorn settings (config files only: their flags stay unknown).
    "paste": (None, None, False, _NO_PASTE),
    "raw_paste_global_conf": ([], None, False, _NO_PASTE),
    "root_path": ("", None, False, "lichen takes SCRIPT_NAME from --forwarded-prefix-header with "
                                   "--trust-forwarded-host"),
    "protocol": ("http", None, False, _HTTP1),
    "uwsgi_allow_ips": ("127.0.0.1,::1", None, False, _HTTP1),
    "http_protocols": ("h1", None, False, _HTTP1),
    "http2_cleartext": ("off", None, False, _HTTP1),
    "http2_max_concurrent_streams": (100, None, False, _HTTP1),
    "http2_initial_window_size": (65535, None, False, _HTTP1),
    "http2_max_frame_size": (16384, None, False, _HTTP1),
    "http2_max_header_list_size": (65536, None, False, _HTTP1),
    "http_parser": ("auto", None, False, _PARSER),
    "asgi_loop": ("auto", None, False, _WSGI),
    "asgi_lifespan": ("auto", None, False, _WSGI),
    "asgi_disconnect_grace_period": (3, None, False, _WSGI),
    "websocket_max_message_size": (16777216, None, False, _WSGI),
    "enable_backlog_metric": (False, None, False, _NO_STATSD),
    "dirty_apps": ([], None, False, _NO_DIRTY),
    "dirty_workers": (0, None, False, _NO_DIRTY),
    "dirty_timeout": (300, None, False, _NO_DIRTY),
    "dirty_threads": (1, None, False, _NO_DIRTY),
    "dirty_graceful_timeout": (30, None, False, _NO_DIRTY),
    "on_dirty_starting": (None, None, False, _NO_DIRTY),
    "dirty_post_fork": (None, None, False, _NO_DIRTY),
    "dirty_worker_init": (None, None, False, _NO_DIRTY),
    "dirty_worker_exit": (None, None, False, _NO_DIRTY),
    "control_socket": (None, None, False, _SIGNALS),
    "control_socket_mode": (0o600, None, False, _SIGNALS),
    "control_socket_disable": (False, None, False, _SIGNALS),
    "check_config": (False, None, False, "use --check-config on the command line"),
    "print_config": (False, None, False, "use --print-config on the command line"),
    "config": (None, None, False, "use -c on the command line"),
}
# Set in a config file, these get an info line whatever their value (their
# gunicorn defaults are objects of the ssl module, which the master does not load).
ALWAYS_NOTE = frozenset({"ssl_version"})

_WORKER_NOTES = {
    "sync": "lichen's workers serve many connections at once on greenlets; an app that blocks the worker "
            "(no cooperative I/O) wants --threads N, which runs it in N OS threads per worker",
    "gevent": "lichen's workers are greenlets on libev already, without monkey-patching: the standard "
              "library's blocking calls block the worker; --threads N runs such an app in OS threads",
    "eventlet": "lichen's workers are greenlets on libev already, without monkey-patching: the standard "
                "library's blocking calls block the worker; --threads N runs such an app in OS threads",
}


def worker_class_note(value: str, kind: str, threads: int) -> str | None:
    """One line saying what lichen does instead of gunicorn's worker class
    `value` (of `kind`, see lichen.settings.worker_kind), or None for lichen's own."""
    if kind == "lichen":
        return None
    if kind == "gthread":
        what = (f"lichen runs the app in a pool of {threads} OS threads per worker (--threads), with socket I/O "
                "on the worker's event loop" if threads else
                "lichen runs the app on greenlets; --threads N runs it in a pool of N OS threads per worker, "
                "as gthread does")
    else:
        what = _WORKER_NOTES[kind]
    return f"--worker-class {value}: {what}"


def twistd_web(parsed: dict[str, Any], args: list[str]) -> bool:
    """Whether the command line is twistd's `[-n] web --wsgi APP ...`; if
    so its `web` (and the `-n` before it, twistd's --nodaemon, which lichen
    never needs) are taken out of `parsed`. Only with --wsgi, twistd web's
    own option: `-n web` is otherwise gunicorn's --name, and `web` an app."""
    if not any(a == "--wsgi" or a.startswith("--wsgi=") for a in args):
        return False
    if parsed.get("wsgi_app_positional") == "web":
        del parsed["wsgi_app_positional"]
        return True
    pairs = zip(args, args[1:])
    if parsed.get("proc_name") == "web" and ("-n", "web") in pairs and "wsgi_app_positional" not in parsed:
        del parsed["proc_name"]
        return True
    return False


# gunicorn's --proxy-protocol modes: whether lichen expects a PROXY header.
_PROXY_MODES = {"off": False, "v1": True, "v2": True, "auto": True}


def proxy_mode(value: Any) -> Any:
    """A config file's proxy_protocol as lichen's switch: gunicorn's
    'off', 'v1', 'v2' and 'auto' become False/True; anything else is
    returned for the settings table to read (True, 'yes', ...)."""
    if isinstance(value, str) and value.strip().lower() in _PROXY_MODES:
        return _PROXY_MODES[value.strip().lower()]
    return value


def gunicorn_argv(args: list[str]) -> list[str]:
    """`args` with gunicorn's `--proxy-protocol MODE` / `--proxy-protocol=MODE`
    (off, v1, v2, auto) as lichen's switch: present for v1, v2 and auto,
    left out for off. Other arguments are kept as they are."""
    out: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            out.append(arg)
            out.extend(rest)
            break
        flag, eq, mode = arg.partition("=")
        if flag == "--proxy-protocol" and eq and mode.lower() in _PROXY_MODES:
            out += ["--proxy-protocol"] if _PROXY_MODES[mode.lower()] else []
            continue
        out.append(arg)
        if arg == "--proxy-protocol":
            following = next(rest, None)
            if following is not None and following.lower() in _PROXY_MODES:
                if not _PROXY_MODES[following.lower()]:
                    out.pop()
            elif following is not None:
                out.append(following)
    return out
