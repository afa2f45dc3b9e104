# lichen.wsgi: the WSGI server — the HTTP driver of a connection, one
# exchange per request, environ, wsgi.input, start_response and response
# writing, the access and error logs, the thread offload, WSGIServer, and
# gevent.pywsgi's names (`from gevent.pywsgi import WSGIServer, WSGIHandler`
# becomes `from lichen.wsgi import ...`).
from lichen.wsgi.accesslog import LoggingLogAdapter
from lichen.wsgi.driver import Driver
from lichen.wsgi.exchange import ClientGone
from lichen.wsgi.handler import WSGIHandler
from lichen.wsgi.response import FileWrapper
from lichen.wsgi.server import WSGIServer

__all__ = ["WSGIServer", "WSGIHandler", "LoggingLogAdapter", "Driver", "ClientGone", "FileWrapper"]
