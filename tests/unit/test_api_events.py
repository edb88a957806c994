"""EventRecorder: one Event per distinct occurrence, count for repeats."""

import asyncio

import pytest

from bootstrap.api.errors import APIError
from bootstrap.api.events import EVENTS, EventRecorder
from bootstrap.api.fake import FakeClient

pytestmark = pytest.mark.timeout(20)

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "resourceVersion": "5"}}


async def test_identical_event_increments_count():
    client = FakeClient()
    now = [1000.0]
    rec = EventRecorder(client, "default-scheduler", clock=lambda: now[0])
    rec.event(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
    await rec.flush()
    now[0] += 5
    rec.event(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
    await rec.flush()
    events = client.objects("events", "ns")
    assert len(events) == 1
    ev = events[0]
    assert ev["count"] == 2 and ev["reason"] == "FailedScheduling"
    assert ev["involvedObject"] == {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u-1",
                                    "apiVersion": "v1", "resourceVersion": "5"}
    assert ev["source"] == {"component": "default-scheduler"}
    assert ev["firstTimestamp"] != ev["lastTimestamp"]
    assert [r.verb for r in client.requests] == ["create", "patch"]
    await rec.close()


async def test_similar_events_combine_after_ten_messages():
    client = FakeClient()
    rec = EventRecorder(client, "kubelet", "node-1", clock=lambda: 5000.0)
    for i in range(11):
        rec.event(POD, "Warning", "BackOff", f"back-off {i}")
    await rec.flush()
    events = sorted(client.objects("events", "ns"), key=lambda e: e["message"])
    assert len(events) == 10
    combined = [e for e in events if e["message"].startswith("(combined from similar events)")]
    assert len(combined) == 1
    assert combined[0]["message"] == "(combined from similar events): back-off 10"
    assert combined[0]["count"] == 2   # the 10th created it, the 11th counted on it
    assert combined[0]["source"] == {"component": "kubelet", "host": "node-1"}
    await rec.close()


async def test_spam_filter_and_refill():
    client = FakeClient()
    now = [0.0]
    rec = EventRecorder(client, "spammer", clock=lambda: now[0])
    for _ in range(30):
        rec.event(POD, "Normal", "Pulled", "same")
    await rec.flush()
    ev = client.objects("events", "ns")[0]
    assert ev["count"] == 25
    now[0] += 300  # one token back
    rec.event(POD, "Normal", "Pulled", "same")
    rec.event(POD, "Normal", "Pulled", "same")
    await rec.flush()
    assert client.objects("events", "ns")[0]["count"] == 26
    await rec.close()


async def test_deleted_event_is_recreated_and_errors_do_not_stop_the_writer():
    client = FakeClient()
    rec = EventRecorder(client, "ctl")
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u"}}
    rec.event(node, "Normal", "NodeReady", "ready")
    await rec.flush()
    [ev] = client.objects("events", "default")  # cluster-scoped objects: "default"
    assert ev["involvedObject"] == {"kind": "Node", "name": "n1", "uid": "u", "apiVersion": "v1"}
    await client.delete(EVENTS, ev["metadata"]["name"], "default")
    rec.event(node, "Normal", "NodeReady", "ready")
    await rec.flush()
    [again] = client.objects("events", "default")
    assert again["count"] == 1
    client.fail("create", "events", APIError(403, "Forbidden", "no"))
    rec.event(node, "Warning", "Other", "lost")
    rec.event(node, "Warning", "Another", "kept")
    await rec.close()
    assert sorted(e["reason"] for e in client.objects("events", "default")) == \
        ["Another", "NodeReady"]
    rec.event(node, "Warning", "AfterClose", "ignored")
    assert len(client.objects("events", "default")) == 2


async def test_close_gives_up_on_an_unreachable_server(caplog):
    class Hanging(FakeClient):
        async def create(self, *args, **kwargs):
            await asyncio.Event().wait()

    rec = EventRecorder(Hanging(), "ctl")
    rec.event(POD, "Normal", "Stuck", "never written")
    rec.event(POD, "Normal", "Stuck2", "never written")
    await rec.close(timeout=0.05)
    assert "1 events not written before shutdown" in caplog.text


async def test_transient_failures_are_retried_and_the_queue_is_bounded(monkeypatch):
    import bootstrap.api.events as events_mod
    client = FakeClient()
    rec = EventRecorder(client, "ctl")
    rec.retry_delays = (0.0, 0.0)
    client.fail("create", "events", APIError(500, "InternalError", "etcd hiccup"), times=2)
    rec.event(POD, "Normal", "Retried", "third time lucky")
    await rec.flush()
    assert [e["reason"] for e in client.objects("events", "ns")] == ["Retried"]
    assert len(client.requests_for("create", "events")) == 3
    monkeypatch.setattr(events_mod, "MAX_QUEUED", 2)
    for i in range(4):  # no await in between: the writer has not taken any yet
        rec.event({**POD, "metadata": {**POD["metadata"], "name": f"p{i}"}}, "Normal",
                  "Burst", "x")
    await rec.close()
    assert sorted(e["involvedObject"]["name"] for e in client.objects("events", "ns")
                  if e["reason"] == "Burst") == ["p0", "p1"]
