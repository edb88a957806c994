"""Per-kind semantic checks beyond the schema: workloads, RBAC, nodes, CSRs, name formats."""

import copy

import pytest

from bootstrap.api import validation
from bootstrap.api.errors import APIError
from bootstrap.api.schema import validate, validate_update

STS = ("apps", "v1", "StatefulSet")
NODE = ("", "v1", "Node")
ROLE = ("rbac.authorization.k8s.io", "v1", "Role")
RB = ("rbac.authorization.k8s.io", "v1", "RoleBinding")
CSR = ("certificates.k8s.io", "v1", "CertificateSigningRequest")
JOB = ("batch", "v1", "Job")
LEASE = ("coordination.k8s.io", "v1", "Lease")


def fields(exc):
    return [c["field"] for c in exc.value.details["causes"]]


@pytest.mark.parametrize("fn,value,ok", [
    (validation.dns1123_label, "a-b", True), (validation.dns1123_label, "A", False),
    (validation.dns1123_label, "a" * 64, False), (validation.dns1123_subdomain, "a.b-c", True),
    (validation.dns1123_subdomain, "-a", False), (validation.dns1035_label, "1a", False),
    (validation.qualified_name, "example.com/Name_1", True), (validation.qualified_name, "a/b/c", False),
    (validation.qualified_name, "/x", False), (validation.qualified_name, "x" * 64, False),
    (validation.label_value, "", True), (validation.label_value, "a b", False),
    (validation.config_map_key, "..x", False), (validation.config_map_key, "KEY_name.1", True),
    (validation.path_segment_name, "a/b", False), (validation.path_segment_name, "system:x", True),
])
def test_formats(fn, value, ok):
    assert (fn(value) == []) is ok


def sts():
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


def test_statefulset_update_rules():
    old = sts()
    validate(old, STS)
    ok = copy.deepcopy(old)
    ok["spec"]["replicas"] = 3
    validate_update(ok, old, STS)
    bad = copy.deepcopy(old)
    bad["spec"]["serviceName"] = "other"
    with pytest.raises(APIError) as ei:
        validate_update(bad, old, STS)
    assert "updates to statefulset spec for fields other than" in ei.value.message
    assert ei.value.message.count("Forbidden") == 1


def test_node_pod_cidr_is_sticky():
    old = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}}
    new = copy.deepcopy(old)
    new["spec"]["podCIDR"] = "10.244.2.0/24"
    with pytest.raises(APIError):
        validate_update(new, old, NODE)
    first = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}}
    validate_update(old, first, NODE)


def test_rbac_rules_and_bindings():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []},
                      {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}
    with pytest.raises(APIError) as ei:
        validate(role, ROLE)
    assert fields(ei) == ["rules[0].verbs", "rules[1].nonResourceURLs"]
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
          "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]}
    validate(rb, RB)
    changed = copy.deepcopy(rb)
    changed["roleRef"]["name"] = "edit"
    with pytest.raises(APIError) as ei:
        validate_update(changed, rb, RB)
    assert "cannot change roleRef" in ei.value.message
    rb2 = copy.deepcopy(rb)
    rb2["subjects"][0]["kind"] = "Robot"
    with pytest.raises(APIError) as ei:
        validate(rb2, RB)
    assert fields(ei) == ["subjects[0].kind"]


def test_csr_request_immutable_and_name_free_form():
    csr = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": "node-csr-AbC_123"},
           "spec": {"request": "Zm9v", "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                    "usages": ["client auth"]}}
    validate(csr, CSR)
    new = copy.deepcopy(csr)
    new["spec"]["request"] = "YmFy"
    with pytest.raises(APIError) as ei:
        validate_update(new, csr, CSR)
    assert fields(ei) == ["spec.request"]


def test_job_restart_policy_and_lease_duration():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Always",
                                          "containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(APIError) as ei:
        validate(job, JOB)
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in ei.value.message
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
             "spec": {"leaseDurationSeconds": 0}}
    with pytest.raises(APIError):
        validate(lease, LEASE)


def test_pod_duplicate_names_and_missing_volume():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]},
                                   {"name": "c", "image": "i"}]}}
    with pytest.raises(APIError) as ei:
        validate(pod, ("", "v1", "Pod"))
    assert fields(ei) == ["spec.containers[1].name", "spec.containers[0].volumeMounts[0].name"]


def test_metadata_identity_is_immutable():
    old = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "uid": "1",
                                                                "creationTimestamp": "2026-01-01T00:00:00Z"}}
    new = copy.deepcopy(old)
    new["metadata"]["uid"] = "2"
    with pytest.raises(APIError) as ei:
        validate_update(new, old, ("", "v1", "ConfigMap"))
    assert fields(ei) == ["metadata.uid"]


def test_virtual_kinds_skip_required_checks():
    validate({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
             ("authentication.k8s.io", "v1", "TokenRequest"))
