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
