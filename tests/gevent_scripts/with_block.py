# A gevent.pywsgi script that uses its server as a context manager, with
# the access log going to stdout (a file-like object) and spawn as an int;
# a request to /close calls close(), which ends serve_forever(), and the
# with block then stops the server. Usage: with_block.py PORT
import sys

from gevent.pywsgi import WSGIServer


def application(env, start_response):
    if env['PATH_INFO'] == '/close':
        server.close()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'inside the with block\n']


with WSGIServer(('127.0.0.1', int(sys.argv[1])), application, log=sys.stdout, spawn=10) as server:
    server.serve_forever()
    print('serve_forever returned, closed: %s' % server.closed)
print('after the with block, closed: %s' % server.closed)
