"""CronJob controller on the FakeClient with an injected clock."""

import copy
from datetime import UTC, datetime

import pytest
from ctlharness import Clock, running, stamp, template, until

from bootstrap.agents.controllers import cronjob as cjc
from bootstrap.agents.controllers.cronjob import CronJobController
from bootstrap.api.defaults import apply_defaults

pytestmark = pytest.mark.timeout(60)
CRONJOBS = ("batch", "v1", "cronjobs")
JOBS = ("batch", "v1", "jobs")
T0 = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()


def cronjob(name="hello", schedule="*/1 * * * *", created=T0 - 60, **spec):
    tmpl = template({})
    tmpl["spec"]["restartPolicy"] = "OnFailure"
    obj = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": name, "namespace": "default",
                        "creationTimestamp": stamp(created)},
           "spec": {"schedule": schedule, "jobTemplate": {
               "metadata": {"labels": {"team": "a"}}, "spec": {"template": tmpl}}, **spec}}
    return apply_defaults(obj, ("batch", "v1", "CronJob"))


def jobs(client):
    return sorted(client.objects("jobs"), key=lambda j: j["metadata"]["name"])


def cj_status(client):
    return client.objects("cronjobs")[0].get("status") or {}


async def finish(client, job, type_="Complete", at=T0):
    j = copy.deepcopy(job)
    j["status"] = {"startTime": stamp(at), "conditions": [
        {"type": type_, "status": "True", "lastTransitionTime": stamp(at)}]}
    if type_ == "Complete":
        j["status"]["completionTime"] = stamp(at)
    await client.update(JOBS, j, subresource="status")


async def test_creates_job_per_schedule_time_and_tracks_it():
    clock = Clock(T0)
    async with running(CronJobController, cronjob(), clock=clock) as (client, ctl, rec):
        await until(lambda: len(jobs(client)) == 1)
        job = jobs(client)[0]
        minute = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) // 60
        assert job["metadata"]["name"] == f"hello-{minute}"
        assert job["metadata"]["labels"] == {"team": "a"}
        assert job["metadata"]["annotations"][cjc.SCHEDULED_TIMESTAMP] == "2026-01-01T00:00:00Z"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
        await until(lambda: cj_status(client).get("lastScheduleTime") == "2026-01-01T00:00:00Z")
        assert cj_status(client)["active"][0]["name"] == job["metadata"]["name"]
        assert ("CronJob/hello", "Normal", "SuccessfulCreate",
                f"Created job hello-{minute}") in rec.events
        await finish(client, job, at=T0 + 5)
        await until(lambda: "active" not in cj_status(client))
        assert cj_status(client)["lastSuccessfulTime"] == stamp(T0 + 5)
        assert "SawCompletedJob" in rec.reasons()
        clock.advance(60)
        ctl.enqueue("default/hello")
        await until(lambda: len(jobs(client)) == 2)
        assert jobs(client)[1]["metadata"]["name"] == f"hello-{minute + 1}"


async def test_forbid_skips_while_active_and_replace_deletes():
    clock = Clock(T0)
    async with running(CronJobController, cronjob(concurrencyPolicy="Forbid"), clock=clock) as (
            client, ctl, rec):
        await until(lambda: len(jobs(client)) == 1)
        clock.advance(60)
        ctl.enqueue("default/hello")
        await until(lambda: "JobAlreadyActive" in rec.reasons())
        assert len(jobs(client)) == 1
    clock = Clock(T0)
    async with running(CronJobController, cronjob(concurrencyPolicy="Replace"), clock=clock) as (
            client, ctl, rec):
        await until(lambda: len(jobs(client)) == 1)
        first = jobs(client)[0]["metadata"]["name"]
        clock.advance(60)
        ctl.enqueue("default/hello")
        await until(lambda: first not in {j["metadata"]["name"] for j in jobs(client)}
                    and len(jobs(client)) == 1)
        assert ("CronJob/hello", "Normal", "SuccessfulDelete", f"Deleted job {first}") \
            in rec.events
        assert client.requests_for("delete", "jobs")[0].body["propagationPolicy"] == "Background"


async def test_suspend_and_starting_deadline():
    clock = Clock(T0)
    async with running(CronJobController, cronjob(suspend=True), clock=clock) as (
            client, ctl, rec):
        clock.advance(120)
        ctl.enqueue("default/hello")
        for _ in range(3):
            await ctl.process("default/hello")
        assert jobs(client) == []
    # the 00:00 run was 30 s ago: a 10 s starting deadline skips it, none catches up
    for deadline, want in ((10, 0), (None, 1)):
        extra = {} if deadline is None else {"startingDeadlineSeconds": deadline}
        clock = Clock(T0)
        async with running(CronJobController, cronjob(schedule="0 * * * *", created=T0 - 600,
                                                      **extra), clock=clock) as (
                client, ctl, rec):
            for _ in range(3):
                await ctl.process("default/hello")
            await until(lambda want=want: len(jobs(client)) == want)


async def test_hourly_in_time_zone_and_history_limits():
    # 09:00 in Berlin is 08:00 UTC in winter
    t = datetime(2026, 1, 1, 8, 0, 10, tzinfo=UTC).timestamp()
    clock = Clock(t)
    cj = cronjob(schedule="0 9 * * *", timeZone="Europe/Berlin", created=t - 3600,
                 successfulJobsHistoryLimit=1)
    async with running(CronJobController, cj, clock=clock) as (client, ctl, rec):
        await until(lambda: len(jobs(client)) == 1)
        assert jobs(client)[0]["metadata"]["annotations"][cjc.SCHEDULED_TIMESTAMP] == \
            "2026-01-01T09:00:00+01:00"
        await finish(client, jobs(client)[0], at=t)
        clock.advance(86400)
        ctl.enqueue("default/hello")
        await until(lambda: len(jobs(client)) == 2)
        await finish(client, jobs(client)[1], at=t + 86400)
        await until(lambda: len(jobs(client)) == 1)
        assert jobs(client)[0]["metadata"]["annotations"][cjc.SCHEDULED_TIMESTAMP].startswith(
            "2026-01-02T09:00:00")


def test_schedule_helpers():
    now = datetime(2026, 1, 1, 5, 30, tzinfo=UTC)
    when, missed = cjc.most_recent("@hourly", datetime(2026, 1, 1, tzinfo=UTC), now)
    assert when == datetime(2026, 1, 1, 5, 0, tzinfo=UTC) and missed == 5
    _, missed = cjc.most_recent("* * * * *", datetime(2025, 12, 1, tzinfo=UTC), now)
    assert missed > cjc.TOO_MANY_MISSED
    assert cjc.most_recent("@daily", now, now) == (None, 0)
    assert cjc.validate_schedule("@weekly") is None
    assert cjc.validate_schedule("61 * * * *")


async def test_bad_schedule_and_zone_are_reported():
    async with running(CronJobController, cronjob(schedule="not a schedule"),
                       clock=Clock(T0)) as (client, ctl, rec):
        await until(lambda: "UnparseableSchedule" in rec.reasons())
    async with running(CronJobController, cronjob(timeZone="Mars/Olympus"),
                       clock=Clock(T0)) as (client, ctl, rec):
        await until(lambda: "UnknownTimeZone" in rec.reasons())
        assert jobs(client) == []
