"""API aggregation as data: identity headers, what is forwarded, the Available
condition, discovery conversion, APIService validation and Service resolution."""

from __future__ import annotations

import asyncio

import pytest

from bootstrap.agents.apiserver import aggregator, services
from bootstrap.agents.apiserver.strategies.apiservice import apiservice_errors, status_errors


def test_identity_headers_escape_extra_keys():
    out = aggregator.identity_headers("alice", ["a", "system:authenticated"],
                                      {"example.com/scopes": ["x", "y"], "plain": ["z"]})
    assert out == [("X-Remote-User", "alice"), ("X-Remote-Group", "a"),
                   ("X-Remote-Group", "system:authenticated"),
                   ("X-Remote-Extra-example.com%2Fscopes", "x"),
                   ("X-Remote-Extra-example.com%2Fscopes", "y"),
                   ("X-Remote-Extra-plain", "z")]


def test_forwarded_headers_drop_credentials_identity_and_hop_headers():
    headers = {"Accept": "application/json", "Authorization": "Bearer t",
               "X-Remote-User": "mallory", "x-remote-group": "system:masters",
               "X-Remote-Extra-Scopes": "all", "Impersonate-User": "root", "Cookie": "c",
               "Connection": "keep-alive", "Transfer-Encoding": "chunked", "Host": "h",
               "Content-Length": "3", "Content-Type": "application/json",
               "User-Agent": "kubectl"}
    assert dict(aggregator.forwarded_request_headers(headers)) == {
        "Accept": "application/json", "Content-Type": "application/json",
        "User-Agent": "kubectl"}


