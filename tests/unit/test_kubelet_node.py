"""Node registration, status and Lease through FakeClient and FakeRuntime."""

from __future__ import annotations

from bootstrap.agents.kubelet import node as N
from bootstrap.agents.kubelet.config import KubeletConfig
from bootstrap.agents.kubelet.fakeruntime import FakeRuntime
from bootstrap.api.fake import FakeClient

GI = 2 ** 30


def facts(**kw) -> N.NodeFacts:
    base = dict(name="n1", ip="10.0.0.5", hostname="n1", cpus=4, memory=8 * GI,
                ephemeral_storage=100 * GI, memory_available=6 * GI, disk_available=50 * GI)
    base.update(kw)
    return N.NodeFacts(**base)


def conds(status) -> dict:
    return {c["type"]: c for c in status["conditions"]}


def test_status_capacity_allocatable_conditions():
    st = N.node_status(facts(), max_pods=110, eviction_hard={"memory.available": "100Mi",
                                                             "nodefs.available": "10%"},
                       old=None, now=1000.0, port=10250)
    assert st["capacity"] == {"cpu": "4", "memory": f"{8 * GI // 1024}Ki",
                              "ephemeral-storage": f"{100 * GI // 1024}Ki", "pods": "110"}
    assert st["allocatable"]["memory"] == f"{(8 * GI - 100 * 2 ** 20) // 1024}Ki"
    assert st["allocatable"]["ephemeral-storage"] == str(100 * GI - 10 * GI)
    c = conds(st)
    assert c["Ready"]["status"] == "True" and c["Ready"]["reason"] == "KubeletReady"
    assert c["MemoryPressure"]["status"] == "False"
    assert c["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert c["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert c["PIDPressure"]["reason"] == "KubeletHasSufficientPID"
    assert st["addresses"] == [{"type": "InternalIP", "address": "10.0.0.5"},
                               {"type": "Hostname", "address": "n1"}]
    assert st["nodeInfo"]["kubeletVersion"] == N.KUBELET_VERSION


def test_pressure_and_not_ready():
    st = N.node_status(facts(memory_available=50 * 2 ** 20, disk_available=GI,
                             network_ready=False,
                             runtime_message="container runtime network not ready: x"),
                       max_pods=110, eviction_hard={"memory.available": "100Mi",
                                                    "nodefs.available": "10%"},
                       old=None, now=1.0)
    c = conds(st)
    assert c["MemoryPressure"]["status"] == "True"
    assert c["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert c["DiskPressure"]["status"] == "True"
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "KubeletNotReady"
    assert c["Ready"]["message"].startswith("container runtime network not ready")


def test_transition_time_kept_while_status_holds():
    first = N.node_status(facts(), max_pods=110, eviction_hard={}, old=None, now=1000.0)
    later = N.node_status(facts(), max_pods=110, eviction_hard={}, old=first, now=2000.0)
    assert conds(later)["Ready"]["lastTransitionTime"] == conds(first)["Ready"]["lastTransitionTime"]
    assert conds(later)["Ready"]["lastHeartbeatTime"] != conds(first)["Ready"]["lastHeartbeatTime"]
    assert N.without_heartbeats(first) == N.without_heartbeats(later)


class Clock:
    t = 1_800_000_000.0

    def __call__(self):
        return self.t


async def test_register_lease_and_status_writes():
    client = FakeClient()
    runtime = FakeRuntime(images={"busybox:1.35": "sha256:b"})
    clock = Clock()
    cfg = KubeletConfig(hostname_override="n1", pod_cidr="10.244.1.0/24",
                        node_labels={"role": "worker"})
    agent = N.NodeAgent(client, runtime, cfg, "10.0.0.5", clock=clock, facts=facts)
    await agent.register()
    node = client.objects("nodes")[0]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
    assert node["metadata"]["labels"]["role"] == "worker"
    assert node["spec"]["podCIDR"] == "10.244.1.0/24"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "fake://1.0"
    assert node["status"]["images"] == [{"names": ["busybox:1.35"], "sizeBytes": 1000}]
    # Unchanged status is not written again until the report frequency passes.
    writes = len(client.requests_for("patch", "nodes"))
    clock.t += 10
    assert not await agent.update_status()
    clock.t += 300
    assert await agent.update_status()
    assert len(client.requests_for("patch", "nodes")) == writes + 1
    runtime.images["other:1"] = "sha256:o"
    clock.t += 10
    assert await agent.update_status()          # a change is written at once
    await agent.renew_lease()
    lease = client.objects("leases", "kube-node-lease")[0]
    assert lease["spec"]["holderIdentity"] == "n1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    first = lease["spec"]["renewTime"]
    clock.t += 10
    await agent.renew_lease()
    assert client.objects("leases", "kube-node-lease")[0]["spec"]["renewTime"] != first
    # A second registration (kubelet restart) finds the Node and keeps it.
    again = N.NodeAgent(client, runtime, cfg, "10.0.0.5", clock=clock, facts=facts)
    await again.register()
    assert len(client.objects("nodes")) == 1 and again.node_uid == agent.node_uid
