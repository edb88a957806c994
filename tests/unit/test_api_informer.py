"""Informer and SharedInformerFactory on the FakeClient: listeners per handler,
update suppression, deletes learned from a re-list, resync, late handlers."""

import asyncio

import pytest

from bootstrap.api.cache import NODE_NAME, index_by_node_name
from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import Informer, SharedInformerFactory
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(30)
CONFIGMAPS = by_gvr("", "v1", "configmaps")
PODS = by_gvr("", "v1", "pods")


async def until(cond, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": data}


def pod(name, node=None, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"nodeName": node} if node else {}}


class Log:
    def __init__(self, informer):
        self.events = []
        informer.add_handler(
            on_add=lambda o: self.events.append(("add", o["metadata"]["name"])),
            on_update=lambda a, b: self.events.append(("update", b["metadata"]["name"])),
            on_delete=lambda o: self.events.append(("delete", o["metadata"]["name"],
                                                    o.get("data"))))


@pytest.fixture
async def env():
    client = FakeClient()
    client.seed(cm("a", v="1"), cm("b", v="1"), cm("c", v="1"))
    inf = Informer(client, CONFIGMAPS, "default")
    log = Log(inf)
    inf.start()
    await inf.wait_synced(5)
    try:
        yield client, inf, log
    finally:
        await inf.stop()


async def test_relist_after_410_delivers_only_real_changes(env):
    client, inf, log = env
    assert sorted(log.events) == [("add", "a"), ("add", "b"), ("add", "c")]
    log.events.clear()
    await until(lambda: client.requests_for("watch"))
    # The stream ends and, before the informer watches again (the fake's calls do not
    # yield to the loop), these changes happen and the history is compacted: the
    # informer's next watch is refused as too old ...
    client.end_watches()
    await client.patch(CONFIGMAPS, "a", {"data": {"v": "2"}}, "default", patch_type="merge")
    await client.delete(CONFIGMAPS, "c", "default")
    await client.create(CONFIGMAPS, cm("d"))
    client.compact()
    # ... and learns them from the re-list: b is unchanged, so no update for it; c's
    # delete carries the last state the informer had seen.
    await until(lambda: inf.lists == 2 and len(log.events) == 3)
    assert sorted(log.events, key=str) == sorted(
        [("update", "a"), ("delete", "c", {"v": "1"}), ("add", "d")], key=str)
    assert sorted(inf.keys()) == ["default/a", "default/b", "default/d"]


async def test_watch_delete_of_unseen_object_is_delivered(env):
    client, inf, log = env
    log.events.clear()
    await until(lambda: client.requests_for("watch"))
    inf._apply({"type": "DELETED", "object": cm("ghost", v="x")})
    await until(lambda: log.events)
    assert log.events == [("delete", "ghost", {"v": "x"})]
    # an event repeating the cached resourceVersion is not an update
    same = inf.get("a", "default")
    inf._apply({"type": "MODIFIED", "object": same})
    await client.create(CONFIGMAPS, cm("after"))
    await until(lambda: ("add", "after") in log.events)
    assert not any(e[0] == "update" for e in log.events)


async def test_slow_or_failing_handler_does_not_block_others(env):
    client, inf, log = env
    release = asyncio.Event()
    slow = []

    async def blocked(obj):
        await release.wait()
        slow.append(obj["metadata"]["name"])

    def broken(obj):
        raise RuntimeError("handler bug")

    inf.add_handler(on_add=blocked)
    inf.add_handler(on_add=broken)
    log.events.clear()
    for name in ("x1", "x2", "x3"):
        await client.create(CONFIGMAPS, cm(name))
    await until(lambda: [e for e in log.events if e[0] == "add"] ==
                [("add", "x1"), ("add", "x2"), ("add", "x3")])
    assert slow == [] and not inf.has_synced
    release.set()
    # the late handler first got the cache (a, b, c), then the new objects in order
    await until(lambda: len(slow) == 6)
    assert sorted(slow[:3]) == ["a", "b", "c"] and slow[3:] == ["x1", "x2", "x3"]
    await inf.wait_synced(5)


async def test_resync_redelivers_cached_objects_as_updates():
    client = FakeClient()
    client.seed(cm("a"))
    factory = SharedInformerFactory(client, resync=0.02)
    inf = factory.informer(CONFIGMAPS)
    updates = []
    inf.add_handler(on_update=lambda old, new: updates.append((old is new, new["metadata"]["name"])))
    factory.start()
    try:
        await factory.wait_synced(5)
        await until(lambda: len(updates) >= 2)
        assert set(updates) == {(True, "a")}
    finally:
        await factory.stop()


async def test_factory_shares_informers_and_indexes():
    client = FakeClient()
    client.seed(pod("p1", "n1"), pod("p2", "n1"), pod("p3", "n2", {"app": "x"}))
    factory = SharedInformerFactory(client)
    one = factory.informer(PODS)
    assert factory.informer(PODS) is one
    assert factory.informer(PODS, label_selector="app=x") is not one
    one.add_indexers({NODE_NAME: index_by_node_name})
    factory.start()
    try:
        await factory.wait_synced(5)
        assert len(client.requests_for("list", "pods")) == 2  # two distinct selectors
        assert [p["metadata"]["name"] for p in one.indexer.by_index(NODE_NAME, "n1")] == \
            ["p1", "p2"]
        selected = factory.informer(PODS, label_selector="app=x")
        assert selected.keys() == ["default/p3"]
        # A pod leaving the selector is a delete for the selective informer.
        deleted = []
        selected.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
        await client.patch(PODS, "p3", {"metadata": {"labels": {"app": "y"}}}, "default",
                           patch_type="merge")
        await until(lambda: deleted == ["p3"])
        assert selected.keys() == []
        # and the unfiltered one follows the node index
        await client.delete(PODS, "p1", "default", grace_period_seconds=0)
        await until(lambda: len(one.indexer.by_index(NODE_NAME, "n1")) == 1)
    finally:
        await factory.stop()


async def test_wait_synced_covers_informers_started_later():
    client = FakeClient()
    factory = SharedInformerFactory(client)
    factory.informer(PODS)
    waiting = asyncio.create_task(factory.wait_synced(5))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # asked for, not started yet
    factory.start()
    await waiting
    assert factory.has_synced
    await factory.stop()


class BareListClient(FakeClient):
    """Lists without TypeMeta on the items, as the API server may send them."""

    async def list(self, *args, **kwargs):
        page = await super().list(*args, **kwargs)
        for item in page["items"]:
            item.pop("kind")
            item.pop("apiVersion")
        return page


async def test_listed_objects_get_type_meta():
    client = BareListClient()
    client.seed(pod("p1"))
    inf = Informer(client, PODS)
    inf.start()
    try:
        await inf.wait_synced(5)
        cached = inf.get("p1", "default")
        assert (cached["apiVersion"], cached["kind"]) == ("v1", "Pod")
    finally:
        await inf.stop()
