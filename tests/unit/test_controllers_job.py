"""Job controller on the FakeClient with an injected clock: objects in, requests out."""

import copy

import pytest
from ctlharness import Clock, running, set_pod_status, template, until

from bootstrap.agents.controllers import job_util as ju
from bootstrap.agents.controllers.job import JobController
from bootstrap.api.defaults import apply_defaults, generate_job_selector

pytestmark = pytest.mark.timeout(60)
JOBS = ("batch", "v1", "jobs")


def job(name="pi", **spec):
    tmpl = template({})
    tmpl["spec"]["restartPolicy"] = "Never"
    obj = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
           "spec": {"template": tmpl, **spec}}
    obj = apply_defaults(obj, ("batch", "v1", "Job"))
    generate_job_selector(obj)
    return obj


def the_job(client):
    return client.objects("jobs")[0]


def cond(client, type_):
    for c in (the_job(client).get("status") or {}).get("conditions") or []:
        if c["type"] == type_ and c["status"] == "True":
            return c
    return None


def live(client):
    return [p for p in client.objects("pods") if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


async def test_completions_with_parallelism_and_finalizers():
    clock = Clock()
    async with running(JobController, job(completions=3, parallelism=2), clock=clock) as (
            client, ctl, rec):
        await until(lambda: len(live(client)) == 2)
        pod = live(client)[0]
        assert ju.JOB_TRACKING_FINALIZER in pod["metadata"]["finalizers"]
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
        assert the_job(client)["status"]["startTime"]
        for _ in range(3):
            await until(lambda: live(client))
            await set_pod_status(client, live(client)[0], phase="Succeeded", ready=False,
                                 exit_code=None)
        await until(lambda: cond(client, "Complete"))
        st = the_job(client)["status"]
        assert st["succeeded"] == 3 and "active" not in st and "failed" not in st
        assert st["uncountedTerminatedPods"] == {"succeeded": [], "failed": []} or \
            not any(st["uncountedTerminatedPods"].values())
        assert cond(client, "SuccessCriteriaMet")["reason"] == "CompletionsReached"
        assert st["completionTime"]
        await until(lambda: all(not p["metadata"].get("finalizers")
                                for p in client.objects("pods")))
        assert ("Job/pi", "Normal", "Completed", "Job completed") in rec.events
        assert len(client.requests_for("create", "pods")) == 3


async def test_backoff_limit_fails_the_job():
    async with running(JobController, job(backoffLimit=0), clock=Clock()) as (
            client, ctl, rec):
        await until(lambda: len(live(client)) == 1)
        await set_pod_status(client, live(client)[0], phase="Failed", ready=False, exit_code=1)
        await until(lambda: cond(client, "Failed"))
        c = cond(client, "Failed")
        assert c["reason"] == "BackoffLimitExceeded"
        assert c["message"] == "Job has reached the specified backoff limit"
        assert cond(client, "FailureTarget")
        assert the_job(client)["status"]["failed"] == 1
        assert ("Job/pi", "Warning", "BackoffLimitExceeded",
                "Job has reached the specified backoff limit") in rec.events
        assert "completionTime" not in the_job(client)["status"]


async def test_failed_pod_is_replaced_after_backoff():
    clock = Clock()
    async with running(JobController, job(backoffLimit=3), clock=clock) as (client, ctl, rec):
        await until(lambda: len(live(client)) == 1)
        await set_pod_status(client, live(client)[0], phase="Failed", ready=False,
                             exit_code=1, at=clock.now)
        await until(lambda: (the_job(client).get("status") or {}).get("failed") == 1)
        assert live(client) == []
        clock.advance(11)     # past the first 10 s backoff
        ctl.enqueue("default/pi")
        await until(lambda: len(live(client)) == 1)
        assert not cond(client, "Failed")


async def test_active_deadline_exceeded_deletes_pods():
    clock = Clock()
    async with running(JobController, job(activeDeadlineSeconds=30, parallelism=2,
                                          completions=4), clock=clock) as (client, ctl, rec):
        await until(lambda: len(live(client)) == 2)
        clock.advance(31)
        ctl.enqueue("default/pi")
        await until(lambda: cond(client, "Failed"))
        assert cond(client, "Failed")["reason"] == "DeadlineExceeded"
        assert not live(client)
        assert rec.reasons().count("SuccessfulDelete") == 2


async def test_indexed_job_pods_and_completed_indexes():
    async with running(JobController, job(completions=3, parallelism=3,
                                          completionMode="Indexed"), clock=Clock()) as (
            client, ctl, rec):
        await until(lambda: len(live(client)) == 3)
        by_index = {int(p["metadata"]["annotations"][ju.COMPLETION_INDEX]): p
                    for p in live(client)}
        assert sorted(by_index) == [0, 1, 2]
        p1 = by_index[1]
        assert p1["metadata"]["labels"][ju.COMPLETION_INDEX] == "1"
        assert p1["spec"]["hostname"] == "pi-1"
        assert p1["metadata"]["name"].startswith("pi-1-")
        env = p1["spec"]["containers"][0]["env"][0]
        assert env["name"] == "JOB_COMPLETION_INDEX"
        await set_pod_status(client, p1, phase="Succeeded", ready=False)
        await until(lambda: the_job(client)["status"].get("completedIndexes") == "1")
        for i in (0, 2):
            await set_pod_status(client, by_index[i], phase="Succeeded", ready=False)
        await until(lambda: cond(client, "Complete"))
        assert the_job(client)["status"]["completedIndexes"] == "0-2"
        assert the_job(client)["status"]["succeeded"] == 3


async def test_pod_failure_policy_fail_job_and_ignore():
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [137]}},
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    async with running(JobController, job(backoffLimit=5, podFailurePolicy=policy),
                       clock=Clock()) as (client, ctl, rec):
        await until(lambda: len(live(client)) == 1)
        first = live(client)[0]
        await set_pod_status(client, first, phase="Failed", ready=False, exit_code=137)
        # ignored: replaced at once, not counted, no backoff
        await until(lambda: len(live(client)) == 1 and
                    live(client)[0]["metadata"]["name"] != first["metadata"]["name"])
        assert not (the_job(client).get("status") or {}).get("failed")
        await set_pod_status(client, live(client)[0], phase="Failed", ready=False, exit_code=42)
        await until(lambda: cond(client, "Failed"))
        c = cond(client, "Failed")
        assert c["reason"] == "PodFailurePolicy"
        assert "failed with exit code 42 matching FailJob rule at index 1" in c["message"]


