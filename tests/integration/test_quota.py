"""ResourceQuota and LimitRange end to end: the API server's LimitRanger and
ResourceQuota admission with the controller manager's resourcequota controller (a
real process), driven by the real kubectl and the official Python client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .cluster import ROOT, eventually, free_port, running_cluster
from .test_kubectl import run

NS = "quota"


class Manager:
    def __init__(self, cluster):
        self.log = cluster.base / "quota-cm.log"
        kc = cluster.kubeconfig("system:kube-controller-manager")
        self.proc = subprocess.Popen([
            sys.executable, "-m", "bootstrap.agents.controllers", f"--kubeconfig={kc}",
            "--controllers=resourcequota", "--use-service-account-credentials=true",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--leader-elect=false"], stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
            cwd=ROOT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def env():
    with running_cluster() as cluster:
        manager = Manager(cluster)
        try:
            assert eventually(lambda: "starting resourcequota controller" in manager.text()
                              or manager.proc.poll() is not None, 60)
            assert manager.proc.poll() is None, manager.text()[-3000:]
            run(cluster.admin, "create", "namespace", NS)
            run(cluster.admin, "create", "serviceaccount", "default", "-n", NS)
            yield cluster
        finally:
            manager.stop()
        text = manager.text()
        assert "Traceback" not in text and " is forbidden" not in text, text[-4000:]


def used(kc, name, ns=NS) -> dict:
    out = run(kc, "get", "resourcequota", name, "-n", ns, "-o", "json").stdout
    return (json.loads(out).get("status") or {}).get("used") or {}


def test_create_and_describe_quota_then_a_create_over_quota_is_refused(env):
    kc = env.admin
    out = run(kc, "create", "quota", "objects", "-n", NS,
              "--hard=count/configmaps=2,secrets=3,services=1,pods=4").stdout
    assert "resourcequota/objects created" in out
    assert eventually(lambda: used(kc, "objects").get("count/configmaps") == "0")
    described = run(kc, "describe", "quota", "objects", "-n", NS).stdout
    rows = {line.split()[0]: line.split()[1:] for line in described.splitlines()[3:]
            if line.strip()}
    assert rows["count/configmaps"] == ["0", "2"] and rows["services"] == ["0", "1"]
    assert described.splitlines()[0].split() == ["Name:", "objects"]
    run(kc, "create", "configmap", "one", "-n", NS)
    run(kc, "create", "configmap", "two", "-n", NS)
    over = run(kc, "create", "configmap", "three", "-n", NS, check=False)
    assert over.returncode != 0
    assert ('configmaps "three" is forbidden: exceeded quota: objects, requested: '
            'count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2'
            ) in over.stderr
    # a dry run is checked too and charges nothing
    dry = run(kc, "create", "configmap", "four", "-n", NS, "--dry-run=server", check=False)
    assert "exceeded quota: objects" in dry.stderr
    run(kc, "create", "service", "clusterip", "web", "--tcp=80:80", "-n", NS)
    svc = run(kc, "create", "service", "clusterip", "web2", "--tcp=80:80", "-n", NS,
              check=False)
    assert "exceeded quota: objects, requested: services=1, used: services=1, " \
           "limited: services=1" in svc.stderr
    # deleting gives the quota back (the controller recounts)
    run(kc, "delete", "configmap", "one", "-n", NS)
    assert eventually(lambda: used(kc, "objects").get("count/configmaps") == "1")
    run(kc, "create", "configmap", "three", "-n", NS)
    table = run(kc, "get", "quota", "objects", "-n", NS).stdout
    assert "count/configmaps: 2/2" in table


def test_compute_quota_with_limitrange_defaults(env):
    kc = env.admin
    ns = "compute"
    run(kc, "create", "namespace", ns)
    run(kc, "create", "serviceaccount", "default", "-n", ns)
    run(kc, "create", "quota", "compute", "-n", ns,
        "--hard=requests.cpu=1,limits.memory=512Mi,pods=3")
    assert eventually(lambda: used(kc, "compute", ns).get("pods") == "0")
    bare = run(kc, "run", "bare", "-n", ns, "--image=busybox", check=False)
    assert 'pods "bare" is forbidden: failed quota: compute: must specify limits.memory ' \
           'for: bare; requests.cpu for: bare' in bare.stderr
    run(kc, "apply", "-n", ns, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container",
                             "default": {"cpu": "600m", "memory": "256Mi"},
                             "defaultRequest": {"cpu": "400m"}, "max": {"cpu": "1"}}]}}))
    run(kc, "run", "web", "-n", ns, "--image=busybox")
    pod = json.loads(run(kc, "get", "pod", "web", "-n", ns, "-o", "json").stdout)
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "600m", "memory": "256Mi"},
        "requests": {"cpu": "400m", "memory": "256Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == \
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory " \
        "limit for container web"
    assert used(kc, "compute", ns)["requests.cpu"] == "400m"
    run(kc, "run", "web2", "-n", ns, "--image=busybox")
    third = run(kc, "run", "web3", "-n", ns, "--image=busybox", check=False)
    assert 'pods "web3" is forbidden: exceeded quota: compute, requested: ' \
           'limits.memory=256Mi,requests.cpu=400m, used: limits.memory=512Mi,' \
           'requests.cpu=800m, limited: limits.memory=512Mi,requests.cpu=1' in third.stderr
    big = run(kc, "run", "big", "-n", ns, "--image=busybox", "--overrides", json.dumps(
        {"spec": {"containers": [{"name": "big", "image": "busybox",
                                  "resources": {"limits": {"cpu": "2"}}}]}}), check=False)
    assert 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' \
        in big.stderr


def test_python_client(env):
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(env.admin)))
    ns = "pyquota"
    api.create_namespace({"metadata": {"name": ns}})
    api.create_namespaced_service_account(ns, {"metadata": {"name": "default"}})
    api.create_namespaced_resource_quota(ns, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="secrets"),
        spec=client.V1ResourceQuotaSpec(hard={"secrets": "1"})))

    def counted():
        rq = api.read_namespaced_resource_quota("secrets", ns)
        return rq.status and rq.status.used == {"secrets": "0"} and rq
    rq = eventually(counted)
    assert rq and rq.status.hard == {"secrets": "1"}
    api.create_namespaced_secret(ns, {"metadata": {"name": "a"}, "stringData": {"k": "v"}})
    with pytest.raises(ApiException) as exc:
        api.create_namespaced_secret(ns, {"metadata": {"name": "b"}})
    assert exc.value.status == 403
    body = json.loads(exc.value.body)
    assert body["reason"] == "Forbidden" and body["message"] == (
        'secrets "b" is forbidden: exceeded quota: secrets, requested: secrets=1, used: '
        'secrets=1, limited: secrets=1')
    lr = api.create_namespaced_limit_range(ns, {
        "metadata": {"name": "lr"}, "spec": {"limits": [
            {"type": "Container", "max": {"memory": "1Gi"}}]}})
    # LimitRange defaulting: the max becomes the default limit and request
    assert lr.spec.limits[0].default == {"memory": "1Gi"}
    assert lr.spec.limits[0].default_request == {"memory": "1Gi"}


def test_wrong_user_and_bad_input(env):
    nobody = env.kubeconfig("nobody")
    denied = run(nobody, "create", "quota", "mine", "-n", NS, "--hard=pods=100",
                 check=False)
    assert denied.returncode != 0
    assert 'User "nobody" cannot create resource "resourcequotas"' in denied.stderr
    # nor can anyone without rights reset the usage through /status
    patch = run(nobody, "patch", "resourcequota", "objects", "-n", NS, "--subresource=status",
                "--type=merge", "-p", '{"status":{"used":{"pods":"0"}}}', check=False)
    assert 'User "nobody" cannot get resource "resourcequotas/status"' in patch.stderr
    bad = run(env.admin, "create", "-n", NS, "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "bad"},
        "spec": {"hard": {"pods": "lots"}}}))
    assert bad.returncode != 0 and "quantities must match the regular expression" in \
        bad.stderr and "Traceback" not in bad.stderr
    bad_lr = run(env.admin, "create", "-n", NS, "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "x1"}}]}}))
    assert bad_lr.returncode != 0 and "quantities must match" in bad_lr.stderr
    negative = run(env.admin, "create", "quota", "neg", "-n", NS, "--hard=pods=-1",
                   check=False)
    assert 'ResourceQuota "neg" is invalid: spec.hard[pods]: Invalid value: "-1": must ' \
           'be greater than or equal to 0' in negative.stderr
    inverted = run(env.admin, "create", "-n", NS, "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "inverted"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}))
    assert 'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max ' \
           'value 1' in inverted.stderr
