"""EventRecorder: one Event per distinct occurrence, count for repeats."""

import pytest

from bootstrap.api.events import EventRecorder
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
