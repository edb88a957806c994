"""Server-side apply taking over from client-side apply (upstream's CSA-to-SSA
migration: kubectl upgrades managedFields, the server keeps the last-applied
annotation in step), and server-side apply that changes nothing writing nothing."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client, config

from .test_kubectl import get_json, run

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: mig
  labels: {{app: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: main
        image: busybox:{tag}
        env: [{{name: MODE, value: "{mode}"}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-cfg, namespace: mig}}
data: {{mode: "{mode}"}}
"""


def _manifest(name: str, mode: str = "one", tag: str = "1.36") -> str:
    return MANIFEST.format(name=name, mode=mode, tag=tag)


@pytest.fixture(scope="module")
def cluster(cluster):
    run(cluster.admin, "create", "namespace", "mig")
    return cluster


def _managed(kc, kind: str, name: str) -> dict[tuple[str, str], dict]:
    obj = json.loads(run(kc, "get", kind, name, "-n", "mig", "-o", "json",
                         "--show-managed-fields").stdout)
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def test_server_side_apply_takes_over_a_client_side_applied_object(cluster):
    kc = cluster.admin
    run(kc, "apply", "-f", "-", stdin=_manifest("mig1"))
    before = _managed(kc, "deployment", "mig1")
    assert ("kubectl-client-side-apply", "Update") in before
    # The same manifest, now server-side and without --force-conflicts.
    out = run(kc, "apply", "--server-side", "-f", "-", stdin=_manifest("mig1"))
    assert "deployment.apps/mig1 serverside-applied" in out.stdout
    assert "configmap/mig1-cfg serverside-applied" in out.stdout
    for kind, name in (("deployment", "mig1"), ("configmap", "mig1-cfg")):
        managers = _managed(kc, kind, name)
        assert ("kubectl", "Apply") in managers, managers
        assert ("kubectl-client-side-apply", "Update") not in managers
    fields = json.dumps(_managed(kc, "deployment", "mig1")[("kubectl", "Apply")]["fieldsV1"])
    assert '"f:replicas"' in fields and '"k:{\\"name\\":\\"MODE\\"}"' in fields
    # A changed manifest applies server-side without conflicts: kubectl owns it all.
    out = run(kc, "apply", "--server-side", "-f", "-", stdin=_manifest("mig1", "two", "1.37"))
    assert "deployment.apps/mig1 serverside-applied" in out.stdout, out.stderr
    dep = get_json(kc, "deployment", "mig1", "-n", "mig")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"
    # The last-applied annotation follows kubectl's server-side applies (upstream's
    # lastAppliedUpdater), so a later client-side apply still computes the right patch.
    last = json.loads(dep["metadata"]["annotations"][LAST_APPLIED])
    applied = next(yaml.safe_load_all(_manifest("mig1", "two", "1.37")))
    assert last == applied
    out = run(kc, "apply", "-f", "-", stdin=_manifest("mig1", "three", "1.37"))
    assert "deployment.apps/mig1 configured" in out.stdout
    dep = get_json(kc, "deployment", "mig1", "-n", "mig")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MODE", "value": "three"}]


def test_client_side_fields_changed_by_others_still_conflict(cluster):
    """Only fields whose live value still equals the last-applied one are taken over
    silently; one someone else changed since is a conflict, as upstream."""
    kc = cluster.admin
    run(kc, "apply", "-f", "-", stdin=_manifest("mig2"))
    run(kc, "scale", "deployment", "mig2", "-n", "mig", "--replicas=4")
    out = run(kc, "apply", "--server-side", "-f", "-", stdin=_manifest("mig2"), check=False)
    assert out.returncode != 0
    assert "conflict" in out.stderr.lower() and ".spec.replicas" in out.stderr


def _ssa(api_client, body: dict):
    return client.AppsV1Api(api_client).patch_namespaced_deployment(
        body["metadata"]["name"], "mig", body, field_manager="ops", force=True,
        _content_type="application/apply-patch+yaml")


def test_server_side_apply_that_changes_nothing_writes_nothing(cluster):
    kc = cluster.admin
    run(kc, "apply", "--server-side", "-f", "-", stdin=_manifest("mig3"))
    first = get_json(kc, "deployment", "mig3", "-n", "mig", "--show-managed-fields")
    rv = first["metadata"]["resourceVersion"]
    out = run(kc, "apply", "--server-side", "-f", "-", stdin=_manifest("mig3"))
    assert "serverside-applied" in out.stdout
    again = get_json(kc, "deployment", "mig3", "-n", "mig", "--show-managed-fields")
    assert again["metadata"]["resourceVersion"] == rv
    assert again["metadata"]["managedFields"] == first["metadata"]["managedFields"]
    # The official client, with another manager applying the same values: it becomes a
    # co-owner, which is a change; applying that again is not.
    api_client = config.new_client_from_config(config_file=str(kc))
    try:
        body = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "mig3", "namespace": "mig"}, "spec": {"replicas": 2}}
        owned = _ssa(api_client, body).metadata.resource_version
        assert owned != rv
        assert _ssa(api_client, body).metadata.resource_version == owned
        listed = client.AppsV1Api(api_client).read_namespaced_deployment("mig3", "mig")
        assert listed.metadata.resource_version == owned
    finally:
        api_client.close()


def test_updates_and_patches_that_change_nothing_write_nothing(cluster):
    kc = cluster.admin
    run(kc, "apply", "-f", "-", stdin=_manifest("mig4"))
    first = get_json(kc, "configmap", "mig4-cfg", "-n", "mig", "--show-managed-fields")
    run(kc, "apply", "-f", "-", stdin=_manifest("mig4"))  # client-side, unchanged
    run(kc, "patch", "configmap", "mig4-cfg", "-n", "mig", "--type=merge",
        "-p", '{"data":{"mode":"one"}}')
    api_client = config.new_client_from_config(config_file=str(kc))
    try:
        core = client.CoreV1Api(api_client)
        current = core.read_namespaced_config_map("mig4-cfg", "mig")
        current.metadata.managed_fields = None  # as a client that does not know them
        core.replace_namespaced_config_map("mig4-cfg", "mig", current)
    finally:
        api_client.close()
    again = get_json(kc, "configmap", "mig4-cfg", "-n", "mig", "--show-managed-fields")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == first["metadata"]["managedFields"]
