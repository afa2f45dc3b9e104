# The C parts of lichen are declared here: cffi's setuptools hook reads
# `cffi_modules` from setup() keyword arguments (lichen._ev, the libev
# binding), and lichen._fastpath is a plain CPython extension because it
# builds Python objects (the environ) directly. Everything else lives in
# pyproject.toml.
from setuptools import Extension, setup

setup(
    cffi_modules=["src/_ev/build.py:ffibuilder"],
    ext_modules=[Extension("lichen._fastpath", ["src/_http/fastpath.c"], extra_compile_args=["-O2"])],
)
