"""The proxier's sync decisions (full vs partial, what each restore carries,
stale chains, conntrack), the syncer's coalescing, health, and config errors:
a recording runner in place of iptables."""

from __future__ import annotations

import asyncio
import json

import pytest

from bootstrap.agents.proxy import main
from bootstrap.agents.proxy.config import from_args
from bootstrap.agents.proxy.proxier import Proxier
from bootstrap.agents.proxy.rules import Options
from bootstrap.agents.proxy.server import Health
from bootstrap.agents.proxy.syncer import SyncRunner
from bootstrap.errors import UserError


class Runner:
    def __init__(self, existing=()):
        self.restores: list[str] = []
        self.conntrack: list[list[str]] = []
        self.existing = set(existing)
        self.fail = False

    def restore(self, text):
        if self.fail:
            raise RuntimeError("iptables-restore: line 3 failed")
        self.restores.append(text)

    def save_chains(self, table):
        return set(self.existing)

    def save(self):
        saved = {"nat": [f":{c} - [0:0]" for c in self.existing], "filter": []}
        for text in self.restores:          # what we wrote is what a save shows
            table = None
            for line in text.splitlines():
                if line.startswith("*"):
                    table = line[1:]
                elif line.startswith("-I "):
                    saved[table].append("-A " + line[3:].replace('"', ""))
        return saved

    def conntrack_delete(self, args):
        self.conntrack.append(args)


def svc(name, ip, proto="TCP", port=80):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"port": port, "protocol": proto}]}}


