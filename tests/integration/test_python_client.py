"""The official Python client (``kubernetes`` package) against the API server."""

from __future__ import annotations

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def core(cluster):
    api_client = config.new_client_from_config(config_file=str(cluster.admin))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def _cm(name: str, **labels) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or None),
                              data={"k": name})


def test_list_with_selectors_and_chunks(core):
    for i in range(7):
        core.create_namespaced_config_map("default", _cm(f"chunk-{i}", batch="a" if i % 2 else "b"))
    page = core.list_namespaced_config_map("default", limit=3, label_selector="batch")
    assert len(page.items) == 3 and page.metadata._continue
    names = [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map("default", limit=3, label_selector="batch",
                                               _continue=page.metadata._continue)
        names += [c.metadata.name for c in page.items]
    assert sorted(names) == sorted(f"chunk-{i}" for i in range(7))
    odd = core.list_namespaced_config_map("default", label_selector="batch=a")
    assert sorted(c.metadata.name for c in odd.items) == ["chunk-1", "chunk-3", "chunk-5"]
    by_name = core.list_namespaced_config_map("default", field_selector="metadata.name=chunk-2")
    assert [c.metadata.name for c in by_name.items] == ["chunk-2"]


def test_watch_from_resource_version(core):
    listed = core.list_namespaced_config_map("default")
    rv = listed.metadata.resource_version
    core.create_namespaced_config_map("default", _cm("watched-1"))
    core.patch_namespaced_config_map("watched-1", "default", {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("watched-1", "default")
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv,
                       timeout_seconds=5):
        if ev["object"].metadata.name == "watched-1":
            seen.append((ev["type"], ev["object"].data.get("k") if ev["object"].data else None))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "watched-1"), ("MODIFIED", "changed"), ("DELETED", "changed")]


@pytest.fixture(scope="module")
def late_core(cluster, core):
    """A second API server started after some history: its watch window begins later."""
    core.create_namespaced_config_map("default", _cm("history"))
    core.delete_namespaced_config_map("history", "default")
    late = cluster.add_server()
    kc = cluster.kubeconfig("kubernetes-admin", ("system:masters",), server=late)
    api_client = config.new_client_from_config(config_file=str(kc))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def test_watch_resumes_after_410(late_core):
    """A resourceVersion older than the watch window is 410 Expired; re-list and resume."""
    core = late_core
    w = watch.Watch()
    with pytest.raises(ApiException) as exc:
        for _ in w.stream(core.list_namespaced_config_map, "default", resource_version="1",
                          timeout_seconds=5):
            pass
    assert exc.value.status == 410
    relisted = core.list_namespaced_config_map("default")
    rv = relisted.metadata.resource_version
    core.create_namespaced_config_map("default", _cm("after-410"))
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv,
                       timeout_seconds=5):
        if ev["object"].metadata.name == "after-410":
            assert ev["type"] == "ADDED"
            w.stop()
            break
    else:
        pytest.fail("no event after resuming")


def test_conflict_and_not_found(core):
    cm = core.create_namespaced_config_map("default", _cm("conflicted"))
    cm.data = {"k": "first"}
    core.replace_namespaced_config_map("conflicted", "default", cm)
    cm.data = {"k": "stale"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("conflicted", "default", cm)
    assert exc.value.status == 409 and '"reason":"Conflict"' in exc.value.body.replace(" ", "")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("missing", "default")
    assert exc.value.status == 404


def test_generate_name_and_dry_run(core):
    made = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-")))
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9
    dry = core.create_namespaced_config_map("default", _cm("dry-only"), dry_run="All")
    assert dry.metadata.name == "dry-only"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("dry-only", "default")
    assert exc.value.status == 404


def test_service_allocations_are_unique(core):
    ips, ports = set(), set()
    for i in range(5):
        svc = core.create_namespaced_service("default", client.V1Service(
            metadata=client.V1ObjectMeta(name=f"np-{i}"),
            spec=client.V1ServiceSpec(type="NodePort", ports=[client.V1ServicePort(port=80)])))
        ips.add(svc.spec.cluster_ip)
        ports.add(svc.spec.ports[0].node_port)
        assert 30000 <= svc.spec.ports[0].node_port <= 32767
    assert len(ips) == 5 and len(ports) == 5
    kube = core.read_namespaced_service("kubernetes", "default")
    assert kube.spec.cluster_ip == "10.96.0.1" and kube.spec.cluster_ip not in ips
    eps = core.read_namespaced_endpoints("kubernetes", "default")
    assert eps.subsets[0].addresses[0].ip == "127.0.0.1"
    taken = next(iter(ips))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service("default", client.V1Service(
            metadata=client.V1ObjectMeta(name="dup-ip"),
            spec=client.V1ServiceSpec(cluster_ip=taken, ports=[client.V1ServicePort(port=80)])))
    assert exc.value.status == 422 and "provided IP is already allocated" in exc.value.body
    np0 = core.read_namespaced_service("np-0", "default").spec
    core.delete_namespaced_service("np-0", "default")
    # Deleting released the address and the node port: both can be claimed again.
    again = core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="reuse"),
        spec=client.V1ServiceSpec(type="NodePort", cluster_ip=np0.cluster_ip, ports=[
            client.V1ServicePort(port=80, node_port=np0.ports[0].node_port)])))
    assert again.spec.cluster_ip == np0.cluster_ip
    assert again.spec.ports[0].node_port == np0.ports[0].node_port


def test_service_replace_keeps_allocations(core):
    svc = core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="kept"),
        spec=client.V1ServiceSpec(type="NodePort", ports=[client.V1ServicePort(port=8080)])))
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name="kept",
                                     resource_version=svc.metadata.resource_version),
        spec=client.V1ServiceSpec(type="NodePort", ports=[client.V1ServicePort(port=8080)]))
    after = core.replace_namespaced_service("kept", "default", body)
    assert after.spec.cluster_ip == svc.spec.cluster_ip
    assert after.spec.ports[0].node_port == svc.spec.ports[0].node_port
    # Switching to ClusterIP releases the node port.
    core.patch_namespaced_service("kept", "default", {"spec": {"type": "ClusterIP",
                                                                "ports": [{"port": 8080,
                                                                           "nodePort": None}]}})
    taker = core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="taker"),
        spec=client.V1ServiceSpec(type="NodePort", ports=[
            client.V1ServicePort(port=80, node_port=svc.spec.ports[0].node_port)])))
    assert taker.spec.ports[0].node_port == svc.spec.ports[0].node_port
