"""TTL-after-finished controller on the FakeClient with an injected clock."""

import pytest
from ctlharness import Clock, running, stamp, until

from bootstrap.agents.controllers.ttlafterfinished import TTLAfterFinishedController, time_left

pytestmark = pytest.mark.timeout(30)
T0 = 1_800_000_000.0


def job(name="done", ttl=60, finished_at=T0, cond="Complete"):
    obj = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
           "status": {}}
    if ttl is not None:
        obj["spec"]["ttlSecondsAfterFinished"] = ttl
    if finished_at is not None:
        obj["status"]["conditions"] = [{"type": cond, "status": "True",
                                        "lastTransitionTime": stamp(finished_at)}]
    return obj


async def test_deletes_after_ttl_with_foreground_and_uid_precondition():
    clock = Clock(T0 + 10)
    seed = [job(), job("failed", cond="Failed"), job("running", finished_at=None),
            job("keep", ttl=None)]
    async with running(TTLAfterFinishedController, *seed, clock=clock) as (client, ctl, rec):
        for name in ("done", "failed", "running", "keep"):
            await ctl.process(f"default/{name}")
        assert not client.requests_for("delete", "jobs")
        clock.advance(51)
        for name in ("done", "failed", "running", "keep"):
            await ctl.process(f"default/{name}")
        await until(lambda: {j["metadata"]["name"] for j in client.objects("jobs")
                             if not j["metadata"].get("deletionTimestamp")} == {"running", "keep"})
        deletes = client.requests_for("delete", "jobs")
        assert sorted(d.name for d in deletes) == ["done", "failed"]
        assert deletes[0].body["propagationPolicy"] == "Foreground"
        assert deletes[0].body["preconditions"]["uid"]
        # the fresh GET came before each delete
        gets = [r.name for r in client.requests_for("get", "jobs")]
        assert "done" in gets and "failed" in gets


def test_time_left():
    assert time_left(job(ttl=0), T0) == 0
    assert time_left(job(ttl=30), T0 + 10) == 20
    assert time_left(job(finished_at=None), T0) is None
    assert time_left(job(ttl=None), T0) is None
