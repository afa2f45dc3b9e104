# lichen.settings: every setting, server and process alike, declared once.
#
# Strategy: a setting is one field written with setting(...) in a frozen
# dataclass: the annotation is its type, and the entry carries the default,
# the validator, the help line, the command-line flags with their aliases
# (gunicorn's, uWSGI's and twistd's spellings among them), the config-file
# names it answers to (gunicorn's setting names among them) and the
# environment variables that give its default. Settings holds what servers read (WSGIServer, StreamServer);
# CommandSettings adds what only the `lichen` command reads (bind, workers,
# logging...), so one CommandSettings object carries everything the command
# was told and is still a Settings its workers hand to their server. TABLE
# holds every entry as a Spec, in declaration order; the command line, config
# files, the environment (lichen.config) and the reference tables of the
# README are generated from it. A bad value raises SettingError with the
# setting's name as an attribute. This module imports nothing from lichen: the
# master reads it without loading the hub.
from __future__ import annotations

import ast
import dataclasses
import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Settings", "CommandSettings", "Spec", "TABLE", "SERVER", "PROCESS", "SettingError", "build",
           "setting", "worker_kind", "CERT_REQS"]

SERVER = "server"    # read by WSGIServer/StreamServer (and so by the command's workers)
PROCESS = "process"  # read only by the `lichen` command's master and workers


