# The layering of the whole package, as a table a test holds the code to.
# Strategy: parse every module of src/lichen with `ast` (nothing is imported)
# and check three rules. 1) Each module imports only the lichen modules its
# row of LAYERS allows, whether at the top or inside a function. 2) The
# imports form no cycle. 3) No module touches another module's private
# attributes: `x._name` is fine on self/cls, on a name defined in the same
# module, or for the few underscore names the standard library documents as
# public (os._exit...). A test also shows each rule failing on a deliberate
# violation, so the checks cannot pass by checking nothing.
from __future__ import annotations

import ast
import pathlib
import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "lichen"

# Who may import whom, directly. A row names modules or packages ("lichen.hub"
# covers lichen.hub.*); a module may always import its own package's
# modules. The arrows all point down: loop -> hub -> socket -> server -> wsgi.
_CORE = {"lichen.loop", "lichen.hub"}
LAYERS: dict[str, set[str]] = {
    "lichen": {"lichen.wsgi", "lichen.server", "lichen.settings", "lichen.hub", "lichen.embed"},
    "lichen.__main__": {"lichen.cli"},
    # Below the hub: C bindings, then the loop.
    "lichen.loop": {"lichen._ev"},
    "lichen.hub": {"lichen.loop"},
    "lichen.threadpool": _CORE,
    "lichen.sync": _CORE,
    "lichen.resolver": {"lichen.threadpool"},
    "lichen.sockfile": {"lichen.loop"},
    "lichen.socket": _CORE | {"lichen.resolver", "lichen.sockfile"},
    "lichen.tls": _CORE | {"lichen.socket"},
    # Pure: no I/O, no hub.
    "lichen.http": {"lichen._fasthead", "lichen._fastpath"},
    "lichen.proxy": set(),
    "lichen.settings": set(),
    "lichen.listeners": set(),
    "lichen.process": set(),
    "lichen.hooks": set(),
    "lichen.compat": set(),
    "lichen.apploader": {"lichen.demo"},
    "lichen.demo": set(),
    "lichen.channel": set(),
    "lichen.fdlimit": set(),
    # Transport.
    "lichen.preamble": {"lichen.proxy"},
    "lichen.server": _CORE | {"lichen.socket", "lichen.tls", "lichen.sync", "lichen.settings", "lichen.proxy",
                              "lichen.preamble", "lichen.channel", "lichen.listeners", "lichen.fdlimit"},
    "lichen.stall": set(),
    # WebSockets: the handshake judged on lichen.http's request, frames over
    # the sockets' deadline surface (reached through the channel), no WSGI.
    "lichen.websocket": _CORE | {"lichen.http", "lichen.sync", "lichen.threadpool", "lichen.server"},
    # HTTP over the transport.
    "lichen.wsgi": _CORE | {"lichen.http", "lichen.server", "lichen.proxy", "lichen.sync", "lichen.threadpool",
                            "lichen.stall", "lichen.websocket", "lichen._fastpath", "lichen._fastenv",
                            "lichen._fasthead", "lichen._fastresponse"},
    # Processes and the command line.
    "lichen.config": {"lichen.settings", "lichen.listeners", "lichen.compat", "lichen.hooks", "lichen.process",
                      "lichen.apploader"},
    "lichen.arbiter": {"lichen.config", "lichen.settings", "lichen.listeners", "lichen.process", "lichen.hooks",
                       "lichen.apploader", "lichen.fdlimit", "lichen.worker"},  # (the worker only in the forked child)
    "lichen.worker": _CORE | {"lichen.config", "lichen.settings", "lichen.apploader", "lichen.sync", "lichen.wsgi",
                              "lichen.process", "lichen.hooks", "lichen.tls"},
    "lichen.cli": {"lichen.config", "lichen.settings", "lichen.arbiter", "lichen.process"},
    "lichen.embed": _CORE | {"lichen.wsgi"},
    "lichen.gunicorn": _CORE | {"lichen.wsgi", "lichen.tls", "lichen.hooks"},
}

# Underscore names the standard library documents as public API.
STDLIB_PUBLIC = {"_exit", "_current_frames", "_getframe", "_replace", "_asdict", "_fields", "_make"}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(name: str, path: pathlib.Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def sources() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: pathlib.Path, source: str | None = None) -> set[str]:
    """The lichen modules a source file imports, anywhere in it."""
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    package = package_of(name, path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # "from lichen import socket" imports the module lichen.socket.
            known = sources()
            found.update(f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known)
    return {m for m in found if m == "lichen" or m.startswith("lichen.")}


def row_for(name: str) -> str:
    """The LAYERS row that governs a module: its own, or its package's."""
    while name not in LAYERS and "." in name:
        name = name.rpartition(".")[0]
    return name


def allowed(importer: str, imported: str) -> bool:
    row = row_for(importer)
    if row_for(imported) == row or imported == "lichen" and importer != "lichen":
        return True  # its own package, or the package root every import passes through
    return any(imported == a or imported.startswith(a + ".") for a in LAYERS[row])


def violations(name: str, path: pathlib.Path, source: str | None = None) -> list[str]:
    return sorted(m for m in imports_of(name, path, source) if not allowed(name, m))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once)."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def import_graph(mods: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    # The package root is left out: its lazy __getattr__ imports the layers
    # above it on demand, which every "import lichen.x" passes through.
    return {n: {m for m in imports_of(n, p) if m in mods and m != "lichen"} for n, p in mods.items()
            if n != "lichen"}


def private_touches(path: pathlib.Path, source: str | None = None) -> list[str]:
    """`x._name` accesses to another module's private attributes."""
    tree = ast.parse(source if source is not None else path.read_text(), filename=str(path))
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            own.add(node.attr)
        elif isinstance(node, ast.Name):
            own.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_"):
            own.add(node.value)  # __slots__ entries
    bad = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super":
            continue
        if node.attr in own or node.attr in STDLIB_PUBLIC:
            continue
        bad.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return sorted(bad)


MODULES = sources()


def test_every_module_has_a_row():
    assert [n for n in MODULES if row_for(n) not in LAYERS] == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_only_what_its_layer_allows(name):
    assert violations(name, MODULES[name]) == []


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph(MODULES)) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_touches_no_private_attribute_of_another(name):
    assert private_touches(MODULES[name]) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_stays_under_600_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= 600


# The rules catch what they are for -------------------------------------------------
def test_an_import_against_the_layers_is_caught():
    loop = MODULES["lichen.loop"]
    source = loop.read_text() + "\nfrom lichen.wsgi import server\n"
    assert violations("lichen.loop", loop, source) == ["lichen.wsgi", "lichen.wsgi.server"]


def test_an_import_cycle_is_caught():
    graph = import_graph(MODULES)
    graph["lichen.loop"] = graph["lichen.loop"] | {"lichen.server"}
    assert any(c[0] == "lichen.loop" or "lichen.loop" in c for c in cycles(graph))


def test_touching_another_objects_private_attribute_is_caught(tmp_path):
    probe = tmp_path / "probe.py"
    source = "def f(sock, loop):\n    sock._rio.start()\n    return loop._ptr, self_ok()\n"
    assert private_touches(probe, source) == ["probe.py:2: sock._rio", "probe.py:3: loop._ptr"]


def test_own_private_names_and_documented_stdlib_ones_are_fine(tmp_path):
    probe = tmp_path / "probe.py"
    source = ("import os\nclass A:\n    __slots__ = ('_x',)\n    def f(self, other):\n"
              "        return other._x, self._y\n\ndef g():\n    os._exit(0)\n")
    assert private_touches(probe, source) == []
