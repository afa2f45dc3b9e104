# A gevent.pywsgi script whose spawn is a pool of two: at most two
# connections are served at once, which a slow application makes visible
# (each answer says how many requests were in the application at once).
# Usage: pool.py PORT
import sys

from gevent import sleep
from gevent.pool import Pool
from gevent.pywsgi import WSGIServer

active = [0]
peak = [0]


def application(env, start_response):
    active[0] += 1
    peak[0] = max(peak[0], active[0])
    try:
        sleep(0.3)
    finally:
        active[0] -= 1
    body = b'peak %d' % peak[0]
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]


pool = Pool(2)
server = WSGIServer(('127.0.0.1', int(sys.argv[1])), application, spawn=pool, log=None)
print('pool size %d' % server.pool.size)
sys.stdout.flush()
server.serve_forever()
