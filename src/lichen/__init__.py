"""lichen: a greenlet-based cooperative WSGI server over a small libev loop.

    from lichen import WSGIServer
    WSGIServer(("", 5000), app).serve_forever()

Layers, each importing only those below it: ``lichen._ev`` (cffi binding) ->
``lichen.loop`` -> ``lichen.hub`` -> ``lichen.socket``/``lichen.sync`` ->
``lichen.server`` -> ``lichen.wsgi``; ``lichen.http`` is the I/O-free protocol.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

# The one place lichen's version is written: pyproject.toml reads it from here
# (setuptools' dynamic version) and `lichen --version` prints it.
__version__ = "0.1.0"

__all__ = ["WSGIServer", "WSGIHandler", "StreamServer", "Settings", "blocking", "serve_in_thread", "spawn", "sleep",
           "Timeout", "__version__"]

# Each public name and the module it lives in. They are imported on first use:
# `import lichen` or `import lichen.http` must not load the event loop.
_LAZY = {
    "WSGIServer": "lichen.wsgi",
    "WSGIHandler": "lichen.wsgi",  # (with WSGIServer: gevent.pywsgi's two names)
    "StreamServer": "lichen.server",
    "Settings": "lichen.settings",
    "blocking": "lichen.wsgi.offload",
    "serve_in_thread": "lichen.embed",
    "spawn": "lichen.hub",
    "sleep": "lichen.hub",
    "Timeout": "lichen.hub",
}

if TYPE_CHECKING:  # the same names, spelled out for type checkers and IDEs
    from lichen.embed import serve_in_thread
    from lichen.hub import Timeout, sleep, spawn
    from lichen.server import StreamServer
    from lichen.settings import Settings
    from lichen.wsgi import WSGIHandler, WSGIServer
    from lichen.wsgi.offload import blocking


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lichen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups no longer come here
    return value


def __dir__() -> list[str]:
    # The public names (loaded or not), the module's dunders and the
    # submodules imported so far; not the helpers this file imports.
    own = globals()
    submodules = {n for n, v in own.items() if isinstance(v, ModuleType) and v.__name__ == f"{__name__}.{n}"}
    return sorted({n for n in own if n.startswith("__")} | set(__all__) | submodules)
