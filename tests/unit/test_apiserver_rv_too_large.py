"""The watch cache's wait for a revision it has not seen: it ends when a progress
notification or an event reaches the revision, and otherwise with upstream's Too
large resource version (retry after 1 s, resourceVersionTooHighRetrySeconds)."""

import asyncio

import orjson
import pytest

from bootstrap.agents.apiserver.storage.cache import WatchCache
from bootstrap.agents.apiserver.storage.etcd import PROGRESS, WatchEvent
from bootstrap.api import errors
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(30)


def _cache() -> WatchCache:
    def decode(key, value, rev):
        obj = orjson.loads(value)
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj
    c = WatchCache(by_gvr("", "v1", "configmaps"), etcd=None, decode=decode)
    c.rev = c.oldest = c.applied = 10
    c.ready.set()
    return c


async def test_sync_to_a_revision_never_reached_is_too_large():
    c = _cache()
    with pytest.raises(errors.APIError) as err:
        await c.sync_to(5000, timeout=0.1)
    assert err.value.status() == errors.too_large_resource_version(5000, 10, 1).status()
    assert err.value.status()["message"] == \
        "Timeout: Too large resource version: 5000, current: 10"
    assert errors.is_too_large_resource_version(err.value)
    # It asked etcd for progress while waiting (requests go on the watch stream).
    assert c._requests.get_nowait() is PROGRESS


async def test_sync_to_ends_when_the_revision_arrives():
    c = _cache()
    waiting = asyncio.create_task(c.sync_to(12, timeout=20))
    await asyncio.sleep(0)
    c._advance(11)  # progress below the revision: still waiting
    await asyncio.sleep(0)
    assert not waiting.done()
    obj = {"metadata": {"name": "a", "namespace": "d"}}
    c._apply([WatchEvent("PUT", "/registry/configmaps/d/a", orjson.dumps(obj), 12, 12)])
    await asyncio.wait_for(waiting, 5)
