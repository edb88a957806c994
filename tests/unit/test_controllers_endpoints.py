"""endpoint and endpointslice controllers: pure cores as data, then the
controllers on the FakeClient (objects in, requests out)."""

from __future__ import annotations

import copy

import pytest
from ctlharness import running, until

from bootstrap.agents.controllers.endpoints import (
    EndpointsController,
    desired_endpoints,
    endpoint_subsets,
    find_port,
)
from bootstrap.agents.controllers.endpointslice import (
    CONTROLLER_NAME,
    MANAGED_BY,
    EndpointSliceController,
    plan_slices,
)
from bootstrap.agents.controllers.endpointslice import desired_endpoints as slice_desired

pytestmark = pytest.mark.timeout(30)
SLICES = ("discovery.k8s.io", "v1", "endpointslices")


def service(name="web", selector=None, ports=None, cluster_ip="10.96.0.20", **spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "labels": {"team": "a"}},
            "spec": {"selector": {"app": name} if selector is None else selector,
                     "clusterIP": cluster_ip,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "protocol": "TCP"}] if ports is None else ports, **spec}}


def pod(name, ip, ready=True, node="node1", labels=None, ports=None, deleting=False,
        phase="Running", **spec):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                      "labels": labels or {"app": "web"}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x",
                                                    "ports": ports or []}], **spec},
         "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else [],
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return p


def node(name="node1", zone=None):
    n = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}}}
    if zone:
        n["metadata"]["labels"]["topology.kubernetes.io/zone"] = zone
    return n


# ------------------------------------------------------------------ pure: Endpoints

