"""TTL-after-finished controller (upstream's pkg/controller/ttlafterfinished):
deletes a finished Job ``ttlSecondsAfterFinished`` after its Complete or Failed
condition's lastTransitionTime. As upstream, the TTL is re-checked on a fresh
GET before deleting, and the delete is a Foreground cascade with a uid
precondition (so a recreated Job of the same name is never hit)."""

from __future__ import annotations

import time

from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.meta import parse_time

JOBS = ("batch", "v1", "jobs")


def finish_time(job: dict) -> float | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            stamp = c.get("lastTransitionTime")
            return parse_time(stamp).timestamp() if stamp else None
    return None


def time_left(job: dict, now: float) -> float | None:
    """Seconds until the Job expires (<= 0: expired), or None when it needs no cleanup."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return None
    finished = finish_time(job)
    if finished is None:
        return None
    return finished + int(ttl) - now


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished"
    workers = 5  # --concurrent-ttl-after-finished-syncs

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.jobs = factory.informer(JOBS)
        self.jobs.add_handler(on_add=self._maybe, on_update=lambda old, new: self._maybe(new))

    def _maybe(self, job: dict) -> None:
        if time_left(job, self.clock()) is not None:
            self.enqueue(job)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        job = self.jobs.get(name, namespace)
        if job is None:
            return None
        left = time_left(job, self.clock())
        if left is None:
            return None
        if left > 0:
            return left
        try:
            fresh = await self.client.get(JOBS, name, namespace)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise
        left = time_left(fresh, self.clock())
        if left is None:
            return None
        if left > 0:
            return left
        try:
            await self.client.delete(JOBS, name, namespace, propagation_policy="Foreground",
                                     preconditions={"uid": fresh["metadata"]["uid"]})
        except APIError as exc:
            if exc.code not in (404, 409):
                raise
        return None