class SettingError(ValueError):
    """A setting has a bad value (or is unknown). `setting` is its name,
    `problem` what is wrong; str() is "name: problem"."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(setting, problem)
        self.setting = setting
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.setting}: {self.problem}"


# Validators get a value of the right type (never None) and raise ValueError
# with what is wrong; the Spec adds the setting's name.
def _positive(v: Any) -> None:
    if v <= 0:
        raise ValueError(f"must be > 0, got {v!r}")


def _non_negative(v: Any) -> None:
    if v < 0:
        raise ValueError(f"must be >= 0, got {v!r}")


def _at_least_one(v: Any) -> None:
    if v < 1:
        raise ValueError(f"must be >= 1, got {v!r}")


def _no_line_breaks(v: str) -> None:
    if any(c in v for c in "\r\n\0"):
        raise ValueError("must not contain CR, LF or NUL")


def _allow_list(v: str) -> None:
    for item in (x.strip() for x in v.split(",")):
        if item and item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None


def _header_name(v: str) -> None:
    if v and not all(c.isalnum() or c == "-" for c in v):
        raise ValueError(f"must be a header name like X-Forwarded-Host, got {v!r}")


def _umask(v: int) -> None:
    if not 0 <= v <= 0o777:
        raise ValueError(f"must be an octal mode between 000 and 777, got {v:o}")


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# gunicorn's -k values lichen stands in for, under every spelling gunicorn
# takes (short names, class paths, egg:gunicorn#name), lower-cased.
_WORKER_CLASSES = {
    "lichen": "lichen", "lichen.gunicorn.worker": "lichen", "sync": "sync", "gthread": "gthread",
    "gevent": "gevent", "gevent_wsgi": "gevent", "gevent_pywsgi": "gevent", "eventlet": "eventlet",
    "gunicorn.workers.sync.syncworker": "sync", "gunicorn.workers.gthread.threadworker": "gthread",
    "gunicorn.workers.ggevent.geventworker": "gevent", "gunicorn.workers.ggevent.geventpywsgiworker": "gevent",
    "gunicorn.workers.geventlet.eventletworker": "eventlet",
}
CERT_REQS = {"none": 0, "optional": 1, "required": 2}


def worker_kind(value: str) -> str | None:
    """The kind of gunicorn worker a -k value names (lichen, sync, gthread,
    gevent, eventlet), or None for one lichen cannot stand in for."""
    return _WORKER_CLASSES.get(value.strip().lower().removeprefix("egg:gunicorn#"))


def _worker_class(v: str) -> None:
    if worker_kind(v) is None:
        raise ValueError(f"{v!r} is no worker lichen can stand in for: lichen serves WSGI apps with its own "
                         "greenlet workers (it takes lichen, sync, gthread, gevent, eventlet and gunicorn's "
                         "class paths for them)")


def _key_values(v: tuple[str, ...]) -> None:
    for item in v:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip() or "\0" in item:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")


def _cert_reqs_text(text: str) -> int:
    name = text.strip().lower().removeprefix("cert_")
    if name.isdigit():
        return int(name)
    if name not in CERT_REQS:
        raise ValueError(f"none, optional or required (or 0, 1, 2), got {text!r}")
    return CERT_REQS[name]


def _cert_reqs(v: int) -> None:
    if v not in CERT_REQS.values():
        raise ValueError(f"must be 0 (none), 1 (optional) or 2 (required), got {v!r}")


def _cipher_list(v: str) -> None:
    # ssl only when a list is given: the master otherwise never loads OpenSSL.
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(v)
    except ssl.SSLError:
        raise ValueError(f"no cipher matches {v!r} (an OpenSSL cipher list like ECDHE+AESGCM)") from None


def _log_level(v: str) -> None:
    if v.lower() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, got {v!r}")


def _octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise ValueError("an octal number like 027") from None


def _dict_literal(text: str) -> dict:
    # A Python dict literal, parsed, never evaluated.
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError("a Python dict literal like {'version': 1}") from None
    if not isinstance(value, dict):
        raise ValueError("a Python dict literal like {'version': 1}")
    return value


def _truth(text: str) -> bool:
    s = text.strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


# What each base type accepts as a value, and how it is read from text.
_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                      "dict": (dict,)}
_FROM_TEXT: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "bool": _truth,
                                               "dict": _dict_literal}
_EXPECTED = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
             "dict": "a dict"}


@dataclass(frozen=True)
class Spec:
    """One setting's declaration: everything the command line, config files,
    the environment, the docs and validation need to know about it."""

    name: str
    type: str                 # the annotation: "int", "float | None", "tuple[str, ...]" (repeats)...
    default: Any
    help: str
    scope: str                # SERVER or PROCESS
    check: Callable[[Any], None] | None = None   # raises ValueError saying what is wrong
    parse: Callable[[str], Any] | None = None    # reads text when the type's own reading won't do
    flags: tuple[str, ...] = ()                  # command-line flags, the canonical one first
    names: tuple[str, ...] = ()                  # config-file names: its own, then aliases
    env: tuple[str, ...] = ()                    # environment variables giving its default
    env_format: str = "{}"                       # the value an environment variable stands for
    presets: tuple[tuple[str, Any], ...] = ()    # flags that set a fixed value (--stall-detector)
    metavar: str | None = None
    positional: bool = False                     # also the command line's positional argument

    @property
    def optional(self) -> bool:
        """None is a valid value."""
        return self.type.endswith(" | None")

    @property
    def repeat(self) -> bool:
        """Given several times on the command line; a tuple of its items."""
        return self.type.startswith("tuple[")

    @property
    def switch(self) -> bool:
        """A flag without a value."""
        return self.type == "bool"

    @property
    def base(self) -> str:
        """The type of one item: int, float, str, bool or dict."""
        t = self.type.removesuffix(" | None")
        return t[6:].split(",")[0].strip() if self.repeat else t

    @property
    def flag(self) -> str:
        """The flag messages name the setting by."""
        return next((f for f in self.flags if f.startswith("--")), "--" + self.name.replace("_", "-"))

    def coerce(self, value: Any) -> Any:
        """`value` as this setting's type, validated: text from the command
        line or the environment, or a Python value from a config file (an int
        where a float is wanted, one string for a repeating setting)."""
        try:
            if self.repeat:
                items = [value] if isinstance(value, str) else list(value)
                value = tuple(self._one(v) for v in items)
            else:
                value = self._one(value)
        except (TypeError, ValueError) as e:
            expected = _EXPECTED[self.base] if self.parse is None else str(e)
            if self.repeat and not isinstance(value, (str, list, tuple)):
                expected = "a string or a list of strings"
            raise SettingError(self.name, f"expected {expected}, got {value!r}") from None
        self.validate(value)
        return value

    def _one(self, v: Any) -> Any:
        if isinstance(v, str):
            if self.optional and v.strip().lower() == "none":
                return None
            return (self.parse or _FROM_TEXT[self.base])(v)
        if self.base == "float" and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        if self.base == "int" and type(v) is not int and isinstance(v, int) and not isinstance(v, bool):
            return int(v)  # an IntEnum from a config file (ssl.CERT_REQUIRED) as the number it is
        return v

    def validate(self, value: Any) -> None:
        """Raise SettingError unless `value` is of this setting's type and passes its check."""
        if value is None and self.optional:
            return
        kinds = _KINDS[self.base]
        items = value if self.repeat and isinstance(value, tuple) else (value,)
        if (self.repeat and not isinstance(value, tuple)) or not all(
                isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool)) for v in items):
            raise SettingError(self.name, f"must be {self.type}, got {type(value).__name__} {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(self.name, f"must be a finite number, got {value!r}")
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as e:
                raise SettingError(self.name, str(e)) from None


TABLE: dict[str, Spec] = {}
_DECLARED = "lichen.setting"


def setting(default: Any, help: str, *, check: Callable[[Any], None] | None = None,
            parse: Callable[[str], Any] | None = None, flags: tuple[str, ...] | None = None,
            names: tuple[str, ...] = (), env: tuple[str, ...] = (), env_format: str = "{}",
            presets: tuple[tuple[str, Any], ...] = (), metavar: str | None = None,
            positional: bool = False) -> Any:
    """Declare a setting (a field of Settings or CommandSettings). `flags`
    defaults to --its-name; `names` are config-file aliases besides its own
    name; `env` lists variables that give its default, each read as
    `env_format` with the variable's value in place of {}."""
    return field(default=default, metadata={_DECLARED: dict(
        help=help, check=check, parse=parse, flags=flags, names=names, env=env, env_format=env_format,
        presets=presets, metavar=metavar, positional=positional)})


def _header(default: str, help: str) -> Any:
    """A setting naming a request header."""
    return setting(default, help, check=_header_name, metavar="HEADER")


def _declare(scope: str) -> Callable[[type], type]:
    """Make the class a frozen dataclass and enter its new fields in TABLE."""

    def wrap(cls: type) -> type:
        cls = dataclass(frozen=True)(cls)
        for f in dataclasses.fields(cls):
            if f.name in TABLE:
                continue  # inherited
            d = dict(f.metadata[_DECLARED])
            d["flags"] = d["flags"] if d["flags"] is not None else ("--" + f.name.replace("_", "-"),)
            d["names"] = (f.name, *d["names"])
            TABLE[f.name] = Spec(f.name, str(f.type), f.default, scope=scope, **d)
        return cls

    return wrap


@_declare(SERVER)
class Settings:
    """All tunables of lichen's servers (WSGIServer and StreamServer keyword
    arguments). Defaults are documented here only."""

    backlog: int = setting(2048, "listen() backlog of each listening socket", check=_positive)
    max_connections: int | None = setting(
        None, "connections served at once; accepting pauses at the cap until one closes. None: derived "
              "from the file-descriptor limit (all but 1/16 of it, at least 32 kept free)", check=_positive,
        flags=("--max-connections", "--worker-connections"), names=("worker_connections",))
    keepalive_timeout: float = setting(
        75.0, "seconds an idle keep-alive connection is kept (longer than common proxy idle timeouts); "
              "0 disables keep-alive", check=_non_negative, flags=("--keep-alive", "--keepalive-timeout"),
        names=("keepalive",))
    header_timeout: float = setting(
        20.0, "seconds from the first byte of a request until its header section must be complete "
              "(slowloris guard); answered with 408", check=_positive)
    body_timeout: float = setting(30.0, "seconds the request body may stay silent between reads", check=_positive)
    write_timeout: float = setting(60.0, "seconds a client may block our writes before it is cut off",
                                   check=_positive)
    max_request_line: int = setting(8190, "longest request line in bytes, without its CRLF (414 beyond)",
                                    check=_positive, flags=("--max-request-line", "--limit-request-line"),
                                    names=("limit_request_line",))
    max_header_bytes: int = setting(
        65536, "largest header section in bytes: the field lines with their CRLFs (431 beyond); a "
               "chunked body's trailers get as much again", check=_positive)
    max_header_count: int = setting(100, "most header fields in a request (431 beyond)", check=_positive,
                                    flags=("--max-header-count", "--limit-request-fields"),
                                    names=("limit_request_fields",))
    max_field_size: int = setting(
        8190, "longest header field line in bytes, with its CRLF (431 beyond); chunk-size lines are held "
              "to it too", check=_positive,
        flags=("--max-field-size", "--limit-request-field-size", "--limit-request-field_size"),
        names=("limit_request_field_size",))
    max_body: int | None = setting(
        1 << 30, "largest request body in bytes (413 beyond); None for no limit", check=_positive)
    max_discard: int = setting(
        1 << 20, "unread request body drained before the next keep-alive request; beyond it the "
                 "connection closes", check=_non_negative)
    graceful_timeout: float = setting(
        30.0, "seconds a graceful stop (stop(), TERM, HUP) lets requests in flight finish",
        check=_non_negative)
    server_header: str | None = setting("lichen", "value of the Server header; None to leave it out",
                                        check=_no_line_breaks)
    access_log_format: str = setting(
        '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        "access log line, with gunicorn's atoms (h, l, u, t, r, m, U, q, H, s, B, b, f, a, T, M, D, L, p, "
        "{header}i, {header}o, {var}e)", flags=("--access-log-format", "--access-logformat"),
        names=("access_logformat",), metavar="FMT")
    forwarded_allow_ips: str = setting(
        "127.0.0.1,::1", "proxies (IPs, CIDR networks, or '*') whose client address (X-Forwarded-For, X-Real-IP, "
                         "Forwarded for=) and scheme (X-Forwarded-Proto, Forwarded proto=) headers are trusted; "
                         "unix-socket peers always are. From other peers these headers are removed from the environ",
        check=_allow_list, metavar="IPS")
    trust_forwarded_host: bool = setting(
        False, "also trust X-Forwarded-Host, X-Forwarded-Port, X-Forwarded-Prefix and Forwarded host= from "
               "trusted proxies (they set HTTP_HOST, SERVER_NAME, SERVER_PORT, SCRIPT_NAME). Turn on only when "
               "every such proxy sets or overwrites all three headers (nginx passes a client's own through "
               "unchanged); off, they are removed from the environ")
    forwarded_for_header: str = _header("X-Forwarded-For", "header with the client address chain")
    forwarded_proto_header: str = _header("X-Forwarded-Proto", "header with the original scheme")
    forwarded_host_header: str = _header("X-Forwarded-Host", "header with the original Host")
    forwarded_port_header: str = _header("X-Forwarded-Port", "header with the original port")
    forwarded_prefix_header: str = _header("X-Forwarded-Prefix", "header with the mount path (SCRIPT_NAME)")
    real_ip_header: str = _header("X-Real-IP", "header with the client address (nginx's common recipe)")
    proxy_protocol: bool = setting(False, "expect a PROXY protocol v1/v2 header at the start of every connection")
    proxy_allow_ips: str = setting("127.0.0.1,::1", "peers allowed to send a PROXY protocol header",
                                   check=_allow_list, flags=("--proxy-allow-ips", "--proxy-allow-from"),
                                   metavar="IPS")
    defer_accept: bool = setting(
        True, "TCP_DEFER_ACCEPT on TCP listeners (Linux): a connection is accepted once its first bytes "
              "arrive, which saves a wasted read and a wake-up for each new connection")
    raise_fd_limit: bool = setting(
        True, "at start, raise the soft file-descriptor limit (RLIMIT_NOFILE) to the hard limit, once per "
              "process, and log it, as nginx and Go do; a soft limit of 1,024 would stop the server near "
              "a thousand connections")
    threads: int = setting(
        0, "run the WSGI app in a pool of this many OS threads (for blocking apps); socket I/O, parsing "
           "and idle connections stay on the hub. 0 runs the app on greenlets", check=_non_negative)
    stall_threshold: float | None = setting(
        None, "log the stack of a greenlet that keeps the hub from running for longer than this many "
              "seconds (logger lichen.stall); None turns the detector off", check=_positive,
        presets=(("--stall-detector", 1.0),))
    websocket: bool = setting(
        True, "accept RFC 6455 websocket upgrades: the app finds environ['wsgi.websocket'] (gevent-websocket's "
              "interface); off, an upgrade request reaches the app as a plain request")
    websocket_max_message: int = setting(
        16 << 20, "largest websocket message in bytes (after decompression); a bigger one closes the "
                  "websocket with 1009", check=_positive)
    websocket_ping_interval: float = setting(
        20.0, "seconds of silence from a websocket client after which the server pings it (keeps proxies "
              "from cutting quiet websockets, finds vanished clients); 0 sends no pings", check=_non_negative)
    websocket_idle_timeout: float = setting(
        60.0, "seconds a websocket client may send nothing, not even the answer to a ping, before the "
              "server closes the connection; 0: never", check=_non_negative)
    websocket_close_timeout: float = setting(
        5.0, "seconds the server waits for a websocket client to answer a close frame before it cuts "
             "the connection", check=_positive)
    websocket_compression: bool = setting(
        True, "negotiate permessage-deflate (RFC 7692) with websocket clients that offer it; no "
              "compression context is kept between messages, so an idle websocket holds none")
    accept_backoff: float = setting(
        0.05, "first pause in seconds after accept() fails for lack of file descriptors "
              "(doubles up to 1 s)", check=_positive)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            TABLE[f.name].validate(getattr(self, f.name))

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated)."""
        return build(self, **changes)

    def describe(self) -> str:
        """One line per setting: name = value  # help."""
        return "\n".join(f"{f.name} = {getattr(self, f.name)!r}  # {TABLE[f.name].help}"
                         for f in dataclasses.fields(self))


@_declare(PROCESS)
class CommandSettings(Settings):
    """Everything the `lichen` command is told: the server settings plus the
    ones only its master and workers read. It is a Settings, so a worker hands
    it to its WSGIServer as it is; a server ignores the fields it does not
    know (passing one of them as a keyword to a server is an error)."""

    wsgi_app: str | None = setting(
        None, "the WSGI app: module:app, module:create_app(), \"module:create_app('prod', debug=False)\", or "
              "module.app (--module and --wsgi are uWSGI's and twistd's spellings); default: lichen's demo app",
        flags=("--module", "--wsgi"), metavar="APP", positional=True)
    wsgi_file: str | None = setting(
        None, "load the WSGI app from this Python file instead (uWSGI's --wsgi-file): its --callable, else its "
              "`application` or `app`", metavar="FILE")
    callable: str | None = setting(
        None, "the name of the WSGI callable in --wsgi-file, or in an APP given without :NAME (uWSGI's "
              "--callable)", metavar="NAME")
    bind: tuple[str, ...] = setting(
        ("127.0.0.1:8000",), "address to listen on: host:port, host (port 8000), :port (every interface), "
                             "[::1]:port, tcp://host:port, unix:/path, fd://N, tcp:PORT[:interface=ADDR]; "
                             "repeatable (--http, --http-socket, --port and --listen are uWSGI's and twistd's "
                             "spellings); $PORT binds 0.0.0.0:$PORT when no bind is given",
        flags=("-b", "--bind", "--http", "--http-socket", "--port", "--listen"), env=("PORT",),
        env_format="0.0.0.0:{}", metavar="ADDR")
    workers: int = setting(1, "worker processes (--processes is uWSGI's spelling)", check=_at_least_one,
                           flags=("-w", "--workers", "--processes"), env=("WEB_CONCURRENCY",))
    worker_class: str = setting(
        "lichen", "gunicorn's -k: sync, gthread, gevent and eventlet (or their class paths) are accepted with "
                  "a note of what lichen does instead: its greenlet workers serve them all",
        check=_worker_class, flags=("-k", "--worker-class"), metavar="CLASS")
    timeout: float = setting(
        30.0, "a worker whose event loop is blocked longer than this many seconds is killed and replaced; "
              "0 disables", check=_non_negative, flags=("-t", "--timeout"))
    max_requests: int = setting(0, "restart a worker after this many requests (0: never)", check=_non_negative)
    max_requests_jitter: int = setting(
        0, "add up to this many to max-requests, per worker, so workers don't restart together",
        check=_non_negative)
    preload_app: bool = setting(
        False, "load the app once in the master before the workers fork (HUP then restarts workers "
               "without loading new code)", flags=("--preload",))
    reuse_port: bool = setting(False, "set SO_REUSEPORT on listening sockets")
    umask: int | None = setting(None, "umask (octal) applied when creating unix sockets", check=_umask,
                                parse=_octal, flags=("-m", "--umask"), metavar="MASK")
    user: str | None = setting(None, "run the workers as this user (name or uid), switched to after binding",
                               flags=("-u", "--user", "--uid"), metavar="USER")
    group: str | None = setting(None, "run the workers as this group (name or gid); default: the user's own "
                                      "group", flags=("-g", "--group", "--gid"), metavar="GROUP")
    raw_env: tuple[str, ...] = setting(
        (), "set an environment variable for the app (KEY=VALUE); repeatable", check=_key_values,
        flags=("-e", "--env"), metavar="KEY=VALUE")
    chdir: str | None = setting(None, "change to this directory before loading the app", metavar="DIR")
    pythonpath: str | None = setting(None, "comma-separated directories to add to sys.path", metavar="DIRS")
    reload: bool = setting(False, "restart workers when a source file changes (development)")
    reload_extra_files: tuple[str, ...] = setting(
        (), "with --reload, also restart workers when this file changes; repeatable",
        flags=("--reload-extra-file",), metavar="FILE")
    daemon: bool = setting(False, "detach from the terminal and run in the background (write a --pid file "
                                  "to stop it by)", flags=("-D", "--daemon"))
    proc_name: str | None = setting(None, "the process name of the master and its workers (ps, top)",
                                    flags=("-n", "--name"), metavar="NAME")
    access_logfile: str | None = setting(None, "access log file ('-' for stdout)", names=("accesslog",),
                                         metavar="FILE")
    error_logfile: str = setting("-", "error log file ('-' for stderr)", flags=("--error-logfile", "--log-file"),
                                 names=("errorlog",), metavar="FILE")
    log_level: str = setting("info", f"log level: {', '.join(LOG_LEVELS)}", check=_log_level, names=("loglevel",),
                             metavar="LEVEL")
    no_access_log: bool = setting(False, "turn the access log off")
    capture_output: bool = setting(False, "send the app's stdout and stderr to the --error-logfile file")
    logconfig: str | None = setting(None, "configure logging from this file (logging.config.fileConfig)",
                                    flags=("--log-config",), metavar="FILE")
    logconfig_dict: dict | None = setting(
        None, "configure logging from this dict (logging.config.dictConfig; a Python dict literal on the "
              "command line)", flags=("--log-config-dict",), metavar="DICT")
    logconfig_json: str | None = setting(None, "configure logging from this JSON file (logging.config.dictConfig)",
                                         flags=("--log-config-json",), metavar="FILE")
    certfile: str | None = setting(None, "TLS certificate chain (PEM)", metavar="FILE")
    keyfile: str | None = setting(None, "TLS private key (PEM)", metavar="FILE")
    ca_certs: str | None = setting(None, "CA certificates (PEM) to verify client certificates with",
                                   metavar="FILE")
    cert_reqs: int = setting(0, "client certificates: 0/none, 1/optional or 2/required (needs --ca-certs)",
                             check=_cert_reqs, parse=_cert_reqs_text, metavar="REQ")
    ciphers: str | None = setting(None, "TLS ciphers (an OpenSSL cipher list)", check=_cipher_list,
                                  metavar="LIST")
    pidfile: str | None = setting(None, "write the master's PID to this file", flags=("-p", "--pid", "--pidfile"),
                                  metavar="FILE")


def build(base: Settings | None = None, **changes: Any) -> Settings:
    """Settings from `base` (or the defaults) with `changes`, validated. An
    unknown name is rejected with the list of known ones, a setting of the
    `lichen` command with a word on where it belongs."""
    cls = type(base) if base is not None else Settings
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(changes) - set(known))
    if unknown:
        name = unknown[0]
        if name in TABLE and TABLE[name].scope == PROCESS:
            raise SettingError(name, f"a setting of the lichen command ({TABLE[name].flag}), not of a server")
        raise SettingError(name, f"unknown setting{'s ' + ', '.join(unknown) if len(unknown) > 1 else ''}; "
                                 f"known: {', '.join(known)}")
    if base is None:
        return Settings(**changes)
    return dataclasses.replace(base, **changes)
