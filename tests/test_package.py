# What `import lichen` offers: its public names visible to dir(), to IDEs
# and to type checkers, each resolving to the object of the module it lives
# in, while the import itself stays light (no hub, no libev); and the version,
# written once in lichen/__init__.py and read from there by the packaging.
# Strategy: a fresh interpreter for what an import loads (this process has long
# loaded the hub); ast for the TYPE_CHECKING block; mypy, run on a probe file
# against the installed (editable) lichen, for what a type checker infers, so
# py.typed and the TYPE_CHECKING imports are both needed for it to pass.
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib

import pytest

import lichen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INIT = os.path.join(ROOT, "src", "lichen", "__init__.py")

# Each public name and the module that defines it.
HOMES = {
    "WSGIServer": "lichen.wsgi",
    "WSGIHandler": "lichen.wsgi",
    "StreamServer": "lichen.server",
    "Settings": "lichen.settings",
    "blocking": "lichen.wsgi.offload",
    "serve_in_thread": "lichen.embed",
    "spawn": "lichen.hub",
    "sleep": "lichen.hub",
    "Timeout": "lichen.hub",
}
HEAVY = ["lichen.hub", "lichen.loop", "lichen._ev", "lichen.wsgi", "lichen.server", "greenlet", "_cffi_backend"]


def test_all_lists_the_public_names_and_the_version():
    assert sorted(lichen.__all__) == sorted([*HOMES, "__version__"])


def test_dir_shows_every_public_name_before_any_is_used():
    code = "import lichen; print(sorted(set(lichen.__all__) - set(dir(lichen))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_dir_shows_no_helper_of_the_package_file():
    assert not {"importlib", "ModuleType", "TYPE_CHECKING", "Any", "annotations"} & set(dir(lichen))


@pytest.mark.parametrize("name", sorted(HOMES))
def test_each_public_name_is_the_object_of_its_module(name):
    assert getattr(lichen, name) is getattr(importlib.import_module(HOMES[name]), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lichen.nope  # noqa: B018
    assert not hasattr(lichen, "nope")


@pytest.mark.parametrize("statement", ["import lichen", "import lichen.http", "from lichen import __version__",
                                       "import lichen; dir(lichen)"])
def test_importing_lichen_loads_no_hub_and_no_libev(statement):
    code = f"import sys\n{statement}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_using_a_name_loads_its_layer():
    code = "import sys, lichen\nlichen.WSGIServer\nprint('lichen.hub' in sys.modules, 'lichen._ev' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_type_checkers_see_each_name_imported_from_its_home():
    tree = ast.parse(open(INIT).read())
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    assert len(blocks) == 1
    seen = {alias.name: node.module for node in blocks[0].body if isinstance(node, ast.ImportFrom)
            for alias in node.names}
    assert seen == HOMES


def test_mypy_infers_the_real_types_of_the_public_names(tmp_path):
    pytest.importorskip("mypy")
    probe = tmp_path / "probe.py"
    probe.write_text("from lichen import Settings, WSGIServer, spawn\n"
                     "reveal_type(WSGIServer)\nreveal_type(spawn)\nreveal_type(Settings().backlog)\n"
                     "WSGIServer(('', 0), 42)\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--follow-imports=silent",
                          "--cache-dir", str(tmp_path / "cache"), str(probe)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = out.stdout.splitlines()
    assert "import-untyped" not in out.stdout  # py.typed is found
    assert lines[0].endswith("-> lichen.wsgi.server.WSGIServer\"")
    assert lines[1].endswith("-> lichen.hub.greenlets.Greenlet\"")
    assert re.search(r'Revealed type is "(builtins\.)?int"$', lines[2])
    assert "probe.py:5: error" in lines[3] and "arg-type" in lines[3]  # a wrong call is caught
    assert len(lines) == 4, out.stdout


def test_the_version_is_written_once_and_packaging_reads_it():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lichen.__version__"}
    assert lichen.__version__.count(".") == 2 and all(part.isdigit() for part in lichen.__version__.split("."))


def test_the_installed_metadata_carries_the_same_version():
    from importlib.metadata import version

    assert version("lichen") == lichen.__version__
