"""Subresources and request options over the official Python client and raw HTTP."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api(cluster):
    api_client = config.new_client_from_config(config_file=str(cluster.admin))
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="sub")))
    core.create_namespaced_service_account("sub", client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="default")))
    try:
        yield api_client
    finally:
        api_client.close()


def _raw(cluster, path: str, headers: dict | None = None, timeout: float = 30) -> bytes:
    req = urllib.request.Request(cluster.server.url + path,
                                 headers={"Accept": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, context=cluster.ssl_context(), timeout=timeout) as r:
        return r.read()


def _pod(name: str, node: str | None = None, labels=None) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels=labels),
                        spec=client.V1PodSpec(node_name=node, containers=[
                            client.V1Container(name="c", image="busybox")]))


def test_binding_sets_node_once(api):
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod("sub", _pod("bind-me"))
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    # The service account admission mounted the API credentials.
    assert any(v.name.startswith("kube-api-access-") for v in pod.spec.volumes)
    binding = client.V1Binding(metadata=client.V1ObjectMeta(name="bind-me"),
                               target=client.V1ObjectReference(kind="Node", name="n1"))
    core.create_namespaced_pod_binding("bind-me", "sub", binding, _preload_content=False)
    assert core.read_namespaced_pod("bind-me", "sub").spec.node_name == "n1"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod_binding("bind-me", "sub", binding, _preload_content=False)
    assert exc.value.status == 409 and "already assigned" in exc.value.body


def test_eviction_honours_pdb(api):
    core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
    core.create_namespaced_pod("sub", _pod("guarded", labels={"app": "guarded"}))
    # Pending pods are evicted regardless of budgets (upstream canIgnorePDB): run it.
    core.patch_namespaced_pod_status("guarded", "sub", {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    pdb = policy.create_namespaced_pod_disruption_budget("sub", client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="guard"),
        spec=client.V1PodDisruptionBudgetSpec(min_available=1, selector=client.V1LabelSelector(
            match_labels={"app": "guarded"}))))
    pdb.status = client.V1PodDisruptionBudgetStatus(
        disruptions_allowed=0, current_healthy=1, desired_healthy=1, expected_pods=1,
        observed_generation=pdb.metadata.generation)
    policy.replace_namespaced_pod_disruption_budget_status("guard", "sub", pdb)
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="guarded", namespace="sub"))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod_eviction("guarded", "sub", eviction)
    assert exc.value.status == 429
    policy.delete_namespaced_pod_disruption_budget("guard", "sub")
    core.create_namespaced_pod_eviction("guarded", "sub", eviction, _preload_content=False)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("guarded", "sub")
    assert exc.value.status == 404


def test_status_subresource_separates_spec_and_status(api):
    apps = client.AppsV1Api(api)
    dep = apps.create_namespaced_deployment("sub", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d"),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels={"a": "b"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"a": "b"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c",
                                                                     image="busybox")])))))
    apps.patch_namespaced_deployment_status("d", "sub", {"status": {"replicas": 7},
                                                         "spec": {"replicas": 9}})
    after = apps.read_namespaced_deployment("d", "sub")
    assert after.status.replicas == 7 and after.spec.replicas == 1
    assert after.metadata.generation == dep.metadata.generation
    apps.patch_namespaced_deployment("d", "sub", {"spec": {"replicas": 2},
                                                  "status": {"replicas": 0}})
    after = apps.read_namespaced_deployment("d", "sub")
    assert after.spec.replicas == 2 and after.status.replicas == 7
    assert after.metadata.generation == dep.metadata.generation + 1
    scale = apps.read_namespaced_deployment_scale("d", "sub")
    assert scale.spec.replicas == 2 and scale.status.selector == "a=b"


def test_token_request(api):
    core = client.CoreV1Api(api)
    out = core.create_namespaced_service_account_token("default", "sub", client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=["api"], expiration_seconds=3600)))
    assert out.status.token.count(".") == 2


def test_partial_metadata_and_table(cluster, api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("sub", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="meta-only"), data={"big": "x" * 100}))
    meta = json.loads(_raw(cluster, "/api/v1/namespaces/sub/configmaps", headers={
        "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"}))
    assert meta["kind"] == "PartialObjectMetadataList"
    assert all("data" not in i for i in meta["items"])
    table = json.loads(_raw(cluster, "/api/v1/namespaces/sub/configmaps", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}))
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:1] == ["Name"]


def test_deletecollection_with_selector(api):
    core = client.CoreV1Api(api)
    for i in range(3):
        core.create_namespaced_config_map("sub", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"dc-{i}", labels={"dc": "yes" if i else "no"})))
    core.delete_collection_namespaced_config_map("sub", label_selector="dc=yes")
    left = core.list_namespaced_config_map("sub", label_selector="dc").items
    assert [c.metadata.name for c in left] == ["dc-0"]


def test_bookmarks_and_timeout(cluster, api):
    # The stream ends by itself at timeoutSeconds; bookmarks come while nothing matches.
    lines = _raw(cluster, "/api/v1/namespaces/sub/configmaps?watch=true&allowWatchBookmarks="
                 "true&timeoutSeconds=7&resourceVersion=0&labelSelector=nothing-matches"
                 ).decode().splitlines()
    events = [json.loads(x) for x in lines if x]
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert int(events[-1]["object"]["metadata"]["resourceVersion"]) > 0


def test_pod_log_without_kubelet(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_pod("sub", _pod("loggy", node="ghost"))
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("loggy", "sub")
    assert exc.value.status == 404 and 'nodes \\"ghost\\" not found' in exc.value.body
