"""Table conversion: upstream columns and cells for the main kinds."""

from datetime import UTC, datetime

import pytest

from bootstrap.api import resources
from bootstrap.api.table_columns import human_duration
from bootstrap.api.tables import to_table

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-01-01T11:55:00Z"


@pytest.mark.parametrize("secs,want", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (182, "3m2s"),
    (600, "10m"), (3 * 3600, "3h"), (3 * 3600 + 120, "3h2m"), (10 * 3600, "10h"), (50 * 3600, "2d2h"),
    (48 * 3600, "2d"), (30 * 86400, "30d"), (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_human_duration(secs, want):
    assert human_duration(secs) == want


def table(plural, objs, **kw):
    r = next(r for r in resources.CATALOGUE if r.plural == plural)
    return to_table(objs, r, now=NOW, **kw)


def cols(t):
    return [(c["name"], c["priority"]) for c in t["columnDefinitions"]]


def test_pod_table_running_with_restarts():
    pod = {"metadata": {"name": "web-1", "creationTimestamp": CREATED},
           "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "podIP": "10.244.1.5", "containerStatuses": [
               {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
                "lastState": {"terminated": {"finishedAt": "2026-01-01T11:59:00Z"}}},
               {"name": "b", "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    t = table("pods", [pod])
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert cols(t) == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0),
                       ("IP", 1), ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]
    assert t["columnDefinitions"][0]["format"] == "name"
    assert t["rows"][0]["cells"] == ["web-1", "1/2", "CrashLoopBackOff", "2 (60s ago)", "5m",
                                     "10.244.1.5", "node-a", "<none>", "<none>"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_pod_status_variants():
    base = {"metadata": {"name": "p", "creationTimestamp": CREATED}, "spec": {"containers": [{"name": "a"}]}}
    pending = dict(base, status={"phase": "Pending"})
    done = dict(base, status={"phase": "Succeeded", "containerStatuses": [
        {"name": "a", "ready": False, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]})
    deleting = dict(base, metadata={**base["metadata"], "deletionTimestamp": CREATED}, status={"phase": "Running"})
    init = dict(base, spec={**base["spec"], "initContainers": [{"name": "i"}]},
                status={"phase": "Pending", "initContainerStatuses": [
                    {"name": "i", "restartCount": 0, "state": {"running": {}}}]})
    t = table("pods", [pending, done, deleting, init])
    assert [r["cells"][2] for r in t["rows"]] == ["Pending", "Completed", "Terminating", "Init:0/1"]


def test_deployment_table():
    d = {"metadata": {"name": "web", "creationTimestamp": CREATED},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
         "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    t = table("deployments", [d], include_object="Object")
    assert cols(t) == [("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
                       ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert t["rows"][0]["cells"] == ["web", "2/3", 3, 2, "5m", "nginx", "nginx:1.25", "app=web"]
    assert t["rows"][0]["object"] is d
    assert [c["type"] for c in t["columnDefinitions"]][2:4] == ["integer", "integer"]


def test_service_table():
    s = {"metadata": {"name": "web", "creationTimestamp": CREATED},
         "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "selector": {"app": "web"},
                  "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}}
    t = table("services", [s], include_object="None")
    assert cols(t) == [("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0),
                       ("Age", 0), ("Selector", 1)]
    assert t["rows"][0]["cells"] == ["web", "NodePort", "10.96.0.20", "<none>", "80:30080/TCP,53/UDP",
                                     "5m", "app=web"]
    assert "object" not in t["rows"][0]


def test_node_table():
    n = {"metadata": {"name": "cp1", "creationTimestamp": CREATED,
                      "labels": {"node-role.kubernetes.io/control-plane": ""}},
         "spec": {"unschedulable": True},
         "status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                    "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12",
                                 "kernelVersion": "6.1", "containerRuntimeVersion": "runc://1.1"}}}
    t = table("nodes", [n])
    assert t["rows"][0]["cells"] == ["cp1", "Ready,SchedulingDisabled", "control-plane", "5m", "v1.32.0",
                                     "10.0.0.2", "<none>", "Debian GNU/Linux 12", "6.1", "runc://1.1"]


def test_simple_kinds_and_default():
    t = table("namespaces", [{"metadata": {"name": "default", "creationTimestamp": CREATED},
                               "status": {"phase": "Active"}}])
    assert t["rows"][0]["cells"] == ["default", "Active", "5m"]
    t = table("configmaps", [{"metadata": {"name": "c", "creationTimestamp": CREATED}, "data": {"a": "1", "b": "2"}}])
    assert t["rows"][0]["cells"] == ["c", 2, "5m"]
    t = table("secrets", [{"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}}])
    assert t["rows"][0]["cells"] == ["s", "Opaque", 1, "<unknown>"]
    t = table("leases", [{"metadata": {"name": "l", "creationTimestamp": CREATED},
                           "spec": {"holderIdentity": "me"}}])
    assert t["rows"][0]["cells"] == ["l", "me", "5m"]
    t = table("selfsubjectaccessreviews", [{"metadata": {"name": "x", "creationTimestamp": CREATED}}],
              list_meta={"resourceVersion": "7"})
    assert cols(t) == [("Name", 0), ("Created At", 0)] and t["metadata"] == {"resourceVersion": "7"}


def test_job_and_csr_tables():
    j = {"metadata": {"name": "j", "creationTimestamp": CREATED},
         "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
         "status": {"succeeded": 1, "startTime": "2026-01-01T11:56:00Z", "completionTime": "2026-01-01T11:56:30Z",
                    "conditions": [{"type": "Complete", "status": "True"}]}}
    t = table("jobs", [j])
    assert t["rows"][0]["cells"][:5] == ["j", "Complete", "1/1", "30s", "5m"]
    csr = {"metadata": {"name": "node-csr-x", "creationTimestamp": CREATED},
           "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet", "username": "system:bootstrap:abc"},
           "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "Zm9v"}}
    t = table("certificatesigningrequests", [csr])
    assert t["rows"][0]["cells"] == ["node-csr-x", "5m", "kubernetes.io/kube-apiserver-client-kubelet",
                                     "system:bootstrap:abc", "<none>", "Approved,Issued"]


def test_quota_and_pvc_tables():
    q = {"metadata": {"name": "q", "creationTimestamp": CREATED},
         "status": {"hard": {"pods": "10", "limits.cpu": "2"}, "used": {"pods": "3"}}}
    t = table("resourcequotas", [q])
    assert t["rows"][0]["cells"] == ["q", "5m", "pods: 3/10", "limits.cpu: 0/2"]
    pvc = {"metadata": {"name": "data", "creationTimestamp": CREATED},
           "spec": {"volumeName": "pv1", "storageClassName": "local"},
           "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    t = table("persistentvolumeclaims", [pvc])
    assert t["rows"][0]["cells"] == ["data", "Bound", "pv1", "1Gi", "RWO", "local", "<unset>", "5m", ""]
