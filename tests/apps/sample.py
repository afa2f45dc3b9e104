# WSGI apps used by the command-line and deployment tests.
import os
import time


def make(label):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/slow":
            from lichen.hub import sleep
            sleep(float(environ.get("QUERY_STRING") or 1.0))
        if path == "/block":
            time.sleep(float(environ.get("QUERY_STRING") or 1.0))  # blocks the worker's loop
        if path == "/env":
            keys = ("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME",
                    "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")
            body = "\n".join(f"{k}={environ.get(k, '')}" for k in keys).encode()
        else:
            body = f"{label} pid={os.getpid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return app


app = make("app")
application = app


def create_app(label="factory", debug=True):
    return make(f"{label} debug={debug}")


def broken_factory():
    raise RuntimeError("factory exploded")


not_callable = 42
