"""Job controller (upstream's pkg/controller/job): runs pods until ``completions``
succeed (NonIndexed or Indexed), at most ``parallelism`` at once, failing the Job
past ``backoffLimit``, ``activeDeadlineSeconds`` or a FailJob podFailurePolicy rule.

Pods are tracked with the ``batch.kubernetes.io/job-tracking`` finalizer as
upstream: a finished pod is first recorded in ``status.uncountedTerminatedPods``,
then its finalizer is removed, then it moves to the succeeded/failed counters, so
a pod deleted (pod GC, a user) right after finishing is still counted once.
Terminal conditions come in two steps as in 1.32: SuccessCriteriaMet or
FailureTarget first, Complete or Failed once no pod of the Job is left running.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bootstrap.agents.controllers import job_util as ju
from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.api.cache import split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.meta import parse_time
from bootstrap.api.selectors import label_selector_from_dict

JOBS = ("batch", "v1", "jobs")
API_VERSION, KIND = "batch/v1", "Job"
COMPLETIONS_REACHED = "CompletionsReached"
COMPLETIONS_MESSAGE = "Reached expected number of succeeded pods"
BACKOFF_LIMIT = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
POD_FAILURE_POLICY = "PodFailurePolicy"
_REMOVE_FINALIZER = {"metadata": {"$deleteFromPrimitiveList/finalizers":
                                  [ju.JOB_TRACKING_FINALIZER]}}


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(job: dict, type_: str) -> dict | None:
    return pc.condition(job, type_)


def is_finished(job: dict) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def _set_condition(status: dict, type_: str, cstatus: str, reason: str, message: str,
                   now: float) -> bool:
    conds = status.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") == cstatus and c.get("reason") == reason:
                return False
            c.update(status=cstatus, reason=reason, message=message,
                     lastProbeTime=_stamp(now), lastTransitionTime=_stamp(now))
            return True
    if cstatus != "True" and type_ == "Suspended":
        return False  # going from nothing to False means nothing
    conds.append({"type": type_, "status": cstatus, "reason": reason, "message": message,
                  "lastProbeTime": _stamp(now), "lastTransitionTime": _stamp(now)})
    return True


def has_finalizer(pod: dict) -> bool:
    return ju.JOB_TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


@dataclass
class _Backoff:
    failures: int = 0
    last_failure: float = 0.0


class JobController(Controller):
    name = "job"
    workers = 5  # --concurrent-job-syncs
    from_options = pc.workers_from("concurrent_job_syncs")

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.expectations = pc.Expectations(clock)
        self.backoff: dict[str, _Backoff] = {}
        # uncounted uids whose finalizer removal we sent but the cache may not show
        # yet (upstream's finalizerExpectations): never counted twice.
        self.freeing: dict[str, set[str]] = {}
        self.written = pc.LastWritten()
        self.jobs = factory.informer(JOBS)
        self.pods = factory.informer(pc.PODS)
        self.pods.add_indexers(pc.owner_indexers())
        self.jobs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                              on_delete=self._job_deleted)
        children = pc.ChildEvents(KIND, self.jobs, self.enqueue, self.expectations)
        self.pods.add_handler(children.on_add, children.on_update, children.on_delete)

    def _job_deleted(self, job: dict) -> None:
        key = pc.pod_key(job)
        self.expectations.delete(key)
        self.backoff.pop(key, None)
        self.freeing.pop(key, None)
        self.written.forget(key)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.written.fresh(key, self.jobs.get(name, namespace))
        if cached is None:
            self.expectations.delete(key)
            self.backoff.pop(key, None)
            return None
        job = copy.deepcopy(cached)
        selector = label_selector_from_dict((job.get("spec") or {}).get("selector"))
        pods = await pc.claim(self.client, pc.PODS, job, API_VERSION, KIND, selector,
                              pc.candidates(self.pods.indexer, job),
                              pc.fresh_owner_check(self.client, JOBS, job))
        if is_finished(job):
            self.backoff.pop(key, None)
            await self._remove_finalizers([p for p in pods if has_finalizer(p)])
            return None
        now = self.clock()
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        satisfied = self.expectations.satisfied(key)
        active = [p for p in pods if pc.is_active(p)]
        freeing = self.freeing.setdefault(key, set())
        freeing &= {p["metadata"]["uid"] for p in pods if has_finalizer(p)}
        known = set(uncounted.get("succeeded") or []) | set(uncounted.get("failed") or []) | \
            freeing
        new_succeeded = [p for p in pods if has_finalizer(p) and pc.pod_phase(p) == "Succeeded"
                         and p["metadata"]["uid"] not in known]
        # A pod being deleted before it succeeded counts as failed at once
        # (podReplacementPolicy TerminatingOrFailed, the default).
        new_failed = [p for p in pods if has_finalizer(p) and ju.is_failed(p)
                      and p["metadata"]["uid"] not in known]
        policy = spec.get("podFailurePolicy")
        counted_failed = [p for p in new_failed
                          if ju.match_failure_policy(policy, p)[0] != "Ignore"]
        self._record_backoff(key, new_succeeded, counted_failed, now)
        indexed = spec.get("completionMode") == "Indexed"
        succeeded_indexes = self._succeeded_indexes(job, pods) if indexed else set()
        succeeded = len(succeeded_indexes) if indexed else \
            int(status.get("succeeded") or 0) + len(new_succeeded) + \
            len(uncounted.get("succeeded") or [])
        failed = int(status.get("failed") or 0) + len(counted_failed) + \
            len(uncounted.get("failed") or [])
        suspended = bool(spec.get("suspend"))
        if not status.get("startTime") and not suspended:
            status["startTime"] = _stamp(now)

        finished: tuple[str, str, str] | None = None   # (interim type, reason, message)
        requeue: float | None = None
        met = condition(job, "SuccessCriteriaMet")
        target = condition(job, "FailureTarget")
        if met is not None and met.get("status") == "True":
            finished = ("SuccessCriteriaMet", met.get("reason", COMPLETIONS_REACHED),
                        met.get("message", COMPLETIONS_MESSAGE))
        elif target is not None and target.get("status") == "True":
            finished = ("FailureTarget", target.get("reason", ""), target.get("message", ""))
        else:
            for p in new_failed:
                action, message = ju.match_failure_policy(policy, p)
                if action == "FailJob":
                    finished = ("FailureTarget", POD_FAILURE_POLICY, message)
                    break
        if finished is None:
            deadline = spec.get("activeDeadlineSeconds")
            if failed > int(spec.get("backoffLimit", 6)):
                finished = ("FailureTarget", *BACKOFF_LIMIT)
            elif deadline is not None and not suspended and status.get("startTime"):
                left = parse_time(status["startTime"]).timestamp() + int(deadline) - now
                if left <= 0:
                    finished = ("FailureTarget", *DEADLINE)
                else:
                    requeue = left

        owner = pc.kinded(job, API_VERSION, KIND)
        err: Exception | None = None
        if finished is not None and finished[0] == "FailureTarget":
            # deleteActivePods keeps the finalizers: the pods count as failed when
            # they stop. Expectations keep a lagging cache from deleting twice.
            if satisfied and active:
                err = await pc.delete_pods(self.client, self.recorder, owner,
                                           self.expectations, key, active)
            active = []
        else:
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                active, err, wait = await self._manage(job, key, active, succeeded,
                                                       succeeded_indexes, now)
                if wait is not None:
                    requeue = wait if requeue is None else min(requeue, wait)
            completions = spec.get("completions")
            done = succeeded > 0 and not active if completions is None else \
                succeeded >= int(completions) and not active
            if done and finished is None:
                finished = ("SuccessCriteriaMet", COMPLETIONS_REACHED, COMPLETIONS_MESSAGE)
            elif satisfied:
                if suspended:
                    if _set_condition(status, "Suspended", "True", "JobSuspended",
                                      "Job suspended", now):
                        pc.event(self.recorder, owner, "Normal", "Suspended", "Job suspended")
                elif _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed",
                                    now):
                    pc.event(self.recorder, owner, "Normal", "Resumed", "Job resumed")
                    status["startTime"] = _stamp(now)

        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if pc.is_ready(p))
        status["terminating"] = sum(1 for p in pods if p["metadata"].get("deletionTimestamp")
                                    and not pc.is_terminal(p))
        # Failures a podFailurePolicy Ignore rule matched are never counted.
        counted = {p["metadata"]["uid"] for p in counted_failed}
        await self._remove_finalizers([p for p in new_failed
                                       if p["metadata"]["uid"] not in counted])
        await self._track(job, status, pods, new_succeeded, counted_failed, finished, indexed,
                          succeeded_indexes, now, owner, freeing)
        if err is not None:
            raise err
        return requeue

    # ------------------------------------------------------------ pods

    def _succeeded_indexes(self, job: dict, pods: list[dict]) -> set[int]:
        completions = int((job.get("spec") or {}).get("completions") or 0)
        done = {i for i in ju.parse_indexes((job.get("status") or {}).get("completedIndexes"))
                if i < completions}
        for p in pods:
            i = ju.pod_index(p)
            if i is not None and i < completions and pc.pod_phase(p) == "Succeeded":
                done.add(i)
        return done

    def _record_backoff(self, key: str, succeeded: list[dict], failed: list[dict],
                        now: float) -> None:
        rec = self.backoff.setdefault(key, _Backoff())
        if succeeded:
            rec.failures = 0
        if failed:
            rec.failures += len(failed)
            rec.last_failure = max((ju.finish_time(p) or now) for p in failed)

    async def _manage(self, job: dict, key: str, active: list[dict], succeeded: int,
                      succeeded_indexes: set[int], now: float):
        """manageJob: (active pods after this step, error, seconds to wait for backoff)."""
        spec = job["spec"]
        owner = pc.kinded(job, API_VERSION, KIND)
        if spec.get("suspend"):
            return [], await self._delete_uncounted(owner, key, active), None
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        if completions is None:
            want = len(active) if succeeded > 0 else parallelism
        else:
            want = max(0, min(int(completions) - succeeded, parallelism))
        if len(active) > want:
            extra = pc.deletion_order(active)[:len(active) - want]
            err = await self._delete_uncounted(owner, key, extra)
            gone = {p["metadata"]["uid"] for p in extra}
            return [p for p in active if p["metadata"]["uid"] not in gone], err, None
        if len(active) == want:
            return active, None, None
        rec = self.backoff.get(key)
        if rec is not None and rec.failures:
            left = rec.last_failure + ju.backoff_delay(rec.failures) - now
            if left > 0:
                return active, None, left
        template = spec.get("template") or {}
        count = want - len(active)
        if spec.get("completionMode") == "Indexed":
            busy = {ju.pod_index(p) for p in active}
            free = [i for i in range(int(completions or 0))
                    if i not in succeeded_indexes and i not in busy][:count]
            it = iter(free)
            count = len(free)

            def make() -> dict:
                return self._indexed_pod(job, template, next(it))
        else:
            def make() -> dict:
                return pc.pod_from_template(template, job, API_VERSION, KIND,
                                            finalizers=[ju.JOB_TRACKING_FINALIZER])
        if count <= 0:
            return active, None, None
        err = await pc.create_pods(self.client, self.recorder, owner, self.expectations, key,
                                   make, count)
        return active, err, None

    async def _delete_uncounted(self, owner: dict, key: str, pods: list[dict]
                                ) -> Exception | None:
        """deleteJobPods: pods the Job no longer wants are neither failures nor
        successes, so their finalizer goes first."""
        await self._remove_finalizers([p for p in pods if has_finalizer(p)])
        return await pc.delete_pods(self.client, self.recorder, owner, self.expectations, key,
                                    pods)

    def _indexed_pod(self, job: dict, template: dict, index: int) -> dict:
        name = job["metadata"]["name"]
        pod = pc.pod_from_template(template, job, API_VERSION, KIND,
                                   generate_name=f"{name}-{index}-",
                                   extra_labels={ju.COMPLETION_INDEX: str(index)},
                                   finalizers=[ju.JOB_TRACKING_FINALIZER])
        pod["metadata"].setdefault("annotations", {})[ju.COMPLETION_INDEX] = str(index)
        pod["spec"].setdefault("hostname", f"{name}-{index}")
        env = {"name": ju.COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{ju.COMPLETION_INDEX}']"}}}
        for c in pod["spec"].get("containers") or []:
            if not any(e.get("name") == ju.COMPLETION_INDEX_ENV for e in c.get("env") or []):
                c.setdefault("env", []).append(env)
        return pod

    async def _remove_finalizers(self, pods: list[dict]) -> set[str]:
        """Patch the tracking finalizer away; returns the uids now free of it."""
        freed: set[str] = set()
        for p in pods:
            meta = p["metadata"]
            try:
                await self.client.patch(pc.PODS, meta["name"], _REMOVE_FINALIZER,
                                        meta["namespace"], patch_type="strategic")
            except APIError as exc:
                if exc.code != 404:
                    raise
            freed.add(meta["uid"])
        return freed

    # ------------------------------------------------------------ status

    async def _track(self, job: dict, status: dict, pods: list[dict], new_succeeded,
                     new_failed, finished, indexed: bool, succeeded_indexes: set[int],
                     now: float, owner: dict, freeing: set[str]) -> None:
        """trackJobStatusAndRemoveFinalizers: record, free, count, then finish."""
        uncounted = status["uncountedTerminatedPods"]
        if new_succeeded or new_failed:
            for key, items in (("succeeded", new_succeeded), ("failed", new_failed)):
                if items:
                    uncounted[key] = list(uncounted.get(key) or []) + \
                        [p["metadata"]["uid"] for p in items]
            job = await self._write(job, status)
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        pending = set(uncounted.get("succeeded") or []) | set(uncounted.get("failed") or [])
        freed = await self._remove_finalizers(
            [by_uid[u] for u in pending if u in by_uid and has_finalizer(by_uid[u])])
        freeing |= freed
        freed |= {u for u in pending if u not in by_uid or not has_finalizer(by_uid[u])}
        for key in ("succeeded", "failed"):
            moved = [u for u in uncounted.get(key) or [] if u in freed]
            if not moved:
                continue
            if not (indexed and key == "succeeded"):
                status[key] = int(status.get(key) or 0) + len(moved)
            uncounted[key] = [u for u in uncounted.get(key) or [] if u not in freed]
        if indexed:
            status["completedIndexes"] = ju.format_indexes(succeeded_indexes)
            status["succeeded"] = len(succeeded_indexes)
        if finished is not None:
            type_, reason, message = finished
            _set_condition(status, type_, "True", reason, message, now)
            still_running = any(has_finalizer(p) and pc.is_active(p) for p in pods)
            counting = uncounted.get("succeeded") or uncounted.get("failed")
            if not still_running and not counting and status.get("active", 0) == 0:
                self._finish(status, type_, reason, message, now, owner)
        for key in ("succeeded", "failed", "active"):   # omitempty upstream
            if not status.get(key):
                status.pop(key, None)
        if status != (job.get("status") or {}):
            await self._write(job, status)

    def _finish(self, status: dict, interim: str, reason: str, message: str, now: float,
                owner: dict) -> None:
        if interim == "SuccessCriteriaMet":
            _set_condition(status, "Complete", "True", reason, message, now)
            status["completionTime"] = _stamp(now)
            pc.event(self.recorder, owner, "Normal", "Completed", "Job completed")
        else:
            _set_condition(status, "Failed", "True", reason, message, now)
            pc.event(self.recorder, owner, "Warning", reason, message)

    async def _write(self, job: dict, status: dict) -> dict:
        obj = copy.deepcopy(job)
        obj["status"] = copy.deepcopy(status)
        return self.written.remember(await self.client.update(
            JOBS, obj, obj["metadata"]["namespace"], subresource="status"))
