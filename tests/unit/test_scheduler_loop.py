"""The whole scheduler on the shipped FakeClient: informers in, API requests out."""

from __future__ import annotations

import asyncio

import pytest
from test_scheduler_builders import node, pod

from bootstrap.agents.scheduler import app, config
from bootstrap.api.events import EventRecorder
from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import SharedInformerFactory

pytestmark = pytest.mark.timeout(30)
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def seeded(*objs) -> FakeClient:
    fake = FakeClient()
    fake.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, *objs)
    return fake


class Running:
    def __init__(self, fake: FakeClient, cfg=None):
        self.fake = fake
        self.factory = SharedInformerFactory(fake)
        self.recorder = EventRecorder(fake, "default-scheduler")
        self.sched = app.wire(fake, self.factory, self.recorder, cfg or config.default_config())

    async def __aenter__(self):
        self.factory.start()
        await self.factory.wait_synced(10)
        self.task = asyncio.create_task(self.sched.run())
        return self

    async def __aexit__(self, *exc):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.recorder.close()
        await self.factory.stop()

    def pod(self, name: str, ns: str = "default") -> dict:
        return next(p for p in self.fake.objects("pods", ns) if p["metadata"]["name"] == name)

    async def until(self, fn, timeout: float = 10.0):
        async def poll():
            while not (result := fn()):
                await asyncio.sleep(0.01)
            return result
        return await asyncio.wait_for(poll(), timeout)

    def events(self, reason: str) -> list[dict]:
        return [e for e in self.fake.objects("events", "default") if e.get("reason") == reason]


async def test_binds_pods_across_nodes_respecting_taints_and_resources():
    fake = seeded(node("cp", taints=[CP_TAINT]), node("w1", cpu="1"), node("w2", cpu="1"),
                  *[pod(f"p{i}", cpu="600m") for i in range(2)])
    async with Running(fake) as r:
        await r.until(lambda: all(r.pod(f"p{i}")["spec"].get("nodeName") for i in range(2)))
        assert sorted(r.pod(f"p{i}")["spec"]["nodeName"] for i in range(2)) == ["w1", "w2"]
        bindings = [q for q in fake.requests if q.subresource == "binding"]
        assert len(bindings) == 2 and bindings[0].body["kind"] == "Binding"
        await r.until(lambda: len(r.events("Scheduled")) == 2)
        msgs = sorted(e["message"] for e in r.events("Scheduled"))
        assert msgs[0].startswith("Successfully assigned default/p0 to w")
        assert all(e["type"] == "Normal" for e in r.events("Scheduled"))


async def test_unschedulable_pod_gets_condition_and_event_then_binds_when_a_node_comes():
    fake = seeded(node("cp", taints=[CP_TAINT]), node("w1", cpu="1"), node("w2", cpu="1"),
                  pod("big", cpu="2"))
    want = ("0/3 nodes are available: 1 node(s) had untolerated taint "
            "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: "
            "0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
            "2 No preemption victims found for incoming pod.")
    async with Running(fake) as r:
        def condition():
            for c in (r.pod("big").get("status") or {}).get("conditions") or []:
                if c["type"] == "PodScheduled":
                    return c
        cond = await r.until(condition)
        assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", want)
        event = (await r.until(lambda: r.events("FailedScheduling")))[0]
        assert (event["type"], event["message"]) == ("Warning", want)
        status_writes = [q for q in fake.requests if q.subresource == "status"]
        assert status_writes and status_writes[0].verb == "patch"
        await fake.create(("", "v1", "nodes"), node("w3", cpu="4"))
        await r.until(lambda: r.pod("big")["spec"].get("nodeName") == "w3")


async def test_other_schedulers_and_bound_pods_are_left_alone():
    fake = seeded(node("w1"), pod("mine"), pod("theirs", scheduler="other-scheduler"),
                  pod("placed", node_name="w1"))
    async with Running(fake) as r:
        await r.until(lambda: r.pod("mine")["spec"].get("nodeName"))
        await r.sched.wait_idle()
        assert "nodeName" not in r.pod("theirs")["spec"]
        touched = {q.name for q in fake.requests if q.verb in ("create", "patch", "update")
                   and q.resource == "pods"}
        assert touched == {"mine"}


async def test_preemption_evicts_the_lower_priority_pod_and_nominates():
    fake = seeded(node("w1", cpu="1"),
                  pod("low", cpu="800m", priority=0, node_name="w1"),
                  pod("vip", cpu="800m", priority=1000))
    async with Running(fake) as r:
        # graceful deletion: the victim stays Terminating until its kubelet confirms
        await r.until(lambda: r.pod("low")["metadata"].get("deletionTimestamp"))
        deletes = [q for q in fake.requests if q.verb == "delete" and q.resource == "pods"]
        assert [q.name for q in deletes] == ["low"]
        conditions = [q.body for q in fake.requests if q.name == "low" and q.subresource == "status"]
        assert conditions[0]["status"]["conditions"][0]["reason"] == "PreemptionByScheduler"
        nominated = [q.body for q in fake.requests if q.name == "vip" and q.subresource == "status"]
        assert nominated and nominated[0]["status"]["nominatedNodeName"] == "w1"
        await r.sched.wait_idle()
        assert r.pod("vip")["spec"].get("nodeName") is None   # waits for the room
        # the kubelet's final delete moves vip back; it binds where it was nominated
        await fake.delete(("", "v1", "pods"), "low", "default", grace_period_seconds=0)
        await r.until(lambda: r.pod("vip")["spec"].get("nodeName") == "w1")
        assert r.events("Preempted")[0]["message"].startswith("Preempted by pod ")


async def test_binding_conflict_is_not_retried_forever():
    fake = seeded(node("w1"), pod("p"))
    async with Running(fake) as r:
        await r.until(lambda: r.pod("p")["spec"].get("nodeName"))
        await r.sched.wait_idle()
        assert sum(1 for q in fake.requests if q.subresource == "binding") == 1
        assert not r.sched.cache.is_assumed("default/p")


async def test_a_pod_the_scheduler_cannot_read_does_not_stop_the_others():
    bad = pod("bad")
    bad["spec"]["containers"][0]["resources"]["requests"] = {"cpu": "lots"}
    fake = seeded(node("w1"), bad, pod("good"))
    async with Running(fake) as r:
        await r.until(lambda: r.pod("good")["spec"].get("nodeName"))
        assert "nodeName" not in r.pod("bad")["spec"]


async def test_profile_from_config_schedules_its_own_pods_only():
    cfg = config.parse({"apiVersion": config.API_VERSION, "kind": config.KIND,
                        "profiles": [{"schedulerName": "batch"}]}, "x")
    fake = seeded(node("w1"), pod("default-pod"), pod("batch-pod", scheduler="batch"))
    async with Running(fake, cfg) as r:
        await r.until(lambda: r.pod("batch-pod")["spec"].get("nodeName"))
        await r.sched.wait_idle()
        assert "nodeName" not in r.pod("default-pod")["spec"]
