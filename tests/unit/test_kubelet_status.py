"""Pod status from the runtime's state (pure): phases, conditions, container states."""

from __future__ import annotations

from bootstrap.agents.kubelet import status as S
from bootstrap.agents.kubelet.runtime_state import ContainerRecord, PodRuntime, SandboxRecord

NOW = 1_700_000_000.0


def pod(policy="Always", init=(), containers=("app",), status=None) -> dict:
    return {"metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"restartPolicy": policy,
                     "initContainers": [{"name": n, "image": "i"} for n in init],
                     "containers": [{"name": n, "image": "busybox:1.35"} for n in containers]},
            "status": status or {}}


def rec(name, state, attempt=0, code=0, sandbox="sb1", **kw) -> ContainerRecord:
    return ContainerRecord(id=f"{name}-{attempt}", name=name, attempt=attempt, state=state,
                           sandbox_id=sandbox, started_at=NOW - 10,
                           finished_at=NOW - 5 if state == "exited" else 0, exit_code=code,
                           image_ref="sha256:abc", **kw)


def runtime(*records, ready=True) -> PodRuntime:
    rt = PodRuntime("u", sandboxes=[SandboxRecord("sb1", 0, ready, ips=("10.244.0.3",))])
    for r in records:
        rt.containers.setdefault(r.name, []).append(r)
    for items in rt.containers.values():
        items.sort(key=lambda c: c.attempt, reverse=True)
    return rt


def conds(status) -> dict:
    return {c["type"]: c for c in status["conditions"]}


def test_running_and_ready():
    st = S.pod_status(pod(), runtime(rec("app", "running")), S.View(), "10.0.0.5", NOW)
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.244.0.3" and st["podIPs"] == [{"ip": "10.244.0.3"}]
    assert st["hostIP"] == "10.0.0.5" and st["hostIPs"] == [{"ip": "10.0.0.5"}]
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and "running" in cs["state"]
    assert cs["containerID"] == "containerd://app-0" and cs["imageID"] == "sha256:abc"
    c = conds(st)
    assert {k: v["status"] for k, v in c.items()} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True"}


def test_readiness_failure_keeps_the_pod_unready():
    st = S.pod_status(pod(), runtime(rec("app", "running")), S.View(ready={"app": False}),
                      "h", NOW)
    assert st["phase"] == "Running"
    c = conds(st)
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "ContainersNotReady"
    assert c["Ready"]["message"] == "containers with unready status: [app]"
    started = S.pod_status(pod(), runtime(rec("app", "running")), S.View(started={"app": False}),
                           "h", NOW)["containerStatuses"][0]
    assert not started["started"] and not started["ready"]


def test_pending_while_creating():
    st = S.pod_status(pod(), PodRuntime("u"), S.View(), "h", NOW)
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert conds(st)["PodReadyToStartContainers"]["status"] == "False"
    assert "podIP" not in st


def test_crash_loop_shows_last_state():
    view = S.View(waiting={"app": ("CrashLoopBackOff", "back-off 10s restarting failed")})
    st = S.pod_status(pod(), runtime(rec("app", "exited", attempt=1, code=3),
                                     rec("app", "exited", attempt=0, code=3)), view, "h", NOW)
    cs = st["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["restartCount"] == 1
    assert st["phase"] == "Running"  # restartPolicy Always: it will run again


def test_terminal_phases_by_restart_policy():
    done = runtime(rec("app", "exited", code=0))
    assert S.pod_status(pod("Never"), done, S.View(), "h", NOW)["phase"] == "Succeeded"
    assert S.pod_status(pod("OnFailure"), done, S.View(), "h", NOW)["phase"] == "Succeeded"
    failed = runtime(rec("app", "exited", code=1))
    assert S.pod_status(pod("Never"), failed, S.View(), "h", NOW)["phase"] == "Failed"
    assert S.pod_status(pod("OnFailure"), failed, S.View(), "h", NOW)["phase"] == "Running"
    st = S.pod_status(pod("Never"), done, S.View(), "h", NOW)
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert conds(st)["Ready"]["reason"] == "PodCompleted"


def test_terminal_phase_is_sticky():
    st = S.pod_status(pod("Always", status={"phase": "Succeeded"}), runtime(rec("app", "running")),
                      S.View(), "h", NOW)
    assert st["phase"] == "Succeeded"


def test_init_containers():
    view = S.View()
    running_init = runtime(rec("init", "running"))
    st = S.pod_status(pod(init=("init",)), running_init, view, "h", NOW)
    assert st["phase"] == "Pending"
    assert conds(st)["Initialized"]["message"] == "containers with incomplete status: [init]"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    done = runtime(rec("init", "exited", code=0), rec("app", "running"))
    st = S.pod_status(pod(init=("init",)), done, view, "h", NOW)
    assert st["phase"] == "Running" and conds(st)["Initialized"]["status"] == "True"
    assert st["initContainerStatuses"][0]["ready"]
    failed = runtime(rec("init", "exited", code=1))
    assert S.pod_status(pod("Never", init=("init",)), failed, view, "h", NOW)["phase"] == "Failed"
    assert S.pod_status(pod("Always", init=("init",)), failed, view, "h", NOW)["phase"] == \
        "Pending"


def test_transition_times_survive_unchanged_conditions():
    first = S.pod_status(pod(), runtime(rec("app", "running")), S.View(), "h", NOW)
    later = S.pod_status(pod(status=first), runtime(rec("app", "running")), S.View(), "h",
                         NOW + 100)
    assert conds(later)["Ready"]["lastTransitionTime"] == conds(first)["Ready"]["lastTransitionTime"]
    assert not S.changed(first, later)
    unready = S.pod_status(pod(status=first), runtime(rec("app", "running")),
                           S.View(ready={"app": False}), "h", NOW + 200)
    assert conds(unready)["Ready"]["lastTransitionTime"] != conds(first)["Ready"]["lastTransitionTime"]
    assert S.changed(first, unready)


def test_image_pull_errors_show_as_waiting():
    view = S.View(waiting={"app": ("ErrImagePull", 'Failed to pull image "x": nope')})
    st = S.pod_status(pod(), runtime(), view, "h", NOW)
    assert st["containerStatuses"][0]["state"]["waiting"] == {
        "reason": "ErrImagePull", "message": 'Failed to pull image "x": nope'}
    assert st["phase"] == "Pending"
