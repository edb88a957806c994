"""Leader election on coordination.k8s.io/v1 Leases, with client-go's semantics.

A candidate takes the Lease when it does not exist, has no holder, or its record
has not changed for ``lease_duration`` seconds *as observed on this candidate's
clock* (client-go never trusts remote timestamps, so clock skew between hosts
cannot steal a lease). The leader renews every ``retry_period``; if it cannot
renew within ``renew_deadline`` it steps down. Writes carry the resourceVersion
read, so two candidates never both win (the loser gets 409 Conflict).
Lease fields: holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
leaseTransitions (incremented whenever the holder changes).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bootstrap.api.client import Client
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr

log = logging.getLogger(__name__)

LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
JITTER = 1.2


def micro_now() -> str:
    """metav1.MicroTime as serialized: RFC 3339 with microseconds, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaign for one Lease. ``on_started_leading`` (plain or async) runs as a task
    while this candidate leads and is cancelled the moment leadership is lost, like
    the context client-go hands to OnStartedLeading; ``on_stopped_leading`` runs after
    leading ends; ``on_new_leader(identity)`` whenever another holder is observed."""

    def __init__(self, client: Client, namespace: str, name: str, identity: str,
                 lease_duration: float = 15, renew_deadline: float = 10,
                 retry_period: float = 2, *,
                 on_started_leading: Callable[[], Any] | None = None,
                 on_stopped_leading: Callable[[], Any] | None = None,
                 on_new_leader: Callable[[str], Any] | None = None,
                 release_on_cancel: bool = True):
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER * retry_period:
            raise ValueError("renew_deadline must be greater than retry_period*1.2")
        if not identity:
            raise ValueError("identity must not be empty")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self._observed: dict | None = None  # last Lease object read or written
        self._observed_spec: dict | None = None
        self._observed_at = 0.0  # time.monotonic() when the spec last changed
        self._leader = ""
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """Identity of the current holder as last observed ("" when unknown)."""
        return self._leader

    @property
    def observed_at(self) -> float:
        """time.monotonic() when the Lease record last changed as seen here; while
        leading, that is the last successful renewal (the /healthz watchdog reads it)."""
        return self._observed_at

    # the algorithm ---------------------------------------------------------------

    def _spec(self, now: str, old: dict | None) -> dict:
        spec = {"holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        if old is not None:
            if old.get("holderIdentity") == self.identity:
                spec["acquireTime"] = old.get("acquireTime") or now
                spec["leaseTransitions"] = old.get("leaseTransitions") or 0
            else:
                spec["leaseTransitions"] = (old.get("leaseTransitions") or 0) + 1
        return spec

    def _observe(self, lease: dict) -> None:
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = time.monotonic()
        self._observed = lease
        holder = spec.get("holderIdentity") or ""
        if holder != self._leader:
            self._leader = holder
            if holder and self.on_new_leader is not None:
                _fire(self.on_new_leader, holder)

    async def try_acquire_or_renew(self) -> bool:
        now = micro_now()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except APIError as exc:
            if exc.code != 404:
                log.warning("leader %s/%s: reading lease: %s", self.namespace, self.name, exc)
                return False
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, None)}
            try:
                created = await self.client.create(LEASES, body, self.namespace)
            except APIError as exc2:
                log.info("leader %s/%s: create lost: %s", self.namespace, self.name, exc2)
                return False
            self._observe(created)
            return True
        self._observe(lease)
        old = lease.get("spec") or {}
        holder = old.get("holderIdentity") or ""
        if holder and holder != self.identity and \
                time.monotonic() < self._observed_at + self._duration(old):
            return False  # held by someone else whose record is still fresh to us
        updated = dict(lease)
        updated["spec"] = self._spec(now, old)
        try:
            result = await self.client.update(LEASES, updated, self.namespace)
        except APIError as exc:
            log.info("leader %s/%s: update lost: %s", self.namespace, self.name, exc)
            return False
        self._observe(result)
        return True

    def _duration(self, spec: dict) -> float:
        return float(spec.get("leaseDurationSeconds") or self.lease_duration)

    async def _acquire(self) -> None:
        while True:
            if await self._attempt(self.renew_deadline):
                log.info("leader %s/%s: %s acquired the lease", self.namespace, self.name,
                         self.identity)
                return
            await asyncio.sleep(self.retry_period * (1 + random.random() * (JITTER - 1)))

    async def _attempt(self, timeout: float) -> bool:
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
            # cancel that arrives as the attempt completes, and run() never ends.
            async with asyncio.timeout(timeout):
                return await self.try_acquire_or_renew()
        except Exception as exc:  # timeouts, connection errors: retry until the deadline
            log.info("leader %s/%s: attempt failed: %s", self.namespace, self.name,
                     exc or type(exc).__name__)
            return False

    async def _renew(self) -> None:
        """Return when leadership is lost (no successful renewal within renew_deadline)."""
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = time.monotonic() + self.renew_deadline
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("leader %s/%s: %s failed to renew within %ss; stepping down",
                                self.namespace, self.name, self.identity, self.renew_deadline)
                    return
                if await self._attempt(remaining):
                    break
                await asyncio.sleep(min(self.retry_period, max(deadline - time.monotonic(), 0)))

    async def release(self) -> bool:
        """Give the lease up so another candidate can take it without waiting it out."""
        if not self._leading or self._observed is None:
            return True
        now = micro_now()
        lease = dict(self._observed)
        old = lease.get("spec") or {}
        lease["spec"] = {"holderIdentity": "", "leaseDurationSeconds": 1,
                         "acquireTime": now, "renewTime": now,
                         "leaseTransitions": old.get("leaseTransitions") or 0}
        try:
            self._observe(await self.client.update(LEASES, lease, self.namespace))
            return True
        except Exception as exc:  # best effort: the lease expires on its own anyway
            log.info("leader %s/%s: release failed: %s", self.namespace, self.name, exc)
            return False

    async def run(self) -> None:
        """Campaign, lead, and return once leadership is lost. Cancel to stop; with
        ``release_on_cancel`` the lease is handed back on the way out."""
        lead_task: asyncio.Task | None = None
        cancelled = False
        try:
            await self._acquire()
            self._leading = True
            if self.on_started_leading is not None:
                lead_task = asyncio.create_task(_call(self.on_started_leading),
                                                name=f"leading-{self.name}")
            await self._renew()
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if lead_task is not None and not lead_task.done():
                lead_task.cancel()
                try:
                    await lead_task
                except BaseException:  # noqa: BLE001 - the lead task's end is not ours
                    pass
            was_leading = self._leading
            # Only a deliberate stop hands the lease back: after a failed renewal
            # someone else may already hold it.
            if was_leading and cancelled and self.release_on_cancel:
                await asyncio.shield(self.release())
            self._leading = False
            if was_leading and self.on_stopped_leading is not None:
                _fire(self.on_stopped_leading)


async def _call(fn: Callable, *args) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


def _fire(fn: Callable, *args) -> None:
    """Callbacks must not block the election loop: coroutines run as tasks."""
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            asyncio.ensure_future(result)
    except Exception:
        log.exception("leader election callback failed")
