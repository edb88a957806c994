"""The kubelet against the real containerd in a sandbox host and a real API server.

One sandbox host for the module: containerd converged by the containerd role,
the toolkit's busybox/pause images imported, the API server (real etcd, on
loopback) reached through a relay on the sandbox bridge's gateway. The kubelet
runs inside the host as a transient systemd unit and starts by TLS bootstrap
from a bootstrap token; the test is the CSR approver and signer.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from bootstrap import sandbox
from bootstrap.pki import CLIENT_AUTH, CertSpec, load_ca
from bootstrap.pki.certs import cert_to_pem, sign_leaf
from bootstrap.sandbox import state as sandbox_state

from .cluster import eventually, running_cluster
from .kubelet_host import CRI, Relay, converge_containerd, gateway, host_socket, retarget, ssh

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

SANDBOX = "klit"
HOST = f"{SANDBOX}-1"
NODE = HOST
IMAGE = "docker.io/library/busybox:1.35"
UNIT = "kl-kubelet"
# The checkout's own interpreter: sandbox hosts see the machine's paths (overlay root).
PYTHON = sys.executable


def kubectl(env, *args: str, input: str | None = None, check: bool = True) -> str:
    r = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={env.cluster.admin}", *args],
                       capture_output=True, text=True, input=input, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


def get_json(env, *args: str) -> dict | None:
    r = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={env.cluster.admin}", "get", *args,
                        "-o", "json"], capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout) if r.returncode == 0 else None


class Approver(threading.Thread):
    """Approves and signs this node's CSRs, as the controller manager's csrapproving
    and csrsigning controllers would (signer from the cluster CA)."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.env = env
        self.stop = threading.Event()
        self.signed: list[str] = []

    def run(self) -> None:
        ca = load_ca(self.env.cluster.pki.dir, "ca")
        ctx = self.env.cluster.ssl_context()
        base = self.env.cluster.server.url + "/apis/certificates.k8s.io/v1/certificatesigningrequests"
        while not self.stop.wait(0.3):
            try:
                with urllib.request.urlopen(base, context=ctx, timeout=10) as r:
                    items = json.load(r)["items"]
            except OSError:
                continue
            for csr in items:
                if csr.get("status", {}).get("certificate"):
                    continue
                req = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
                cn = req.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
                if cn != f"system:node:{NODE}":
                    continue
                name = csr["metadata"]["name"]
                csr["status"] = {"conditions": [{"type": "Approved", "status": "True",
                                                 "reason": "AutoApproved",
                                                 "message": "approved by the test"}]}
                self._put(ctx, f"{base}/{name}/approval", csr)
                fresh = self._get(ctx, f"{base}/{name}")
                usages = (x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,) \
                    if "server auth" in csr["spec"]["usages"] else (CLIENT_AUTH,)
                try:  # the signer copies the requested names, as csrsigning does
                    sans = req.extensions.get_extension_for_class(
                        x509.SubjectAlternativeName).value
                    dns = tuple(sans.get_values_for_type(x509.DNSName))
                    ips = tuple(sans.get_values_for_type(x509.IPAddress))
                except x509.ExtensionNotFound:
                    dns, ips = (), ()
                cert = sign_leaf(CertSpec(cn, ("system:nodes",), usages, dns, ips),
                                 req.public_key(), ca.cert, ca.key, timedelta(hours=1))
                fresh.setdefault("status", {})["certificate"] = base64.b64encode(
                    cert_to_pem(cert)).decode()
                self._put(ctx, f"{base}/{name}/status", fresh)
                self.signed.append(name)

    @staticmethod
    def _get(ctx, url):
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return json.load(r)

    @staticmethod
    def _put(ctx, url, body):
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.load(r)


