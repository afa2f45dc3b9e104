# The C parts of lichen are declared here: cffi's setuptools hook reads
# `cffi_modules` from setup() keyword arguments (lichen._ev, the libev
# binding); lichen._fasthead (the fast lane's head parser, http layer),
# lichen._fastenv (the environ builder of both lanes, wsgi layer) and
# lichen._fastresponse (a response's state, start_response and whole sends,
# wsgi layer) are plain CPython extensions because they build Python objects
# directly. Everything
# else lives in pyproject.toml.
from setuptools import Extension, setup

HTTP_HEADERS = ["src/_http/common.h"]

setup(
    cffi_modules=["src/_ev/build.py:ffibuilder"],
    ext_modules=[
        Extension("lichen._fasthead", ["src/_http/head.c"], depends=HTTP_HEADERS, extra_compile_args=["-O2"]),
        Extension("lichen._fastenv", ["src/_http/environ.c"], depends=HTTP_HEADERS, extra_compile_args=["-O2"]),
        Extension("lichen._fastresponse", ["src/_http/response.c"], depends=HTTP_HEADERS,
                  extra_compile_args=["-O2"]),
    ],
)
