"""CronJob controller (upstream's pkg/controller/cronjob, the v2 controller): a Job
per schedule time, named ``<cronjob>-<minutes since the epoch>``, with
concurrencyPolicy, startingDeadlineSeconds, suspend, history limits and timeZone.
Schedules are evaluated by croniter (``@hourly`` and friends included) in the
CronJob's ``timeZone`` through zoneinfo, or in the controller's local zone."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.api.cache import OWNER_UID, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.meta import parse_time

CRONJOBS = ("batch", "v1", "cronjobs")
JOBS = ("batch", "v1", "jobs")
API_VERSION, KIND = "batch/v1", "CronJob"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100
# nextScheduleTimeDuration adds a little so the requeue lands after the minute.
REQUEUE_SLACK = 0.1


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zone(name: str | None) -> tzinfo:
    """The CronJob's timeZone, or the controller's local zone as upstream."""
    if name:
        return ZoneInfo(name)
    return datetime.now().astimezone().tzinfo or UTC


def validate_schedule(expr: str) -> str | None:
    """An error text for a schedule croniter cannot parse, else None."""
    try:
        croniter(expr)
    except (CroniterError, ValueError, KeyError) as exc:
        return str(exc) or "invalid schedule"
    return None


def next_after(expr: str, after: datetime) -> datetime:
    return croniter(expr, after).get_next(datetime)


def most_recent(expr: str, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
    """(the latest schedule time in (earliest, now], how many were missed, capped
    just past TOO_MANY_MISSED), as upstream's mostRecentScheduleTime."""
    first = next_after(expr, earliest)
    if first > now:
        return None, 0
    latest = croniter(expr, now + timedelta(microseconds=1)).get_prev(datetime)
    missed = 1
    it = croniter(expr, first)
    while missed <= TOO_MANY_MISSED:
        nxt = it.get_next(datetime)
        if nxt > now:
            break
        missed += 1
    return max(latest, first), missed


def job_name(cronjob: dict, scheduled: datetime) -> str:
    """getJobName: the scheduled time in minutes since the epoch."""
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: dict, scheduled: datetime) -> dict:
    spec = cronjob.get("spec") or {}
    tmpl = copy.deepcopy(spec.get("jobTemplate") or {})
    tmeta = tmpl.get("metadata") or {}
    meta = cronjob["metadata"]
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = scheduled.isoformat(timespec="seconds").replace(
        "+00:00", "Z")
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": job_name(cronjob, scheduled), "namespace": meta.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
            "ownerReferences": [pc.owner_reference(cronjob, API_VERSION, KIND)],
        },
        "spec": tmpl.get("spec") or {},
    }


def _job_ref(job: dict) -> dict:
    meta = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
            "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion")}


def _finished_condition(job: dict) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


def _start(job: dict) -> float:
    stamp = (job.get("status") or {}).get("startTime") or \
        (job.get("metadata") or {}).get("creationTimestamp")
    return parse_time(stamp).timestamp() if stamp else 0.0


