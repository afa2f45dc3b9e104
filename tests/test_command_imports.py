# The `lichen` command's master needs only the standard library: importing
# the master's modules loads no hub, loop, libev binding, greenlet or cffi; a
# running master has none of their shared objects mapped (its workers do);
# and no import cycle runs through the command's modules (the worker no
# longer imports the arbiter).
# Strategy: a fresh interpreter for the import check (this test process has
# long loaded the hub); /proc/<pid>/maps for the running master, since a C
# extension that was ever imported stays mapped; the ast of src/lichen for the
# import graph, function-level imports included.
from __future__ import annotations

import ast
import os
import subprocess
import sys

from proc_helpers import Master, children, free_port, get, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
MASTER_MODULES = ["lichen.arbiter", "lichen.cli", "lichen.config", "lichen.settings", "lichen.listeners",
                  "lichen.process", "lichen.hooks", "lichen.compat", "lichen.apploader", "lichen.demo",
                  "lichen.fdlimit"]
HEAVY = ["lichen.hub", "lichen.loop", "lichen._ev", "greenlet", "cffi", "_cffi_backend"]
# Shared objects that would be mapped into a process that imported the hub.
HEAVY_LIBRARIES = ("/_ev.", "/_greenlet.", "/_cffi_backend.")


def test_importing_the_masters_modules_loads_no_hub_and_no_libev():
    code = ("import sys\n"
            f"for m in {MASTER_MODULES!r}: __import__(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _mapped(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    return {lib for lib in HEAVY_LIBRARIES if any(lib in p for p in paths)}


def test_a_running_master_never_loaded_the_hub_but_its_worker_did(tmp_path):
    port = free_port()
    m = Master("-w", "1", "-b", f"127.0.0.1:{port}", "tests.apps.sample:app",
               stderr_path=str(tmp_path / "master.log"))
    try:
        wait_port(port)
        assert get(port)[0] == 200  # the worker serves: its imports are done
        workers = children(m.pid)
        assert len(workers) == 1
        assert _mapped(workers[0]) >= {"/_ev.", "/_greenlet."}  # the probe sees a loaded hub
        assert _mapped(m.pid) == set()
    finally:
        m.close()


def _module_name(path: str) -> str:
    name = os.path.relpath(path, SRC)[:-3].replace(os.sep, ".")
    return name.removesuffix(".__init__")


def _import_graph() -> dict[str, set[str]]:
    files = {}
    for dirpath, _, names in os.walk(os.path.join(SRC, "lichen")):
        for n in names:
            if n.endswith(".py"):
                files[_module_name(os.path.join(dirpath, n))] = os.path.join(dirpath, n)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                subs = {f"{node.module}.{a.name}" for a in node.names} & files.keys()
                deps.update(subs or {node.module})  # `from lichen import socket` is lichen.socket
        graph[module] = {d for d in deps if d in files and d != module}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return False


def test_no_import_cycle_runs_through_the_commands_modules():
    graph = _import_graph()
    for module in [*MASTER_MODULES, "lichen.worker"]:
        assert not any(_reaches(graph, dep, module) for dep in graph[module]), module
    assert "lichen.arbiter" not in graph["lichen.worker"]


def test_the_masters_modules_import_nothing_that_loads_the_hub():
    graph = _import_graph()
    allowed = set(MASTER_MODULES) | {"lichen"}
    for module in MASTER_MODULES:
        # The arbiter imports lichen.worker in the forked child only: not followed.
        deps = graph[module] - {"lichen.worker"} if module == "lichen.arbiter" else graph[module]
        assert deps <= allowed, (module, deps - allowed)