def eslice(name, ips, proto="TCP", port=80):
    return {"metadata": {"name": f"{name}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"port": port, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def proxier(runner):
    p = Proxier("node-a", Options(), runner)
    p.services_synced = p.slices_synced = True
    for i in range(3):
        p.on_service(svc(f"s{i}", f"10.96.0.{i + 1}"))
        p.on_slice(eslice(f"s{i}", [f"10.244.1.{i + 1}"]))
    return p


def declared(text):
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}


def test_first_sync_full_then_one_endpoint_is_partial_and_small():
    r = Runner(existing={"KUBE-SEP-LEFTOVERFROMBEFORE"})
    p = proxier(r)
    first = p.sync()
    # the 14 jumps from the built-in chains go in the same restore
    assert first.full and first.text.count("\n-I ") == 14
    assert '-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' \
        in first.text
    assert "-X KUBE-SEP-LEFTOVERFROMBEFORE" in first.text      # stale from a previous run
    # a later full sync finds them and adds none
    assert "\n-I " not in p.sync(force_full=True).text
    p.on_slice(eslice("s1", ["10.244.1.2", "10.244.1.9"]))
    second = p.sync()
    assert not second.full
    chains = declared(second.text)
    # only s1's own chains: KUBE-SERVICES did not change, so it is not rewritten
    assert all(c.startswith(("KUBE-SVC-", "KUBE-SEP-")) for c in chains) and len(chains) == 3
    assert "*filter" not in second.text
    # nothing changed: nothing written
    assert p.sync().text == "" and len(r.restores) == 3   # full, full again, partial


def test_service_without_endpoints_rewrites_shared_chains_and_deletes_its_chains():
    r = Runner()
    p = proxier(r)
    p.sync()
    p.on_slice_delete(eslice("s2", []))
    text = p.sync().text
    assert ":KUBE-SERVICES - [0:0]" in text and "*filter" in text
    assert '"default/s2 has no endpoints"' in text
    assert text.count("-X KUBE-") == 2          # s2's SVC and SEP chains
    p.on_service_delete(svc("s0", ""))
    text = p.sync().text
    assert "10.96.0.1 " not in text and text.count("-X KUBE-") == 2


def test_failed_restore_forces_full_resync():
    r = Runner()
    p = proxier(r)
    p.sync()
    r.fail = True
    p.on_slice(eslice("s1", ["10.244.1.7"]))
    with pytest.raises(RuntimeError):
        p.sync()
    r.fail = False
    again = p.sync()
    assert again.full and "10.244.1.7:80" in again.text


def test_udp_endpoint_removal_flushes_conntrack():
    r = Runner()
    p = Proxier("node-a", Options(), r)
    p.on_service(svc("dns", "10.96.0.10", "UDP", 53))
    p.sync()
    assert r.conntrack == []                     # no endpoints yet
    p.on_slice(eslice("dns", ["10.244.1.5", "10.244.1.6"], "UDP", 53))
    p.sync()
    # a UDP service gaining endpoints: its REJECT-era entries go
    assert r.conntrack == [["--orig-dst", "10.96.0.10", "-p", "udp"]]
    p.on_slice(eslice("dns", ["10.244.1.6"], "UDP", 53))
    p.sync()
    assert r.conntrack[-1] == ["--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.5",
                               "-p", "udp"]
    # TCP endpoints never need it
    n = len(r.conntrack)
    p.on_service(svc("web", "10.96.0.11"))
    p.on_slice(eslice("web", ["10.244.1.8"]))
    p.sync()
    p.on_slice(eslice("web", []))
    p.sync()
    assert len(r.conntrack) == n


async def test_syncer_coalesces_requests_while_running():
    gate = asyncio.Event()
    calls: list[bool] = []

    async def fn(full):
        calls.append(full)
        await gate.wait()

    runner = SyncRunner(fn, min_interval=0.0, max_interval=3600)
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(5):
            while not calls:
                await asyncio.sleep(0)
            for _ in range(10):
                runner.request()          # a burst while the first (full) sync runs
            gate.set()
            while runner.runs < 2:
                await asyncio.sleep(0.01)
        assert calls == [True, False]     # one full, then the burst as one partial
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_health_as_upstream():
    now = [1000.0]
    h = Health(60, clock=lambda: now[0])
    assert not h.healthy()                               # never synced
    assert json.loads(h.body())["lastUpdated"] == "0001-01-01T00:00:00Z"
    h.updated()
    assert h.healthy()
    h.queued()
    now[0] += 61
    assert not h.healthy()                               # stuck longer than 2 x syncPeriod
    h.updated()
    body = json.loads(h.body())
    assert h.healthy() and body["lastUpdated"].endswith("Z") and body["nodeEligible"]


@pytest.mark.parametrize("content, needle", [
    ("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n",
     'mode "ipvs" is not supported'),
    ("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nbogus: 1\n",
     'unknown field "bogus"'),
    ("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
     "iptables: {syncPeriod: 5d}\n", "invalid duration"),
    ("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
     "clusterCIDR: 10.0.0.0/99\n", "invalid CIDR"),
    ("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
     "iptables: {masqueradeBit: 40}\n", "masqueradeBit 40"),
    ("kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n", "expected kind"),
    (": : :", "not YAML"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, content, needle):
    path = tmp_path / "proxy.yaml"
    path.write_text(content)
    with pytest.raises(UserError) as err:
        from_args(["--config", str(path), "--kubeconfig", "k"])
    assert needle in err.value.line()
    assert main(["--config", str(path), "--kubeconfig", "k"]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and str(path) in err_lines[0]


def test_config_fields_and_flag_overrides(tmp_path):
    path = tmp_path / "proxy.yaml"
    path.write_text("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n"
                    "clientConnection: {kubeconfig: /etc/kubernetes/proxy.conf}\n"
                    "clusterCIDR: 10.244.0.0/16\nhostnameOverride: n1\n"
                    "iptables: {masqueradeBit: 13, syncPeriod: 1m, minSyncPeriod: 500ms,"
                    " localhostNodePorts: false}\nnodePortAddresses: [10.0.0.0/8, primary]\n")
    cfg = from_args(["--config", str(path), "--hostname-override", "n2"])
    assert (cfg.kubeconfig, cfg.cluster_cidr, cfg.hostname_override) == \
        ("/etc/kubernetes/proxy.conf", "10.244.0.0/16", "n2")
    assert (cfg.masquerade_bit, cfg.sync_period, cfg.min_sync_period) == (13, 60.0, 0.5)
    assert not cfg.localhost_nodeports and cfg.nodeport_addresses == ["10.0.0.0/8", "primary"]
    assert cfg.healthz_bind_address == "0.0.0.0:10256"
    path.write_text(path.read_text() + 'metricsBindAddress: ""\n')
    assert from_args(["--config", str(path)]).metrics_bind_address == ""
    with pytest.raises(UserError, match="no kubeconfig"):
        from_args([])
