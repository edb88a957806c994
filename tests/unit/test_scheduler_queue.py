"""The scheduling queue with an injected clock: order, backoff, moves, flushes."""

from __future__ import annotations

import asyncio

from test_scheduler_builders import pod

from bootstrap.agents.scheduler.framework import NODE_ADD, POD_DELETE
from bootstrap.agents.scheduler.queue import SchedulingQueue

EVENTS = {"NodeResourcesFit": frozenset({NODE_ADD, POD_DELETE}),
          "TaintToleration": frozenset({NODE_ADD})}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def queue() -> tuple[SchedulingQueue, Clock]:
    clock = Clock()
    return SchedulingQueue(EVENTS, clock=clock), clock


def pop_names(q: SchedulingQueue) -> list[str]:
    out = []
    while (qp := q.pop_nowait()) is not None:
        out.append(qp.info.name)
        q.done(qp.key)
    return out


def test_priority_then_arrival_order():
    q, clock = queue()
    for name, prio in (("low", 0), ("high", 100), ("mid", 50), ("high2", 100)):
        q.add(pod(name, priority=prio))
        clock.now += 1
    assert pop_names(q) == ["high", "high2", "mid", "low"]


def test_backoff_doubles_to_ten_seconds():
    q, clock = queue()
    q.add(pod("p"))
    durations = []
    for _ in range(6):
        qp = q.pop_nowait()
        assert qp is not None
        durations.append(q.backoff_duration(qp))
        q.requeue_error(qp)
        assert q.pop_nowait() is None          # still backing off
        clock.now += q.backoff_duration(qp)
    assert durations == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_unschedulable_pods_move_only_on_events_their_plugins_care_about():
    q, clock = queue()
    q.add(pod("fit"))
    q.add(pod("taint"))
    fit, taint = q.pop_nowait(), q.pop_nowait()
    cycle = q.scheduling_cycle
    q.requeue_unschedulable(fit, {"NodeResourcesFit"}, cycle)
    q.requeue_unschedulable(taint, {"TaintToleration"}, cycle)
    assert set(q.unschedulable) == {"default/fit", "default/taint"}
    assert q.move_all(POD_DELETE) == 1
    clock.now += 5  # past the first backoff
    assert pop_names(q) == ["fit"]
    assert q.move_all(NODE_ADD) == 1
    assert pop_names(q) == ["taint"]


def test_moved_pod_still_backing_off_waits_in_backoff():
    q, clock = queue()
    q.add(pod("p"))
    qp = q.pop_nowait()
    q.requeue_unschedulable(qp, {"NodeResourcesFit"}, q.scheduling_cycle)
    q.move_all(NODE_ADD)
    assert "default/p" in q.backoff and q.pop_nowait() is None
    clock.now += 1.0
    assert pop_names(q) == ["p"]


def test_event_during_the_cycle_sends_the_pod_to_backoff_not_unschedulable():
    q, clock = queue()
    q.add(pod("p"))
    qp = q.pop_nowait()
    cycle = q.scheduling_cycle
    q.move_all(NODE_ADD)          # a node arrives while p is being scheduled
    q.requeue_unschedulable(qp, {"NodeResourcesFit"}, cycle)
    assert "default/p" in q.backoff and "default/p" not in q.unschedulable


def test_an_event_no_rejecting_plugin_cares_about_does_not_count():
    q, clock = queue()
    q.add(pod("p"))
    qp = q.pop_nowait()
    cycle = q.scheduling_cycle
    q.move_all(POD_DELETE)        # TaintToleration does not care about pod deletions
    q.requeue_unschedulable(qp, {"TaintToleration"}, cycle)
    assert "default/p" in q.unschedulable


def test_leftover_unschedulable_pods_are_flushed_after_five_minutes():
    q, clock = queue()
    q.add(pod("p"))
    qp = q.pop_nowait()
    q.requeue_unschedulable(qp, {"TaintToleration"}, q.scheduling_cycle)
    clock.now += 299
    q.flush()
    assert "default/p" in q.unschedulable
    clock.now += 1
    assert pop_names(q) == ["p"]


def test_updating_an_unschedulable_pod_retries_it_but_status_only_does_not():
    q, clock = queue()
    p = pod("p")
    q.add(p)
    qp = q.pop_nowait()
    q.requeue_unschedulable(qp, {"TaintToleration"}, q.scheduling_cycle)
    status_only = {**p, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]}}
    q.update(p, status_only)
    assert "default/p" in q.unschedulable
    tolerating = {**p, "spec": {**p["spec"], "tolerations": [{"operator": "Exists"}]}}
    q.update(status_only, tolerating)
    clock.now += 1
    assert pop_names(q) == ["p"]


def test_deleted_pods_leave_every_queue_and_in_flight_pods_are_dropped():
    q, _ = queue()
    q.add(pod("a"))
    q.add(pod("b"))
    b = q.pop_nowait()
    q.delete(pod("a"))
    q.delete(pod("b"))
    q.requeue_unschedulable(b, {"NodeResourcesFit"}, q.scheduling_cycle)
    assert len(q) == 0 and "default/b" not in q


def test_gated_pods_wait_for_their_gates_to_go():
    q, _ = queue()
    gated = pod("g")
    gated["spec"]["schedulingGates"] = [{"name": "example.com/wait"}]
    q.add(gated)
    assert q.pop_nowait() is None and "default/g" in q.gated
    open_ = {**gated, "spec": {k: v for k, v in gated["spec"].items() if k != "schedulingGates"}}
    q.update(gated, open_)
    assert pop_names(q) == ["g"]


def test_nominator_follows_status():
    q, _ = queue()
    p = pod("p", priority=10)
    p["status"]["nominatedNodeName"] = "n1"
    q.add(p)
    assert [pi.name for pi in q.nominated_pods()["n1"]] == ["p"]
    cleared = {**p, "status": {"phase": "Pending"}}
    q.update(p, cleared)
    assert q.nominated_pods() == {}


async def test_pop_waits_for_an_add():
    q, _ = queue()

    async def later():
        await asyncio.sleep(0)
        q.add(pod("late"))

    task = asyncio.create_task(later())
    qp = await asyncio.wait_for(q.pop(), 5)
    await task
    assert qp.info.name == "late"
