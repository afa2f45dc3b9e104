# pytest plugin for `make sanitize`: `import lichen._ev`, `import
# lichen._fasthead`, `import lichen._fastenv` and `import lichen._fastresponse` load the AddressSanitizer/UBSan
# builds found in the directory named by $LICHEN_SANITIZED instead of the
# normal builds in src/lichen/.
#
# Strategy: tests/conftest.py puts src/ first on sys.path, so a build
# directory earlier on PYTHONPATH would lose to src/lichen/. Instead a
# meta-path finder, placed first, answers for exactly those module names;
# everything else imports as usual. Loaded with `-p sanitize_plugin` (before
# any conftest or test module imports lichen), and the session refuses to
# start unless the modules in use are the sanitized ones: a run that quietly
# tested the normal build would look like a clean sanitizer run.
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from typing import Any

import pytest

_DIR = os.path.abspath(os.environ.get("LICHEN_SANITIZED", "build/sanitize"))
_NAMES = ("lichen._ev", "lichen._fasthead", "lichen._fastenv", "lichen._fastresponse")


class _SanitizedExtensions:
    """Finds the C extensions in _DIR, and nothing else."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in _NAMES:
            return None
        leaf = name.rpartition(".")[2]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(_DIR, leaf + suffix)
            if os.path.exists(candidate):
                return importlib.util.spec_from_file_location(name, candidate)
        raise ImportError(f"no sanitized build of {name} in {_DIR} (run `make sanitize`)")


sys.meta_path.insert(0, _SanitizedExtensions())


def pytest_configure(config: pytest.Config) -> None:
    import lichen._ev
    import lichen._fastenv
    import lichen._fasthead
    import lichen._fastresponse

    for module in (lichen._ev, lichen._fasthead, lichen._fastenv, lichen._fastresponse):
        where = os.path.dirname(os.path.abspath(module.__file__ or ""))
        if where != _DIR:
            raise pytest.UsageError(f"{module.__name__} was loaded from {where}, not the sanitized build in {_DIR}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"sanitized C extensions (ASan + UBSan) from {_DIR}"
