"""ResourceQuota admission (upstream's apiserver/pkg/admission/plugin/resourcequota):
a create or update in a namespace with quotas is measured by the resource's quota
evaluator (bootstrap.api.quota) and refused when it would take a quota's
``status.used`` past ``status.hard``, with upstream's messages:

* ``exceeded quota: NAME, requested: X, used: Y, limited: Z``
* ``failed quota: NAME: must specify limits.cpu for: c`` (cpu/memory quotas need every
  container to state them)
* ``status unknown for quota: NAME, resources: R`` (the controller has not counted yet)

An admitted request charges the quotas it uses before the object is written: the
quota's status is written back with its resourceVersion as a precondition and the
check re-run on fresh quotas after a conflict (up to three times, as upstream). The
controller manager's resourcequota controller recounts from the objects, so a
charge for a write that then failed is given back at its next pass. Dry-run
requests are checked but charge nothing. Requests in one namespace are checked
one at a time per server process, as upstream's per-namespace work queue.
"""

from __future__ import annotations

import asyncio
import copy
import weakref

from bootstrap.api import errors, quota

from .livelookup import LiveLookup

RETRIES = 3


class QuotaAdmission:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()
        self._lookup = LiveLookup("resourcequotas")

    def _lock(self, namespace: str) -> asyncio.Lock:
        lock = self._locks.get(namespace)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[namespace] = lock
        return lock

    async def validate(self, a) -> None:
        if a.subresource or not a.namespace or a.op not in ("CREATE", "UPDATE") or \
                not a.resource.stored or a.resource.custom is not None:
            return
        ev = quota.evaluator(a.resource.group, a.resource.plural)
        if not ev.handles(a.op):
            return
        lock = self._lock(a.namespace)
        async with lock:
            quotas = await self._lookup.list(a.store, a.namespace)
            done: set[str] = set()
            for attempt in range(RETRIES + 1):
                pending = [rq for rq in quotas if rq["metadata"]["name"] not in done]
                charged = check_request(pending, a, ev)
                if a.dry_run:
                    return
                failed = []
                for before, after in zip(pending, charged, strict=True):
                    if after is before:
                        continue
                    if await a.store.write_if_unchanged("resourcequotas", after) is None:
                        failed.append(before["metadata"]["name"])
                    else:
                        done.add(before["metadata"]["name"])
                if not failed:
                    return
                if attempt == RETRIES:
                    raise errors.APIError(
                        409, "Conflict", f"Operation cannot be fulfilled on resourcequotas "
                        f'"{failed[0]}": the object has been modified; please apply your '
                        f"changes to the latest version and try again")
                fresh = await a.store.list_fresh("resourcequotas", a.namespace)
                quotas = [rq for rq in fresh if rq["metadata"]["name"] in failed]


def _forbidden(a, message: str) -> errors.APIError:
    return errors.forbidden_message(a.resource.plural, a.name, message, a.resource.group)


def check_request(quotas: list[dict], a, ev: quota.Evaluator) -> list[dict]:
    """CheckRequest: the quotas as they are after charging the request (the same dict
    where nothing changes), or the Forbidden error it gets."""
    obj = a.obj or {}
    interesting = []
    for i, rq in enumerate(quotas):
        if not ev.matches(rq, obj):
            continue
        hard = (rq.get("status") or {}).get("hard") or {}
        restricted = ev.matching_resources(hard)
        problem = ev.constraints(restricted, obj)
        if problem:
            raise _forbidden(a, f"failed quota: {rq['metadata']['name']}: {problem}")
        used = (rq.get("status") or {}).get("used") or {}
        if any(name not in used for name in restricted):
            raise _forbidden(a, f"status unknown for quota: {rq['metadata']['name']}, "
                                f"resources: {','.join(sorted(restricted))}")
        interesting.append(i)
    if not interesting:
        return quotas
    usage = ev.usage(obj)
    negative = sorted(k for k, v in usage.items() if v.value < 0)
    if negative:
        raise _forbidden(a, f"quota usage is negative for resource(s): {','.join(negative)}")
    deltas = {i: usage for i in interesting}
    if a.op == "UPDATE" and a.old is not None and \
            (a.old.get("metadata") or {}).get("resourceVersion"):
        delta = quota.subtract_non_negative(usage, ev.usage(a.old))
        for i in interesting:
            if ev.matches(quotas[i], a.old):
                deltas[i] = delta
    out = list(quotas)
    for i in interesting:
        delta = quota.remove_zeros(deltas[i])
        if not delta:
            continue
        rq = quotas[i]
        status = rq.get("status") or {}
        hard = quota.parse_list(status.get("hard"))
        used = quota.parse_list(status.get("used"))
        requested = quota.mask(delta, hard)
        new_used = quota.add(used, requested)
        allowed, exceeded = quota.less_or_equal(quota.mask(new_used, requested), hard)
        if not allowed:
            raise _forbidden(a, f"exceeded quota: {rq['metadata']['name']}, requested: "
                                f"{quota.pretty(quota.mask(requested, exceeded))}, used: "
                                f"{quota.pretty(quota.mask(used, exceeded))}, limited: "
                                f"{quota.pretty(quota.mask(hard, exceeded))}")
        charged = copy.deepcopy(rq)
        charged.setdefault("status", {})["used"] = {
            **(status.get("used") or {}), **{k: str(new_used[k]) for k in requested}}
        out[i] = charged
    return out
