# lichen.embed: run a lichen server inside an ordinary threaded program.
#
# Strategy: the server gets a thread of its own with its own hub; the caller's
# thread never touches that hub except through call_soon_threadsafe, which
# is how stop() asks the server thread to shut down gracefully.
from __future__ import annotations

import threading
from typing import Any, Callable

from lichen.hub import get_hub, spawn

__all__ = ["serve_in_thread", "ServerThread"]


class ServerThread:
    """Handle on a server running in a background thread."""

    def __init__(self, thread: threading.Thread, server: Any, hub: Any) -> None:
        self.thread = thread
        self.server = server
        self._hub = hub

    @property
    def address(self) -> Any:
        """The bound address, e.g. ('127.0.0.1', 54321)."""
        return self.server.address

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully (in-flight requests get up to `timeout` seconds)
        and wait for the thread to end."""
        if not self.thread.is_alive():
            return
        grace = self.server.settings.graceful_timeout if timeout is None else timeout
        self._hub.call_soon_threadsafe(spawn, self.server.stop, grace)
        self.thread.join(grace + 5.0)
        if self.thread.is_alive():
            raise RuntimeError("the lichen server thread did not stop in time")

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_in_thread(app: Callable[..., Any], bind: Any = ("127.0.0.1", 0), *, name: str = "lichen-server",
                    **kwargs: Any) -> ServerThread:
    """Start a WSGIServer for `app` on `bind` in a daemon thread; returns once
    it is listening (or raises what prevented it)."""
    from lichen.wsgi import WSGIServer

    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            hub = get_hub()
            server = WSGIServer(bind, app, **kwargs)
            server.start()
        except BaseException as e:  # reported to the caller
            box["error"] = e
            ready.set()
            return
        box["server"], box["hub"] = server, hub
        ready.set()
        server.serve_forever()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    ready.wait()
    if "error" in box:
        thread.join()
        raise box["error"]
    return ServerThread(thread, box["server"], box["hub"])
