"""Kinds served at two versions over one storage: autoscaling/v1 and v2
HorizontalPodAutoscalers (stored at v2) and events.k8s.io/v1 Events over core v1
Events, with the real kubectl and the official Python client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

from .test_kubectl import run

NS = "versions"


@pytest.fixture(scope="module")
def kc(cluster):
    run(cluster.admin, "create", "namespace", NS)
    return cluster.admin


def raw(kc, path) -> dict:
    return json.loads(run(kc, "get", "--raw", path).stdout)


def test_kubectl_autoscale_is_served_at_v1_and_v2(kc):
    run(kc, "create", "deployment", "web", "--image=busybox", "-n", NS)
    out = run(kc, "autoscale", "deployment", "web", "-n", NS, "--min=1", "--max=3",
              "--cpu-percent=50").stdout
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in out
    table = run(kc, "get", "hpa", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                "REPLICAS", "AGE"]
    assert table[1].split()[:2] == ["web", "Deployment/web"]
    assert "cpu: <unknown>/50%" in table[1]  # upstream's formatHPAMetrics
    assert table[1].split()[4:6] == ["1", "3"]
    base = f"/apis/autoscaling/%s/namespaces/{NS}/horizontalpodautoscalers/web"
    v1, v2 = raw(kc, base % "v1"), raw(kc, base % "v2")
    assert v1["apiVersion"] == "autoscaling/v1" and v2["apiVersion"] == "autoscaling/v2"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    assert v1["metadata"]["resourceVersion"] == v2["metadata"]["resourceVersion"]
    listed = raw(kc, f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers"
                     "?resourceVersion=0")
    assert listed["kind"] == "HorizontalPodAutoscalerList"
    assert [i["apiVersion"] for i in listed["items"]] == ["autoscaling/v1"]


def test_python_client_writes_v2_reads_v1(kc):
    api = config.new_client_from_config(config_file=str(kc))
    v2 = client.AutoscalingV2Api(api)
    v2.create_namespaced_horizontal_pod_autoscaler(NS, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "mem"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "web"},
                 "maxReplicas": 4, "metrics": [{"type": "Resource", "resource": {
                     "name": "memory", "target": {"type": "AverageValue",
                                                  "averageValue": "100Mi"}}}]}})
    v1 = client.AutoscalingV1Api(api)
    hpa = v1.read_namespaced_horizontal_pod_autoscaler("mem", NS)
    assert hpa.spec.max_replicas == 4 and hpa.spec.target_cpu_utilization_percentage is None
    assert "autoscaling.alpha.kubernetes.io/metrics" in hpa.metadata.annotations
    # an update through v1 keeps what only v2 can say
    hpa.spec.max_replicas = 5
    v1.replace_namespaced_horizontal_pod_autoscaler("mem", NS, hpa)
    back = v2.read_namespaced_horizontal_pod_autoscaler("mem", NS)
    assert back.spec.max_replicas == 5
    assert back.spec.metrics[0].resource.name == "memory"
    assert not (back.metadata.annotations or {})
    bad = run(kc, "create", "-n", NS, "--validate=false", "-f", "-", check=False,
              stdin=json.dumps({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                                "metadata": {"name": "bad"},
                                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"},
                                         "maxReplicas": "many"}}))
    assert bad.returncode != 0 and "BadRequest" in bad.stderr and "Traceback" not in bad.stderr


def test_events_k8s_io_over_core_events(kc):
    api = config.new_client_from_config(config_file=str(kc))
    events = client.EventsV1Api(api)
    events.create_namespaced_event(NS, {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "scaled"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1", "action": "Scale", "reason": "Scaled", "type": "Normal",
        "note": "scaled web to 2",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                      "namespace": NS}})
    core = client.CoreV1Api(api).read_namespaced_event("scaled", NS)
    assert core.message == "scaled web to 2" and core.involved_object.name == "web"
    assert core.reporting_component == "example.com/ctl"
    shown = run(kc, "events", "-n", NS).stdout
    assert "Scaled" in shown and "scaled web to 2" in shown
    # a core event is seen through events.k8s.io/v1 with upstream's field names
    run(kc, "create", "-n", NS, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "core"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": NS},
        "reason": "Pulled", "message": "image pulled", "type": "Normal", "count": 2,
        "source": {"component": "kubelet", "host": "n1"}}))
    ev = raw(kc, f"/apis/events.k8s.io/v1/namespaces/{NS}/events/core")
    assert (ev["note"], ev["regarding"]["name"], ev["deprecatedCount"]) == (
        "image pulled", "p", 2)
    assert ev["deprecatedSource"] == {"component": "kubelet", "host": "n1"}
    names = sorted(e["metadata"]["name"] for e in raw(
        kc, f"/apis/events.k8s.io/v1/namespaces/{NS}/events")["items"])
    assert names == ["core", "scaled"]
    # events.k8s.io's field labels, on objects stored as core Events (etcd and cache)
    for rv in ("", "&resourceVersion=0"):
        picked = raw(kc, f"/apis/events.k8s.io/v1/namespaces/{NS}/events"
                         f"?fieldSelector=regarding.name%3Dweb{rv}")["items"]
        assert [e["metadata"]["name"] for e in picked] == ["scaled"]
    core_picked = raw(kc, f"/api/v1/namespaces/{NS}/events?fieldSelector="
                          "involvedObject.name%3Dp")["items"]
    assert [e["metadata"]["name"] for e in core_picked] == ["core"]
    assert events.read_namespaced_event("scaled", NS).note == "scaled web to 2"
    table = run(kc, "get", "events.v1.events.k8s.io", "-n", NS).stdout
    assert "image pulled" in table and "scaled web to 2" in table


def test_wrong_user_is_refused(kc, cluster):
    nobody = cluster.kubeconfig("nobody")
    out = run(nobody, "autoscale", "deployment", "web", "-n", NS, "--max=2", check=False)
    assert out.returncode != 0 and 'User "nobody" cannot' in out.stderr
    out = run(nobody, "get", "events.v1.events.k8s.io", "-n", NS, check=False)
    assert 'User "nobody" cannot list resource "events" in API group "events.k8s.io"' \
        in out.stderr
