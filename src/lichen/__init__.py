"""lichen: a greenlet-based cooperative WSGI server over a small libev loop.

    from lichen import WSGIServer
    WSGIServer(("", 5000), app).serve_forever()

Layers, each importing only those below it: ``lichen._ev`` (cffi binding) ->
``lichen.loop`` -> ``lichen.hub`` -> ``lichen.socket``/``lichen.sync`` ->
``lichen.server`` -> ``lichen.wsgi``; ``lichen.http`` is the I/O-free protocol.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["WSGIServer", "StreamServer", "Settings", "blocking", "serve_in_thread", "spawn", "sleep", "Timeout",
           "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import lichen.http` must not load the event loop.
    if name == "WSGIServer":
        from lichen.wsgi import WSGIServer

        return WSGIServer
    if name == "StreamServer":
        from lichen.server import StreamServer

        return StreamServer
    if name == "Settings":
        from lichen.settings import Settings

        return Settings
    if name == "blocking":
        from lichen.wsgi.offload import blocking

        return blocking
    if name == "serve_in_thread":
        from lichen.embed import serve_in_thread

        return serve_in_thread
    if name in ("spawn", "sleep", "Timeout"):
        from lichen import hub

        return getattr(hub, name)
    raise AttributeError(f"module 'lichen' has no attribute {name!r}")
