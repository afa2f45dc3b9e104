# A gevent.pywsgi script that makes its server before its application: the
# server is started first (the application is built from the address it
# got), the application is assigned to it afterwards, and a request to
# /shutdown calls stop() from inside the application. gevent's default
# error log (stderr) gets the traceback of a failing request.
# Usage: application_later.py PORT
import sys

from gevent.pywsgi import WSGIServer


def make_application(server):
    host, port = server.address[:2]

    def application(env, start_response):
        if env['PATH_INFO'] == '/fail':
            raise ValueError('this request fails on purpose')
        if env['PATH_INFO'] == '/shutdown':
            server.stop()
        body = ('%s on %s:%d via %s' % (env['PATH_INFO'], host, port, env['SERVER_PORT'])).encode('ascii')
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
        return [body]
    return application


server = WSGIServer(('127.0.0.1', int(sys.argv[1])), log=None)
server.start()
server.application = make_application(server)
print('started: %s, closed: %s' % (server.started, server.closed))
sys.stdout.flush()
server.serve_forever()
print('stopped: started %s, closed %s' % (server.started, server.closed))
