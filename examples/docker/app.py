# examples/docker/app.py: the tiny WSGI app the example image serves, with the
# /healthz path that the image's HEALTHCHECK and the Kubernetes probes ask for.
import os


def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        body = b"ok\n"
    else:
        body = f"Hello from lichen, worker {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