def _bootstrap_token(env) -> str:
    tid, secret = secrets.token_hex(3), secrets.token_hex(8)
    kubectl(env, "apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{tid}", "namespace": "kube-system"},
        "stringData": {"token-id": tid, "token-secret": secret, "usage-bootstrap-authentication":
                       "true", "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}}))
    kubectl(env, "create", "clusterrolebinding", "kl-node-bootstrapper",
            "--clusterrole=system:node-bootstrapper", "--group=system:bootstrappers")
    kubectl(env, "create", "clusterrolebinding", "kl-nodes-renew",
            "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "--group=system:nodes", check=False)
    return f"{tid}.{secret}"


def _namespace_defaults(env) -> None:
    """What the controller manager would make: the default ServiceAccount and the
    kube-root-ca.crt ConfigMap that every pod's projected token volume reads."""
    ca = Path(env.cluster.pki.path("ca.crt")).read_text()
    kubectl(env, "apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "default", "namespace": "default"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
         "data": {"ca.crt": ca}}]))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root")
    from types import SimpleNamespace
    # Files the host reads must live where its overlay shows the machine's disk
    # (its /tmp is its own tmpfs).
    work = Path(tempfile.mkdtemp(prefix="kl-it-", dir="/var/tmp"))
    relay = approver = None
    with running_cluster() as cluster:
        try:
            inventory = sandbox.up(SANDBOX, 1)
            st = sandbox_state.load(SANDBOX)
            paths = sandbox.paths(SANDBOX)
            host_ip = st.hosts[HOST].ip
            converge_containerd(inventory, work / "images")
            relay = Relay(gateway(SANDBOX), cluster.server.port)
            env = SimpleNamespace(cluster=cluster, work=work, host_ip=host_ip, relay=relay,
                                  key=paths["key"], known_hosts=paths["known_hosts"])
            env.sh = lambda script, **kw: ssh(env.key, env.known_hosts, host_ip, script, **kw)
            token = _bootstrap_token(env)
            _namespace_defaults(env)
            boot = retarget(cluster.admin, relay.address, work / "bootstrap-kubelet.conf")
            cfg = yaml.safe_load(boot.read_text())
            cfg["users"] = [{"name": "kubelet-bootstrap", "user": {"token": token}}]
            cfg["contexts"][0]["context"]["user"] = "kubelet-bootstrap"
            boot.write_text(yaml.safe_dump(cfg))
            shutil.copy(cluster.pki.path("ca.crt"), work / "ca.crt")
            (work / "manifests").mkdir()
            (work / "kubelet-config.yaml").write_text(yaml.safe_dump({
                "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
                "staticPodPath": str(work / "manifests"), "podCIDR": "10.244.1.0/24",
                "authentication": {"x509": {"clientCAFile": str(work / "ca.crt")},
                                   "webhook": {"enabled": True},
                                   "anonymous": {"enabled": False}},
                "authorization": {"mode": "Webhook"}, "syncFrequency": "10s",
                "nodeStatusUpdateFrequency": "2s", "fileCheckFrequency": "2s",
                "serverTLSBootstrap": True, "rotateCertificates": True}))
            approver = Approver(env)
            approver.start()
            env.approver = approver
            env.sh(f"systemd-run --unit {UNIT} --collect -p KillMode=process "
                   f"{PYTHON} -m bootstrap.agents.kubelet "
                   f"--bootstrap-kubeconfig={boot} --kubeconfig=/etc/kubernetes/kubelet.conf "
                   f"--config={work / 'kubelet-config.yaml'} --node-ip={host_ip} "
                   f"--hostname-override={NODE} -v=1")
            env.cri = CRI(host_socket(SANDBOX, HOST))
            yield env
        finally:
            if approver is not None:
                approver.stop.set()
            try:
                out = ssh(paths["key"], paths["known_hosts"], host_ip,
                          f"systemctl stop {UNIT}; journalctl -u {UNIT} --no-pager | tail -80",
                          check=False)
                print(out.stdout)
            except Exception:
                pass
            if relay is not None:
                relay.close()
            sandbox.down(SANDBOX)
            shutil.rmtree(work, ignore_errors=True)


def _node_ready(env) -> dict | None:
    node = get_json(env, "node", NODE)
    if not node:
        return None
    conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    return node if conds.get("Ready") == "True" else None


def test_tls_bootstrap_and_node_ready(env):
    node = eventually(lambda: _node_ready(env), timeout=120)
    assert node, env.sh(f"journalctl -u {UNIT} --no-pager | tail -40").stdout
    assert env.approver.signed, "the kubelet never asked for a client certificate"
    out = env.sh("readlink /var/lib/kubelet/pki/kubelet-client-current.pem; "
                 "grep client-certificate /etc/kubernetes/kubelet.conf").stdout
    assert "kubelet-client-" in out and "kubelet-client-current.pem" in out
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.20")
    assert info["kubeletVersion"].startswith("v1.32.0")
    assert {"type": "InternalIP", "address": env.host_ip} in node["status"]["addresses"]
    for key in ("cpu", "memory", "ephemeral-storage", "pods"):
        assert key in node["status"]["capacity"] and key in node["status"]["allocatable"]
    assert any(IMAGE in i["names"] for i in node["status"]["images"])
    conflist = json.loads(env.sh("cat /etc/cni/net.d/10-bootstrap.conflist").stdout)
    assert conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] == "10.244.1.0/24"


