"""The controller shape every control loop follows (client-go's sample-controller).

Event handlers only turn objects into keys on the work queue; ``reconcile(key)``
reads the informer caches, computes the wanted state and writes it. Because a key
carries no event payload, reconcile is level-triggered: it does the same thing
whether it runs once or ten times for a change. Conflicts (409: someone wrote
first, our cache is stale) are normal and simply retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging

from bootstrap.api.cache import meta_key
from bootstrap.api.client import Client
from bootstrap.api.errors import APIError
from bootstrap.api.events import EventRecorder
from bootstrap.api.informer import SharedInformerFactory
from bootstrap.api.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)


class Controller:
    name: str = ""
    workers: int = 1

    def __init__(self, client: Client, factory: SharedInformerFactory,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.factory = factory
        self.recorder = recorder
        self.queue = WorkQueue(self.name)
        self.log = logging.getLogger(f"{type(self).__module__}.{self.name or 'controller'}")

    # handlers call these -----------------------------------------------------------

    def enqueue(self, obj_or_key: dict | str) -> None:
        self.queue.add(_key(obj_or_key))

    def enqueue_after(self, obj_or_key: dict | str, seconds: float) -> None:
        self.queue.add_after(_key(obj_or_key), seconds)

    # the loop ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """Make the world match the cached desired state of ``key``; return seconds
        after which to look again, or None."""
        raise NotImplementedError

    async def run(self, workers: int | None = None) -> None:
        """Wait for the caches, then run workers until cancelled; the queue is shut
        down on the way out."""
        self.factory.start()
        await self.factory.wait_synced()
        count = workers or self.workers
        self.log.info("starting %s controller with %d workers", self.name, count)
        tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                 for i in range(count)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: str) -> None:
        """One reconcile of ``key`` with the queue bookkeeping around it (tests call
        this directly to drive a controller step by step)."""
        try:
            delay = await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except APIError as exc:
            if exc.code == 409:
                self.log.debug("%s: conflict on %s, requeuing: %s", self.name, key, exc.message)
            else:
                self.log.warning("%s: error syncing %r: %s", self.name, key, exc)
            self.queue.add_rate_limited(key)
            return
        except Exception:
            self.log.exception("%s: error syncing %r", self.name, key)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        if delay is not None:
            self.queue.add_after(key, delay)


def _key(obj_or_key: dict | str) -> str:
    return obj_or_key if isinstance(obj_or_key, str) else meta_key(obj_or_key)
