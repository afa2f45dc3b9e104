# lichen.wsgi: the WSGI server — the HTTP driver of a connection, one
# exchange per request, environ, wsgi.input, start_response and response
# writing, the access log, the thread offload, and WSGIServer.
from lichen.wsgi.driver import Driver
from lichen.wsgi.exchange import ClientGone
from lichen.wsgi.response import FileWrapper
from lichen.wsgi.server import WSGIServer

__all__ = ["WSGIServer", "Driver", "ClientGone", "FileWrapper"]
