# lichen.apploader: find the WSGI application named on the command line.
#
# Strategy: the APP string is parsed with `ast`, never evaluated. Accepted:
# `module:attr`, `module:attr.sub`, `module:factory()`, a factory call with
# literal arguments (`module:create_app('prod', debug=False)`), the dotted
# `module.attr` form twistd uses, and a bare `module` (its `application` or
# `app`). Every failure is an AppLoadError with a one-line reason.
from __future__ import annotations

import ast
import importlib
import os
import sys
from typing import Any, Callable

__all__ = ["AppLoadError", "load_app", "parse_app_spec"]


class AppLoadError(Exception):
    """The application could not be loaded; str() is a one-line reason."""


def parse_app_spec(spec: str) -> tuple[str, list[str] | None, tuple[Any, ...] | None, dict[str, Any] | None]:
    """Split APP into (module, attribute path or None, call args, call kwargs).
    args/kwargs are None when the target is not called."""
    spec = spec.strip()
    if not spec:
        raise AppLoadError("empty application name")
    module, sep, target = spec.partition(":")
    if not sep:
        return module, None, None, None
    if not module:
        raise AppLoadError(f"{spec!r}: missing module name before ':'")
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
            raise AppLoadError(f"no module named {module!r} (on sys.path from {os.getcwd()})") from None
        raise AppLoadError(f"importing {module!r} failed: {type(e).__name__}: {e}") from None
    except Exception as e:
        raise AppLoadError(f"importing {module!r} failed: {type(e).__name__}: {e}") from None


def load_app(spec: str, chdir: str | None = None, pythonpath: list[str] | None = None) -> Callable[..., Any]:
    """Import and return the WSGI callable named by `spec`."""
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
        except Exception as e:
            raise AppLoadError(f"the factory {spec!r} raised {type(e).__name__}: {e}") from None
    if not callable(obj):
        raise AppLoadError(f"{spec!r} is {type(obj).__name__}, not a WSGI callable")
    return obj


def _load_without_colon(name: str) -> Any:
    """`module` (its application/app) or twistd's dotted `module.attr`."""
    module = None
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name or "." not in name:
            raise AppLoadError(f"no module named {e.name or name!r} (on sys.path from {os.getcwd()})") from None
        # `pkg.attr` where pkg.attr is not a module: the attribute form.
    except Exception as e:
        raise AppLoadError(f"importing {name!r} failed: {type(e).__name__}: {e}") from None
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
