"""nodeipam: podCIDRs from --cluster-cidr, surviving restarts, CIDRNotAvailable."""

import pytest
from cmharness import caught_up, synced, until, writes

from bootstrap.agents.controllers.cidrset import CIDRRangeNoCIDRsRemaining, CIDRSet, CIDRSetError
from bootstrap.agents.controllers.manager import Options
from bootstrap.agents.controllers.nodeipam import NodeIpamController, cidr_sets
from bootstrap.api.errors import APIError
from bootstrap.errors import UserError

pytestmark = pytest.mark.timeout(20)


def node(name, cidrs=None):
    n = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}
    if cidrs:
        n["spec"] = {"podCIDR": cidrs[0], "podCIDRs": list(cidrs)}
    return n


def test_cidrset_walks_occupies_and_exhausts():
    s = CIDRSet("10.244.0.0/22", 24)
    assert s.max == 4
    s.occupy("10.244.1.0/24")
    assert [str(s.allocate_next()) for _ in range(3)] == ["10.244.0.0/24", "10.244.2.0/24",
                                                          "10.244.3.0/24"]
    with pytest.raises(CIDRRangeNoCIDRsRemaining):
        s.allocate_next()
    s.release("10.244.2.0/24")
    assert str(s.allocate_next()) == "10.244.2.0/24"
    with pytest.raises(CIDRSetError):
        s.occupy("10.245.0.0/24")
    with pytest.raises(CIDRSetError):
        s.occupy("10.244.0.0/25")
    v6 = CIDRSet("fd00:10:244::/56", 64)
    assert str(v6.allocate_next()) == "fd00:10:244::/64"


def test_service_range_is_never_allocated():
    s = CIDRSet("10.0.0.0/22", 24)
    s.occupy_overlapping("10.0.1.128/25")
    s.occupy_overlapping("192.168.0.0/16")  # outside: ignored
    assert [str(s.allocate_next()) for _ in range(3)] == ["10.0.0.0/24", "10.0.2.0/24",
                                                          "10.0.3.0/24"]
    wide = cidr_sets(Options(cluster_cidr="10.0.0.0/8", service_cluster_ip_range="10.96.0.0/12"))
    assert len(wide[0]) == 16 * 256 and wide[0].contains("10.100.7.0/24")
    with pytest.raises(UserError):
        cidr_sets(Options(cluster_cidr="10.0.0.0/8", service_cluster_ip_range="bogus"))


def test_cidr_sets_from_flags():
    assert [s.mask_size for s in cidr_sets(Options(cluster_cidr="10.0.0.0/8"))] == [24]
    dual = cidr_sets(Options(cluster_cidr="10.0.0.0/16,fd00::/48",
                             node_cidr_mask_size_ipv6=60))
    assert [(s.cluster.version, s.mask_size) for s in dual] == [(4, 24), (6, 60)]
    for bad in ("", "nonsense", "10.0.0.0/16,10.1.0.0/16"):
        with pytest.raises(UserError):
            cidr_sets(Options(cluster_cidr=bad))
    with pytest.raises(UserError):
        cidr_sets(Options(cluster_cidr="10.0.0.0/24", node_cidr_mask_size=16))


def build(sets):
    return lambda c, f, r: NodeIpamController(c, f, r, sets)


async def test_existing_allocations_are_kept_after_restart():
    async with synced(build([CIDRSet("10.244.0.0/16", 24)]),
                      node("old", ["10.244.0.0/24"]), node("new")) as (client, ctl, _):
        await ctl.reconcile("new")
        await ctl.reconcile("old")
        new = next(n for n in client.objects("nodes") if n["metadata"]["name"] == "new")
        assert new["spec"]["podCIDR"] == "10.244.1.0/24"
        assert new["spec"]["podCIDRs"] == ["10.244.1.0/24"]
        assert writes(client) == [("patch", "nodes", "new", None)]
        # A stale cache cannot assign a second CIDR: the patch is a 409 and is handed back.
        with pytest.raises(APIError) as exc:
            await ctl.reconcile("new")
        assert exc.value.code == 409 and not ctl.sets[0].contains("10.244.2.0/24")
        await caught_up(client, ctl.factory)
        await ctl.reconcile("new")  # assigned, seen in the cache: nothing more
        assert len(writes(client)) == 2
        new = next(n for n in client.objects("nodes") if n["metadata"]["name"] == "new")
        assert new["spec"]["podCIDRs"] == ["10.244.1.0/24"]


async def test_dual_stack_and_exhaustion_event():
    sets = [CIDRSet("10.244.0.0/24", 24), CIDRSet("fd00::/64", 64)]
    async with synced(build(sets), node("a"), node("b")) as (client, ctl, events):
        await ctl.reconcile("a")
        a = next(n for n in client.objects("nodes") if n["metadata"]["name"] == "a")
        assert a["spec"]["podCIDRs"] == ["10.244.0.0/24", "fd00::/64"]
        assert await ctl.reconcile("b") == 30.0
        assert events.reasons() == ["CIDRNotAvailable"]
        assert events.events[0][4] == "Node b status is now: CIDRNotAvailable"
        # the IPv6 pick was handed back when IPv4 ran out
        assert not sets[1].contains("fd00::/64") or len(sets[1]) == 1
        assert len(sets[1]) == 1


async def test_deleted_node_frees_its_cidr():
    s = CIDRSet("10.244.0.0/23", 24)
    async with synced(build([s]), node("a", ["10.244.0.0/24"]), node("b")) as (client, ctl, _):
        await ctl.reconcile("b")
        assert len(s) == 2
        await client.delete(("", "v1", "nodes"), "a")
        await until(lambda: len(s) == 1)
        assert s.contains("10.244.1.0/24") and not s.contains("10.244.0.0/24")
