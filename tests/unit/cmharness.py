"""Driving cluster controllers step by step on the FakeClient: seed objects, let the
informers sync, call reconcile(key) and look at the requests."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from bootstrap.api.cache import meta_key
from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import SharedInformerFactory

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, start: float = T0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Events:
    """The EventRecorder surface, in memory."""

    def __init__(self):
        self.events: list[tuple[str, str, str, str, str]] = []

    def event(self, obj, type_, reason, message):
        name = obj.get("name") or (obj.get("metadata") or {}).get("name", "")
        self.events.append((obj.get("kind", ""), name, type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[3] for e in self.events]


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def until(cond, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def caught_up(client: FakeClient, factory: SharedInformerFactory) -> None:
    """Every informer holds exactly what the fake stores (after our own writes)."""
    def same() -> bool:
        for inf in factory.informers:
            want = {meta_key(o): o["metadata"]["resourceVersion"]
                    for o in client.objects(inf.resource.plural, inf.namespace)}
            have = {meta_key(o): o["metadata"]["resourceVersion"] for o in inf.list()}
            if want != have:
                return False
        return True
    await until(same)


@contextlib.asynccontextmanager
async def synced(build, *seed, client: FakeClient | None = None):
    """Yield (client, controller, events) with the controller's informers synced; the
    controller's workers are not started: tests call reconcile themselves."""
    client = client or FakeClient()
    client.seed(*seed)
    factory = SharedInformerFactory(client)
    events = Events()
    ctl = build(client, factory, events)
    factory.start()
    try:
        await factory.wait_synced(timeout=5)
        yield client, ctl, events
    finally:
        # Let the informers take in our last writes first: stopping a FakeClient watch
        # while a change is being handed over can leave the informer task uncancelled
        # (asyncio.wait_for on Python 3.11), which would hang factory.stop().
        with contextlib.suppress(TimeoutError):
            await caught_up(client, factory)
        await factory.stop()


def writes(client: FakeClient) -> list[tuple]:
    return [(r.verb, r.resource, r.name, r.subresource) for r in client.writes()]
