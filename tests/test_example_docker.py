# examples/docker/Dockerfile, checked without a Docker engine (none runs on
# the machines this suite runs on): it parses; each RUN step's commands and
# apt packages exist in Debian bookworm, the release of its base image; what
# it COPYs exists in the build context and is not ignored; it stops with TERM,
# exposes the port it binds and health-checks that port. Then its steps are
# replayed outside Docker: the build stage's `pip wheel` on a copy of the
# context, the runtime stage's offline `pip install` from those wheels alone
# into a fresh venv, the app copied in, its CMD run and its HEALTHCHECK
# command run against it.
# Strategy: a small parser for the instructions the file uses (continuation
# lines, comments, JSON and shell forms); the replay rewrites only the
# listening address (0.0.0.0:8000 to a free loopback port) and the paths of
# /src, /wheels and /app.
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from proc_helpers import ROOT, free_port, get, kill_group, wait_port

DOCKER = os.path.join(ROOT, "examples", "docker")
DOCKERFILE = os.path.join(DOCKER, "Dockerfile")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FROM_PYTHON_IMAGE = {"pip", "python"}  # not Debian's: the python image's own


def instructions(path=DOCKERFILE):
    """[(INSTRUCTION, argument text)], continuation lines joined."""
    out, pending = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages():
    """The instructions of each stage, by stage."""
    found = []
    for word, arg in instructions():
        if word == "FROM":
            found.append([])
        found[-1].append((word, arg))
    return found


def run_commands(arg):
    """The shell commands of a RUN step, as word lists."""
    return [shlex.split(part) for part in re.split(r"&&|;", arg) if part.strip()]


def exec_form(arg):
    words = json.loads(arg)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words)
    return words


def ignored(name):
    with open(os.path.join(DOCKER, "Dockerfile.dockerignore")) as f:
        patterns = [p.strip() for p in f if p.strip() and not p.startswith("#")]
    # (fnmatch's * also matches "/", so **/x matches x at any depth.)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, p.removeprefix("**/"))
               or fnmatch.fnmatch(os.path.basename(name), p.removeprefix("**/")) for p in patterns)


def debian_has(package):
    for probe in (["dpkg-query", "-W", package], ["apt-cache", "show", package]):
        if shutil.which(probe[0]) and subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
            return True
    return False


def cmd():
    return exec_form(next(arg for word, arg in stages()[-1] if word == "CMD"))


def healthcheck():
    arg = next(arg for word, arg in stages()[-1] if word == "HEALTHCHECK")
    return exec_form(arg[arg.index("CMD ") + 4:])


# The file itself ----------------------------------------------------------------
def test_two_stages_from_the_same_slim_bookworm_python():
    froms = [arg for word, arg in instructions() if word == "FROM"]
    assert froms == ["python:3.11-slim-bookworm AS build", "python:3.11-slim-bookworm"]


def test_the_build_stage_has_libev_dev_and_a_compiler_the_runtime_only_libev4():
    def installed(stage):
        return {w for word, arg in stage if word == "RUN" for c in run_commands(arg)
                if c[:2] == ["apt-get", "install"] for w in c[2:] if not w.startswith("-")}

    build, runtime = stages()
    assert installed(build) == {"gcc", "libc6-dev", "libev-dev"} and installed(runtime) == {"libev4"}


def test_every_run_command_exists_in_debian_or_the_python_image():
    commands = {c[0] for stage in stages() for word, arg in stage if word == "RUN" for c in run_commands(arg)}
    assert commands == {"apt-get", "rm", "pip", "useradd"}
    for name in commands - FROM_PYTHON_IMAGE:
        assert shutil.which(name, path=SYSTEM_PATH), name


def test_every_apt_package_exists_in_debian_bookworm():
    with open("/etc/os-release") as f:
        if "VERSION_CODENAME=bookworm" not in f.read():
            pytest.skip("this machine is not Debian bookworm, the image's release")
    packages = {w for stage in stages() for word, arg in stage if word == "RUN" for c in run_commands(arg)
                if c[:2] == ["apt-get", "install"] for w in c[2:] if not w.startswith("-")}
    assert [p for p in sorted(packages) if not debian_has(p)] == []


