"""The scheduler as a real process (kube-scheduler's own credentials) against the real
API server on real etcd, driven with the real kubectl; nodes and their Leases are
written by the test, as no kubelet runs here."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
import yaml

from .agents import Scheduler, start_scheduler
from .cluster import ROOT, eventually, free_port

pytestmark = pytest.mark.timeout(300)

NS = "sched"
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
TINY_TAINT = {"key": "dedicated", "value": "tiny", "effect": "NoSchedule"}
# Short leases so failover happens within a test (flags, as an operator would pass them).
LEASE_FLAGS = ("--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s",
               "--leader-elect-retry-period=500ms")


def kubectl(kubeconfig, *args, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess:
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kubeconfig}", *args],
                          input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def apply(kubeconfig, *objs: dict) -> None:
    # A YAML stream, not a v1 List: kubectl validates a List against OpenAPI v2,
    # which the API server does not serve as protobuf.
    kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(objs))


def get(kubeconfig, *args) -> dict:
    return json.loads(kubectl(kubeconfig, "get", *args, "-o", "json").stdout)


def node(name: str, cpu: str = "4", memory: str = "8Gi", labels=None, taints=None) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "50Gi"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                   "kubernetes.io/os": "linux",
                                                   **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "written by the test"}]}}


def node_lease(name: str) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}


def pod(name: str, cpu: str = "100m", **spec) -> dict:
    labels = spec.pop("labels", {})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}],
                     **spec}}


TINY = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "tiny",
                         "effect": "NoSchedule"}], "nodeSelector": {"pool": "tiny"}}
NODES = [node("cp", labels={"node-role.kubernetes.io/control-plane": ""}, taints=[CP_TAINT]),
         node("w1", labels={"zone": "a", "disk": "ssd"}),
         node("w2", labels={"zone": "a"}),
         node("w3", cpu="8", labels={"zone": "b"}),
         node("tiny", cpu="1", labels={"pool": "tiny"}, taints=[TINY_TAINT])]


def lease_holder(kc) -> str:
    proc = kubectl(kc, "get", "lease", "kube-scheduler", "-n", "kube-system", "-o",
                   "jsonpath={.spec.holderIdentity}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture(scope="module")
def env(cluster):
    kc = cluster.admin
    kubectl(kc, "create", "namespace", NS)
    kubectl(kc, "create", "serviceaccount", "default", "-n", NS)
    apply(kc, *NODES, *[node_lease(n["metadata"]["name"]) for n in NODES])
    # kubeadm's scheduler.conf: the scheduler's own identity, not admin.
    sched_kc = cluster.kubeconfig("system:kube-scheduler")
    sched = start_scheduler(cluster, sched_kc, "--leader-elect=true", *LEASE_FLAGS,
                            f"--client-ca-file={cluster.pki.path('ca.crt')}")
    try:
        assert eventually(lambda: sched.readyz() == 200 or sched.proc.poll() is not None, 60)
        assert sched.proc.poll() is None, sched.log.read_text()
        yield {"kc": kc, "sched_kc": sched_kc, "sched": sched, "cluster": cluster}
    finally:
        sched.stop()


@pytest.fixture
def clean(env):
    yield env["kc"]
    # as a kubelet would confirm: bound pods go with grace 0
    kubectl(env["kc"], "delete", "pods", "--all", "-n", NS, "--grace-period=0", "--force",
            "--wait=false", check=False)
    eventually(lambda: not get(env["kc"], "pods", "-n", NS)["items"])


def bound(kc, name: str) -> str:
    return (get(kc, "pod", name, "-n", NS).get("spec") or {}).get("nodeName", "")


def wait_bound(kc, *names: str) -> dict[str, str]:
    def all_bound():
        out = {n: bound(kc, n) for n in names}
        return out if all(out.values()) else None
    result = eventually(all_bound, 60)
    assert result, {n: get(kc, "pod", n, "-n", NS).get("status") for n in names}
    return result


def scheduled_condition(kc, name: str) -> dict | None:
    for c in (get(kc, "pod", name, "-n", NS).get("status") or {}).get("conditions") or []:
        if c["type"] == "PodScheduled":
            return c
    return None


def events(kc, name: str, reason: str) -> list[dict]:
    items = get(kc, "events", "-n", NS, f"--field-selector=involvedObject.name={name}")["items"]
    return [e for e in items if e.get("reason") == reason]


def test_binds_across_nodes_respecting_taints_affinity_resources_and_spread(clean):
    kc = clean
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "web"}}}]
    ssd = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}
    pods = [pod(f"web-{i}", labels={"app": "web"}, topologySpreadConstraints=spread)
            for i in range(4)]
    apart = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}},
         "topologyKey": "kubernetes.io/hostname"}]}}
    pods += [pod("on-ssd", affinity=ssd), pod("big", cpu="6")]
    pods += [pod(f"solo-{i}", labels={"app": "solo"}, affinity=apart) for i in range(3)]
    apply(kc, *pods)
    placed = wait_bound(kc, *[p["metadata"]["name"] for p in pods])
    assert len({placed[f"solo-{i}"] for i in range(3)}) == 3   # one per node
    assert "cp" not in placed.values() and "tiny" not in placed.values()
    assert placed["on-ssd"] == "w1"
    assert placed["big"] == "w3"          # only w3 has 6 free cpus
    zones = [{"w1": "a", "w2": "a", "w3": "b"}[placed[f"web-{i}"]] for i in range(4)]
    assert sorted(zones) == ["a", "a", "b", "b"]
    ev = events(kc, "big", "Scheduled")
    assert ev and ev[0]["message"] == f"Successfully assigned {NS}/big to w3"
    assert ev[0]["source"]["component"] == "default-scheduler"
    out = kubectl(kc, "get", "pods", "-n", NS, "-o", "wide").stdout
    assert "w3" in out


def test_unschedulable_pod_gets_condition_and_event_with_upstreams_message(clean):
    kc = clean
    apply(kc, pod("huge", cpu="100"))
    want = ("0/5 nodes are available: 1 node(s) had untolerated taint "
            "{dedicated: tiny}, 1 node(s) had untolerated taint "
            "{node-role.kubernetes.io/control-plane: }, 3 Insufficient cpu. preemption: 0/5 "
            "nodes are available: 2 Preemption is not helpful for scheduling, "
            "3 No preemption victims found for incoming pod.")
    cond = eventually(lambda: scheduled_condition(kc, "huge"), 60)
    assert cond and (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"] == want
    ev = eventually(lambda: events(kc, "huge", "FailedScheduling"), 60)
    assert ev[0]["type"] == "Warning" and ev[0]["message"] == want
    described = kubectl(kc, "describe", "pod", "huge", "-n", NS).stdout
    assert "FailedScheduling" in described and "Insufficient cpu" in described
    assert bound(kc, "huge") == ""
    # a node that fits arrives: the pod is moved back and bound there
    apply(kc, node("w4", cpu="128", labels={"zone": "c"}), node_lease("w4"))
    try:
        assert wait_bound(kc, "huge")["huge"] == "w4"
    finally:
        kubectl(kc, "delete", "pod", "huge", "-n", NS, "--grace-period=0", "--force")
        kubectl(kc, "delete", "node", "w4")


def test_preemption_evicts_the_lower_priority_pod(clean):
    kc = clean
    kubectl(kc, "create", "priorityclass", "sched-high", "--value=1000")
    apply(kc, pod("low", cpu="800m", **TINY))
    assert wait_bound(kc, "low")["low"] == "tiny"
    apply(kc, pod("vip", cpu="800m", priorityClassName="sched-high", **TINY))
    vip = get(kc, "pod", "vip", "-n", NS)
    assert vip["spec"]["priority"] == 1000   # the Priority admission plugin resolved it

    def victim_terminating():
        low = get(kc, "pod", "low", "-n", NS)
        return low if low["metadata"].get("deletionTimestamp") else None
    low = eventually(victim_terminating, 60)
    assert low, "the lower-priority pod was not preempted"
    cond = next(c for c in low["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (cond["status"], cond["reason"]) == ("True", "PreemptionByScheduler")
    assert eventually(lambda: get(kc, "pod", "vip", "-n", NS)["status"].get(
        "nominatedNodeName") == "tiny", 60)
    assert eventually(lambda: events(kc, "low", "Preempted"), 60)
    # the kubelet would now confirm the deletion; the preemptor then takes the room
    kubectl(kc, "delete", "pod", "low", "-n", NS, "--grace-period=0", "--force")
    assert wait_bound(kc, "vip")["vip"] == "tiny"


def test_pod_with_another_scheduler_name_stays_pending(clean):
    kc = clean
    apply(kc, pod("theirs", schedulerName="my-other-scheduler"))
    # created after: once it is bound, "theirs" was seen too
    kubectl(kc, "run", "ours", "--image=busybox", "--restart=Never", "-n", NS)
    wait_bound(kc, "ours")
    theirs = get(kc, "pod", "theirs", "-n", NS)
    assert not theirs["spec"].get("nodeName")
    assert theirs["status"]["phase"] == "Pending" and not theirs["status"].get("conditions")
    assert not events(kc, "theirs", "FailedScheduling")


def test_metrics_need_a_trusted_client_certificate(cluster, env, clean):
    apply(clean, pod("counted"))
    wait_bound(clean, "counted")
    url = f"https://127.0.0.1:{env['sched'].port}/metrics"
    ctx = cluster.ssl_context()                      # a cluster CA client cert
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # its self-signed serving cert
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        body = r.read().decode()
    assert 'scheduler_schedule_attempts_total{profile="default-scheduler",result="scheduled"}' in body
    assert "scheduler_pending_pods" in body
    anonymous = ssl.create_default_context()
    anonymous.check_hostname, anonymous.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(url, context=anonymous, timeout=10)
    assert exc.value.code == 401


def test_system_priority_classes_exist(env):
    out = kubectl(env["kc"], "get", "pc").stdout
    assert "system-cluster-critical   2000000000" in out
    assert "system-node-critical      2000001000" in out
    listed = kubectl(env["kc"], "api-resources", "--api-group=scheduling.k8s.io").stdout.split()
    assert listed[-5:] == ["priorityclasses", "pc", "scheduling.k8s.io/v1", "false",
                           "PriorityClass"]
    bad = kubectl(env["kc"], "create", "priorityclass", "system-mine", "--value=1", check=False)
    assert bad.returncode != 0 and "reserved for system use only" in bad.stderr


def test_bad_config_is_one_line_and_exit_2(cluster, tmp_path):
    cfg = tmp_path / "sched.yaml"
    cfg.write_text("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                   "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: Nope\n")
    proc = subprocess.run([sys.executable, "-m", "bootstrap.agents.scheduler",
                           f"--config={cfg}"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and 'plugin "Nope" does not exist' in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_file_profile_and_client_connection(cluster, env, tmp_path, clean):
    """A second scheduler from --config alone: its own profile name, kubeconfig from
    clientConnection, its own lease."""
    kc = clean
    cfg = tmp_path / "batch.yaml"
    cfg.write_text(json.dumps({
        "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(env["sched_kc"])},
        # kube-scheduler's role may only take the kube-scheduler Lease (as upstream):
        # a second scheduler with its own lock needs its own RBAC, so it runs unelected.
        "leaderElection": {"leaderElect": False},
        "profiles": [{"schedulerName": "batch", "plugins": {"score": {"enabled": [
            {"name": "NodeResourcesFit", "weight": 5}]}}, "pluginConfig": [
            {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]}))
    port = free_port()
    log = cluster.base / f"batch-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.agents.scheduler", f"--config={cfg}",
                             "--bind-address=127.0.0.1", f"--secure-port={port}"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    batch = Scheduler(proc, log, port)
    try:
        apply(kc, pod("batch-pod", schedulerName="batch"))
        assert wait_bound(kc, "batch-pod"), log.read_text()
        ev = events(kc, "batch-pod", "Scheduled")
        assert ev and ev[0]["source"]["component"] == "batch"
    finally:
        batch.stop()
    assert batch.proc.returncode == 0, log.read_text()


def test_wrong_user_cannot_schedule(cluster, env, clean):
    """Credentials without the kube-scheduler role: every list is refused, the process
    never becomes ready, and nothing is bound by it."""
    nobody = cluster.kubeconfig("nobody")
    intruder = start_scheduler(cluster, nobody, "--leader-elect=false")
    try:
        assert eventually(lambda: "forbidden" in intruder.log.read_text().lower(), 60), \
            intruder.log.read_text()
        assert intruder.readyz() != 200
    finally:
        intruder.stop()


def test_forged_credential_is_refused(cluster, env, clean, tmp_path):
    """A kube-scheduler client certificate from a CA the API server does not trust."""
    from datetime import timedelta

    from bootstrap.pki import certs, keys, load_ca
    from bootstrap.pki.kubeconfig import render

    ca_key, key = keys.generate_key("ECDSA-P256"), keys.generate_key("ECDSA-P256")
    evil = certs.create_ca(certs.CertSpec("evil-ca", is_ca=True), ca_key, timedelta(days=1))
    leaf = certs.sign_leaf(certs.CertSpec("system:kube-scheduler", (), (certs.CLIENT_AUTH,)),
                           key.public_key(), evil, ca_key, timedelta(days=1))
    forged = tmp_path / "forged.conf"
    forged.write_text(render("kubernetes", cluster.server.url, load_ca(cluster.pki.dir, "ca").cert,
                             "system:kube-scheduler", leaf, key))
    intruder = start_scheduler(cluster, forged, "--leader-elect=false", "-v=1")
    try:
        apply(clean, pod("bait"))
        wait_bound(clean, "bait")   # bound by the real scheduler, never by the forged one
        # the API server's TLS handshake refuses the untrusted client certificate
        assert eventually(lambda: "informer pods: connection lost" in intruder.log.read_text(),
                          60), intruder.log.read_text()
        assert intruder.readyz() != 200
        assert len(events(clean, "bait", "Scheduled")) == 1
    finally:
        intruder.stop()


def test_expired_credential_is_refused(cluster, env, clean, tmp_path):
    """kube-scheduler's own identity, signed by the cluster CA, but expired."""
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from bootstrap.pki import keys, load_ca
    from bootstrap.pki.kubeconfig import render

    ca = load_ca(cluster.pki.dir, "ca")
    key = keys.generate_key("ECDSA-P256")
    now = datetime.now(UTC)
    stale = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                         "system:kube-scheduler")]))
             .issuer_name(ca.cert.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(days=2)).not_valid_after(now - timedelta(days=1))
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
             .sign(ca.key, hashes.SHA256()))
    conf = tmp_path / "stale.conf"
    conf.write_text(render("kubernetes", cluster.server.url, ca.cert, "system:kube-scheduler",
                           stale, key))
    intruder = start_scheduler(cluster, conf, "--leader-elect=false", "-v=1")
    try:
        # the API server's TLS handshake refuses the expired client certificate
        assert eventually(lambda: "informer pods: connection lost" in intruder.log.read_text(),
                          60), intruder.log.read_text()
        assert intruder.readyz() != 200
    finally:
        intruder.stop()


def test_leader_failover_without_double_binding(env, clean):
    kc, sched_kc = clean, env["sched_kc"]
    first = env["sched"]
    holder = eventually(lambda: lease_holder(kc), 30)
    standby = start_scheduler(env["cluster"], sched_kc, "--leader-elect=true", *LEASE_FLAGS)
    try:
        apply(kc, *[pod(f"before-{i}") for i in range(5)])
        wait_bound(kc, *[f"before-{i}" for i in range(5)])
        assert lease_holder(kc) == holder       # the standby did not take over
        first.stop(signal.SIGKILL)              # a crash: the lease must expire
        assert eventually(lambda: lease_holder(kc) not in ("", holder), 60)
        apply(kc, *[pod(f"after-{i}") for i in range(5)])
        names = [f"before-{i}" for i in range(5)] + [f"after-{i}" for i in range(5)]
        wait_bound(kc, *names)
        for name in names:
            ev = events(kc, name, "Scheduled")
            assert len(ev) == 1 and ev[0].get("count", 1) == 1, (name, ev)
        assert "already assigned" not in standby.log.read_text()
    finally:
        standby.stop()

