# A gevent.pywsgi script serving HTTPS with gevent's ssl_args: its own
# certificate and key, TLS 1.2 with AES-GCM ciphers only, and client
# certificates required and verified against a CA (ca_certs, cert_reqs).
# Usage: ssl_client_cert.py PORT CERTFILE KEYFILE CA_CERTS
import ssl
import sys

from gevent.pywsgi import WSGIServer


def application(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello, holder of a certificate (%s)\n' % env['wsgi.url_scheme'].encode('ascii')]


port, certfile, keyfile, ca_certs = sys.argv[1:5]
server = WSGIServer(('127.0.0.1', int(port)), application,
                    certfile=certfile, keyfile=keyfile, ca_certs=ca_certs, cert_reqs=ssl.CERT_REQUIRED,
                    ssl_version=ssl.PROTOCOL_TLSv1_2, ciphers='ECDHE+AESGCM',
                    do_handshake_on_connect=True, suppress_ragged_eofs=True)
print('ssl enabled: %s' % server.ssl_enabled)
sys.stdout.flush()
server.serve_forever()
