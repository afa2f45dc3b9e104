# The deployment pages (docs/deploy/) and the README's deployment and install
# sections say only what lichen and the example files do: every relative
# link leads to a file of the repository; every `lichen` command they show,
# and the command of the Docker and Kubernetes examples, is accepted by
# lichen's own command line; the HAProxy lines they quote are those of the
# example files that tests/test_deploy_haproxy.py runs, and the nginx lines
# are those tests/test_deploy_nginx.py runs.
# Strategy: read the Markdown as text (fenced blocks by their language), and
# hand each command to `lichen --print-config` in a subprocess, which checks
# every value the way a start would and loads no app.
from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from proc_helpers import ROOT

DEPLOY = os.path.join(ROOT, "docs", "deploy")
PAGES = sorted(glob.glob(os.path.join(DEPLOY, "*.md"))) + [os.path.join(ROOT, "README.md")]


def read(path):
    with open(path) as f:
        return f.read()


def blocks(path, language):
    return re.findall(rf"^```{language}\n(.*?)^```", read(path), re.S | re.M)


def lichen_commands():
    found = []
    for page in PAGES:
        for block in blocks(page, "sh"):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["lichen"]:
                    found.append((os.path.basename(page), words[1:]))
    with open(os.path.join(ROOT, "examples", "docker", "Dockerfile")) as f:
        (cmd,) = [json.loads(ln[4:]) for ln in f if ln.startswith("CMD ")]
    found.append(("Dockerfile", cmd[1:]))
    return found


def test_every_deploy_page_is_in_the_index():
    index = read(os.path.join(DEPLOY, "README.md"))
    for page in PAGES[:-1]:
        name = os.path.basename(page)
        assert name == "README.md" or f"]({name})" in index, name


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_every_relative_link_leads_to_a_file(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", read(page)):
        if "://" not in target:
            assert os.path.exists(os.path.join(os.path.dirname(page), target)), target


def test_the_pages_show_lichen_commands():
    pages = {page for page, _ in lichen_commands()}
    assert {"nginx.md", "haproxy.md", "workers.md", "README.md", "Dockerfile"} <= pages


@pytest.mark.parametrize("page,args", lichen_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_each_lichen_command_shown_is_accepted(page, args):
    out = subprocess.run([sys.executable, "-m", "lichen", "--print-config", *args], capture_output=True, text=True,
                         timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_the_haproxy_page_quotes_the_example_files():
    examples = "".join(read(p) for p in glob.glob(os.path.join(ROOT, "examples", "haproxy", "*.cfg")))
    lines = {ln.strip() for ln in examples.splitlines()}
    quoted = [ln.strip() for block in blocks(os.path.join(DEPLOY, "haproxy.md"), "haproxy")
              for ln in block.splitlines() if ln.strip()]
    assert quoted and [ln for ln in quoted if ln not in lines] == []


def test_the_nginx_page_shows_the_lines_the_nginx_test_runs():
    tested = read(os.path.join(ROOT, "tests", "test_deploy_nginx.py"))
    directives = [ln.strip() for block in blocks(os.path.join(DEPLOY, "nginx.md"), "nginx")
                  for ln in block.splitlines() if ln.strip().startswith("proxy_set_header")]
    assert directives
    # (the test's headers are the same, some with a fixed value where the page has a variable)
    missing = [d for d in directives if d not in tested and d.split()[1] not in tested]
    assert missing == []
