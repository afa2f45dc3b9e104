# lichen.wsgi: the WSGI server — environ, wsgi.input, start_response and
# response writing, the per-connection driver, and WSGIServer.
from lichen.wsgi.connection import ClientGone, Connection
from lichen.wsgi.response import FileWrapper
from lichen.wsgi.server import WSGIServer

__all__ = ["WSGIServer", "Connection", "ClientGone", "FileWrapper"]
