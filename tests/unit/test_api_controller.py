"""Controller on the FakeClient: handlers enqueue, reconcile writes, 409 requeues."""

import asyncio
import copy

import pytest

from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import conflict
from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import SharedInformerFactory
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(30)
CONFIGMAPS = by_gvr("", "v1", "configmaps")


async def until(cond, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


class Stamp(Controller):
    """Sets data.seen = "yes" on every ConfigMap (a level-triggered toy)."""
    name = "stamp"

    def __init__(self, client, factory):
        super().__init__(client, factory)
        self.cms = factory.informer(CONFIGMAPS)
        self.cms.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.calls: list[str] = []

    async def reconcile(self, key):
        self.calls.append(key)
        ns, name = split_key(key)
        cm = self.cms.get(name, ns)
        if cm is None or (cm.get("data") or {}).get("seen") == "yes":
            return None
        cm = copy.deepcopy(cm)
        cm.setdefault("data", {})["seen"] = "yes"
        await self.client.update(CONFIGMAPS, cm)
        return None


def cm(name):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {}}


async def test_reconciles_and_requeues_on_conflict():
    client = FakeClient()
    client.seed(cm("a"), cm("b"))
    client.fail("update", "configmaps", conflict("configmaps", "a"), name="a")
    factory = SharedInformerFactory(client)
    ctl = Stamp(client, factory)
    task = asyncio.create_task(ctl.run(workers=2))
    try:
        await until(lambda: all(o["data"].get("seen") == "yes"
                                for o in client.objects("configmaps")))
        updates = [r.name for r in client.requests_for("update", "configmaps")]
        assert updates.count("a") == 2 and updates.count("b") == 1
        await until(lambda: ctl.queue.num_requeues("default/a") == 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await factory.stop()


class Probe(Controller):
    """Records what reconcile saw; behaviour per key set by the test."""
    name = "probe"
    workers = 3

    def __init__(self, client, factory):
        super().__init__(client, factory)
        self.cms = factory.informer(CONFIGMAPS)
        self.cms.add_handler(on_add=self.enqueue)
        self.running: set[str] = set()
        self.overlap = False
        self.calls: list[str] = []
        self.cache_sizes: list[int] = []
        self.gate = asyncio.Event()
        self.behaviour = {}

    async def reconcile(self, key):
        if key in self.running:
            self.overlap = True
        self.running.add(key)
        self.calls.append(key)
        self.cache_sizes.append(len(self.cms.keys()))
        try:
            action = self.behaviour.get(key)
            if action == "block":
                await self.gate.wait()
            elif action == "fail":
                raise RuntimeError("reconcile bug")
            elif action == "later":
                self.behaviour[key] = None
                return 0.01
            return None
        finally:
            self.running.discard(key)


@pytest.fixture
async def probe():
    client = FakeClient()
    client.seed(cm("a"), cm("b"), cm("c"))
    factory = SharedInformerFactory(client)
    ctl = Probe(client, factory)
    yield ctl
    ctl.gate.set()
    await factory.stop()


async def run(ctl):
    task = asyncio.create_task(ctl.run())
    return task


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_workers_start_after_sync_and_never_share_a_key(probe):
    probe.behaviour["default/a"] = "block"
    task = await run(probe)
    try:
        await until(lambda: len(probe.calls) == 3)
        assert probe.cache_sizes[0] == 3  # the caches were full before the first reconcile
        for _ in range(5):
            probe.enqueue("default/a")   # while a is running: queued once, run after
        await asyncio.sleep(0)
        assert probe.calls.count("default/a") == 1
        probe.enqueue("default/b")
        await until(lambda: probe.calls.count("default/b") == 2)  # other workers go on
        probe.gate.set()
        await until(lambda: probe.calls.count("default/a") == 2)
        assert not probe.overlap
    finally:
        await stop(task)
    assert probe.queue.shutting_down


async def test_errors_are_retried_with_backoff_and_delays_requeue(probe, caplog):
    probe.behaviour["default/a"] = "fail"
    probe.behaviour["default/b"] = "later"
    task = await run(probe)
    try:
        await until(lambda: probe.calls.count("default/a") >= 3)
        assert probe.queue.num_requeues("default/a") >= 2
        assert "error syncing 'default/a'" in caplog.text and "reconcile bug" in caplog.text
        await until(lambda: probe.calls.count("default/b") == 2)
        assert probe.queue.num_requeues("default/b") == 0
        probe.behaviour["default/a"] = None
        await until(lambda: probe.queue.num_requeues("default/a") == 0)
    finally:
        await stop(task)


async def test_process_drives_one_step(probe):
    probe.behaviour["default/c"] = "fail"
    await probe.process("default/c")
    assert probe.queue.num_requeues("default/c") == 1
    probe.behaviour["default/c"] = None
    await probe.process("default/c")
    assert probe.queue.num_requeues("default/c") == 0
    probe.enqueue({"metadata": {"name": "x", "namespace": "ns"}})
    probe.enqueue_after("cluster-scoped", 0.01)
    assert await probe.queue.get() == "ns/x"
    # the failed step came back through the rate limiter (5 ms), the delayed key after 10 ms
    later = {await asyncio.wait_for(probe.queue.get(), 5) for _ in range(2)}
    assert later == {"default/c", "cluster-scoped"}
