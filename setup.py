# The cffi extension lichen._ev is declared here because cffi's setuptools hook
# reads `cffi_modules` from setup() keyword arguments; everything else lives in
# pyproject.toml.
from setuptools import setup

setup(cffi_modules=["src/_ev/build.py:ffibuilder"])
