"""Quota arithmetic and evaluators (bootstrap.api.quota), Quantity.String(), the
LimitRanger and ResourceQuota admission plugins on the in-memory store, and the
resourcequota controller on the FakeClient."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cmharness import caught_up, synced, writes
from test_auth_authn import FakeStore

from bootstrap.agents.apiserver import admission
from bootstrap.agents.apiserver.auth.authn import UserInfo
from bootstrap.agents.controllers.resourcequota import ResourceQuotaController
from bootstrap.api import defaults, errors, quantity, quota
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(20)
PODS = by_gvr("", "v1", "pods")
CONFIGMAPS = by_gvr("", "v1", "configmaps")
SERVICES = by_gvr("", "v1", "services")
PVCS = by_gvr("", "v1", "persistentvolumeclaims")
QUOTAS = by_gvr("", "v1", "resourcequotas")
USER = UserInfo(name="alice", groups=["system:authenticated"])


@pytest.mark.parametrize(("text", "want"), [
    ("1500m", "1500m"), ("1.5", "1500m"), ("2000000", "2M"), ("1500000", "1500k"),
    ("1G", "1G"), ("1Gi", "1Gi"), ("1.5Gi", "1536Mi"), ("2048", "2048"), ("0", "0"),
    ("0.1", "100m"), ("1000m", "1"), ("1e3", "1e3"), ("512", "512"), (2, "2")])
def test_canonical_quantities(text, want):
    assert quantity.canonical(text) == want


def test_add_keeps_the_format_of_a_nonzero_receiver():
    zero, mi = quota.q("0"), quota.q("100Mi")
    assert str(zero + mi) == "100Mi"
    assert str(quota.q("1G") + mi) == "1104857600"
    used = quota.add({"memory": zero}, {"memory": mi, "pods": quota.q("1")})
    assert quota.to_json(used) == {"memory": "100Mi", "pods": "1"}
    assert quota.less_or_equal(used, quota.parse_list({"pods": "0"})) == (False, ["pods"])
    assert quota.pretty(quota.parse_list({"pods": "2", "cpu": "500m"})) == "cpu=500m,pods=2"


def pod(name="p", *, requests=None, limits=None, init=None, phase="Pending", **spec):
    res = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    body = {"containers": [{"name": "c", "image": "busybox", "resources": res}], **spec}
    if init:
        body["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ns"},
            "spec": body, "status": {"phase": phase}}


def test_pod_usage_counts_containers_init_containers_and_sidecars():
    p = pod(requests={"cpu": "100m", "memory": "64Mi"}, limits={"cpu": "200m"},
            init=[{"name": "big", "resources": {"requests": {"cpu": "500m"}}},
                  {"name": "side", "restartPolicy": "Always",
                   "resources": {"requests": {"cpu": "50m"}}}])
    usage = quota.to_json(quota.evaluator("", "pods").usage(p))
    # the init container's 500m beats containers + sidecar (150m)
    assert usage == {"count/pods": "1", "cpu": "500m", "limits.cpu": "200m",
                     "memory": "64Mi", "pods": "1", "requests.cpu": "500m",
                     "requests.memory": "64Mi"}
    done = quota.evaluator("", "pods").usage(pod(requests={"cpu": "1"}, phase="Succeeded"))
    assert quota.to_json(done) == {"count/pods": "1"}


def test_pod_scopes():
    ev = quota.evaluator("", "pods")
    best = pod()
    burst = pod(requests={"cpu": "1"}, activeDeadlineSeconds=30, priorityClassName="high")
    def sel(scope, op="Exists", values=()):
        return {"scopeName": scope, "operator": op, "values": list(values)}
    assert ev.matches_scope(sel("BestEffort"), best)
    assert not ev.matches_scope(sel("BestEffort"), burst)
    assert ev.matches_scope(sel("Terminating"), burst)
    assert ev.matches_scope(sel("NotTerminating"), best)
    assert ev.matches_scope(sel("PriorityClass", "In", ["high"]), burst)
    assert not ev.matches_scope(sel("PriorityClass", "In", ["high"]), best)
    # scoped quotas never count other resources
    rq = {"spec": {"scopes": ["BestEffort"]}, "status": {"hard": {"count/configmaps": "1"}}}
    assert not quota.evaluator("", "configmaps").matches(rq, {})


def test_service_and_claim_usage():
    svc = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}
    assert quota.to_json(quota.evaluator("", "services").usage(svc)) == {
        "count/services": "1", "services": "1", "services.loadbalancers": "0",
        "services.nodeports": "2"}
    pvc = {"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}}
    assert quota.to_json(quota.evaluator("", "persistentvolumeclaims").usage(pvc)) == {
        "count/persistentvolumeclaims": "1", "gold.storageclass.storage.k8s.io/"
        "persistentvolumeclaims": "1", "gold.storageclass.storage.k8s.io/requests.storage":
        "1Gi", "persistentvolumeclaims": "1", "requests.storage": "1Gi"}
    assert quota.resource_of("count/deployments.apps") == ("apps", "deployments")
    assert quota.resource_of("limits.memory") == ("", "pods")
    assert quota.resource_of("services.nodeports") == ("", "services")
    assert quota.resource_of("secrets") == ("", "secrets")
    assert quota.resource_of("bogus") is None


def test_limitrange_defaulting():
    lr = {"kind": "LimitRange", "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}},
        {"type": "Pod", "max": {"cpu": "4"}}]}}
    defaults.apply_defaults(lr, ("", "v1", "LimitRange"))
    container, pod_item = lr["spec"]["limits"]
    assert container["default"] == {"cpu": "2"}
    assert container["defaultRequest"] == {"cpu": "2", "memory": "1Mi"}
    assert "default" not in pod_item


# -- admission ------------------------------------------------------------------------

def ns(name="ns"):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
            "status": {"phase": "Active"}}


def limit_range(*items, name="lr"):
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": name, "namespace": "ns"}, "spec": {"limits": list(items)}}


def resource_quota(hard, used=None, name="q", **spec):
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "7"},
            "spec": {"hard": hard, **spec},
            "status": {"hard": hard, **({"used": used} if used is not None else {})}}


async def admit(store, res, obj, op="CREATE", old=None, **kw):
    return await admission.admit(op, res, obj, old, USER, store, enabled=frozenset(
        {"LimitRanger", "ResourceQuota"}), **kw)


async def test_limitranger_defaults_and_annotates():
    store = FakeStore([("namespaces", ns()), ("limitranges", limit_range(
        {"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"},
         "defaultRequest": {"cpu": "100m"}}))])
    out = await admit(store, PODS, pod(requests={"memory": "64Mi"},
                                       init=[{"name": "setup"}]))
    c = out["spec"]["containers"][0]["resources"]
    assert c == {"requests": {"memory": "64Mi", "cpu": "100m"},
                 "limits": {"cpu": "500m", "memory": "128Mi"}}
    assert out["spec"]["initContainers"][0]["resources"]["requests"] == {"cpu": "100m"}
    assert out["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container c; cpu, memory limit for "
        "container c; cpu request for init container setup; cpu, memory limit for init "
        "container setup")


@pytest.mark.parametrize(("item", "resources", "message"), [
    ({"type": "Container", "max": {"cpu": "1"}}, {"limits": {"cpu": "2"}},
     "maximum cpu usage per Container is 1, but limit is 2"),
    ({"type": "Container", "max": {"cpu": "1"}}, {},
     "maximum cpu usage per Container is 1.  No limit is specified"),
    ({"type": "Container", "min": {"memory": "64Mi"}}, {"requests": {"memory": "1Mi"}},
     "minimum memory usage per Container is 64Mi, but request is 1Mi"),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
     {"requests": {"cpu": "100m"}, "limits": {"cpu": "300m"}},
     "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"),
    ({"type": "Pod", "max": {"cpu": "1"}}, {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}},
     "maximum cpu usage per Pod is 1, but limit is 2"),
])
async def test_limitranger_bounds(item, resources, message):
    store = FakeStore([("namespaces", ns()), ("limitranges", limit_range(item))])
    with pytest.raises(errors.APIError) as exc:
        await admit(store, PODS, pod(**resources))
    assert exc.value.code == 403
    assert exc.value.message == f'pods "p" is forbidden: {message}'


async def test_limitranger_claims_and_several_problems():
    store = FakeStore([("namespaces", ns()), ("limitranges", limit_range(
        {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}},
        {"type": "Container", "min": {"cpu": "50m"}, "maxLimitRequestRatio": {"cpu": "10"}}))])
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "c", "namespace": "ns"},
             "spec": {"resources": {"requests": {"storage": "5Gi"}}}}
    with pytest.raises(errors.APIError) as exc:
        await admit(store, PVCS, claim)
    assert exc.value.message == ('persistentvolumeclaims "c" is forbidden: maximum storage '
                                 'usage per PersistentVolumeClaim is 2Gi, but request is 5Gi')
    with pytest.raises(errors.APIError) as exc:
        await admit(store, PODS, pod(requests={"cpu": "10m"}, limits={"cpu": "1"}))
    assert exc.value.message == (
        'pods "p" is forbidden: [minimum cpu usage per Container is 50m, but request is 10m, '
        'cpu max limit to request ratio per Container is 10, but provided ratio is '
        '100.000000]')
    # an update of a pod is never looked at (its containers cannot change)
    await admit(store, PODS, pod(), op="UPDATE", old=pod())


async def test_quota_charges_then_refuses_with_upstreams_message():
    rq = resource_quota({"count/configmaps": "2", "configmaps": "5"},
                        {"count/configmaps": "1", "configmaps": "1"})
    store = FakeStore([("namespaces", ns()), ("resourcequotas", rq)])
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}
    await admit(store, CONFIGMAPS, cm)
    charged = await store.get("resourcequotas", "ns", "q")
    assert charged["status"]["used"] == {"count/configmaps": "2", "configmaps": "2"}
    assert charged["metadata"]["resourceVersion"] == "8"
    with pytest.raises(errors.APIError) as exc:
        await admit(store, CONFIGMAPS, dict(cm, metadata={"name": "b", "namespace": "ns"}))
    assert exc.value.code == 403
    assert exc.value.message == (
        'configmaps "b" is forbidden: exceeded quota: q, requested: count/configmaps=1, '
        'used: count/configmaps=2, limited: count/configmaps=2')


async def test_quota_dry_run_checks_without_charging():
    store = FakeStore([("namespaces", ns()), ("resourcequotas", resource_quota(
        {"pods": "1"}, {"pods": "0"}))])
    await admit(store, PODS, pod(), dry_run=True)
    assert (await store.get("resourcequotas", "ns", "q"))["status"]["used"] == {"pods": "0"}


async def test_quota_needs_requests_and_a_counted_status():
    store = FakeStore([("namespaces", ns()), ("resourcequotas", resource_quota(
        {"requests.cpu": "1", "limits.memory": "1Gi"}, {"requests.cpu": "0"}))])
    with pytest.raises(errors.APIError) as exc:
        await admit(store, PODS, pod())
    assert exc.value.message == ('pods "p" is forbidden: failed quota: q: must specify '
                                 'limits.memory for: c; requests.cpu for: c')
    with pytest.raises(errors.APIError) as exc:
        await admit(store, PODS, pod(requests={"cpu": "1"}, limits={"memory": "1Gi"}))
    assert exc.value.message == ('pods "p" is forbidden: status unknown for quota: q, '
                                 'resources: limits.memory,requests.cpu')


async def test_quota_compute_resources_and_update_deltas():
    store = FakeStore([("namespaces", ns()), ("resourcequotas", resource_quota(
        {"requests.memory": "1Gi", "services.nodeports": "1"},
        {"requests.memory": "512Mi", "services.nodeports": "0"}))])
    with pytest.raises(errors.APIError) as exc:
        await admit(store, PODS, pod(requests={"memory": "768Mi"}))
    assert exc.value.message == (
        'pods "p" is forbidden: exceeded quota: q, requested: requests.memory=768Mi, used: '
        'requests.memory=512Mi, limited: requests.memory=1Gi')
    old = {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "s", "namespace": "ns", "resourceVersion": "3"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    new = dict(old, spec={"type": "NodePort", "ports": [{"port": 80}]})
    await admit(store, SERVICES, new, op="UPDATE", old=old)
    used = (await store.get("resourcequotas", "ns", "q"))["status"]["used"]
    assert used == {"requests.memory": "512Mi", "services.nodeports": "1"}
    # the same update again charges nothing more
    await admit(store, SERVICES, new, op="UPDATE", old=new)


def test_quota_plugins_are_on_by_default_in_upstreams_order():
    enabled, warnings = admission.enabled_plugins([], [])
    assert {"LimitRanger", "ResourceQuota"} <= enabled and not warnings
    names = [p.name for p in admission.PLUGINS]
    assert names.index("LimitRanger") < names.index("ServiceAccount")
    assert names[-1] == "ResourceQuota"


# -- controller -----------------------------------------------------------------------

def now():
    return datetime(2026, 1, 1, tzinfo=UTC)


async def test_controller_counts_usage_and_replenishes():
    rq = resource_quota({"pods": "5", "requests.cpu": "2", "count/configmaps": "3",
                         "memory": "1Gi"})
    del rq["status"]
    del rq["metadata"]["resourceVersion"]
    seed = [rq, pod("a", requests={"cpu": "500m", "memory": "100Mi"}),
            pod("b", requests={"cpu": "1"}, phase="Succeeded"),
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "x", "namespace": "ns"}}]
    async with synced(lambda c, f, r: ResourceQuotaController(c, f, r, clock=now),
                      *seed) as (client, ctl, _):
        assert await ctl.reconcile("ns/q") == 300.0
        (stored,) = client.objects("resourcequotas")
        assert stored["status"] == {
            "hard": {"count/configmaps": "3", "memory": "1Gi", "pods": "5",
                     "requests.cpu": "2"},
            "used": {"count/configmaps": "1", "memory": "100Mi", "pods": "1",
                     "requests.cpu": "500m"}}
        assert writes(client) == [("update", "resourcequotas", "q", "status")]
        await caught_up(client, ctl.factory)
        assert await ctl.reconcile("ns/q") == 300.0
        assert len(writes(client)) == 1  # nothing changed, nothing written
        await client.delete(PODS, "a", "ns")
        await caught_up(client, ctl.factory)
        assert "ns/q" in ctl.queue._dirty  # the deletion gave the quota back to the queue
        await ctl.reconcile("ns/q")
        (stored,) = client.objects("resourcequotas")
        assert stored["status"]["used"]["pods"] == "0"
        assert stored["status"]["used"]["requests.cpu"] == "0"


async def test_live_lookup_asks_etcd_once_per_namespace_while_the_cache_is_empty():
    from bootstrap.agents.apiserver.livelookup import LiveLookup

    class Store(FakeStore):
        fresh = 0

        async def list(self, plural, namespace=None):
            return []  # the cache has not seen anything yet

        async def list_fresh(self, plural, namespace=None):
            Store.fresh += 1
            return await FakeStore.list(self, plural, namespace)
    now = [0.0]
    lookup = LiveLookup("resourcequotas", clock=lambda: now[0])
    store = Store([("resourcequotas", resource_quota({"pods": "1"}))])
    assert len(await lookup.list(store, "ns")) == 1
    assert len(await lookup.list(store, "ns")) == 1 and Store.fresh == 1
    now[0] = 31.0
    await lookup.list(store, "ns")
    assert Store.fresh == 2


def test_resource_quota_validation():
    from bootstrap.api import validation_quota as v
    errs = [f"{e.field}: {e.body}" for e in v.resource_quota({"spec": {
        "hard": {"pods": "-1", "foo": "1", "secrets": "1.5", "count/deployments.apps": "2"},
        "scopes": ["BestEffort", "NotBestEffort"]}})]
    assert 'spec.hard[pods]: Invalid value: "-1": must be greater than or equal to 0' in errs
    assert 'spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota' in errs
    assert 'spec.hard[secrets]: Invalid value: "1500m": must be an integer' in errs
    assert 'spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort", ' \
           '"NotBestEffort"}: conflicting scopes' in errs
    assert not v.resource_quota({"spec": {"hard": {"pods": "3", "requests.cpu": "1"},
                                          "scopes": ["NotTerminating"]}})


def test_limit_range_validation():
    from bootstrap.api import validation_quota as v
    lr = {"kind": "LimitRange", "spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
        {"type": "Container", "maxLimitRequestRatio": {"memory": "500m"}},
        {"type": "Pod", "default": {"cpu": "1"}},
        {"type": "PersistentVolumeClaim"}]}}
    defaults.apply_defaults(lr, ("", "v1", "LimitRange"))
    errs = [f"{e.field}: {e.body}" for e in v.limit_range(lr)]
    assert 'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max ' \
           'value 1' in errs
    assert 'spec.limits[1].type: Duplicate value: "Container"' in errs
    assert 'spec.limits[1].maxLimitRequestRatio[memory]: Invalid value: "500m": ratio 500m ' \
           'is less than 1' in errs
    assert "spec.limits[2].default: Forbidden: may not be specified when `type` is 'Pod'" \
        in errs
    assert "spec.limits[3].limits: Required value: either minimum or maximum storage value " \
           "is required, but neither was provided" in errs


@pytest.mark.parametrize("item, want", [
    ({"min": {"cpu": "2"}, "defaultRequest": {"cpu": "1"}},
     'defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than default request value 1'),
    ({"max": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}},
     'defaultRequest[cpu]: Invalid value: "2": default request value 2 is greater than max value 1'),
    ({"default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}},
     'defaultRequest[cpu]: Invalid value: "2": default request value 2 is greater than default '
     'limit value 1'),
    ({"min": {"cpu": "2"}, "default": {"cpu": "1"}, "defaultRequest": {"cpu": "3"}},
     'default[cpu]: Invalid value: "2": min value 2 is greater than default value 1'),
    ({"max": {"cpu": "1"}, "default": {"cpu": "2"}, "defaultRequest": {"cpu": "500m"}},
     'default[cpu]: Invalid value: "1": default value 2 is greater than max value 1'),
    ({"min": {"cpu": "1"}, "max": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "3"}},
     'maxLimitRequestRatio[cpu]: Invalid value: "3": ratio 3 is greater than max/min = 2.000000'),
])
def test_limit_range_ordering_messages(item, want):
    from bootstrap.api import validation_quota as v
    lr = {"kind": "LimitRange", "spec": {"limits": [{"type": "Container", **item}]}}
    errs = [f"{e.field}: {e.body}" for e in v.limit_range(lr)]
    assert "spec.limits[0]." + want in errs, errs
