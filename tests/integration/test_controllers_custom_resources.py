"""The controller manager's garbage collector and namespace controller act on custom
resources too (issue 12): objects of a CRD owned by a deleted owner are collected,
owners that are custom objects take their dependents with them, and deleting a
namespace deletes its custom objects. Real API server, etcd, controller manager and
kubectl."""

from __future__ import annotations

import json

import pytest

from .cluster import eventually, running_cluster
from .test_controller_manager import Manager, apply, get, kubectl

pytestmark = pytest.mark.timeout(300)

GROUP = "gc.example.com"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"gadgets.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {
                               "type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture(scope="module")
def env():
    with running_cluster() as cluster:
        kc = cluster.admin
        apply(kc, CRD)
        assert eventually(lambda: kubectl(kc, "get", "gadgets", check=False).returncode == 0)
        manager = Manager(cluster, "cm-cr")
        try:
            manager.start()
            manager.wait_for("starting controllers")
            cluster.manager = manager
            yield cluster
        finally:
            manager.stop()
        assert "Traceback" not in manager.text(), manager.text()[-4000:]


def gadget(name: str, namespace: str = "default", owners=()) -> dict:
    md = {"name": name, "namespace": namespace}
    if owners:
        md["ownerReferences"] = list(owners)
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": md}


def ref(kc, kind: str, name: str, api_version: str) -> dict:
    obj = get(kc, kind, name)
    return {"apiVersion": api_version, "kind": obj["kind"], "name": name,
            "uid": obj["metadata"]["uid"]}


def test_custom_objects_of_a_deleted_owner_are_collected(env):
    kc = env.admin
    kubectl(kc, "create", "configmap", "gadget-owner")
    apply(kc, gadget("owned", owners=[ref(kc, "configmap", "gadget-owner", "v1")]))
    apply(kc, gadget("free"))
    kubectl(kc, "delete", "configmap", "gadget-owner")
    assert eventually(lambda: get(kc, "gadget", "owned") is None, 90), \
        env.manager.text()[-3000:]
    assert get(kc, "gadget", "free") is not None


def test_a_custom_owner_takes_its_dependents_along(env):
    kc = env.admin
    apply(kc, gadget("parent"))
    owner = ref(kc, "gadget", "parent", f"{GROUP}/v1")
    apply(kc, {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "gadget-child", "namespace": "default",
                            "ownerReferences": [owner]}})
    apply(kc, gadget("gadget-grandchild", owners=[owner]))
    # Foreground: the owner stays until its dependents are gone, then goes itself.
    kubectl(kc, "delete", "gadget", "parent", "--cascade=foreground", "--wait=false")
    assert eventually(lambda: get(kc, "gadget", "parent") is None, 90), \
        env.manager.text()[-3000:]
    assert get(kc, "configmap", "gadget-child") is None
    assert get(kc, "gadget", "gadget-grandchild") is None


def test_namespace_deletion_deletes_custom_objects(env):
    kc = env.admin
    kubectl(kc, "create", "namespace", "gadgets")
    apply(kc, gadget("inside", "gadgets"))
    kubectl(kc, "delete", "namespace", "gadgets", "--wait=true", "--timeout=90s",
            check=False)
    assert eventually(lambda: get(kc, "namespace", "gadgets") is None, 90), \
        json.dumps(get(kc, "namespace", "gadgets"))
    listed = json.loads(kubectl(kc, "get", "gadgets", "-A", "-o", "json").stdout)
    assert [g["metadata"]["name"] for g in listed["items"]
            if g["metadata"]["namespace"] == "gadgets"] == []
