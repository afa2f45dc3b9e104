# Layering guard for lichen.http: the protocol layer must stay free of I/O.
# Strategy: parse every source file of the package with `ast` and check each
# import against a deny-list (socket, select, greenlet, cffi, ... and any
# lichen module outside lichen.http); then, in a fresh interpreter, check
# that importing lichen.http pulls none of them in indirectly either.
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import lichen.http

PACKAGE_DIR = pathlib.Path(lichen.http.__file__).parent
SOURCES = sorted(PACKAGE_DIR.glob("*.py"))

FORBIDDEN_ROOTS = {"socket", "select", "selectors", "greenlet", "cffi", "_cffi_backend",
                   "ssl", "asyncio", "threading", "_ev"}


def imported_modules(path: pathlib.Path) -> list[str]:
    """Absolute names of the modules a source file imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Resolve relative imports against lichen.http.
                base = "lichen.http".split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    names.extend(f"{module}.{a.name}" for a in node.names)
                else:
                    names.append(module)
            else:
                names.append(node.module)
    return names


def is_forbidden(name: str) -> bool:
    root = name.split(".")[0]
    if root in FORBIDDEN_ROOTS:
        return True
    return root == "lichen" and not (name == "lichen.http" or name.startswith("lichen.http."))


def test_package_has_the_expected_modules():
    assert {p.name for p in SOURCES} >= {"__init__.py", "errors.py", "request.py", "response.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_module_imports_nothing_io_related(path):
    bad = [name for name in imported_modules(path) if is_forbidden(name)]
    assert bad == []


def test_deny_list_catches_relative_import_outside_the_package(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text("from ..hub import spawn\nfrom . import errors\nimport greenlet\n")
    assert [n for n in imported_modules(src) if is_forbidden(n)] == ["lichen.hub", "greenlet"]


def test_importing_lichen_http_loads_no_io_modules():
    # lichen/__init__ belongs to another layer: only what lichen.http adds
    # on top of it is checked.
    code = (
        "import sys, lichen\n"
        "before = set(sys.modules)\n"
        "import lichen.http\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=None, cwd=str(PACKAGE_DIR.parent.parent)).stdout
    added = out.split()
    assert [m for m in added if is_forbidden(m)] == []