def test_serving_certificate_from_the_cluster_ca(env):
    """serverTLSBootstrap: the kubelet serves a kubelet-serving certificate from our CA
    naming its node and IP, so a client that checks it against the CA connects."""
    assert eventually(lambda: _node_ready(env), timeout=120)
    ctx = ssl.create_default_context(cafile=env.cluster.pki.path("ca.crt"))
    ctx.check_hostname = False  # the IP is checked below from the certificate itself
    import socket

    def handshake():
        # A Ready node may still be waiting for its serving CSR to be signed; until then
        # every handshake fails, as upstream's "no serving certificate available".
        try:
            with socket.create_connection((env.host_ip, 10250), timeout=10) as sock:
                with ctx.wrap_socket(sock) as tls:
                    return tls.getpeercert(binary_form=True)
        except (ssl.SSLError, OSError):
            return None

    der = eventually(handshake, timeout=60)
    assert der, "the kubelet never served a certificate the cluster CA signed"
    cert = x509.load_der_x509_certificate(der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert env.host_ip in [str(i) for i in sans.get_values_for_type(x509.IPAddress)]
    assert NODE in sans.get_values_for_type(x509.DNSName)
    assert cert.subject.rfc4514_string() == f"CN=system:node:{NODE},O=system:nodes"


def test_lease_renews(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    first = get_json(env, "lease", NODE, "-n", "kube-node-lease")
    assert first and first["spec"]["holderIdentity"] == NODE
    assert first["spec"]["leaseDurationSeconds"] == 40
    renewed = eventually(lambda: (get_json(env, "lease", NODE, "-n", "kube-node-lease") or {})
                         .get("spec", {}).get("renewTime") != first["spec"]["renewTime"],
                         timeout=30)
    assert renewed


def _pod(name: str, command: list[str], **extra) -> str:
    container = {"name": "main", "image": IMAGE, "command": command,
                 "imagePullPolicy": "IfNotPresent"}
    container.update(extra.pop("container", {}))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"nodeName": NODE, "containers": [container],
                    "terminationGracePeriodSeconds": 2, **extra}}
    return yaml.safe_dump(pod)


def _status(env, name: str) -> dict:
    return (get_json(env, "pod", name) or {}).get("status") or {}


def _ready(env, name: str) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in _status(env, name).get("conditions") or [])


