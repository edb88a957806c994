"""The node routes plan as data: Nodes and current routes in, commands out."""

from __future__ import annotations

import json

from bootstrap.agents.proxy.routes import (
    EGRESS_CHAIN,
    Route,
    egress_rules,
    parse_routes,
    route_commands,
    wanted_routes,
)


def node(name, ip=None, cidr=None):
    n = {"metadata": {"name": name}, "spec": {}, "status": {"addresses": []}}
    if ip:
        n["status"]["addresses"] = [{"type": "Hostname", "address": name},
                                    {"type": "InternalIP", "address": ip}]
    if cidr:
        n["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    return n


NODES = [node("a", "10.0.0.1", "10.244.1.0/24"), node("b", "10.0.0.2", "10.244.2.0/24"),
         node("c", "10.0.0.3"), node("d", None, "10.244.4.0/24")]


def test_wanted_routes_skip_self_and_incomplete_nodes():
    assert wanted_routes(NODES, "a") == {Route("10.244.2.0/24", "10.0.0.2")}


def test_commands_replace_new_delete_gone_and_change_gateway():
    current = {Route("10.244.9.0/24", "10.0.0.9"), Route("10.244.2.0/24", "10.0.0.99")}
    cmds = route_commands(wanted_routes(NODES, "a"), current)
    assert cmds == [["ip", "route", "del", "10.244.9.0/24", "proto", "200"],
                    ["ip", "route", "replace", "10.244.2.0/24", "via", "10.0.0.2",
                     "proto", "200"]]
    assert route_commands(wanted_routes(NODES, "a"), wanted_routes(NODES, "a")) == []


def test_parse_ip_json():
    text = json.dumps([{"dst": "10.244.2.0/24", "gateway": "10.0.0.2", "protocol": "200"},
                       {"dst": "default", "gateway": "10.0.0.254"},
                       {"dst": "10.244.3.0/24", "dev": "eth0"}])
    assert parse_routes(text) == {Route("10.244.2.0/24", "10.0.0.2")}
    assert parse_routes("") == set()


def test_egress_rules_keep_cluster_networks_unnatted():
    text = egress_rules("10.244.0.0/16", NODES, ["192.168.50.0/24"])
    lines = text.splitlines()
    assert lines[:2] == ["*nat", f":{EGRESS_CHAIN} - [0:0]"]
    assert f"-A {EGRESS_CHAIN} -d 10.244.0.0/16 -j RETURN" in lines
    assert f"-A {EGRESS_CHAIN} -d 10.0.0.3/32 -j RETURN" in lines
    assert f"-A {EGRESS_CHAIN} -d 192.168.50.0/24 -j RETURN" in lines
    assert lines[-1] == "COMMIT"
    assert lines[-2] == f"-A {EGRESS_CHAIN} -m addrtype ! --dst-type LOCAL -j MASQUERADE"


class FakeRunner:
    iptables = "iptables"

    def __init__(self):
        self.commands, self.restores = [], []

    def run(self, argv, input=None, check=True):
        self.commands.append(argv)
        from types import SimpleNamespace
        out = "[]" if argv[:2] == ["ip", "-j"] else ""
        return SimpleNamespace(stdout=out, returncode=0)

    def restore(self, text):
        self.restores.append(text)

    def sysctl(self, name, value):
        pass


def test_reconcile_rewrites_egress_only_on_change_or_refresh():
    from bootstrap.agents.proxy.routes import NodeRoutes
    now = [0.0]
    r = FakeRunner()
    routes = NodeRoutes("a", r, "10.244.0.0/16", clock=lambda: now[0])
    assert routes.reconcile(NODES) == [["ip", "route", "replace", "10.244.2.0/24", "via",
                                        "10.0.0.2", "proto", "200"]]
    assert len(r.restores) == 1
    routes.reconcile(NODES)                       # a status update changing nothing
    assert len(r.restores) == 1
    routes.reconcile(NODES + [node("e", "10.0.0.5", "10.244.5.0/24")])
    assert len(r.restores) == 2                   # a new node IP to exempt
    now[0] += NodeRoutes.EGRESS_REFRESH + 1
    routes.reconcile(NODES + [node("e", "10.0.0.5", "10.244.5.0/24")])
    assert len(r.restores) == 3                   # periodic repair
