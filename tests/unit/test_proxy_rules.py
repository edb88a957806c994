"""kube-proxy's rule generator as data: objects in, iptables-restore text out.

Golden files live in tests/unit/data/proxy/; regenerate with
BOOTSTRAP_UPDATE_GOLDEN=1 after checking the diff by eye. Every scenario also
asserts the property it is about, so a wrong golden file cannot hide a bug.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bootstrap.agents.proxy import rules
from bootstrap.agents.proxy.model import (
    Endpoint,
    categorize,
    endpoints_map,
    port_proto_hash,
    service_ports,
)

DATA = Path(__file__).parent / "data" / "proxy"
NODE = "node1"


def svc(name, ip, ports, ns="default", type_="ClusterIP", **spec):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "type": type_, "ports": ports, **spec}}


def eslice(svc_name, ports, endpoints, ns="default", name=None):
    return {"metadata": {"name": name or svc_name + "-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints}


def ep(ip, node=NODE, ready=True, serving=None, terminating=None):
    cond = {"ready": ready}
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    return {"addresses": [ip], "nodeName": node, "conditions": cond}


OPTS = rules.Options(cluster_cidr="10.244.0.0/16")


def generate(services, slices, opts=OPTS, **kw):
    emap = endpoints_map(slices, NODE)
    frags = [rules.service_rules(sp, emap.get(sp.key, ()), opts)
             for s in services for sp in service_ports(s)]
    return rules.render(frags, opts, **kw), frags


def golden(name: str, text: str) -> None:
    path = DATA / f"{name}.rules"
    if os.environ.get("BOOTSTRAP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"rules differ from {path}"


def lines(text, chain):
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def test_chain_names_are_upstreams():
    # Well-known names from any kubeadm cluster: default/kubernetes:https over TCP.
    assert port_proto_hash("default/kubernetes:httpstcp") == "NPX46M4PTMTKRN6Y"
    [sp] = service_ports(svc("kubernetes", "10.96.0.1",
                             [{"name": "https", "port": 443, "protocol": "TCP"}]))
    assert sp.cluster_chain == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert sp.name_string == "default/kubernetes:https"
    [unnamed] = service_ports(svc("web", "10.96.0.5", [{"port": 80}]))
    assert unnamed.name_string == "default/web"
    assert unnamed.endpoint_chain(Endpoint("10.244.1.2", 8080)).startswith("KUBE-SEP-")


def test_cluster_ip_two_endpoints():
    text, _ = generate(
        [svc("web", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP"}])],
        [eslice("web", [{"name": "http", "port": 8080, "protocol": "TCP"}],
                [ep("10.244.1.5"), ep("10.244.2.7", node="node2")])])
    golden("cluster_ip", text)
    [sp] = service_ports(svc("web", "10.96.0.20", [{"name": "http", "port": 80}]))
    svc_rules = lines(text, sp.cluster_chain)
    # Off-cluster sources masqueraded, then 1/2 and a sure match.
    assert "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ" in svc_rules[0]
    assert "--probability 0.5000000000" in svc_rules[1]
    assert "statistic" not in svc_rules[2]
    assert "-j DNAT --to-destination 10.244.2.7:8080" in text
    # hairpin: an endpoint reaching itself through the service is masqueraded
    assert any("-s 10.244.1.5 -j KUBE-MARK-MASQ" in line for line in text.splitlines())


def test_probabilities_for_four_endpoints():
    text, _ = generate(
        [svc("web", "10.96.0.20", [{"port": 80}])],
        [eslice("web", [{"port": 80}], [ep(f"10.244.1.{i}") for i in range(1, 5)])])
    [sp] = service_ports(svc("web", "10.96.0.20", [{"port": 80}]))
    probs = [line.split("--probability ")[1].split()[0]
             for line in lines(text, sp.cluster_chain) if "--probability" in line]
    assert probs == ["0.2500000000", "0.3333333333", "0.5000000000"]


def test_nodeport_only_ready_endpoints():
    text, _ = generate(
        [svc("web", "10.96.0.30", [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
             type_="NodePort")],
        [eslice("web", [{"port": 8080}],
                [ep("10.244.1.5"), ep("10.244.1.6", ready=False), ep("10.244.2.7", "node2")])])
    golden("nodeport", text)
    assert "10.244.1.6" not in text
    [sp] = service_ports(svc("web", "10.96.0.30", [{"port": 80, "nodePort": 30080}],
                             type_="NodePort"))
    assert lines(text, "KUBE-NODEPORTS") == [
        f"-A KUBE-NODEPORTS -m comment --comment default/web -m tcp -p tcp --dport 30080 "
        f"-j {sp.external_chain}"]
    ext = lines(text, sp.external_chain)
    assert "KUBE-MARK-MASQ" in ext[0] and ext[-1].endswith(f"-j {sp.cluster_chain}")
    # the nodeports jump is the last rule of KUBE-SERVICES
    assert lines(text, "KUBE-SERVICES")[-1].endswith("--dst-type LOCAL -j KUBE-NODEPORTS")


def test_no_endpoints_rejects_in_filter():
    text, frags = generate(
        [svc("empty", "10.96.0.40", [{"port": 80, "nodePort": 30081}], type_="NodePort")], [])
    golden("no_endpoints", text)
    filt = text.split("COMMIT")[0]
    assert ('-A KUBE-SERVICES -m comment --comment "default/empty has no endpoints" '
            "-m tcp -p tcp -d 10.96.0.40 --dport 80 -j REJECT") in filt
    assert "--dport 30081 -j REJECT" in filt
    assert frags[0].chains == []
    assert "KUBE-SVC-" not in text


def test_session_affinity_client_ip():
    text, _ = generate(
        [svc("sticky", "10.96.0.50", [{"port": 80}], sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})],
        [eslice("sticky", [{"port": 80}], [ep("10.244.1.5"), ep("10.244.1.6")])])
    golden("affinity", text)
    [sp] = service_ports(svc("sticky", "10.96.0.50", [{"port": 80}], sessionAffinity="ClientIP"))
    chain_rules = lines(text, sp.cluster_chain)
    assert sum("--rcheck --seconds 600 --reap" in r for r in chain_rules) == 2
    assert text.count("-m recent --name KUBE-SEP-") == 4   # 2 rcheck + 2 set


def test_external_traffic_policy_local():
    services = [svc("loc", "10.96.0.60", [{"port": 80, "nodePort": 30060}], type_="NodePort",
                    externalTrafficPolicy="Local")]
    slices = [eslice("loc", [{"port": 80}], [ep("10.244.1.5"), ep("10.244.2.5", "node2")])]
    text, _ = generate(services, slices)
    golden("external_local", text)
    [sp] = service_ports(services[0])
    local = lines(text, sp.local_chain)
    assert len(local) == 1 and "10.244.2.5" not in local[0]
    # ClusterIP traffic still uses every endpoint
    assert len([r for r in lines(text, sp.cluster_chain) if "KUBE-SEP-" in r]) == 2
    ext = lines(text, sp.external_chain)
    assert "-s 10.244.0.0/16 -j " + sp.cluster_chain in ext[0]
    assert ext[-1].endswith("-j " + sp.local_chain)


def test_external_local_without_local_endpoints_drops():
    services = [svc("loc", "10.96.0.60", [{"port": 80, "nodePort": 30060}], type_="NodePort",
                    externalTrafficPolicy="Local")]
    text, _ = generate(services, [eslice("loc", [{"port": 80}], [ep("10.244.2.5", "node2")])])
    assert ('"default/loc has no local endpoints" -m addrtype --dst-type LOCAL '
            "-m tcp -p tcp --dport 30060 -j DROP") in text
    assert "--dport 30060 -j KUBE-EXT" not in text


def test_internal_traffic_policy_local():
    services = [svc("itp", "10.96.0.70", [{"port": 53, "protocol": "UDP"}],
                    internalTrafficPolicy="Local")]
    text, _ = generate(services, [eslice("itp", [{"port": 53, "protocol": "UDP"}],
                                         [ep("10.244.2.5", "node2")])])
    assert '"default/itp has no local endpoints" -m udp -p udp -d 10.96.0.70 --dport 53 -j DROP' \
        in text
    text, _ = generate(services, [eslice("itp", [{"port": 53, "protocol": "UDP"}],
                                         [ep("10.244.1.9"), ep("10.244.2.5", "node2")])])
    golden("internal_local", text)
    [sp] = service_ports(services[0])
    assert sp.cluster_chain not in text
    assert "10.244.2.5" not in text and f"-j {sp.local_chain}" in text


def test_terminating_fallback_only_when_none_ready():
    services = [svc("t", "10.96.0.80", [{"port": 80}])]
    term = ep("10.244.1.5", ready=False, serving=True, terminating=True)
    text, _ = generate(services, [eslice("t", [{"port": 80}], [term])])
    assert "--to-destination 10.244.1.5:80" in text
    text, _ = generate(services, [eslice("t", [{"port": 80}], [term, ep("10.244.1.6")])])
    assert "10.244.1.5" not in text and "10.244.1.6" in text
    gone = ep("10.244.1.7", ready=False, serving=False, terminating=True)
    text, _ = generate(services, [eslice("t", [{"port": 80}], [gone])])
    assert "has no endpoints" in text


def test_named_ports_match_slices_by_name_and_protocol():
    services = [svc("dns", "10.96.0.10", [{"name": "dns", "port": 53, "protocol": "UDP"},
                                          {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])]
    slices = [eslice("dns", [{"name": "dns", "port": 1053, "protocol": "UDP"},
                             {"name": "dns-tcp", "port": 1053, "protocol": "TCP"}],
                     [ep("10.0.0.2")])]
    text, frags = generate(services, slices)
    golden("dns_udp_tcp", text)
    assert "-m udp -p udp -j DNAT --to-destination 10.0.0.2:1053" in text
    assert "-m tcp -p tcp -j DNAT --to-destination 10.0.0.2:1053" in text
    assert len(rules.owned_chains(frags)) == 4


def test_masquerade_all_and_nodeport_addresses():
    opts = rules.Options(masquerade_all=True, nodeport_ips=("10.88.0.2", "127.0.0.1"),
                         localhost_nodeports=False, masquerade_bit=5, random_fully=False)
    text, _ = generate([svc("web", "10.96.0.20", [{"port": 80, "nodePort": 30000}],
                            type_="NodePort")],
                       [eslice("web", [{"port": 80}], [ep("10.244.1.5")])], opts)
    golden("masquerade_all", text)
    assert "--mark 0x20/0x20" in text and "--or-mark 0x20" in text
    assert "-d 10.88.0.2 -j KUBE-NODEPORTS" in text and "127.0.0.1" not in text
    assert "KUBE-FIREWALL" not in text and "--random-fully" not in text


def test_skipped_services():
    assert service_ports(svc("h", "None", [{"port": 80}])) == []
    assert service_ports(svc("x", "", [{"port": 80}], type_="ExternalName")) == []
    other = svc("o", "10.96.0.9", [{"port": 80}])
    other["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "foo"}
    assert service_ports(other) == []


def test_partial_write_and_stale_chains():
    services = [svc("a", "10.96.0.1", [{"port": 80}]), svc("b", "10.96.0.2", [{"port": 80}])]
    slices = [eslice("a", [{"port": 80}], [ep("10.244.1.1")]),
              eslice("b", [{"port": 80}], [ep("10.244.1.2")])]
    text, frags = generate(services, slices, write={"default/b"}, stale=["KUBE-SEP-OLDOLDOLDOLDOLD"])
    a, b = (service_ports(s)[0] for s in services)
    # both services stay in KUBE-SERVICES, only b's chains are rewritten
    assert f"-j {a.cluster_chain}" in text and f":{a.cluster_chain}" not in text
    assert f":{b.cluster_chain} - [0:0]" in text
    assert text.rstrip().splitlines()[-2] == "-X KUBE-SEP-OLDOLDOLDOLDOLD"


def test_categorize_dedups_local_and_cluster():
    [sp] = service_ports(svc("l", "10.96.0.3", [{"port": 80, "nodePort": 30003}],
                             type_="NodePort", externalTrafficPolicy="Local"))
    local_term = Endpoint("10.244.1.1", 80, NODE, ready=False, serving=True, terminating=True,
                          is_local=True)
    remote = Endpoint("10.244.2.1", 80, "node2")
    cluster, local, reachable, has_any = categorize(sp, (local_term, remote))
    assert cluster == [remote] and local == [local_term]
    assert reachable == [remote, local_term] and has_any


@pytest.mark.parametrize("name", ["cluster_ip", "nodeport", "no_endpoints", "affinity",
                                  "external_local", "internal_local", "dns_udp_tcp",
                                  "masquerade_all"])
def test_golden_files_are_restore_input(name):
    text = (DATA / f"{name}.rules").read_text()
    assert text.startswith("*filter\n") and text.endswith("COMMIT\n")
    assert text.count("COMMIT") == 2
