"""Workload controllers as a real controller-manager process
(``python -m bootstrap.agents.controllers``, each controller writing as its own
service account) against the real API server on real etcd, driven with the real
kubectl. No kubelet exists: a thread in the test plays one, binding pods to fake
Nodes and reporting them Running and Ready (or Succeeded/Failed when a test says
so). The CronJob controller runs in the test process instead, on the same API
server, with a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .agents import ControllerManager
from .cluster import eventually, running_cluster

pytestmark = pytest.mark.timeout(300)
NS = "wl"
NODES = ("w1", "w2", "w3")
CONTROLLERS = ("deployment,replicaset,daemonset,statefulset,job,ttl-after-finished,"
               "disruption,garbagecollector,serviceaccount")


def kubectl(kc, *args, input=None, check=True, timeout=90):
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kc}", *args], input=input,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: rc={proc.returncode} "
                             f"{proc.stdout}{proc.stderr}")
    return proc


def get(kc, *args):
    proc = kubectl(kc, "get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def apply(kc, obj):
    kubectl(kc, "apply", "-f", "-", input=json.dumps(obj))


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    """Binds every pod of the test namespace to a fake node (a DaemonSet pod to the
    node its affinity names), then reports it Running and Ready; finishes graceful
    deletions; ``finish(pod, phase)`` ends a pod as Succeeded or Failed. It also
    samples, per label ``app``, the fewest Ready pods seen (for rollout bounds)."""

    def __init__(self, api):
        self.core = client.CoreV1Api(api)
        self.done = threading.Event()
        self.manual: set[str] = set()     # pods a test finishes by hand
        self.min_ready: dict[str, int] = {}
        self.lock = threading.Lock()
        self.turn = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.done.set()
        self.thread.join(10)

    def reset_sample(self, app):
        with self.lock:
            self.min_ready.pop(app, None)

    def _target(self, pod) -> str:
        aff = pod.spec.affinity
        terms = aff and aff.node_affinity and \
            aff.node_affinity.required_during_scheduling_ignored_during_execution
        for term in (terms.node_selector_terms if terms else []) or []:
            for f in term.match_fields or []:
                if f.key == "metadata.name":
                    return f.values[0]
        self.turn += 1
        return NODES[self.turn % len(NODES)]

    def _run(self):
        while not self.done.is_set():
            try:
                self._pass()
            except ApiException:
                pass  # raced with a controller: the next pass sees the new state
            self.done.wait(0.1)

    def _pass(self):
        pods = self.core.list_namespaced_pod(NS).items
        ready_by_app: dict[str, int] = {}
        for pod in pods:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp:
                if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed") or \
                        not pod.metadata.finalizers:
                    self._delete_now(name)
                continue
            if not pod.spec.node_name:
                self.core.create_namespaced_binding(NS, client.V1Binding(
                    metadata=client.V1ObjectMeta(name=name),
                    target=client.V1ObjectReference(kind="Node", name=self._target(pod))),
                    _preload_content=False)
                continue
            ready = any(c.type == "Ready" and c.status == "True"
                        for c in pod.status.conditions or [])
            if pod.status.phase == "Pending" and name not in self.manual:
                self.core.patch_namespaced_pod_status(name, NS, {"status": {
                    "phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": stamp()}],
                    "containerStatuses": [{"name": c.name, "image": c.image, "imageID": "",
                                           "ready": True, "restartCount": 0,
                                           "state": {"running": {"startedAt": stamp()}}}
                                          for c in pod.spec.containers]}})
            app = (pod.metadata.labels or {}).get("app")
            if app and ready:
                ready_by_app[app] = ready_by_app.get(app, 0) + 1
        with self.lock:
            for app in self.min_ready:
                self.min_ready[app] = min(self.min_ready[app], ready_by_app.get(app, 0))
            for app, n in ready_by_app.items():
                self.min_ready.setdefault(app, n)

    def _delete_now(self, name):
        try:
            self.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def finish(self, name, phase, exit_code=0):
        self.manual.add(name)
        pod = self.core.read_namespaced_pod(name, NS)
        self.core.patch_namespaced_pod_status(name, NS, {"status": {
            "phase": phase, "conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": stamp()}],
            "containerStatuses": [{"name": c.name, "image": c.image, "imageID": "",
                                   "ready": False, "restartCount": 0,
                                   "state": {"terminated": {"exitCode": exit_code,
                                                            "finishedAt": stamp()}}}
                                  for c in pod.spec.containers]}})


@pytest.fixture(scope="module")
def env():
    with running_cluster() as cluster:
        kc = cluster.admin
        kubectl(kc, "create", "namespace", NS)
        for name in NODES:
            taints = [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}] \
                if name == "w3" else []
            apply(kc, {"apiVersion": "v1", "kind": "Node",
                       "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                       "spec": {"taints": taints}})
        api = config.new_client_from_config(config_file=str(kc))
        manager = ControllerManager(cluster, CONTROLLERS, "workloads-cm").start()
        kubelet = Kubelet(api).start()
        cluster.api, cluster.kubelet, cluster.manager = api, kubelet, manager
        try:
            yield cluster
        finally:
            kubelet.stop()
            manager.stop()
            api.close()
            text = manager.text()
            if os.environ.get("WORKLOADS_CM_LOG"):
                Path(os.environ["WORKLOADS_CM_LOG"]).write_text(text)
        # every controller wrote as its own service account: RBAC never said no
        assert "Traceback" not in text and " is forbidden" not in text, text[-6000:]


def pods_of(kc, selector):
    out = get(kc, "pods", "-n", NS, "-l", selector) or {"items": []}
    return [p for p in out["items"] if not p["metadata"].get("deletionTimestamp")]


def images(kc, selector):
    return sorted(p["spec"]["containers"][0]["image"] for p in pods_of(kc, selector))


def rollout_status(kc, name):
    return kubectl(kc, "rollout", "status", f"deploy/{name}", "-n", NS, "--timeout=120s",
                   timeout=150)


def test_deployment_create_scale_rolling_update_history_undo(env):
    kc, kubelet = env.admin, env.kubelet
    kubectl(kc, "create", "deployment", "web", "--image=x", "--replicas=5", "-n", NS)
    assert eventually(lambda: len(pods_of(kc, "app=web")) == 5, 60)
    rs = get(kc, "rs", "-n", NS)["items"]
    assert len(rs) == 1 and rs[0]["metadata"]["name"].startswith("web-")
    assert rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    out = rollout_status(kc, "web")
    assert 'deployment "web" successfully rolled out' in out.stdout
    table = kubectl(kc, "get", "rs", "-n", NS).stdout
    assert "DESIRED" in table and rs[0]["metadata"]["name"] in table
    # scale down and up
    kubectl(kc, "scale", "deploy/web", "--replicas=3", "-n", NS)
    assert eventually(lambda: len(pods_of(kc, "app=web")) == 3, 60)
    kubectl(kc, "scale", "deploy/web", "--replicas=5", "-n", NS)
    assert eventually(lambda: len(pods_of(kc, "app=web")) == 5, 60)
    rollout_status(kc, "web")
    # rolling update: 25% of 5 -> maxUnavailable 1, maxSurge 2
    kubelet.reset_sample("web")
    kubectl(kc, "set", "image", "deploy/web", "x=y", "-n", NS)
    out = rollout_status(kc, "web")
    assert out.returncode == 0
    assert eventually(lambda: images(kc, "app=web") == ["y"] * 5, 60)
    assert kubelet.min_ready["web"] >= 4, kubelet.min_ready
    history = kubectl(kc, "rollout", "history", "deploy/web", "-n", NS).stdout
    assert "REVISION" in history and "1 " in history and "2 " in history
    # undo: kubectl copies revision 1's template back; the old RS becomes revision 3
    kubectl(kc, "rollout", "undo", "deploy/web", "-n", NS)
    rollout_status(kc, "web")
    assert eventually(lambda: images(kc, "app=web") == ["x"] * 5, 60)
    assert len(get(kc, "rs", "-n", NS)["items"]) == 2
    history = kubectl(kc, "rollout", "history", "deploy/web", "-n", NS).stdout
    assert "3 " in history and "\n1 " not in history
    dep = get(kc, "deploy", "web", "-n", NS)
    conds = {c["type"]: c for c in dep["status"]["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    events = get(kc, "events", "-n", NS)["items"]
    reasons = {(e["reason"], e["source"].get("component")) for e in events}
    assert ("ScalingReplicaSet", "deployment-controller") in reasons
    assert ("SuccessfulCreate", "replicaset-controller") in reasons


def test_pause_resume_restart(env):
    kc = env.admin
    kubectl(kc, "create", "deployment", "paused", "--image=x", "--replicas=2", "-n", NS)
    rollout_status(kc, "paused")
    kubectl(kc, "rollout", "pause", "deploy/paused", "-n", NS)
    kubectl(kc, "set", "image", "deploy/paused", "x=z", "-n", NS)
    assert eventually(lambda: (get(kc, "deploy", "paused", "-n", NS)["status"].get(
        "observedGeneration") or 0) >= 3, 30)
    owned = [r for r in get(kc, "rs", "-n", NS)["items"]
             if r["metadata"]["name"].startswith("paused-")]
    assert len(owned) == 1
    cond = {c["type"]: c for c in get(kc, "deploy", "paused", "-n", NS)["status"]["conditions"]}
    assert cond["Progressing"]["reason"] == "DeploymentPaused"
    kubectl(kc, "rollout", "resume", "deploy/paused", "-n", NS)
    rollout_status(kc, "paused")
    assert eventually(lambda: images(kc, "app=paused") == ["z", "z"], 60)
    kubectl(kc, "rollout", "restart", "deploy/paused", "-n", NS)
    rollout_status(kc, "paused")
    owned = [r for r in get(kc, "rs", "-n", NS)["items"]
             if r["metadata"]["name"].startswith("paused-")]
    assert len(owned) == 3
    newest = max(owned, key=lambda r: int(
        r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))
    assert "kubectl.kubernetes.io/restartedAt" in \
        newest["spec"]["template"]["metadata"]["annotations"]


def test_daemonset_covers_every_matching_node(env):
    kc = env.admin
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "namespace": NS},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    apply(kc, ds)

    def nodes():
        return sorted(p["spec"].get("nodeName") or "" for p in pods_of(kc, "app=agent"))
    assert eventually(lambda: nodes() == ["w1", "w2"], 60)       # w3 is tainted
    ds["spec"]["template"]["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    apply(kc, ds)
    assert eventually(lambda: nodes() == ["w1", "w2", "w3"], 60)
    st = eventually(lambda: (lambda s: s if s.get("numberReady") == 3 and
                             s.get("updatedNumberScheduled") == 3 else None)(
        get(kc, "ds", "agent", "-n", NS)["status"]), 60)
    assert st["desiredNumberScheduled"] == 3 and st["numberMisscheduled"] == 0
    kubectl(kc, "rollout", "status", "ds/agent", "-n", NS, "--timeout=60s")
    revs = get(kc, "controllerrevisions", "-n", NS)["items"]
    assert {r["revision"] for r in revs if r["metadata"]["name"].startswith("agent-")} == {1, 2}
    history = kubectl(kc, "rollout", "history", "ds/agent", "-n", NS).stdout
    assert "1 " in history and "2 " in history
    # undo: kubectl patches revision 1's data back (that revision becomes 3). The
    # pods on w1 and w2 are replaced; the one on w3 stays, as upstream: a NoSchedule
    # taint stops new daemon pods but does not evict a running one.
    kubectl(kc, "rollout", "undo", "ds/agent", "-n", NS)

    def tolerant():
        return sorted(p["spec"]["nodeName"] for p in pods_of(kc, "app=agent")
                      if any(t.get("key") == "dedicated" for t in p["spec"]["tolerations"]))
    assert eventually(lambda: tolerant() == ["w3"] and nodes() == ["w1", "w2", "w3"], 60)
    kubectl(kc, "rollout", "status", "ds/agent", "-n", NS, "--timeout=60s")
    st = eventually(lambda: (lambda s: s if s.get("numberMisscheduled") == 1 else None)(
        get(kc, "ds", "agent", "-n", NS)["status"]), 60)
    assert st["desiredNumberScheduled"] == 2
    revs = get(kc, "controllerrevisions", "-n", NS)["items"]
    assert {r["revision"] for r in revs if r["metadata"]["name"].startswith("agent-")} == {2, 3}


def test_statefulset_creates_ordinals_in_order(env):
    kc = env.admin
    apply(kc, {"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": NS},
               "spec": {"replicas": 3, "serviceName": "db",
                        "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "d", "image": "x"}]}}}})
    assert eventually(lambda: sorted(p["metadata"]["name"] for p in pods_of(kc, "app=db"))
                      == ["db-0", "db-1", "db-2"], 60)
    kubectl(kc, "rollout", "status", "sts/db", "-n", NS, "--timeout=60s")
    kubectl(kc, "set", "image", "sts/db", "d=y", "-n", NS)
    kubectl(kc, "rollout", "status", "sts/db", "-n", NS, "--timeout=90s", timeout=120)
    assert eventually(lambda: images(kc, "app=db") == ["y"] * 3, 60)
    st = get(kc, "sts", "db", "-n", NS)["status"]
    assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 3
    history = kubectl(kc, "rollout", "history", "sts/db", "-n", NS).stdout
    assert "1 " in history and "2 " in history
    kubectl(kc, "rollout", "undo", "sts/db", "-n", NS)
    kubectl(kc, "rollout", "status", "sts/db", "-n", NS, "--timeout=90s", timeout=120)
    assert eventually(lambda: images(kc, "app=db") == ["x"] * 3, 60)


def wait_condition(kc, job, cond):
    return kubectl(kc, "wait", f"--for=condition={cond}", f"job/{job}", "-n", NS,
                   "--timeout=60s", check=False, timeout=90)


def job_pods(kc, job):
    return pods_of(kc, f"batch.kubernetes.io/job-name={job}")


def test_job_completes_and_backoff_limit_fails(env):
    kc, kubelet = env.admin, env.kubelet
    kubectl(kc, "create", "job", "ok", "--image=x", "-n", NS)
    pod = eventually(lambda: job_pods(kc, "ok"), 60)[0]
    assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
    kubelet.finish(pod["metadata"]["name"], "Succeeded")
    assert wait_condition(kc, "ok", "complete").returncode == 0
    job = get(kc, "job", "ok", "-n", NS)
    assert job["status"]["succeeded"] == 1 and job["status"]["completionTime"]
    assert eventually(lambda: not (get(kc, "pod", pod["metadata"]["name"], "-n", NS) or {})
                      .get("metadata", {}).get("finalizers"))
    apply(kc, {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "bad", "namespace": NS},
               "spec": {"backoffLimit": 0, "template": {"spec": {
                   "restartPolicy": "Never", "containers": [{"name": "b", "image": "x"}]}}}})
    pod = eventually(lambda: job_pods(kc, "bad"), 60)[0]
    kubelet.finish(pod["metadata"]["name"], "Failed", exit_code=1)
    assert wait_condition(kc, "bad", "failed").returncode == 0
    cond = {c["type"]: c for c in get(kc, "job", "bad", "-n", NS)["status"]["conditions"]}
    assert cond["Failed"]["reason"] == "BackoffLimitExceeded"


def test_ttl_after_finished_removes_job(env):
    kc, kubelet = env.admin, env.kubelet
    apply(kc, {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "brief", "namespace": NS},
               "spec": {"ttlSecondsAfterFinished": 0, "template": {"spec": {
                   "restartPolicy": "Never", "containers": [{"name": "b", "image": "x"}]}}}})
    pod = eventually(lambda: job_pods(kc, "brief"), 60)[0]
    kubelet.finish(pod["metadata"]["name"], "Succeeded")
    # Foreground: the garbage collector removes the pod, then the Job itself
    assert eventually(lambda: get(kc, "job", "brief", "-n", NS) is None, 60)
    assert eventually(lambda: get(kc, "pod", pod["metadata"]["name"], "-n", NS) is None, 60)


def test_pdb_status_and_eviction(env):
    kc = env.admin
    core = client.CoreV1Api(env.api)
    kubectl(kc, "create", "deployment", "guarded", "--image=x", "--replicas=2", "-n", NS)
    rollout_status(kc, "guarded")
    # (kubectl create pdb sends protobuf, which our API server does not decode for PDBs)
    apply(kc, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "guard", "namespace": NS},
               "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}})

    def pdb_status():
        st = (get(kc, "pdb", "guard", "-n", NS) or {}).get("status") or {}
        return st if st.get("observedGeneration") else None
    st = eventually(lambda: (lambda s: s if s and s.get("currentHealthy") == 2 else None)(
        pdb_status()), 60)
    assert (st["expectedPods"], st["desiredHealthy"], st["disruptionsAllowed"]) == (2, 2, 0)
    assert st["conditions"][0]["reason"] == "InsufficientPods"
    victims = [p["metadata"]["name"] for p in pods_of(kc, "app=guarded")]

    def evict(name):
        core.create_namespaced_pod_eviction(name, NS, client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=NS)), _preload_content=False)
    with pytest.raises(ApiException) as exc:
        evict(victims[0])
    assert exc.value.status == 429
    assert "Cannot evict pod as it would violate the pod's disruption budget." in exc.value.body
    kubectl(kc, "patch", "pdb", "guard", "-n", NS, "--type=merge",
            "-p", '{"spec":{"minAvailable":1}}')
    assert eventually(lambda: (pdb_status() or {}).get("disruptionsAllowed") == 1 and
                      pdb_status().get("observedGeneration") == 2, 60)
    evict(victims[0])
    # the budget was taken by the first eviction: the second is refused at once
    with pytest.raises(ApiException) as exc:
        evict(victims[1])
    assert exc.value.status == 429


class InProcessCronJobs:
    """The CronJob controller on its own event loop in a thread, with a clock the
    test moves (the manager process uses the wall clock)."""

    def __init__(self, kubeconfig):
        from bootstrap.agents.controllers.cronjob import CronJobController
        from bootstrap.api.client import Client
        from bootstrap.api.events import EventRecorder
        from bootstrap.api.informer import SharedInformerFactory
        self.now = time.time()
        self.loop = asyncio.new_event_loop()
        self.client = Client.from_kubeconfig(kubeconfig)
        self.factory = SharedInformerFactory(self.client)
        self.recorder = EventRecorder(self.client, "cronjob-controller")
        self.ctl = CronJobController(self.client, self.factory, self.recorder,
                                     clock=lambda: self.now)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.task = None

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.ctl.run())
        self.loop.run_forever()
        self.loop.close()

    def start(self):
        self.thread.start()
        return self

    def advance(self, seconds, key):
        self.now += seconds
        self.loop.call_soon_threadsafe(self.ctl.enqueue, key)

    def stop(self):
        async def close():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            await self.factory.stop()
            await self.recorder.close()
            await self.client.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_cronjob_creates_jobs_on_its_clock(env):
    kc = env.admin
    cron = InProcessCronJobs(str(kc)).start()
    try:
        # (kubectl create cronjob sends protobuf, not decoded for CronJobs by our server)
        apply(kc, {"apiVersion": "batch/v1", "kind": "CronJob",
                   "metadata": {"name": "tick", "namespace": NS},
                   "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
                       "spec": {"restartPolicy": "OnFailure",
                                "containers": [{"name": "t", "image": "x"}]}}}}}})
        cj = get(kc, "cronjob", "tick", "-n", NS)
        created = datetime.fromisoformat(cj["metadata"]["creationTimestamp"].replace(
            "Z", "+00:00")).timestamp()
        first = (int(created) // 300 + 1) * 300           # the next */5 minute
        cron.advance(first + 1 - cron.now, f"{NS}/tick")

        def tick_jobs():
            return sorted(j["metadata"]["name"] for j in get(kc, "jobs", "-n", NS)["items"]
                          if j["metadata"]["name"].startswith("tick-"))
        assert eventually(lambda: tick_jobs() == [f"tick-{first // 60}"], 60)
        st = eventually(lambda: get(kc, "cronjob", "tick", "-n", NS).get("status", {})
                        .get("lastScheduleTime"), 30)
        assert st == datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cron.advance(300, f"{NS}/tick")
        assert eventually(lambda: len(tick_jobs()) == 2, 60)
        assert tick_jobs()[1] == f"tick-{first // 60 + 5}"
    finally:
        cron.stop()


def test_eviction_edges_follow_upstream(env):
    kc, kubelet = env.admin, env.kubelet

    def evict(name, api=env.api, dry_run=False):
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=NS),
                                 delete_options=client.V1DeleteOptions(
                                     dry_run=["All"] if dry_run else None))
        client.CoreV1Api(api).create_namespaced_pod_eviction(name, NS, body,
                                                             _preload_content=False)
    kubectl(kc, "create", "deployment", "edge", "--image=x", "--replicas=2", "-n", NS)
    rollout_status(kc, "edge")
    for name, spec in (("edge-a", {"minAvailable": 1}), ("edge-b", {"maxUnavailable": 1})):
        apply(kc, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": name, "namespace": NS},
                   "spec": {**spec, "selector": {"matchLabels": {"app": "edge"}}}})
    victim = pods_of(kc, "app=edge")[0]["metadata"]["name"]
    assert eventually(lambda: all(((get(kc, "pdb", n, "-n", NS) or {}).get("status") or {})
                                  .get("disruptionsAllowed") == 1 for n in ("edge-a", "edge-b")),
                      60)
    # two budgets over one pod: upstream refuses with a 500
    with pytest.raises(ApiException) as exc:
        evict(victim)
    assert exc.value.status == 500
    assert "more than one PodDisruptionBudget" in exc.value.body
    kubectl(kc, "delete", "pdb", "edge-b", "-n", NS)
    # dry run: allowed, but nothing is taken and the pod stays
    evict(victim, dry_run=True)
    assert get(kc, "pod", victim, "-n", NS)
    assert get(kc, "pdb", "edge-a", "-n", NS)["status"]["disruptionsAllowed"] == 1
    # a user without pods/eviction is forbidden; a missing pod is 404
    nobody = config.new_client_from_config(config_file=str(env.kubeconfig("nobody")))
    try:
        with pytest.raises(ApiException) as exc:
            evict(victim, api=nobody)
        assert exc.value.status == 403
    finally:
        nobody.close()
    with pytest.raises(ApiException) as exc:
        evict("no-such-pod")
    assert exc.value.status == 404
    # a Pending pod is evicted whatever the budget says (upstream canIgnorePDB)
    apply(kc, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "edge-all", "namespace": NS},
               "spec": {"minAvailable": "100%", "selector": {"matchLabels": {"hold": "me"}}}})
    kubelet.manual.add("pending-one")
    apply(kc, {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "pending-one", "namespace": NS, "labels": {"hold": "me"}},
               "spec": {"containers": [{"name": "p", "image": "x"}]}})
    evict("pending-one")
    assert eventually(lambda: get(kc, "pod", "pending-one", "-n", NS) is None, 30)


def test_deleting_a_deployment_cascades_through_its_replica_sets(env):
    kc = env.admin
    for name, cascade in (("gone-bg", "background"), ("gone-fg", "foreground")):
        kubectl(kc, "create", "deployment", name, "--image=x", "--replicas=2", "-n", NS)
        rollout_status(kc, name)
        kubectl(kc, "delete", "deployment", name, "-n", NS, f"--cascade={cascade}",
                "--wait=true", "--timeout=60s", timeout=90)
        assert eventually(lambda name=name: not [
            r for r in get(kc, "rs", "-n", NS)["items"]
            if r["metadata"]["name"].startswith(name + "-")], 60)
        assert eventually(lambda name=name: not pods_of(kc, f"app={name}"), 60)
    kubectl(kc, "create", "deployment", "kept", "--image=x", "--replicas=1", "-n", NS)
    rollout_status(kc, "kept")
    kubectl(kc, "delete", "deployment", "kept", "-n", NS, "--cascade=orphan")
    assert eventually(lambda: get(kc, "deploy", "kept", "-n", NS) is None, 60)
    rs = [r for r in get(kc, "rs", "-n", NS)["items"] if r["metadata"]["name"].startswith("kept-")]
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
    assert len(pods_of(kc, "app=kept")) == 1
