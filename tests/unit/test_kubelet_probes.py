"""Probe thresholds and timing, and the restart/pull back-off (pure, injected clock)."""

from __future__ import annotations

from bootstrap.agents.kubelet import probes as P
from bootstrap.agents.kubelet.backoff import Backoff, format_duration


def spec(kind, **kw) -> P.ProbeSpec:
    return P.ProbeSpec(kind, {"exec": {"command": ["true"]}}, **kw)


def test_from_container_uses_upstream_defaults():
    c = {"livenessProbe": {"httpGet": {"port": 80}, "successThreshold": 5}}
    s = P.ProbeSpec.from_container(c, P.LIVENESS)
    assert (s.period, s.timeout, s.failure_threshold, s.success_threshold) == (10, 1, 3, 1)
    assert P.ProbeSpec.from_container(c, P.READINESS) is None


def test_initial_results():
    assert P.ProbeState(spec(P.LIVENESS)).result == P.SUCCESS
    assert P.ProbeState(spec(P.READINESS)).result == P.FAILURE
    assert P.ProbeState(spec(P.STARTUP)).result == P.UNKNOWN


def test_failure_threshold_then_on_hold_until_a_new_container():
    st = P.ProbeState(spec(P.LIVENESS, failure_threshold=3))
    assert st.due("c1", 0, 100, True)
    assert not st.observe(P.FAILURE) and not st.observe(P.FAILURE)
    assert st.result == P.SUCCESS
    assert st.observe(P.FAILURE) and st.result == P.FAILURE
    assert st.on_hold and not st.due("c1", 0, 200, True)
    assert st.due("c2", 150, 200, True)       # the replacement starts fresh
    assert st.result == P.SUCCESS


def test_a_success_resets_the_failure_run():
    st = P.ProbeState(spec(P.LIVENESS, failure_threshold=2))
    st.due("c", 0, 1, True)
    st.observe(P.FAILURE)
    st.observe(P.SUCCESS)
    assert not st.observe(P.FAILURE) and st.result == P.SUCCESS


def test_readiness_success_threshold():
    st = P.ProbeState(spec(P.READINESS, success_threshold=2))
    st.due("c", 0, 1, True)
    assert not st.observe(P.SUCCESS)
    assert st.observe(P.SUCCESS) and st.result == P.SUCCESS
    assert not st.on_hold
    assert st.observe(P.FAILURE) is False  # failureThreshold 3 by default
    assert st.result == P.SUCCESS


def test_initial_delay_and_startup_gate():
    st = P.ProbeState(spec(P.READINESS, initial_delay=5))
    assert not st.due("c", 100, 104, True)
    assert st.due("c", 100, 105, True)
    assert not P.ProbeState(spec(P.LIVENESS)).due("c", 0, 10, started=False)
    startup = P.ProbeState(spec(P.STARTUP))
    assert startup.due("c", 0, 1, started=False)
    startup.observe(P.SUCCESS)
    assert not startup.due("c", 0, 2, started=True)  # done once it succeeded


def test_readiness_of_a_stopped_container_is_failure():
    st = P.ProbeState(spec(P.READINESS))
    st.due("c", 0, 1, True)
    st.observe(P.SUCCESS)
    assert st.container_stopped() and st.result == P.FAILURE


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_crash_loop_backoff_doubles_to_five_minutes():
    clock = Clock()
    b = Backoff(clock=clock)
    key = "p_ns_uid_c"
    finished = clock.t
    assert not b.in_backoff_since(key, finished)   # first failure restarts at once
    assert b.next(key, finished) == 10
    windows = []
    for _ in range(7):
        clock.t += 1
        finished = clock.t
        assert b.in_backoff_since(key, finished)
        assert 0 < b.remaining(key, finished) <= b.get(key)
        clock.t += b.get(key)
        assert not b.in_backoff_since(key, finished)
        windows.append(b.next(key, finished))
    assert windows == [20, 40, 80, 160, 300, 300, 300]


def test_backoff_resets_after_a_quiet_period():
    clock = Clock()
    b = Backoff(clock=clock)
    b.next("k", clock.t)
    b.next("k", clock.t)
    assert b.get("k") == 20
    clock.t += 1000
    assert not b.in_backoff_since("k", clock.t)
    assert b.next("k", clock.t) == 10
    clock.t += 601
    b.gc()
    assert b.get("k") == 0


def test_image_pull_backoff_since_update():
    clock = Clock()
    b = Backoff(clock=clock)
    b.next("img", clock.t)
    assert b.in_backoff_since_update("img")
    clock.t += 10
    assert not b.in_backoff_since_update("img")


def test_format_duration():
    assert [format_duration(s) for s in (10, 20, 80, 300)] == ["10s", "20s", "1m20s", "5m0s"]
