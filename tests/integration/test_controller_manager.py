"""The controller manager as a process (``python -m bootstrap.agents.controllers``)
against the real API server on real etcd, driven with the real kubectl: garbage
collection, namespace deletion, node health from Leases the test writes, taint
eviction, podCIDRs, service accounts and kube-root-ca.crt, CSR approval and signing
checked with openssl, the cluster-info JWS, token cleanup, and leader failover.

The first manager runs with --use-service-account-credentials (every controller
writes as kube-system:<its service account>); the standby that takes over runs as
system:kube-controller-manager."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bootstrap.pki.tokens import detached_jws_valid

from .agents import LeaseRenewer
from .cluster import ROOT, eventually, free_port, running_cluster

pytestmark = pytest.mark.timeout(300)

CONTROLLERS = ("garbagecollector,namespace,podgc,nodelifecycle,taint-eviction-controller,"
               "nodeipam,serviceaccount,root-ca-cert-publisher,csrsigning,csrapproving,csrcleaner,"
               "bootstrapsigner,tokencleaner")
TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
UNREACHABLE = "node.kubernetes.io/unreachable"


def kubectl(kc, *args, input=None, check=True):
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kc}", *args], input=input,
                          capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc


def get(kc, *args):
    proc = kubectl(kc, "get", *args, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def apply(kc, obj):
    kubectl(kc, "apply", "-f", "-", input=json.dumps(obj))


def now(offset=0.0, micro=False):
    t = datetime.now(UTC) + timedelta(seconds=offset)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


class Manager:
    """One controller-manager process; its log is kept for assertions and failures."""

    def __init__(self, cluster, name, *extra):
        self.cluster, self.name, self.extra = cluster, name, extra
        self.log = cluster.base / f"{name}.log"
        self.proc = None

    def start(self):
        p = self.cluster.pki
        kc = self.cluster.kubeconfig("system:kube-controller-manager")
        out = open(self.log, "wb")
        self.proc = subprocess.Popen([
            sys.executable, "-m", "bootstrap.agents.controllers", f"--kubeconfig={kc}",
            f"--controllers={CONTROLLERS}", "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}", "--cluster-cidr=10.244.0.0/16",
            "--allocate-node-cidrs=true", f"--cluster-signing-cert-file={p.path('ca.crt')}",
            f"--cluster-signing-key-file={p.path('ca.key')}", f"--root-ca-file={p.path('ca.crt')}",
            "--node-monitor-grace-period=4s", "--node-monitor-period=1s",
            # Upstream's lease timings: the machine is shared, so a leader may stall a
            # few seconds; failover stays quick because a stopping leader releases.
            "--node-startup-grace-period=4s", "--leader-elect-lease-duration=15s",
            "--leader-elect-renew-deadline=10s", "--leader-elect-retry-period=1s",
            *self.extra], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_for(self, needle):
        ok = eventually(lambda: needle in self.text() or self.proc.poll() is not None, 60)
        assert ok and needle in self.text(), f"{self.name}: {needle!r} not in log:\n" + \
            self.text()[-4000:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def env():
    with running_cluster() as cluster:
        first = Manager(cluster, "cm-a", "--use-service-account-credentials=true")
        try:
            first.start()
            first.wait_for("starting controllers")
            cluster.manager = first
            yield cluster
        finally:
            first.stop()
        # Every controller error is logged with its traceback: none may have happened.
        assert "Traceback" not in first.text() and "error syncing" not in first.text(), \
            first.text()[-4000:]


def test_controllers_write_as_their_service_accounts(env):
    for sa in ("generic-garbage-collector", "namespace-controller", "node-controller",
               "certificate-controller", "bootstrap-signer", "token-cleaner"):
        assert eventually(lambda sa=sa: get(env.admin, "serviceaccount", sa, "-n",
                                            "kube-system"))


def owned_configmap(kc, name, owner, **ref):
    parent = get(kc, "configmap", owner)
    apply(kc, {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default", **ref.pop("meta", {}),
                            "ownerReferences": [{
                                "apiVersion": "v1", "kind": "ConfigMap", "name": owner,
                                "uid": parent["metadata"]["uid"], **ref}]}})


def test_background_deletion_removes_children(env):
    kc = env.admin
    kubectl(kc, "create", "configmap", "bg-parent")
    owned_configmap(kc, "bg-child", "bg-parent")
    kubectl(kc, "delete", "configmap", "bg-parent")
    assert eventually(lambda: get(kc, "configmap", "bg-child") is None)


def test_foreground_keeps_owner_until_children_are_gone(env):
    kc = env.admin
    kubectl(kc, "create", "configmap", "fg-parent")
    owned_configmap(kc, "fg-child", "fg-parent", blockOwnerDeletion=True,
                    meta={"finalizers": ["example.com/hold"]})
    kubectl(kc, "delete", "configmap", "fg-parent", "--cascade=foreground", "--wait=false")
    # the child is being deleted but held by its own finalizer: the owner waits
    assert eventually(lambda: (get(kc, "configmap", "fg-child") or {}).get(
        "metadata", {}).get("deletionTimestamp"))
    parent = get(kc, "configmap", "fg-parent")
    assert parent["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert parent["metadata"]["deletionTimestamp"]
    kubectl(kc, "patch", "configmap", "fg-child", "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}')
    assert eventually(lambda: get(kc, "configmap", "fg-parent") is None)
    assert get(kc, "configmap", "fg-child") is None


def test_orphan_leaves_children_without_the_reference(env):
    kc = env.admin
    kubectl(kc, "create", "configmap", "or-parent")
    owned_configmap(kc, "or-child", "or-parent")
    kubectl(kc, "delete", "configmap", "or-parent", "--cascade=orphan")
    assert eventually(lambda: get(kc, "configmap", "or-parent") is None)
    child = get(kc, "configmap", "or-child")
    assert child is not None and not child["metadata"].get("ownerReferences")


def test_new_namespace_gets_default_sa_and_root_ca(env):
    kc = env.admin
    kubectl(kc, "create", "namespace", "fresh")
    assert eventually(lambda: get(kc, "serviceaccount", "default", "-n", "fresh"))
    cm = eventually(lambda: get(kc, "configmap", "kube-root-ca.crt", "-n", "fresh"))
    assert cm["data"]["ca.crt"] == Path(env.pki.path("ca.crt")).read_text()


def test_namespace_deletion_empties_and_removes_it(env):
    kc = env.admin
    kubectl(kc, "create", "namespace", "doomed")
    kubectl(kc, "create", "configmap", "inside", "-n", "doomed", "--from-literal=a=b")
    kubectl(kc, "create", "secret", "generic", "hush", "-n", "doomed", "--from-literal=k=v")
    kubectl(kc, "delete", "namespace", "doomed", "--wait=true", "--timeout=60s")
    assert get(kc, "namespace", "doomed") is None


def add_node(kc, name):
    apply(kc, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    kubectl(kc, "patch", "node", name, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": now(),
                "lastTransitionTime": now()}]}}))
    apply(kc, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": name, "namespace": "kube-node-lease"},
               "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                        "renewTime": now(micro=True)}})


def bound_pod(kc, name, node, tolerations=None):
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    apply(kc, {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "nodes"}, "spec": spec})
    kubectl(kc, "patch", "pod", name, "-n", "nodes", "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now()}]}}))


def condition(obj, type_):
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == type_), {})


def test_silent_node_is_tainted_and_its_pods_evicted(env):
    kc = env.admin
    kubectl(kc, "create", "namespace", "nodes")
    assert eventually(lambda: get(kc, "serviceaccount", "default", "-n", "nodes"))
    # A healthy node keeps the zone out of full disruption: with every node silent
    # the controller would blame itself and evict nothing, as upstream.
    add_node(kc, "n0")
    healthy = LeaseRenewer(env, "n0")
    healthy.thread.start()
    try:
        silent_node_checks(env, kc)
    finally:
        healthy.stop()


def silent_node_checks(env, kc):
    add_node(kc, "n1")
    renewer = LeaseRenewer(env, "n1")
    renewer.thread.start()
    try:
        bound_pod(kc, "quick", "n1", [{"key": UNREACHABLE, "operator": "Exists",
                                       "effect": "NoExecute", "tolerationSeconds": 2}])
        bound_pod(kc, "patient", "n1")
        patient = get(kc, "pod", "patient", "-n", "nodes")
        # DefaultTolerationSeconds admission
        assert {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300} in patient["spec"]["tolerations"]
        node = eventually(lambda: (get(kc, "node", "n1") or {}).get("spec", {}).get(
            "podCIDR") and get(kc, "node", "n1"))
        assert node["spec"]["podCIDR"].startswith("10.244.") and \
            node["spec"]["podCIDR"].endswith("/24")
        assert condition(node, "Ready")["status"] == "True" and not node["spec"].get("taints")
    finally:
        renewer.stop()
    node = eventually(lambda: condition(get(kc, "node", "n1"), "Ready").get(
        "status") == "Unknown" and get(kc, "node", "n1"), 60)
    ready = condition(node, "Ready")
    assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown",
                                                   "Kubelet stopped posting node status.")
    taints = eventually(lambda: {(t["key"], t["effect"]) for t in
                                 get(kc, "node", "n1")["spec"].get("taints") or []})
    assert taints == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    quick = eventually(lambda: (get(kc, "pod", "quick", "-n", "nodes") or {
        "metadata": {"deletionTimestamp": "gone"}})["metadata"].get("deletionTimestamp"), 60)
    assert quick
    patient = eventually(lambda: condition(get(kc, "pod", "patient", "-n", "nodes"),
                                           "Ready").get("status") == "False"
                         and get(kc, "pod", "patient", "-n", "nodes"))
    assert not patient["metadata"].get("deletionTimestamp")  # tolerates 300 s
    events = get(kc, "events", "-n", "default", "--field-selector",
                 "involvedObject.name=n1,reason=NodeNotReady")["items"]
    assert len(events) == 1 and events[0]["count"] == 1
    assert events[0]["source"]["component"] == "node-controller"


def token_kubeconfig(env, path, token):
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": env.server.url,
                                                "certificate-authority": env.pki.path("ca.crt")}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return path


def bootstrap_token(kc, token_id, secret, expiration=None):
    data = {"token-id": token_id, "token-secret": secret,
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    if expiration:
        data["expiration"] = expiration
    apply(kc, {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
               "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
               "stringData": data})


def csr_object(name, cn, signer="kubernetes.io/kube-apiserver-client-kubelet", dns=(),
               usages=("digital signature", "client auth")):
    key = ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]),
                            critical=False)
    pem = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                     "usages": list(usages)}}


def issued(kc, name):
    return (get(kc, "csr", name) or {}).get("status", {}).get("certificate")


def test_kubelet_csrs_approved_signed_and_refused(env, tmp_path):
    kc = env.admin
    bootstrap_token(kc, TOKEN_ID, TOKEN_SECRET)
    boot = token_kubeconfig(env, tmp_path / "boot.kubeconfig", f"{TOKEN_ID}.{TOKEN_SECRET}")
    node1 = env.kubeconfig("system:node:n1", ("system:nodes",))
    # one worker handles CSRs in order: the refused ones come first, so once the last
    # good one is approved the earlier ones have been decided.
    apply(node1, csr_object("n1-for-n2", "system:node:n2"))
    apply(node1, csr_object("n1-serving", "system:node:n1",
                            signer="kubernetes.io/kubelet-serving", dns=("n1",),
                            usages=("digital signature", "server auth")))
    apply(boot, csr_object("boot-n3", "system:node:n3"))
    apply(node1, csr_object("n1-renew", "system:node:n1"))
    for name in ("boot-n3", "n1-renew"):
        pem = eventually(lambda name=name: issued(kc, name), 60)
        assert pem, get(kc, "csr", name)
        cert = tmp_path / f"{name}.crt"
        cert.write_bytes(base64.b64decode(pem))
        check = subprocess.run(["openssl", "verify", "-CAfile", env.pki.path("ca.crt"),
                                str(cert)], capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.strip().endswith(": OK"), check
    conds = {c["type"]: c for c in get(kc, "csr", "boot-n3")["status"]["conditions"]}
    assert conds["Approved"]["reason"] == "AutoApproved"
    assert get(kc, "csr", "boot-n3")["spec"]["username"] == f"system:bootstrap:{TOKEN_ID}"
    assert "self kubelet client" in {c["type"]: c for c in get(kc, "csr", "n1-renew")[
        "status"]["conditions"]}["Approved"]["message"]
    for refused in ("n1-for-n2", "n1-serving"):
        assert not get(kc, "csr", refused)["status"].get("conditions"), refused


def test_forged_expired_and_groupless_tokens_get_no_certificate(env, tmp_path):
    kc = env.admin
    bootstrap_token(kc, TOKEN_ID, TOKEN_SECRET)
    forged = token_kubeconfig(env, tmp_path / "forged", f"{TOKEN_ID}.0123456789abcdeX")
    out = kubectl(forged, "create", "--validate=false", "-f", "-", input=json.dumps(
        csr_object("forged", "system:node:f1")), check=False)
    # kubectl's words for a 401
    assert out.returncode != 0 and "You must be logged in to the server" in out.stderr
    # a token without the kubeadm node-token group may not even ask
    apply(kc, {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
               "metadata": {"name": "bootstrap-token-nogrps", "namespace": "kube-system"},
               "stringData": {"token-id": "nogrps", "token-secret": TOKEN_SECRET,
                              "usage-bootstrap-authentication": "true"}})
    bare = token_kubeconfig(env, tmp_path / "bare", f"nogrps.{TOKEN_SECRET}")
    out = eventually(lambda: (lambda p: p.returncode != 0 and "forbidden" in p.stderr and p)(
        kubectl(bare, "create", "--validate=false", "-f", "-", input=json.dumps(
            csr_object("groupless", "system:node:g1")), check=False)))
    assert out and 'cannot create resource "certificatesigningrequests"' in out.stderr
    # once the token cleaner has removed an expired token, it authenticates no more
    bootstrap_token(kc, "expire", TOKEN_SECRET, expiration=now(-1))
    expired = token_kubeconfig(env, tmp_path / "expired", f"expire.{TOKEN_SECRET}")
    assert eventually(lambda: get(kc, "secret", "bootstrap-token-expire", "-n",
                                  "kube-system") is None)
    out = kubectl(expired, "get", "csr", check=False)
    assert out.returncode != 0 and "You must be logged in to the server" in out.stderr


def test_wrong_user_cannot_approve(env):
    kc = env.admin
    apply(kc, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "csr-approval-only"},
               "rules": [{"apiGroups": ["certificates.k8s.io"],
                          "resources": ["certificatesigningrequests"],
                          "verbs": ["get", "list"]},
                         {"apiGroups": ["certificates.k8s.io"],
                          "resources": ["certificatesigningrequests/approval"],
                          "verbs": ["update"]}]})
    kubectl(kc, "create", "clusterrolebinding", "mallory-csr",
            "--clusterrole=csr-approval-only", "--user=mallory")
    mallory = env.kubeconfig("mallory")
    node1 = env.kubeconfig("system:node:n1", ("system:nodes",))
    apply(node1, csr_object("pending-for-mallory", "system:node:n9"))
    out = kubectl(mallory, "certificate", "approve", "pending-for-mallory", check=False)
    assert out.returncode != 0
    assert ('user not permitted to approve requests with signerName '
            '"kubernetes.io/kube-apiserver-client-kubelet"') in out.stderr
    nobody = kubectl(env.kubeconfig("eve"), "certificate", "approve", "pending-for-mallory",
                     check=False)
    assert nobody.returncode != 0 and "forbidden" in nobody.stderr.lower()
    assert not get(kc, "csr", "pending-for-mallory")["status"].get("conditions")


def test_cluster_info_signed_with_each_token(env):
    kc = env.admin
    bootstrap_token(kc, TOKEN_ID, TOKEN_SECRET)
    content = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [{
        "name": "", "cluster": {"server": env.server.url,
                                "certificate-authority-data": base64.b64encode(
                                    Path(env.pki.path("ca.crt")).read_bytes()).decode()}}]})
    apply(kc, {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cluster-info", "namespace": "kube-public"},
               "data": {"kubeconfig": content}})
    key = f"jws-kubeconfig-{TOKEN_ID}"
    cm = eventually(lambda: key in (get(kc, "configmap", "cluster-info", "-n",
                                        "kube-public") or {}).get("data", {})
                    and get(kc, "configmap", "cluster-info", "-n", "kube-public"))
    sig = cm["data"][key]
    assert detached_jws_valid(sig, cm["data"]["kubeconfig"], TOKEN_ID, TOKEN_SECRET)
    assert not detached_jws_valid(sig, cm["data"]["kubeconfig"], TOKEN_ID, "0123456789abcdeX")


def test_expired_tokens_are_deleted(env):
    kc = env.admin
    bootstrap_token(kc, "oldtok", "0123456789abcdef", expiration=now(-60))
    bootstrap_token(kc, "newtok", "0123456789abcdef", expiration=now(3600))
    assert eventually(lambda: get(kc, "secret", "bootstrap-token-oldtok", "-n",
                                  "kube-system") is None)
    assert get(kc, "secret", "bootstrap-token-newtok", "-n", "kube-system")


def not_ready_events(kc, node):
    return get(kc, "events", "-n", "default", "--field-selector",
               f"involvedObject.name={node},reason=NodeNotReady")["items"]


def lease_holder(kc):
    return get(kc, "lease", "kube-controller-manager", "-n", "kube-system")["spec"][
        "holderIdentity"]


def test_leader_failover_without_double_action(env):
    kc = env.admin
    first = env.manager
    holder = lease_holder(kc)
    add_node(kc, "fa-1")
    add_node(kc, "fa-2")
    before = {}
    for n in ("fa-1", "fa-2"):
        before[n] = eventually(lambda n=n: (get(kc, "node", n) or {}).get("spec", {}).get(
            "podCIDR"))
    # nobody renews fa-1's lease: it goes NotReady under the first leader
    assert eventually(lambda: not_ready_events(kc, "fa-1"), 60)
    standby = Manager(env, "cm-b")
    try:
        standby.start()
        standby.wait_for("attempting to acquire leader lease")
        kubectl(kc, "create", "namespace", "before-failover")
        assert eventually(lambda: get(kc, "serviceaccount", "default", "-n",
                                      "before-failover"))
        assert lease_holder(kc) == holder and "starting controllers" not in standby.text()
        first.stop()
        standby.wait_for("starting controllers")
        assert eventually(lambda: lease_holder(kc) != holder)
        kubectl(kc, "create", "namespace", "after-failover")
        assert eventually(lambda: get(kc, "serviceaccount", "default", "-n",
                                      "after-failover"))
        add_node(kc, "fa-3")
        third = eventually(lambda: (get(kc, "node", "fa-3") or {}).get("spec", {}).get(
            "podCIDR"))
        # fa-3 goes NotReady under the new leader, which by then has checked every node
        assert eventually(lambda: not_ready_events(kc, "fa-3"), 60)
        # the new leader read the existing allocations: nothing reassigned, no collision
        after = {n: get(kc, "node", n)["spec"]["podCIDR"] for n in ("fa-1", "fa-2")}
        assert after == before and third not in before.values()
        cidrs = [n["spec"].get("podCIDR") for n in get(kc, "nodes")["items"]]
        assert len(cidrs) == len(set(cidrs))
        for ns in ("before-failover", "after-failover"):
            sas = get(kc, "serviceaccounts", "-n", ns)["items"]
            assert [s["metadata"]["name"] for s in sas] == ["default"]
        # fa-1 went NotReady under the first leader; the new one does not report it again
        events = not_ready_events(kc, "fa-1")
        assert len(events) == 1 and events[0]["count"] == 1
    finally:
        standby.stop()
    assert standby.proc.returncode == 0, standby.text()[-2000:]