def _kubelet_ctx(env, user: str | None) -> ssl.SSLContext:
    if user is None:
        ctx = ssl.create_default_context()
    else:
        ctx = env.cluster.ssl_context(user, ())
    # The kubelet's serving certificate is self-signed (no serverTLSBootstrap), as
    # with an API server that has no --kubelet-certificate-authority.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _forged_client_ctx(env, user: str) -> ssl.SSLContext:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, user)])
    now = __import__("datetime").datetime.now(__import__("datetime").UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, keyf = env.work / "forged.crt", env.work / "forged.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyf.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    ctx = _kubelet_ctx(env, None)
    ctx.load_cert_chain(str(crt), str(keyf))
    return ctx


def _kubelet_get(env, path: str, user: str | None) -> tuple[int, str]:
    url = f"https://{env.host_ip}:10250{path}"
    try:
        with urllib.request.urlopen(url, context=_kubelet_ctx(env, user), timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_pod_runs_ready_and_logs_are_authorized(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    kubectl(env, "apply", "-f", "-", input=_pod(
        "web", ["sh", "-c", "echo hello from web; echo oops >&2; exec httpd -f -p 8080"],
        container={"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}))
    assert eventually(lambda: _ready(env, "web"), timeout=90), _status(env, "web")
    st = _status(env, "web")
    assert st["phase"] == "Running" and st["podIP"].startswith("10.244.1.")
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and cs["containerID"].startswith("containerd://")
    assert cs["imageID"].startswith("sha256:")
    # The pod answers on its IP from the host (bridge cni0 is the gateway).
    out = env.sh(f"wget -q -T 5 -O- http://{st['podIP']}:8080/ || echo status=$?", check=False)
    assert "status=" in out.stdout or out.returncode == 0  # httpd answers (404 body or listing)
    kubectl(env, "create", "clusterrolebinding", "kl-log-reader",
            "--clusterrole=system:kubelet-api-admin", "--user=kl-log-reader")
    path = "/containerLogs/default/web/main"
    code, body = eventually(lambda: (lambda r: r if r[0] == 200 else None)(
        _kubelet_get(env, path, "kl-log-reader")), timeout=20) or (0, "")
    assert code == 200 and "hello from web\n" in body and "oops\n" in body
    code, body = _kubelet_get(env, path + "?tailLines=1", "kl-log-reader")
    assert code == 200 and body.count("\n") == 1
    code, body = _kubelet_get(env, path + "?timestamps=true&limitBytes=5", "kl-log-reader")
    assert code == 200 and len(body) == 5
    code, body = _kubelet_get(env, path + "?tailLines=-1", "kl-log-reader")
    assert code == 400
    code, body = _kubelet_get(env, "/pods", "kl-log-reader")
    assert code == 200 and any(p["metadata"]["name"] == "web" for p in json.loads(body)["items"])
    # Wrong user (authenticated, not authorized): 403 with upstream's text.
    code, body = _kubelet_get(env, path, "eve")
    assert code == 403 and "user=eve" in body and "subresource(s)=[proxy]" in body
    # No credentials: 401.
    code, _ = _kubelet_get(env, path, None)
    assert code == 401
    # A forged certificate for the authorized user, from a CA the kubelet does not trust.
    forged = _forged_client_ctx(env, "kl-log-reader")
    with pytest.raises((ssl.SSLError, urllib.error.HTTPError, ConnectionError)) as err:
        urllib.request.urlopen(f"https://{env.host_ip}:10250{path}", context=forged, timeout=20)
    if isinstance(err.value, urllib.error.HTTPError):
        assert err.value.code == 401
    # A forged bearer token: TokenReview says no -> 401.
    req = urllib.request.Request(f"https://{env.host_ip}:10250{path}",
                                 headers={"Authorization": "Bearer abcdef.0123456789abcdef"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=_kubelet_ctx(env, None), timeout=20)
    assert err.value.code == 401


def test_kubectl_logs_and_exec_through_the_api_server(env):
    assert eventually(lambda: _ready(env, "web"), timeout=90)
    # kubeadm binds the API server's kubelet client group to cluster-admin.
    kubectl(env, "create", "clusterrolebinding", "kl-apiserver-kubelet",
            "--clusterrole=cluster-admin", "--group=kubeadm:cluster-admins", check=False)
    logs = kubectl(env, "logs", "web", "--tail=5")
    assert "hello from web" in logs
    assert kubectl(env, "exec", "web", "--", "echo", "hi").strip() == "hi"


def test_configmap_volume_updates_reach_the_pod(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    kubectl(env, "create", "configmap", "kl-cfg", "--from-literal=greeting=hello")
    pod = yaml.safe_load(_pod("cfg", ["sleep", "600"],
                              volumes=[{"name": "cfg", "configMap": {"name": "kl-cfg"}}],
                              container={"volumeMounts": [{"name": "cfg",
                                                           "mountPath": "/etc/cfg"}]}))
    kubectl(env, "apply", "-f", "-", input=yaml.safe_dump(pod))
    assert eventually(lambda: _status(env, "cfg").get("phase") == "Running", timeout=90)

    def greeting() -> str:
        return kubectl(env, "exec", "cfg", "--", "cat", "/etc/cfg/greeting", check=False)
    assert greeting() == "hello"
    kubectl(env, "patch", "configmap", "kl-cfg", "-p", '{"data":{"greeting":"bonjour"}}')
    # Propagates on the next periodic sync (syncFrequency 10s in this config).
    assert eventually(lambda: greeting() == "bonjour", timeout=60)
    # The token volume the ServiceAccount admission added is there too.
    token = kubectl(env, "exec", "cfg", "--", "cat",
                    "/var/run/secrets/kubernetes.io/serviceaccount/token", check=False)
    assert token.count(".") == 2


def test_liveness_failure_restarts(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    kubectl(env, "apply", "-f", "-", input=_pod(
        "live", ["sh", "-c", "touch /tmp/ok; sleep 2; rm /tmp/ok; exec sleep 600"],
        container={"livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]},
                                     "periodSeconds": 1, "failureThreshold": 1}}))

    def restarted():
        cs = _status(env, "live").get("containerStatuses") or []
        return cs and cs[0]["restartCount"] >= 1
    assert eventually(restarted, timeout=90), _status(env, "live")
    events = kubectl(env, "get", "events", "--field-selector", "involvedObject.name=live")
    assert "failed liveness probe" in events


def test_crashing_container_backs_off(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    kubectl(env, "apply", "-f", "-", input=_pod("crash", ["sh", "-c", "echo bye; exit 3"]))

    def crashlooping():
        cs = (_status(env, "crash").get("containerStatuses") or [{}])[0]
        waiting = cs.get("state", {}).get("waiting", {})
        return waiting.get("reason") == "CrashLoopBackOff" and cs.get("restartCount", 0) >= 1
    assert eventually(crashlooping, timeout=90), _status(env, "crash")
    cs = _status(env, "crash")["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert "back-off 10s restarting failed container=main" in \
        cs["state"]["waiting"]["message"] or "back-off 20s" in cs["state"]["waiting"]["message"]
    code, body = _kubelet_get(env, "/containerLogs/default/crash/main?previous=true",
                              "kl-log-reader")
    assert code in (200, 400)  # 400 only when the previous instance was already collected


def test_deleted_pod_leaves_nothing(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    kubectl(env, "apply", "-f", "-", input=_pod("gone", ["sleep", "600"]))
    assert eventually(lambda: _status(env, "gone").get("phase") == "Running", timeout=90)
    uid = get_json(env, "pod", "gone")["metadata"]["uid"]
    assert env.cri.sandboxes(uid) and env.cri.containers(uid)
    kubectl(env, "delete", "pod", "gone", "--wait=false")
    assert eventually(lambda: get_json(env, "pod", "gone") is None, timeout=60)
    assert eventually(lambda: not env.cri.sandboxes(uid) and not env.cri.containers(uid),
                      timeout=30)
    # Every veth and CNI netns left belongs to a sandbox that is still up.
    ready = [sb for sb in env.cri.sandboxes() if sb.state == 0]
    netns = [line for line in env.sh("ip netns list").stdout.splitlines()
             if line.startswith("cni-")]
    # (the host's own eth0 is a veth onto the sandbox bridge; the rest are pods')
    veths = int(env.sh("ip -o link show type veth | grep -vc ': eth0@'", check=False)
                .stdout.strip())
    assert len(netns) == len(ready)
    assert veths == len(ready)
    assert not env.sh(f"ls /var/lib/kubelet/pods/{uid} 2>/dev/null; "
                      f"ls -d /var/log/pods/*_{uid} 2>/dev/null", check=False).stdout.strip()


def test_static_pod_gets_a_mirror(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    manifest = yaml.safe_load(_pod("static-web", ["sleep", "600"]))
    del manifest["spec"]["nodeName"]
    (env.work / "manifests" / "static-web.yaml").write_text(yaml.safe_dump(manifest))
    name = f"static-web-{NODE}"
    assert eventually(lambda: _status(env, name).get("phase") == "Running", timeout=90), \
        get_json(env, "pod", name)
    mirror = get_json(env, "pod", name)
    assert "kubernetes.io/config.mirror" in mirror["metadata"]["annotations"]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
    (env.work / "manifests" / "static-web.yaml").unlink()
    assert eventually(lambda: get_json(env, "pod", name) is None, timeout=60)


def test_restarted_kubelet_adopts_and_cleans_orphans(env):
    assert eventually(lambda: _node_ready(env), timeout=120)
    kubectl(env, "apply", "-f", "-", input=_pod("keep", ["sleep", "600"]))
    kubectl(env, "apply", "-f", "-", input=_pod("orphan", ["sleep", "600"]))
    for name in ("keep", "orphan"):
        assert eventually(lambda n=name: _status(env, n).get("phase") == "Running", timeout=90)
    keep_uid = get_json(env, "pod", "keep")["metadata"]["uid"]
    orphan_uid = get_json(env, "pod", "orphan")["metadata"]["uid"]
    kept = {c.id for c in env.cri.containers(keep_uid) if c.state == 1}
    env.sh(f"systemctl kill -s KILL {UNIT}; systemctl stop {UNIT}; "
           f"systemctl reset-failed {UNIT}", check=False)
    # While the kubelet is down the pod is removed for good: nobody stops its containers.
    kubectl(env, "delete", "pod", "orphan", "--grace-period=0", "--force")
    assert env.cri.containers(orphan_uid)
    env.sh(f"systemd-run --unit {UNIT} --collect -p KillMode=process "
           f"{PYTHON} -m bootstrap.agents.kubelet --kubeconfig=/etc/kubernetes/kubelet.conf "
           f"--config={env.work / 'kubelet-config.yaml'} --node-ip={env.host_ip} "
           f"--hostname-override={NODE} -v=1")
    assert eventually(lambda: not env.cri.containers(orphan_uid)
                      and not env.cri.sandboxes(orphan_uid), timeout=60)
    # The live pod was adopted: the same container still runs, no restart.
    assert {c.id for c in env.cri.containers(keep_uid) if c.state == 1} == kept
    assert _status(env, "keep")["containerStatuses"][0]["restartCount"] == 0