def test_subsets_ready_and_not_ready_sorted():
    subsets, truncated = endpoint_subsets(service(), [
        pod("b", "10.244.1.9"), pod("a", "10.244.1.3"), pod("c", "10.244.1.5", ready=False),
        pod("done", "10.244.1.7", phase="Succeeded"), pod("noip", None),
        pod("gone", "10.244.1.8", deleting=True)])
    assert not truncated
    assert subsets == [{
        "addresses": [
            {"ip": "10.244.1.3", "nodeName": "node1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}},
            {"ip": "10.244.1.9", "nodeName": "node1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "notReadyAddresses": [
            {"ip": "10.244.1.5", "nodeName": "node1",
             "targetRef": {"kind": "Pod", "namespace": "default", "name": "c", "uid": "uid-c"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_named_target_port_per_pod_makes_two_subsets():
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [pod("a", "10.244.1.3", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.244.1.4", ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", "10.244.1.5", ports=[{"name": "other", "containerPort": 1}])]
    subsets, _ = endpoint_subsets(svc, pods)
    assert [(s["ports"][0]["port"], [a["ip"] for a in s["addresses"]]) for s in subsets] == [
        (8080, ["10.244.1.3"]), (9090, ["10.244.1.4"])]


def test_find_port_protocol_and_sidecars():
    p = pod("a", "1.1.1.1", ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None
    p["spec"]["initContainers"] = [{"name": "s", "restartPolicy": "Always",
                                   "ports": [{"name": "m", "containerPort": 9}]}]
    assert find_port(p, {"port": 1, "targetPort": "m"}) == 9
    assert find_port(p, {"port": 7}) == 7


def test_publish_not_ready_and_headless_hostname():
    svc = service(cluster_ip="None", ports=[], publishNotReadyAddresses=True)
    p = pod("a", "10.244.1.3", ready=False, hostname="a", subdomain="web")
    subsets, _ = endpoint_subsets(svc, [p, pod("t", "10.244.1.4", deleting=True)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.244.1.3", "10.244.1.4"]
    assert subsets[0]["addresses"][0]["hostname"] == "a" and "ports" not in subsets[0]
    new = desired_endpoints(svc, [p], None)
    assert new["metadata"]["labels"] == {"team": "a", "service.kubernetes.io/headless": ""}


def test_desired_endpoints_is_none_when_unchanged_and_truncates():
    svc = service()
    first = desired_endpoints(svc, [pod("a", "10.244.1.3")], None)
    assert desired_endpoints(svc, [pod("a", "10.244.1.3")], first) is None
    many = [pod(f"p{i}", f"10.244.{i // 250}.{i % 250 + 1}") for i in range(1005)]
    big = desired_endpoints(svc, many, None)
    assert sum(len(s["addresses"]) for s in big["subsets"]) == 1000
    assert big["metadata"]["annotations"] == {"endpoints.kubernetes.io/over-capacity": "truncated"}


# ------------------------------------------------------------------ pure: slices

def test_slice_endpoint_conditions_zone_and_missing_node():
    svc = service()
    desired, missing = slice_desired(svc, [
        pod("a", "10.244.1.3"), pod("t", "10.244.1.4", deleting=True),
        pod("u", "10.244.1.5", ready=False), pod("lost", "10.244.9.9", node="ghost")],
        {"node1": node(zone="z1")})
    assert missing
    [(ports, eps)] = desired.values()
    assert ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    by_name = {e["targetRef"]["name"]: e for e in eps.values()}
    assert set(by_name) == {"a", "t", "u"}
    assert by_name["a"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert by_name["t"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert by_name["u"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert by_name["a"]["zone"] == "z1" and by_name["a"]["nodeName"] == "node1"


def test_plan_packs_100_per_slice_and_keeps_placement():
    svc = service()
    pods = [pod(f"p{i}", f"10.244.1.{i + 1}") for i in range(150)]
    desired, _ = slice_desired(svc, pods, {"node1": node()})
    plan = plan_slices(svc, desired, [])
    assert [len(s["endpoints"]) for s in plan.create] == [100, 50]
    s0 = plan.create[0]
    assert s0["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                                        MANAGED_BY: CONTROLLER_NAME}
    assert s0["metadata"]["ownerReferences"][0]["uid"] == "uid-web"
    assert s0["addressType"] == "IPv4" and s0["metadata"]["generateName"] == "web-"
    existing = []
    for i, s in enumerate(plan.create):
        s = copy.deepcopy(s)
        s["metadata"]["name"] = f"web-{i}"
        existing.append(s)
    assert not plan_slices(svc, desired, existing)          # idempotent
    # one pod gone from the first slice, one new: the new one fills the hole
    pods2 = pods[1:] + [pod("new", "10.244.2.1")]
    desired2, _ = slice_desired(svc, pods2, {"node1": node()})
    plan2 = plan_slices(svc, desired2, existing)
    assert not plan2.create and not plan2.delete
    assert [s["metadata"]["name"] for s in plan2.update] == ["web-0"]
    assert "10.244.2.1" in [e["addresses"][0] for e in plan2.update[0]["endpoints"]]


def test_plan_placeholder_when_empty():
    svc = service()
    plan = plan_slices(svc, {}, [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == [] \
        and plan.create[0]["ports"] == []
    placeholder = copy.deepcopy(plan.create[0])
    placeholder["metadata"]["name"] = "web-x"
    assert not plan_slices(svc, {}, [placeholder])


# ------------------------------------------------------------------ controllers

def slices_of(client, name="web"):
    return [s for s in client.objects("endpointslices")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == name]


def slice_ips(client, name="web", ready_only=True):
    return sorted(e["addresses"][0] for s in slices_of(client, name)
                  for e in s.get("endpoints") or []
                  if e["conditions"]["ready"] or not ready_only)


async def test_slice_controller_follows_readiness_and_deletion():
    async with running(EndpointSliceController, node(), service(), pod("a", "10.244.1.3"),
                       pod("b", "10.244.1.4", ready=False)) as (client, ctl, _):
        await until(lambda: slice_ips(client) == ["10.244.1.3"])
        assert slice_ips(client, ready_only=False) == ["10.244.1.3", "10.244.1.4"]
        b = next(p for p in client.objects("pods") if p["metadata"]["name"] == "b")
        b["status"]["conditions"][0]["status"] = "True"
        await client.update(("", "v1", "pods"), b, subresource="status")
        await until(lambda: slice_ips(client) == ["10.244.1.3", "10.244.1.4"])
        await client.delete(("", "v1", "pods"), "a", "default", grace_period_seconds=0)
        await until(lambda: slice_ips(client, ready_only=False) == ["10.244.1.4"])
        assert len(slices_of(client)) == 1
        # a slice deleted by hand comes back
        await client.delete(SLICES, slices_of(client)[0]["metadata"]["name"], "default")
        await until(lambda: slice_ips(client) == ["10.244.1.4"])
        # the Service goes: its slices go
        await client.delete(("", "v1", "services"), "web", "default")
        await until(lambda: slices_of(client) == [])


async def test_slice_controller_leaves_other_slices_and_selectorless_services():
    foreign = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "dns-node1", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "dns",
                                       MANAGED_BY: "bootstrap-dns"}},
               "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.2"]}], "ports": []}
    async with running(EndpointSliceController, node(), service("dns", selector={}),
                       service(), foreign) as (client, ctl, _):
        await until(lambda: len(slices_of(client)) == 1)     # web's placeholder
        await ctl.process("default/dns")
        assert [s["metadata"]["name"] for s in slices_of(client, "dns")] == ["dns-node1"]
        writes = [r for r in client.writes() if r.resource == "endpointslices"]
        assert all(r.verb == "create" for r in writes) and len(writes) == 1


async def test_endpoints_controller_lifecycle():
    async with running(EndpointsController, service(), pod("a", "10.244.1.3"),
                       pod("b", "10.244.1.4", ready=False)) as (client, ctl, _):
        def eps():
            found = [e for e in client.objects("endpoints") if e["metadata"]["name"] == "web"]
            return found[0] if found else None
        await until(lambda: eps() is not None)
        subset = eps()["subsets"][0]
        assert [a["ip"] for a in subset["addresses"]] == ["10.244.1.3"]
        assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.1.4"]
        assert eps()["metadata"]["labels"] == {"team": "a"}
        await until(lambda: ctl.endpoints.get("web", "default") is not None)
        n = len(client.writes())
        await ctl.process("default/web")                      # idempotent: no write
        assert len(client.writes()) == n
        await client.delete(("", "v1", "pods"), "a", "default", grace_period_seconds=0)
        await until(lambda: "addresses" not in eps()["subsets"][0])
        await client.delete(("", "v1", "services"), "web", "default")
        await until(lambda: eps() is None)


async def test_endpoints_controller_ignores_selectorless_service():
    manual = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": "ext", "namespace": "default"},
              "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 1}]}]}
    async with running(EndpointsController, service("ext", selector={}), manual) as (client,
                                                                                     ctl, _):
        await ctl.process("default/ext")
        assert not client.writes()


async def test_write_failures_become_warning_events():
    from bootstrap.api.errors import APIError

    def refuse(client):
        client.fail("create", "endpointslices", APIError(403, "Forbidden", "no"))
        client.fail("create", "endpoints", APIError(403, "Forbidden", "no"))
    async with running([EndpointSliceController, EndpointsController], node(), service(),
                       pod("a", "10.244.1.3"), prepare=refuse) as (client, _ctls, rec):
        await until(lambda: {"FailedToUpdateEndpointSlices", "FailedToCreateEndpoint"}
                    <= set(rec.reasons()))
        assert any("Error updating Endpoint Slices for Service default/web" in e[3]
                   for e in rec.events)