class CronJobController(Controller):
    name = "cronjob"
    workers = 5  # --concurrent-cron-job-syncs
    from_options = pc.workers_from("concurrent_cron_job_syncs")

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.written = pc.LastWritten()
        self.cronjobs = factory.informer(CRONJOBS)
        self.jobs = factory.informer(JOBS)
        self.jobs.add_indexers(pc.owner_indexers())
        self.cronjobs.add_handler(on_add=self.enqueue,
                                  on_update=lambda old, new: self.enqueue(new),
                                  on_delete=lambda cj: self.written.forget(pc.pod_key(cj)))
        children = pc.ChildEvents(KIND, self.cronjobs, self.enqueue,
                                  selector_of=lambda cj: _NOTHING)
        self.jobs.add_handler(children.on_add, children.on_update, children.on_delete)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.written.fresh(key, self.cronjobs.get(name, namespace))
        if cached is None:
            return None
        cj = copy.deepcopy(cached)
        status = copy.deepcopy(cj.get("status") or {})
        owner = pc.kinded(cj, API_VERSION, KIND)
        children = [j for j in self.jobs.indexer.by_index(OWNER_UID, cj["metadata"]["uid"])
                    if pc.owned_by(j, cj)]
        await self._sync_active(cj, status, children, owner)
        requeue = None
        if not cj["metadata"].get("deletionTimestamp"):
            requeue = await self._schedule(cj, status, owner)
            await self._cleanup(cj, children, owner)
        if status != (cj.get("status") or {}):
            obj = copy.deepcopy(cj)
            obj["status"] = status
            self.written.remember(await self.client.update(
                CRONJOBS, obj, namespace, subresource="status"))
        return requeue

    async def _sync_active(self, cj: dict, status: dict, children: list[dict],
                           owner: dict) -> None:
        active = list(status.get("active") or [])
        by_uid = {j["metadata"]["uid"]: j for j in children}
        for job in children:
            uid = job["metadata"]["uid"]
            found = any(ref.get("uid") == uid for ref in active)
            finished = _finished_condition(job)
            if found and finished:
                active = [ref for ref in active if ref.get("uid") != uid]
                pc.event(self.recorder, owner, "Normal", "SawCompletedJob",
                         f"Saw completed job: {job['metadata']['name']}, condition: {finished}")
            elif not found and not finished:
                active.append(_job_ref(job))
                pc.event(self.recorder, owner, "Warning", "UnexpectedJob",
                         "Saw a job that the controller did not create or forgot: "
                         f"{job['metadata']['name']}")
            if finished == "Complete":
                done = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (not last or parse_time(done) > parse_time(last)):
                    status["lastSuccessfulTime"] = done
        for ref in list(active):
            if ref.get("uid") in by_uid:
                continue
            try:
                fresh = await self.client.get(JOBS, ref["name"], ref.get("namespace"))
                if fresh["metadata"].get("uid") == ref.get("uid"):
                    continue
            except APIError as exc:
                if exc.code != 404:
                    raise
            active = [r for r in active if r.get("uid") != ref.get("uid")]
            pc.event(self.recorder, owner, "Normal", "MissingJob",
                     f"Active job went missing: {ref['name']}")
        if active:
            status["active"] = active
        else:
            status.pop("active", None)

    async def _schedule(self, cj: dict, status: dict, owner: dict) -> float | None:
        spec = cj.get("spec") or {}
        expr = spec.get("schedule") or ""
        try:
            tz = zone(spec.get("timeZone"))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            pc.event(self.recorder, owner, "Warning", "UnknownTimeZone",
                     f"invalid timeZone: {spec.get('timeZone')!r}: {exc}")
            return None
        problem = validate_schedule(expr)
        if problem:
            pc.event(self.recorder, owner, "Warning", "UnparseableSchedule",
                     f"unparseable schedule: {expr!r} : {problem}")
            return None
        now = datetime.fromtimestamp(self.clock(), tz)
        until_next = (next_after(expr, now) - now).total_seconds() + REQUEUE_SLACK
        if spec.get("suspend"):
            return None
        last = status.get("lastScheduleTime") or cj["metadata"].get("creationTimestamp")
        earliest = parse_time(last).astimezone(tz) if last else now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = most_recent(expr, earliest, now)
        if scheduled is None:
            return until_next
        if missed > TOO_MANY_MISSED:
            pc.event(self.recorder, owner, "Warning", "TooManyMissedTimes",
                     f"too many missed start times: {missed}. Set or decrease "
                     ".spec.startingDeadlineSeconds or check clock skew")
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            pc.event(self.recorder, owner, "Warning", "MissSchedule",
                     "Missed scheduled time to start a job: "
                     f"{scheduled.astimezone(UTC).strftime('%a, %d %b %Y %H:%M:%S +0000')}")
            return until_next
        name = job_name(cj, scheduled)
        active = status.get("active") or []
        if any(ref.get("name") == name for ref in active) or \
                status.get("lastScheduleTime") == _rfc3339(scheduled):
            return until_next
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            pc.event(self.recorder, owner, "Normal", "JobAlreadyActive",
                     "Not starting job because prior execution is running and concurrency "
                     "policy is Forbid")
            return until_next
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(ref["name"], ref.get("namespace"), owner)
            status.pop("active", None)
        job = job_from_template(cj, scheduled)
        try:
            created = await self.client.create(JOBS, job, job["metadata"]["namespace"])
        except APIError as exc:
            if exc.code != 409:
                pc.event(self.recorder, owner, "Warning", "FailedCreate",
                         f"Error creating job: {exc.message}")
                raise
            created = await self.client.get(JOBS, name, job["metadata"]["namespace"])
            if not pc.owned_by(created, cj):
                return until_next
        else:
            pc.event(self.recorder, owner, "Normal", "SuccessfulCreate",
                     f"Created job {created['metadata']['name']}")
        if not any(ref.get("uid") == created["metadata"]["uid"]
                   for ref in status.get("active") or []):
            status.setdefault("active", []).append(_job_ref(created))
        status["lastScheduleTime"] = _rfc3339(scheduled)
        return until_next

    async def _delete_job(self, name: str, namespace: str | None, owner: dict) -> None:
        try:
            await self.client.delete(JOBS, name, namespace, propagation_policy="Background")
        except APIError as exc:
            if exc.code != 404:
                raise
            return
        pc.event(self.recorder, owner, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _cleanup(self, cj: dict, children: list[dict], owner: dict) -> None:
        """Finished jobs beyond successful/failedJobsHistoryLimit, oldest first."""
        spec = cj.get("spec") or {}
        for cond, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                            ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = sorted((j for j in children if _finished_condition(j) == cond
                           and not j["metadata"].get("deletionTimestamp")), key=_start)
            for job in done[:max(0, len(done) - int(limit))]:
                await self._delete_job(job["metadata"]["name"], job["metadata"]["namespace"],
                                       owner)


class _Nothing:
    """CronJobs adopt no orphans (their Jobs are found by ControllerRef only)."""

    def matches(self, labels) -> bool:
        return False


_NOTHING = _Nothing()
