# examples/kubernetes/, read as Kubernetes reads it (PyYAML; no cluster runs
# here): a Deployment and a Service that select the same pods; the probes ask
# the example app's /healthz on the port lichen binds; lichen's workers match
# the pod's CPUs; and a pod that is told to stop has time for all of it: the
# grace period is longer than the preStop sleep plus lichen's graceful
# timeout plus the 2 s lichen's master waits beyond it before it kills a
# worker. The args are those of the Dockerfile's CMD, so the image behaves the
# same under `docker run` and in the cluster.
from __future__ import annotations

import json
import os

import pytest

from proc_helpers import ROOT

yaml = pytest.importorskip("yaml")

KUBE = os.path.join(ROOT, "examples", "kubernetes")
MASTER_MARGIN = 2  # lichen.arbiter: SIGKILL graceful_timeout + 2 s after TERM


def load(name):
    with open(os.path.join(KUBE, name)) as f:
        return list(yaml.safe_load_all(f))


@pytest.fixture
def deployment():
    (doc,) = load("deployment.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("apps/v1", "Deployment")
    return doc


@pytest.fixture
def service():
    (doc,) = load("service.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "Service")
    return doc


@pytest.fixture
def container(deployment):
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def option(args, name):
    return args[args.index(name) + 1]


def test_the_deployment_selects_its_own_pods_and_the_service_selects_them_too(deployment, service):
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_service_targets_the_port_lichen_binds(container, service):
    (port,) = container["ports"]
    assert option(container["args"], "-b") == f"0.0.0.0:{port['containerPort']}"
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_each_probe_asks_the_apps_healthz_on_lichens_port(container, probe):
    get = container[probe]["httpGet"]
    assert get["path"] == "/healthz" and get["port"] in ("http", container["ports"][0]["containerPort"])
    with open(os.path.join(ROOT, "examples", "docker", "app.py")) as f:
        assert '"/healthz"' in f.read()


def test_liveness_gives_a_busy_pod_longer_than_readiness(container):
    ready, live = container["readinessProbe"], container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > ready["periodSeconds"] * ready["failureThreshold"]


def test_the_grace_period_covers_the_presleep_the_graceful_timeout_and_lichens_margin(deployment, container):
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    graceful = float(option(container["args"], "--graceful-timeout"))
    assert grace > float(command[1]) + graceful + MASTER_MARGIN


def test_lichens_workers_match_the_pods_cpus(container):
    cpus = container["resources"]["limits"]["cpu"]
    assert int(option(container["args"], "-w")) == int(cpus)
    assert container["resources"]["requests"]["cpu"] == cpus  # whole CPUs, not throttled below them


def test_a_rolling_update_never_takes_a_ready_pod_away_first(deployment):
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_args_are_the_dockerfiles_cmd(container):
    with open(os.path.join(ROOT, "examples", "docker", "Dockerfile")) as f:
        (line,) = [ln for ln in f if ln.startswith("CMD ")]
    assert container["args"] == json.loads(line[4:])
