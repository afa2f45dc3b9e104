# lichen.apploader: find the WSGI application named on the command line.
#
# Strategy: the APP string is parsed with `ast`, never evaluated. Accepted:
# `module:attr`, `module:attr.sub`, `module:factory()`, a factory call with
# literal arguments (`module:create_app('prod', debug=False)`), the dotted
# `module.attr` form twistd uses, a bare `module` (its `application` or
# `app`, or the name uWSGI's --callable gives), and a Python file (uWSGI's
# --wsgi-file). Every failure is an AppLoadError with a one-line reason
# (Python's own words for a missing module: "No module named 'x'"); the
# exception it stands for is its __cause__, for a traceback at debug level.
# Standard library only: with --preload the master loads the app.
from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from typing import Any, Callable

__all__ = ["AppLoadError", "load_app", "load_app_file", "load_configured", "parse_app_spec"]


class AppLoadError(Exception):
    """The application could not be loaded; str() is a one-line reason."""


def parse_app_spec(spec: str) -> tuple[str, list[str] | None, tuple[Any, ...] | None, dict[str, Any] | None]:
    """Split APP into (module, attribute path or None, call args, call kwargs).
    args/kwargs are None when the target is not called."""
    spec = spec.strip()
    if not spec:
        raise AppLoadError("empty application name")
    module, sep, target = spec.partition(":")
    if sep and not module:
        raise AppLoadError(f"{spec!r}: missing module name before ':'")
    if not all(part.isidentifier() for part in module.split(".")):
        raise AppLoadError(f"{spec!r}: {module!r} is not a module name (dotted Python names, as in pkg.module:app)")
    if not sep:
        return module, None, None, None
    try:
        node = ast.parse(target, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"{spec!r}: {target!r} is not an attribute name or a call") from None
    args: tuple[Any, ...] | None = None
    kwargs: dict[str, Any] | None = None
    if isinstance(node, ast.Call):
        try:
            args = tuple(ast.literal_eval(a) for a in node.args)
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
        except ValueError:
            raise AppLoadError(f"{spec!r}: factory arguments must be literals (strings, numbers, "
                               "True/False/None, lists, dicts)") from None
        if any(kw.arg is None for kw in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
            raise AppLoadError(f"{spec!r}: * and ** arguments are not allowed")
        node = node.func
    path: list[str] = []
    while isinstance(node, ast.Attribute):
        path.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppLoadError(f"{spec!r}: {target!r} is not an attribute name or a call")
    path.append(node.id)
    path.reverse()
    return module, path, args, kwargs


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise AppLoadError(f"No module named {module!r}") from e
        raise AppLoadError(f"importing {module!r} failed: {type(e).__name__}: {e}") from e
    except (Exception, SystemExit) as e:  # an app that calls sys.exit() as it loads
        raise AppLoadError(f"importing {module!r} failed: {type(e).__name__}: {e}") from e


def _prepare(chdir: str | None, pythonpath: list[str] | None) -> None:
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as e:
            raise AppLoadError(f"--chdir {chdir!r}: {e.strerror}") from None
    for p in reversed(pythonpath or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def load_app(spec: str, chdir: str | None = None, pythonpath: list[str] | None = None,
             callable_name: str | None = None) -> Callable[..., Any]:
    """Import and return the WSGI callable named by `spec`; `callable_name`
    (uWSGI's --callable) names it in a `spec` that names a module alone."""
    _prepare(chdir, pythonpath)
    if callable_name and ":" not in spec:
        spec = f"{spec}:{callable_name}"
    module_name, path, args, kwargs = parse_app_spec(spec)
    if path is None:
        obj = _load_without_colon(module_name)
    else:
        obj = _import(module_name)
        for i, name in enumerate(path):
            try:
                obj = getattr(obj, name)
            except AttributeError:
                where = ".".join([module_name] + path[:i])
                raise AppLoadError(f"{where!r} has no attribute {name!r}") from None
    if args is not None:
        try:
            obj = obj(*args, **(kwargs or {}))
        except (Exception, SystemExit) as e:
            raise AppLoadError(f"the factory {spec!r} raised {type(e).__name__}: {e}") from e
    if not callable(obj):
        raise AppLoadError(f"{spec!r} is {type(obj).__name__}, not a WSGI callable")
    return obj


def load_configured(st: Any) -> Callable[..., Any]:
    """The app a CommandSettings names: --wsgi-file (with --callable), the
    APP, or lichen's demo app when there is neither; --chdir and
    --pythonpath applied first."""
    pythonpath = [p for p in (st.pythonpath or "").split(",") if p]
    if st.wsgi_file:
        return load_app_file(st.wsgi_file, st.callable, chdir=st.chdir, pythonpath=pythonpath)
    if not st.wsgi_app:
        _prepare(st.chdir, pythonpath)
        from lichen.demo import app

        return app
    return load_app(st.wsgi_app, chdir=st.chdir, pythonpath=pythonpath, callable_name=st.callable)


def load_app_file(path: str, callable_name: str | None = None, chdir: str | None = None,
                  pythonpath: list[str] | None = None) -> Callable[..., Any]:
    """The WSGI callable of the Python file `path` (uWSGI's --wsgi-file):
    `callable_name`, else its `application` or `app`. The file is run as
    the module named by its file name, with its folder on sys.path for
    what it imports beside it."""
    _prepare(chdir, pythonpath)
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise AppLoadError(f"--wsgi-file {path!r}: no such file")
    folder = os.path.dirname(full)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = os.path.splitext(os.path.basename(full))[0]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"--wsgi-file {path!r}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        sys.modules.pop(name, None)
        raise AppLoadError(f"running {path!r} failed: {type(e).__name__}: {e}") from e
    for attr in [callable_name] if callable_name else ["application", "app"]:
        obj = getattr(module, attr, None)
        if obj is not None:
            if not callable(obj):
                raise AppLoadError(f"{path}: {attr} is {type(obj).__name__}, not a WSGI callable")
            return obj
    wanted = repr(callable_name) if callable_name else "'application' or 'app'"
    raise AppLoadError(f"{path} has no {wanted}" + ("" if callable_name else "; name it with --callable"))


def _load_without_colon(name: str) -> Any:
    """`module` (its application/app) or twistd's dotted `module.attr`."""
    module = None
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name or "." not in name:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                raise AppLoadError(f"No module named {e.name!r}") from e
            raise AppLoadError(f"importing {name!r} failed: {type(e).__name__}: {e}") from e
        # `pkg.attr` where pkg.attr is not a module: the attribute form.
    except (Exception, SystemExit) as e:
        raise AppLoadError(f"importing {name!r} failed: {type(e).__name__}: {e}") from e
    if module is not None:
        for attr in ("application", "app"):
            obj = getattr(module, attr, None)
            if obj is not None:
                return obj
        if "." not in name:
            raise AppLoadError(f"module {name!r} has no 'application' or 'app'; name it as {name}:NAME")
    mod_name, _, attr = name.rpartition(".")
    mod = _import(mod_name)
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise AppLoadError(f"{mod_name!r} has no attribute {attr!r}") from None
