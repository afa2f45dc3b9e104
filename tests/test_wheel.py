# The distributions as a user gets them: `pip wheel .` from a clean checkout
# makes a wheel with all three C extensions, py.typed and the licence; that
# wheel, installed in a fresh venv, imports, serves a request through its own
# `lichen` command and is typed for mypy; the sdist holds every source a
# wheel is built from, and a wheel is built from it alone.
# Strategy: "a clean checkout" is a copy of the files git tracks (plus new,
# not yet ignored ones) in a temporary directory, so no extension built in
# place in src/lichen can slip into the wheel. pip builds with build
# isolation, as a user's pip does; the fresh venv has no pip of its own (this
# venv's pip installs into it with --python), gets the runtime dependencies
# from the configured indexes, and everything in it runs with the temporary
# directory as its working directory and no PYTHONPATH, so the source tree is
# out of reach: the test asserts where lichen was imported from.
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile

import pytest

import lichen
from proc_helpers import ROOT, free_port, get, wait_port

pytestmark = pytest.mark.timeout(300)

APP = """\
def app(environ, start_response):
    import lichen
    body = f"{lichen.__file__} {environ['wsgi.version']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def run(*args, cwd, timeout=240, env=None):
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                         env=env)
    assert out.returncode == 0, f"{args}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def clean_env():
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    files = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    dest = tmp_path_factory.mktemp("checkout")
    for name in filter(None, files):
        if os.path.isfile(os.path.join(ROOT, name)):  # (a file deleted but not yet committed is skipped)
            os.makedirs(os.path.dirname(dest / name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(checkout, tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", ".", "-w", dist, cwd=checkout)
    (built,) = dist.glob("lichen-*.whl")
    return built


@pytest.fixture(scope="module")
def sdist(checkout, tmp_path_factory):
    pytest.importorskip("build")
    dist = tmp_path_factory.mktemp("sdist")
    run(sys.executable, "-m", "build", "--sdist", "-o", dist, ".", cwd=checkout)
    (built,) = dist.glob("lichen-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    where = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", where / "env", cwd=where)
    python = where / "env" / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel, cwd=where)
    (where / "hello.py").write_text(APP)
    return where


def names(wheel_path):
    with zipfile.ZipFile(wheel_path) as z:
        return z.namelist()


def test_the_wheel_is_named_for_lichens_version(wheel):
    assert wheel.name.startswith(f"lichen-{lichen.__version__}-")


@pytest.mark.parametrize("prefix", ["lichen/_ev.", "lichen/_fasthead.", "lichen/_fastenv.", "lichen/_fastresponse."])
def test_the_wheel_holds_each_c_extension(wheel, prefix):
    assert [n for n in names(wheel) if n.startswith(prefix) and n.endswith(".so")]


def test_the_wheel_holds_py_typed_and_the_licence(wheel):
    listed = names(wheel)
    assert "lichen/py.typed" in listed
    assert f"lichen-{lichen.__version__}.dist-info/licenses/LICENSE" in listed


def test_the_wheel_holds_no_sources_of_the_build_and_no_tests(wheel):
    listed = names(wheel)
    assert not [n for n in listed if n.endswith((".c", ".h")) or n.startswith(("tests/", "src/", "_ev/", "_http/"))]


def test_the_wheel_metadata_names_the_licence_and_the_runtime_dependencies(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(f"lichen-{lichen.__version__}.dist-info/METADATA").decode()
    assert f"Version: {lichen.__version__}\n" in meta
    assert "License-Expression: MIT\n" in meta and "License-File: LICENSE\n" in meta
    assert "Classifier: Typing :: Typed\n" in meta
    for dep in ("greenlet", "cffi", "httptools"):
        assert f"Requires-Dist: {dep}>=" in meta


def test_the_installed_wheel_imports_from_the_venv_with_its_extensions(venv):
    code = ("import lichen, lichen._ev, lichen._fasthead, lichen._fastenv, lichen._fastresponse, lichen.loop\n"
            "for m in (lichen, lichen._ev, lichen._fasthead, lichen._fastenv, lichen._fastresponse): print(m.__file__)\n"
            "print(lichen.__version__, lichen.loop.libev_version())\n")
    out = run(venv / "env" / "bin" / "python", "-c", code, cwd=venv, env=clean_env()).splitlines()
    site = str(venv / "env" / "lib")
    assert all(path.startswith(site) for path in out[:5]), out
    assert out[5].startswith(lichen.__version__ + " (4, ")


def test_the_installed_command_prints_the_version(venv):
    out = run(venv / "env" / "bin" / "lichen", "--version", cwd=venv, env=clean_env())
    assert out.strip() == f"lichen {lichen.__version__}"


def test_the_installed_command_serves_a_request(venv):
    port = free_port()
    proc = subprocess.Popen([venv / "env" / "bin" / "lichen", "-w", "1", "-b", f"127.0.0.1:{port}", "hello:app"],
                            cwd=venv, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_port(port)
        status, body = get(port)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert status == 200
    assert body.startswith(str(venv / "env" / "lib")) and body.endswith("(1, 0)")


def test_mypy_reads_the_installed_wheels_types(venv):
    pytest.importorskip("mypy")
    probe = venv / "probe.py"
    probe.write_text("from lichen import WSGIServer\nreveal_type(WSGIServer)\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--follow-imports=silent",
                          "--python-executable", venv / "env" / "bin" / "python",
                          "--cache-dir", venv / "mypy-cache", probe],
                         capture_output=True, text=True, timeout=120, cwd=venv, env=clean_env())
    assert out.stdout.strip().endswith("-> lichen.wsgi.server.WSGIServer\""), out.stdout + out.stderr


@pytest.mark.parametrize("path", ["src/_ev/build.py", "src/_ev/shim.h", "src/_http/common.h", "src/_http/head.c",
                                  "src/_http/environ.c", "setup.py", "pyproject.toml", "LICENSE", "CHANGELOG.md",
                                  "src/lichen/py.typed", "tests/conftest.py", "tests/apps/sample.py"])
def test_the_sdist_holds_what_a_build_and_the_tests_need(sdist, path):
    with tarfile.open(sdist) as t:
        assert f"lichen-{lichen.__version__}/{path}" in t.getnames()


def test_a_wheel_builds_from_the_sdist_alone(sdist, tmp_path):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", sdist, "-w", tmp_path, cwd=tmp_path)
    (built,) = tmp_path.glob("lichen-*.whl")
    extensions = sorted(n.split("/")[1].split(".")[0] for n in names(built) if n.endswith(".so"))
    assert extensions == ["_ev", "_fastenv", "_fasthead", "_fastresponse"]