def test_what_is_copied_from_the_context_exists_and_is_not_ignored():
    sources = [src for stage in stages() for word, arg in stage if word == "COPY" and not arg.startswith("--from")
               for src in arg.split()[:-1]]
    assert "src" in sources and "examples/docker/app.py" in sources
    for src in sources:
        assert os.path.exists(os.path.join(ROOT, src)), src
        assert not ignored(src), src
    assert ignored(".venv") and ignored("src/lichen/_ev.abi3.so") and ignored("src/lichen/__pycache__")


def test_it_stops_with_term_as_a_non_root_user():
    runtime = dict(stages()[-1])
    assert runtime["STOPSIGNAL"] == "SIGTERM" and runtime["USER"] == "app"


def test_cmd_serves_the_app_on_the_exposed_port_and_the_healthcheck_asks_that_port():
    words = cmd()
    assert words[0] == "lichen" and words[-1] == "app:app"
    assert words[words.index("-b") + 1] == "0.0.0.0:8000" and int(words[words.index("-w") + 1]) >= 1
    assert dict(stages()[-1])["EXPOSE"] == "8000"
    assert "http://127.0.0.1:8000/healthz" in " ".join(healthcheck())


# The steps, replayed ---------------------------------------------------------------
@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A venv laid out as the runtime stage leaves the image."""
    where = tmp_path_factory.mktemp("image")
    context = where / "src"
    for word, arg in stages()[0]:  # the build stage's COPY steps, into its WORKDIR /src
        if word != "COPY":
            continue
        *sources, dest = arg.split()
        base = context / dest
        for src in sources:
            if os.path.isdir(os.path.join(ROOT, src)):  # a directory's contents go to dest
                shutil.copytree(os.path.join(ROOT, src), base, dirs_exist_ok=True, ignore=lambda d, names: [
                    n for n in names if ignored(os.path.relpath(os.path.join(d, n), ROOT))])
            else:
                target = base / os.path.basename(src) if dest.endswith("/") else base
                os.makedirs(target.parent, exist_ok=True)
                shutil.copy2(os.path.join(ROOT, src), target)
    (run_step,) = [c for word, arg in stages()[0] if word == "RUN" for c in run_commands(arg) if c[0] == "pip"]
    wheels = where / "wheels"
    replay = [sys.executable, "-m", *[str(wheels) if w == "/wheels" else w for w in run_step]]
    out = subprocess.run(replay, cwd=context, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    env = where / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True, timeout=60)
    (install,) = [c for word, arg in stages()[1] if word == "RUN" for c in run_commands(arg) if c[0] == "pip"]
    replay = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"),
              *[str(wheels) if w == "/wheels" else w for w in install[1:]]]
    out = subprocess.run(replay, cwd=where, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    app = where / "app"
    app.mkdir()
    shutil.copy2(os.path.join(ROOT, "examples", "docker", "app.py"), app / "app.py")
    return env, app


def test_the_build_stage_wheels_are_enough_for_an_offline_install(image):
    env, _ = image
    assert (env / "bin" / "lichen").exists()


def test_the_cmd_serves_and_the_healthcheck_passes(image):
    env, app = image
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean["PATH"] = f"{env / 'bin'}:{clean.get('PATH', SYSTEM_PATH)}"
    words = [f"127.0.0.1:{port}" if w == "0.0.0.0:8000" else w for w in cmd()]
    proc = subprocess.Popen(words, cwd=app, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_port(port)
        status, body = get(port)
        check = [w.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for w in healthcheck()]
        health = subprocess.run(check, cwd=app, env=clean, capture_output=True, text=True, timeout=10)
        os.kill(proc.pid, signal.SIGTERM)  # STOPSIGNAL: a graceful stop
        code = proc.wait(30)
    finally:
        kill_group(proc)
    assert status == 200 and body.startswith("Hello from lichen")
    assert health.returncode == 0, health.stderr
    assert code == 0
    access = proc.stdout.read().decode()  # --access-logfile -: docker logs shows it
    assert '"GET / HTTP/1.1" 200' in access and '"GET /healthz HTTP/1.1" 200' in access
