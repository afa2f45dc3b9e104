# A gevent.pywsgi script with a handler class of its own: get_environ() adds
# keys to every request's environ, log_request() writes its own access line
# to stdout. A request to /stop stops the server from a greenlet of its
# own. Usage: handler_class.py PORT
import sys

from gevent import spawn
from gevent.pywsgi import WSGIHandler, WSGIServer


class RequestIdHandler(WSGIHandler):
    issued = 0

    def get_environ(self):
        env = super(RequestIdHandler, self).get_environ()
        RequestIdHandler.issued += 1
        env['myapp.request_id'] = RequestIdHandler.issued
        env['myapp.client'] = self.client_address[0]
        return env

    def log_request(self):
        print('ACCESS %s "%s" %s %s %s' % (self.client_address[0], self.requestline, self.code,
                                          self.status.decode('latin-1'), self.response_length))
        sys.stdout.flush()


def application(env, start_response):
    if env['PATH_INFO'] == '/stop':
        spawn(server.stop)
    body = ('request %d from %s at %s' % (env['myapp.request_id'], env['myapp.client'],
                                          env['myapp.site'])).encode('ascii')
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


server = WSGIServer(('127.0.0.1', int(sys.argv[1])), application, handler_class=RequestIdHandler,
                    environ={'myapp.site': 'example.org'})
server.serve_forever()
print('stopped')
