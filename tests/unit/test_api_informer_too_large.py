"""The informer after "Too large resource version" (its resourceVersion is ahead of
etcd, as after an etcd restore): it lists again from scratch, as client-go's reflector
does, instead of re-watching the same resourceVersion forever; other 504s do not."""

import asyncio

import pytest

from bootstrap.api import errors
from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import Informer
from bootstrap.api.resources import by_gvr

pytestmark = pytest.mark.timeout(30)
CONFIGMAPS = by_gvr("", "v1", "configmaps")


async def until(cond, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": data}


@pytest.fixture
async def env():
    client = FakeClient()
    client.seed(cm("a", v="1"), cm("b", v="1"))
    inf = Informer(client, CONFIGMAPS, "default")
    deleted: list[str] = []
    inf.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
    inf.start()
    await inf.wait_synced(5)
    try:
        yield client, inf, deleted
    finally:
        await inf.stop()


def watch_rvs(client):
    return [r.params.get("resource_version") for r in client.requests_for("watch")]


async def test_too_large_resource_version_lists_again(env):
    client, inf, deleted = env
    await until(lambda: client.requests_for("watch"))
    held = inf.resource_version
    # The next watch is refused as the server refuses a revision etcd has not reached.
    client.fail("watch", "configmaps", errors.too_large_resource_version(
        int(held) + 1000, int(held), retry_after=1))
    client.end_watches()
    await client.delete(CONFIGMAPS, "b", "default")
    await until(lambda: inf.lists == 2)
    assert deleted == ["b"]  # learnt from the list, not from the refused watch
    assert inf.keys() == ["default/a"]
    # It watches again from the new list's resourceVersion, and follows changes.
    await until(lambda: len(client.requests_for("watch")) >= 3)
    assert watch_rvs(client)[-1] == inf.resource_version == str(client.rv)
    await client.create(CONFIGMAPS, cm("c"))
    await until(lambda: "default/c" in inf.keys())


async def test_resource_version_ahead_of_the_fake_lists_again(env):
    """The fake refuses a revision it has not reached, as the server does: an informer
    holding one (from before a restore) gets the refusal on its next watch and lists."""
    client, inf, _ = env
    await until(lambda: client.requests_for("watch"))
    held = client.rv
    # The stream ends at the fake's revision, which then goes back (an etcd restore in
    # miniature) before the informer watches again from the one it holds.
    client.end_watches()
    client.rv -= 1
    await until(lambda: inf.lists == 2)
    await until(lambda: len(client.requests_for("watch")) >= 3)
    assert watch_rvs(client)[1:3] == [str(held), str(held - 1)]  # refused, then the list's
    await client.create(CONFIGMAPS, cm("c"))
    await until(lambda: "default/c" in inf.keys())


async def test_fake_refuses_revisions_it_has_not_reached():
    client = FakeClient()
    client.seed(cm("a"))
    ahead = str(client.rv + 1)
    with pytest.raises(errors.APIError) as err:
        await client.list(CONFIGMAPS, "default", resource_version=ahead,
                          resource_version_match="NotOlderThan")
    assert errors.is_too_large_resource_version(err.value)
    with pytest.raises(errors.APIError) as err:
        async for _ in client.watch(CONFIGMAPS, "default", resource_version=ahead):
            pass
    assert err.value.code == 504 and errors.is_too_large_resource_version(err.value)
    page = await client.list(CONFIGMAPS, "default", resource_version=str(client.rv))
    assert [o["metadata"]["name"] for o in page["items"]] == ["a"]


async def test_other_timeouts_resume_the_watch_without_listing(env):
    client, inf, _ = env
    await until(lambda: client.requests_for("watch"))
    held = inf.resource_version
    client.fail("watch", "configmaps", errors.timeout("request timed out", retry_after=1))
    client.end_watches()
    await until(lambda: len(client.requests_for("watch")) >= 3)
    assert inf.lists == 1
    assert watch_rvs(client)[1:] == [held, held]


@pytest.mark.parametrize("status,expected", [
    (errors.too_large_resource_version(10, 5).status(), True),
    # kube-apiserver 1.17.0-1.18.5: the cause without its reason
    ({"code": 504, "reason": "Timeout", "message": "Timeout: x",
      "details": {"causes": [{"message": "Too large resource version"}]}}, True),
    # before 1.17: the message alone
    ({"code": 504, "reason": "Timeout", "message": "Too large resource version: 10"}, True),
    ({"code": 504, "reason": "Timeout", "message": "Timeout: request did not complete"}, False),
    ({"code": 410, "reason": "Expired", "message": "too old resource version: 1 (2)"}, False),
])
def test_is_too_large_resource_version(status, expected):
    exc = errors.APIError(status["code"], status["reason"], status["message"],
                          status.get("details"))
    assert errors.is_too_large_resource_version(exc) is expected


def test_too_large_status_is_upstreams():
    assert errors.too_large_resource_version(105, 100, retry_after=1).status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Timeout: Too large resource version: 105, current: 100",
        "reason": "Timeout",
        "details": {"causes": [{"reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version"}],
                    "retryAfterSeconds": 1},
        "code": 504}