def test_condition_keeps_transition_time_while_status_holds():
    first = aggregator.set_condition([], "False", "MissingEndpoints", "m")
    assert first[0]["status"] == "False" and first[0]["lastTransitionTime"]
    stamped = [{**first[0], "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    same = aggregator.set_condition(stamped, "False", "ServiceNotFound", "n")
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert (same[0]["reason"], same[0]["message"]) == ("ServiceNotFound", "n")
    flipped = aggregator.set_condition(stamped, "True", "Passed", "all checks passed")
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert stamped[0]["status"] == "False"  # the input is not changed


def test_available_needs_a_true_condition():
    assert aggregator.available({"status": {"conditions": [
        {"type": "Available", "status": "True"}]}})
    assert not aggregator.available({"status": {"conditions": [
        {"type": "Available", "status": "Unknown"}]}})
    assert not aggregator.available({})


def test_resource_list_becomes_aggregated_discovery():
    doc = {"groupVersion": "w.example.com/v1", "resources": [
        {"name": "flunders", "singularName": "flunder", "namespaced": True, "kind": "Flunder",
         "verbs": ["get", "list"], "shortNames": ["fl"], "categories": ["all"]},
        {"name": "flunders/status", "namespaced": True, "kind": "Flunder",
         "verbs": ["get", "patch"]},
        {"name": "fischers", "singularName": "fischer", "namespaced": False,
         "kind": "Fischer", "verbs": ["get"]}]}
    out = aggregator.aggregated_resources(doc)
    assert out == [
        {"resource": "flunders", "responseKind": {"group": "w.example.com", "version": "v1",
                                                  "kind": "Flunder"},
         "scope": "Namespaced", "singularResource": "flunder", "verbs": ["get", "list"],
         "shortNames": ["fl"], "categories": ["all"],
         "subresources": [{"subresource": "status",
                           "responseKind": {"group": "w.example.com", "version": "v1",
                                            "kind": "Flunder"},
                           "verbs": ["get", "patch"]}]},
        {"resource": "fischers", "responseKind": {"group": "w.example.com", "version": "v1",
                                                  "kind": "Fischer"},
         "scope": "Cluster", "singularResource": "fischer", "verbs": ["get"]}]


def _svc(**spec) -> dict:
    base = {"group": "w.example.com", "version": "v1", "groupPriorityMinimum": 100,
            "versionPriority": 10, "service": {"namespace": "ns", "name": "api", "port": 443}}
    base.update(spec)
    return {"metadata": {"name": "v1.w.example.com"}, "spec": base}


def test_valid_apiservice_has_no_errors():
    assert apiservice_errors(_svc()) == []
    local = _svc()
    del local["spec"]["service"]
    assert apiservice_errors(local) == []


@pytest.mark.parametrize(("spec", "field"), [
    ({"group": "other.example.com"}, "metadata.name"),
    ({"groupPriorityMinimum": 20001}, "spec.groupPriorityMinimum"),
    ({"versionPriority": 0}, "spec.versionPriority"),
    ({"caBundle": "Zm9v", "insecureSkipTLSVerify": True}, "spec.insecureSkipTLSVerify"),
    ({"service": {"namespace": "", "name": "api"}}, "spec.service.namespace"),
    ({"service": {"namespace": "ns", "name": "api", "port": 0}}, "spec.service.port"),
    ({"version": "1v"}, "spec.version"),
    ({"group": "Bad_Group"}, "spec.group"),
])
def test_apiservice_errors_name_the_field(spec, field):
    obj = _svc(**spec)
    if "group" in spec or "version" in spec:
        # Keep the name consistent unless the name itself is under test.
        if field != "metadata.name":
            obj["metadata"]["name"] = f"{obj['spec']['version']}.{obj['spec']['group']}"
    assert field in [e.field for e in apiservice_errors(obj)]


def test_status_conditions_must_be_true_false_or_unknown():
    assert status_errors({"status": {"conditions": [{"type": "Available",
                                                     "status": "Maybe"}]}})
    assert not status_errors({"status": {"conditions": [{"type": "Available",
                                                         "status": "Unknown"}]}})


class _Store:
    def __init__(self, services_: dict, slices: list):
        self.services, self.slices = services_, slices

    async def get(self, plural, ns, name):
        assert plural == "services"
        return self.services.get((ns, name))

    async def list(self, plural, ns=None):
        assert plural == "endpointslices"
        return [s for s in self.slices if s["metadata"]["namespace"] == ns]


def _slice(svc: str, port_name: str, ready: bool = True, addr: str = "10.0.0.5") -> dict:
    return {"metadata": {"namespace": "ns", "labels": {services.SERVICE_NAME_LABEL: svc}},
            "ports": [{"name": port_name, "port": 8443}],
            "endpoints": [{"addresses": [addr], "conditions": {"ready": ready}}]}


SERVICE = {"spec": {"ports": [{"name": "https", "port": 443}]}}


@pytest.mark.parametrize(("svcs", "slices", "port", "reason"), [
    ({}, [], 443, "ServiceNotFound"),
    ({("ns", "api"): SERVICE}, [], 8080, "ServicePortError"),
    ({("ns", "api"): SERVICE}, [], 443, "EndpointsNotFound"),
    ({("ns", "api"): SERVICE}, [_slice("api", "https", ready=False)], 443, "MissingEndpoints"),
    ({("ns", "api"): SERVICE}, [_slice("api", "other")], 443, "MissingEndpoints"),
    ({("ns", "api"): SERVICE}, [_slice("other", "https")], 443, "EndpointsNotFound"),
])
def test_resolve_reasons(svcs, slices, port, reason):
    with pytest.raises(services.ResolveError) as err:
        asyncio.run(services.resolve(_Store(svcs, slices), "ns", "api", port))
    assert err.value.reason == reason


def test_resolve_picks_a_ready_address_and_names_the_service():
    store = _Store({("ns", "api"): SERVICE},
                   [_slice("api", "https", ready=False, addr="10.0.0.9"),
                    _slice("api", "https", addr="fd00::5")])
    ep = asyncio.run(services.resolve(store, "ns", "api", 443))
    assert ep == services.Endpoint("fd00::5", 8443, "api.ns.svc")
    assert ep.url("/apis/x/v1") == "https://[fd00::5]:8443/apis/x/v1"


def test_every_static_group_version_has_a_priority():
    from bootstrap.api.resources import CATALOGUE
    served = {(r.group, r.version) for r in CATALOGUE if r.custom is None}
    assert served <= set(aggregator.LOCAL_PRIORITIES), \
        "add the new group-version to LOCAL_PRIORITIES (upstream's apiVersionPriorities)"
    for gpm, vp in aggregator.LOCAL_PRIORITIES.values():
        assert 0 < gpm <= 20000 and 0 < vp <= 1000  # what validation accepts


def test_the_core_apiservice_name_is_valid():
    local = {"metadata": {"name": "v1."}, "spec": {"group": "", "version": "v1",
                                                  "groupPriorityMinimum": 18000,
                                                  "versionPriority": 1}}
    assert apiservice_errors(local) == []