async def test_suspend_deletes_active_pods():
    async with running(JobController, job(parallelism=2, completions=2), clock=Clock()) as (
            client, ctl, rec):
        await until(lambda: len(live(client)) == 2)
        j = copy.deepcopy(the_job(client))
        j["spec"]["suspend"] = True
        await client.update(JOBS, j)
        await until(lambda: cond(client, "Suspended"))
        await until(lambda: not live(client))
        assert "Suspended" in rec.reasons()


def test_index_intervals_round_trip():
    assert ju.parse_indexes("1,3-5,9") == {1, 3, 4, 5, 9}
    assert ju.format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert ju.format_indexes(set()) == ""
    assert ju.backoff_delay(1) == 10 and ju.backoff_delay(3) == 40
    assert ju.backoff_delay(20) == 600


async def test_work_queue_job_completes_after_first_success_and_the_rest_finish():
    async with running(JobController, job(parallelism=2), clock=Clock()) as (client, ctl, rec):
        await until(lambda: len(live(client)) == 2)
        a, b = live(client)
        await set_pod_status(client, a, phase="Succeeded", ready=False)
        for _ in range(3):
            await ctl.process("default/pi")
        assert len(live(client)) == 1 and not cond(client, "Complete")   # b still runs
        await set_pod_status(client, b, phase="Succeeded", ready=False)
        await until(lambda: cond(client, "Complete"))
        assert the_job(client)["status"]["succeeded"] == 2
        assert len(client.requests_for("create", "pods")) == 2
