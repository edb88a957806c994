"""The pod worker and the kubelet controller through FakeRuntime (and FakeClient)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet import status as S
from bootstrap.agents.kubelet.config import KubeletConfig
from bootstrap.agents.kubelet.fakeruntime import FakeRuntime
from bootstrap.agents.kubelet.images import ImageManager
from bootstrap.agents.kubelet.kubelet import Kubelet
from bootstrap.agents.kubelet.prober import ProbeManager
from bootstrap.agents.kubelet.sync import PodSyncer
from bootstrap.agents.kubelet.translate import NodeContext, PodInputs, ResolvConf
from bootstrap.agents.kubelet.volumes import NoMounter, VolumeManager
from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import SharedInformerFactory

IMAGE = "docker.io/library/busybox:1.35"


class Clock:
    def __init__(self):
        self.t = 1_800_000_000.0

    def __call__(self):
        return self.t


def make_pod(name="p", uid="uid-1", policy="Always", init=(), containers=None, **spec) -> dict:
    containers = containers or [{"name": "app", "image": IMAGE}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"nodeName": "n1", "restartPolicy": policy,
                     "terminationGracePeriodSeconds": 5,
                     "initContainers": [{"name": n, "image": IMAGE} for n in init],
                     "containers": containers, **spec},
            "status": {}}


class World:
    def __init__(self, tmp_path):
        self.clock = Clock()
        self.runtime = FakeRuntime(clock=self.clock, images={IMAGE: "sha256:busybox"})
        self.events: list[tuple] = []
        self.changed: asyncio.Queue = asyncio.Queue()
        node = NodeContext("n1", "10.0.0.5", ("10.96.0.10",), host_dns=ResolvConf(),
                           pod_log_root=str(tmp_path / "logs"))

        async def fetch(kind, ns, name):
            return None

        async def token(ns, sa, body):
            return {"status": {"token": "t"}}

        async def inputs(pod):
            return PodInputs()
        self.prober = ProbeManager(self.runtime, self.changed.put_nowait, clock=self.clock)
        self.volumes = VolumeManager(tmp_path / "root", fetch, token, node, NoMounter(),
                                     self.clock)
        self.images = ImageManager(self.runtime, self.event)
        self.syncer = PodSyncer(self.runtime, node, self.volumes, self.images, self.prober,
                                self.event, inputs, self.clock)
        self.syncer.crash_backoff.clock = self.clock
        self.images.backoff.clock = self.clock

    def event(self, ref, type_, reason, message):
        self.events.append((ref.get("fieldPath", ""), type_, reason, message))

    def reasons(self):
        return [e[2] for e in self.events]

    async def status(self, pod):
        out = await self.syncer.sync(pod)
        return S.pod_status(pod, out.runtime, out.view, "10.0.0.5", self.clock()), out


@pytest.fixture
async def world(tmp_path):
    w = World(tmp_path)
    yield w
    await w.prober.close()


def running(rt: FakeRuntime, name: str):
    return rt.by_name(name, running=True)


async def test_sandbox_then_containers_running(world):
    pod = make_pod()
    st, out = await world.status(pod)
    assert world.runtime.calls[0][0] == "RunPodSandbox"
    assert len(running(world.runtime, "app")) == 1
    assert st["phase"] == "Running" and st["podIP"].startswith("10.244.0.")
    assert world.reasons() == ["Pulled", "Created", "Started"]
    assert world.events[0][3] == f'Container image "{IMAGE}" already present on machine'
    # A second sync changes nothing.
    calls = len(world.runtime.calls)
    await world.syncer.sync(pod)
    assert [c for c in world.runtime.calls[calls:] if c[0] != "ExecSync"] == []


async def test_init_containers_run_in_order(world):
    pod = make_pod(init=("first", "second"))
    await world.syncer.sync(pod)
    assert [c.config.metadata.name for c in world.runtime.containers.values()] == ["first"]
    world.runtime.exit(world.runtime.by_name("first")[0].id, 0)
    await world.syncer.sync(pod)
    assert running(world.runtime, "second") and not world.runtime.by_name("app")
    world.runtime.exit(world.runtime.by_name("second")[0].id, 0)
    st, _ = await world.status(pod)
    assert running(world.runtime, "app") and st["phase"] == "Running"


async def test_failed_init_container_with_never_fails_the_pod(world):
    pod = make_pod(policy="Never", init=("init",))
    await world.syncer.sync(pod)
    world.runtime.exit(world.runtime.by_name("init")[0].id, 2)
    st, _ = await world.status(pod)
    assert st["phase"] == "Failed" and not world.runtime.by_name("app")
    assert len(world.runtime.by_name("init")) == 1  # not retried


async def test_crash_loop_backoff(world):
    pod = make_pod()
    await world.syncer.sync(pod)
    first = world.runtime.by_name("app")[0]
    world.runtime.exit(first.id, 1)
    await world.syncer.sync(pod)                       # first restart is immediate
    assert [c.config.metadata.attempt for c in world.runtime.by_name("app")] == [0, 1]
    world.runtime.exit(world.runtime.by_name("app")[1].id, 1)
    st, out = await world.status(pod)                  # now inside the 10 s window
    cs = st["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["state"]["waiting"]["message"].startswith(
        "back-off 10s restarting failed container=app pod=p_default(uid-1)")
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["restartCount"] == 1
    assert 0 < out.requeue <= 10.1
    assert "BackOff" in world.reasons()
    world.clock.t += 10.5
    await world.syncer.sync(pod)
    attempts = [c.config.metadata.attempt for c in world.runtime.by_name("app")]
    assert attempts[-1] == 2
    # Only the current and one dead instance are kept.
    assert len(attempts) == 2


@pytest.mark.parametrize("policy, code, restarts", [
    ("Never", 0, False), ("Never", 1, False), ("OnFailure", 0, False), ("OnFailure", 1, True),
    ("Always", 0, True)])
async def test_restart_policy(world, policy, code, restarts):
    pod = make_pod(policy=policy)
    await world.syncer.sync(pod)
    world.runtime.exit(world.runtime.by_name("app")[0].id, code)
    st, _ = await world.status(pod)
    assert (len(world.runtime.by_name("app")) == 2) == restarts
    if not restarts:
        assert st["phase"] == ("Succeeded" if code == 0 else "Failed")


async def test_image_pull_errors_and_backoff(world):
    pod = make_pod(containers=[{"name": "app", "image": "reg:5000/missing:1",
                                "imagePullPolicy": "IfNotPresent"}])
    world.runtime.pull_errors["reg:5000/missing:1"] = "not found"
    st, out = await world.status(pod)
    w = st["containerStatuses"][0]["state"]["waiting"]
    assert w["reason"] == "ErrImagePull" and "not found" in w["message"]
    assert world.reasons()[-2:] == ["Pulling", "Failed"]
    st, _ = await world.status(pod)
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert sum(1 for c in world.runtime.calls if c[0] == "PullImage") == 1
    never = make_pod(uid="uid-2", containers=[{"name": "app", "image": "nothere:1",
                                               "imagePullPolicy": "Never"}])
    st, _ = await world.status(never)
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImageNeverPull"


async def test_always_pulls_even_when_present(world):
    pod = make_pod(containers=[{"name": "app", "image": IMAGE, "imagePullPolicy": "Always"}])
    await world.syncer.sync(pod)
    assert ("PullImage", IMAGE) in world.runtime.calls
    assert world.events[0][2] == "Pulling" and world.events[1][2] == "Pulled"


async def test_liveness_failure_restarts_the_container(world):
    world.runtime.exec_handler = lambda cid, cmd: (1, b"")
    pod = make_pod(containers=[{"name": "app", "image": IMAGE, "livenessProbe": {
        "exec": {"command": ["false"]}, "periodSeconds": 0.01, "failureThreshold": 1}}])
    await world.syncer.sync(pod)
    first = world.runtime.by_name("app")[0].id
    assert await asyncio.wait_for(world.changed.get(), 5) == "uid-1"
    await world.syncer.sync(pod)
    assert world.runtime.containers[first].state == cri.CONTAINER_EXITED
    assert any(e[2] == "Killing" and "failed liveness probe" in e[3] for e in world.events)
    assert len(running(world.runtime, "app")) == 1
    assert running(world.runtime, "app")[0].config.metadata.attempt == 1


async def test_readiness_probe_gates_ready(world):
    results = {"ok": False}
    world.runtime.exec_handler = lambda cid, cmd: (0 if results["ok"] else 1, b"")
    pod = make_pod(containers=[{"name": "app", "image": IMAGE, "readinessProbe": {
        "exec": {"command": ["check"]}, "periodSeconds": 0.01}}])
    st, _ = await world.status(pod)
    assert not st["containerStatuses"][0]["ready"]
    results["ok"] = True
    assert await asyncio.wait_for(world.changed.get(), 5) == "uid-1"
    st, _ = await world.status(pod)
    assert st["containerStatuses"][0]["ready"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"


async def test_post_start_and_pre_stop_hooks(world):
    pod = make_pod(containers=[{"name": "app", "image": IMAGE, "lifecycle": {
        "postStart": {"exec": {"command": ["touch", "/started"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "drain"]}}}}])
    await world.syncer.sync(pod)
    cid = world.runtime.by_name("app")[0].id
    assert ("ExecSync", cid, ("touch", "/started")) in world.runtime.calls
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 7
    await world.syncer.terminate(pod)
    calls = world.runtime.calls
    assert ("ExecSync", cid, ("sh", "-c", "drain")) in calls
    stop = next(c for c in calls if c[0] == "StopContainer")
    assert stop[2] <= 7 and stop[2] >= 2
    assert calls.index(("ExecSync", cid, ("sh", "-c", "drain"))) < calls.index(stop)
    assert all(not sb.ready for sb in world.runtime.sandboxes.values())
    await world.syncer.cleanup("uid-1", pod)
    assert not world.runtime.sandboxes and not world.runtime.containers


async def test_failed_post_start_kills_the_container(world):
    world.runtime.exec_handler = lambda cid, cmd: (1, b"")
    pod = make_pod(containers=[{"name": "app", "image": IMAGE, "lifecycle": {
        "postStart": {"exec": {"command": ["false"]}}}}])
    await world.syncer.sync(pod)
    assert "FailedPostStartHook" in world.reasons()
    assert not running(world.runtime, "app")


async def test_dead_sandbox_is_replaced_and_containers_recreated(world):
    pod = make_pod()
    await world.syncer.sync(pod)
    old_sb = next(iter(world.runtime.sandboxes))
    world.runtime.kill_sandbox(old_sb)
    await world.syncer.sync(pod)
    ready = [sb for sb in world.runtime.sandboxes.values() if sb.ready]
    assert len(ready) == 1 and ready[0].config.metadata.attempt == 1
    app = running(world.runtime, "app")
    assert len(app) == 1 and app[0].sandbox_id == ready[0].id
    assert app[0].config.metadata.attempt == 1


async def test_config_error_waits(world):
    async def inputs(pod):
        return PodInputs(configmaps={"cfg": None})
    world.syncer.inputs = inputs
    pod = make_pod(containers=[{"name": "app", "image": IMAGE, "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}])
    st, out = await world.status(pod)
    w = st["containerStatuses"][0]["state"]["waiting"]
    assert w == {"reason": "CreateContainerConfigError", "message": 'configmap "cfg" not found'}
    assert out.requeue is not None and not world.runtime.containers


# --- the controller on FakeClient ---------------------------------------------------------

@contextlib.asynccontextmanager
async def kubelet_env(tmp_path):
    # A context manager inside each test rather than an async fixture: teardown then
    # runs in the test's own task, where the informers were started.
    client = FakeClient()
    runtime = FakeRuntime(images={IMAGE: "sha256:busybox"})
    cfg = KubeletConfig(hostname_override="n1", root_dir=str(tmp_path / "root"),
                        cni_conf_dir=str(tmp_path / "cni"), pod_log_root=str(tmp_path / "logs"),
                        pod_cidr="10.244.0.0/24", resolv_conf=str(tmp_path / "none"))
    factory = SharedInformerFactory(client)
    k = Kubelet(client, factory, None, cfg, runtime, "10.0.0.5", mounter=NoMounter())
    factory.start()
    try:
        yield k, client, runtime
    finally:
        await k.close()
        # Let the watch events of our last writes drain first: FakeClient.watch waits
        # with asyncio.wait_for, which on 3.11 can swallow a cancel that races a ready
        # event (reported to the owner of bootstrap.api.fake).
        await asyncio.sleep(0.1)
        await factory.stop()


async def _seeded(k, client, pod):
    client.seed(pod)
    await k.factory.wait_synced(5)
    for _ in range(100):
        if k.desired(pod["metadata"]["uid"]) is not None:
            return
        await asyncio.sleep(0.01)


async def test_reconcile_writes_status_once(tmp_path):
    async with kubelet_env(tmp_path) as (k, client, runtime):
        pod = make_pod()
        await _seeded(k, client, pod)
        await k.reconcile("uid-1")
        patches = client.requests_for("patch", "pods")
        assert len(patches) == 1 and patches[0].subresource == "status"
        assert patches[0].body["status"]["phase"] == "Running"
        assert patches[0].body["metadata"] == {"uid": "uid-1"}
        await k.reconcile("uid-1")
        assert len(client.requests_for("patch", "pods")) == 1  # unchanged: no write
        assert (k.cfg.cni_conf_dir and (
            __import__("pathlib").Path(k.cfg.cni_conf_dir) / "10-bootstrap.conflist").exists())


async def test_deleted_pod_is_stopped_then_released_and_cleaned(tmp_path):
    async with kubelet_env(tmp_path) as (k, client, runtime):
        pod = make_pod()
        await _seeded(k, client, pod)
        await k.reconcile("uid-1")
        await client.delete(("", "v1", "pods"), "p", "default", grace_period_seconds=5)
        for _ in range(100):
            cur = k.desired("uid-1")
            if cur is None or cur["metadata"].get("deletionTimestamp"):
                break
            await asyncio.sleep(0.01)
        await k.reconcile("uid-1")
        deletes = [r for r in client.requests_for("delete", "pods")]
        assert deletes[-1].body.get("gracePeriodSeconds") == 0
        assert deletes[-1].body.get("preconditions") == {"uid": "uid-1"}
        for _ in range(100):
            if k.desired("uid-1") is None:
                break
            await asyncio.sleep(0.01)
        await k.reconcile("uid-1")
        assert not runtime.sandboxes and not runtime.containers


async def test_orphans_in_the_runtime_are_removed(tmp_path):
    async with kubelet_env(tmp_path) as (k, client, runtime):
        sid = await runtime.run_pod_sandbox(cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name="old", uid="ghost", namespace="default"),
            labels={"io.kubernetes.pod.uid": "ghost"}))
        await k.factory.wait_synced(5)
        await k.reconcile("ghost")
        assert sid not in runtime.sandboxes


async def test_status_write_keeps_conditions_other_writers_own(tmp_path):
    async with kubelet_env(tmp_path) as (k, client, runtime):
        pod = make_pod()
        pod["status"] = {"conditions": [{"type": "example.com/Gate", "status": "True"}]}
        await _seeded(k, client, pod)
        await k.reconcile("uid-1")
        stored = client.objects("pods", "default")[0]["status"]
        types = {c["type"]: c["status"] for c in stored["conditions"]}
        assert types["example.com/Gate"] == "True" and types["Ready"] == "True"
        assert stored["phase"] == "Running"


async def test_cni_config_follows_the_node_pod_cidr(tmp_path):
    client = FakeClient()
    cfg = KubeletConfig(hostname_override="n1", root_dir=str(tmp_path / "root"),
                        cni_conf_dir=str(tmp_path / "cni"), pod_log_root=str(tmp_path / "logs"),
                        resolv_conf=str(tmp_path / "none"))
    factory = SharedInformerFactory(client)
    k = Kubelet(client, factory, None, cfg, FakeRuntime(), "10.0.0.5", mounter=NoMounter())
    client.seed({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                 "spec": {"podCIDR": "10.244.7.0/24"}},
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "other"},
                 "spec": {"podCIDR": "10.244.8.0/24"}})
    factory.start()
    conf = tmp_path / "cni" / "10-bootstrap.conflist"
    try:
        await factory.wait_synced(5)
        for _ in range(200):
            if conf.exists():
                break
            await asyncio.sleep(0.01)
        assert '"subnet": "10.244.7.0/24"' in conf.read_text()
        # The node's own informer is pinned to its name (what the Node authorizer allows).
        watches = client.requests_for("watch", "nodes")
        assert watches and all(r.params.get("field_selector") == "metadata.name=n1"
                               for r in watches)
    finally:
        await k.close()
        await asyncio.sleep(0.1)
        await factory.stop()
