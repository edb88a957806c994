"""kubectl logs, exec, attach, port-forward and cp through the API server and our real kubelet.

The whole chain as on a cluster: kubectl -> API server (real etcd, on the
machine) -> the kubelet (``bootstrap.agents.kubelet``, a systemd unit inside a
sandbox host, its serving certificate from the cluster CA and checked by the
API server with --kubelet-certificate-authority) -> containerd (converged by
roles/containerd). The kubelet reaches the API server through a relay on the
sandbox bridge (tests/integration/kubelet_host.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bootstrap import sandbox
from bootstrap.pki import SERVER_AUTH, CertSpec, load_ca
from bootstrap.pki.certs import cert_to_pem, sign_leaf
from bootstrap.pki.keys import generate_key, key_to_pem
from bootstrap.sandbox import state as sandbox_state

from .cluster import Cluster, eventually
from .kubelet_host import Relay, converge_containerd, gateway, retarget, ssh

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

SANDBOX = os.environ.get("BOOTSTRAP_E2E_PREFIX", "") + "rtkl"
NODE = f"{SANDBOX}-1"
UNIT = "rt-kubelet"
# The checkout's own interpreter: sandbox hosts see the machine's paths (overlay root).
PYTHON = sys.executable
IMAGE = "docker.io/library/busybox:1.35"


def kubectl(kc, *args, stdin: str | None = None, check: bool = True, timeout: float = 60):
    proc = subprocess.run(["/usr/bin/kubectl", f"--kubeconfig={kc}", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return proc


def _pod(name: str, containers: dict[str, list[str]], restart: str = "Always",
         stdin: tuple[str, ...] = ()) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": c, "image": IMAGE, "command": cmd,
                                 "imagePullPolicy": "IfNotPresent", "stdin": c in stdin}
                                for c, cmd in containers.items()]}})


def _status(env, name: str) -> dict:
    out = kubectl(env.admin, "get", "pod", name, "-o", "json", check=False)
    return json.loads(out.stdout).get("status", {}) if out.returncode == 0 else {}


def _running(env, name: str) -> bool:
    st = _status(env, name)
    return st.get("phase") == "Running" and all(
        "running" in (c.get("state") or {}) for c in st.get("containerStatuses") or [{}])


@pytest.fixture(scope="module")
def env():
    # Files the host reads must be on the machine's disk (the host's /tmp is its own).
    work = Path(tempfile.mkdtemp(prefix="rt-kl-", dir="/var/tmp"))
    cluster = Cluster()
    cluster.extra.append(f"--kubelet-certificate-authority={cluster.pki.path('ca.crt')}")
    relay = None
    try:
        cluster.start()
        inventory = sandbox.up(SANDBOX, 1)
        host = sandbox_state.load(SANDBOX).hosts[NODE]
        paths = sandbox.paths(SANDBOX)
        converge_containerd(inventory, work / "images")
        relay = Relay(gateway(SANDBOX), cluster.server.port)
        admin = cluster.kubeconfig("kubernetes-admin", ("system:masters",))
        # The kubelet's own identity and a serving pair naming its InternalIP.
        kc = cluster.pki.kubeconfig(work / "node.conf", cluster.server.url,
                                    f"system:node:{NODE}", ("system:nodes",))
        retarget(kc, relay.address, work / "kubelet.conf")
        ca = load_ca(cluster.pki.dir, "ca")
        key = generate_key("ECDSA-P256")
        cert = sign_leaf(CertSpec(f"system:node:{NODE}", ("system:nodes",), (SERVER_AUTH,),
                                  dns_names=(NODE,), ips=(ipaddress.ip_address(host.ip),)),
                         key.public_key(), ca.cert, ca.key, timedelta(days=1))
        (work / "serving.crt").write_bytes(cert_to_pem(cert))
        (work / "serving.key").write_bytes(key_to_pem(key))
        shutil.copy(cluster.pki.path("ca.crt"), work / "ca.crt")
        (work / "manifests").mkdir()
        (work / "kubelet-config.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
            "podCIDR": "10.244.31.0/24",
            # Set because the kubelet (98d515f) exits when static_loop returns at once
            # without a staticPodPath.
            "staticPodPath": str(work / "manifests"),
            "tlsCertFile": str(work / "serving.crt"), "tlsPrivateKeyFile": str(work / "serving.key"),
            "authentication": {"x509": {"clientCAFile": str(work / "ca.crt")},
                               "webhook": {"enabled": True}, "anonymous": {"enabled": False}},
            "authorization": {"mode": "Webhook"}, "syncFrequency": "10s",
            "nodeStatusUpdateFrequency": "2s", "rotateCertificates": False}))
        ca_pem = Path(cluster.pki.path("ca.crt")).read_text()
        kubectl(admin, "apply", "-f", "-", stdin=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "default", "namespace": "default"}},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
             "data": {"ca.crt": ca_pem}}]))
        # What kubeadm grants the API server's kubelet-client identity.
        kubectl(admin, "create", "clusterrolebinding", "rt-apiserver-kubelet",
                "--clusterrole=system:kubelet-api-admin", "--user=kube-apiserver-kubelet-client")
        sh = lambda script, **kw: ssh(paths["key"], paths["known_hosts"], host.ip, script, **kw)  # noqa: E731
        sh("mkdir -p /var/lib/kubelet")  # the kubelet role makes it; the agent does not
        sh(f"systemd-run --unit {UNIT} --collect -p KillMode=process {PYTHON} -m "
           f"bootstrap.agents.kubelet --kubeconfig={work / 'kubelet.conf'} "
           f"--config={work / 'kubelet-config.yaml'} --node-ip={host.ip} "
           f"--hostname-override={NODE} -v=1")
        env = SimpleNamespace(cluster=cluster, admin=admin, host=host, work=work, sh=sh)
        kubectl(admin, "create", "-f", "-", stdin=_pod("web", {
            "web": ["sh", "-c", "echo hello from web; sleep 1; echo oops >&2; exec httpd -f -p 8080 -h /etc"],
            "ticker": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"],
            "echo": ["cat"],
        }, stdin=("echo",)))
        kubectl(admin, "create", "-f", "-", stdin=_pod("crash", {
            "main": ["sh", "-c", "echo run at $(date +%s%N); sleep 0.5; exit 1"]}))
        if not eventually(lambda: _running(env, "web"), timeout=120):
            print(sh(f"journalctl -u {UNIT} --no-pager | tail -60", check=False).stdout)
            raise AssertionError(f"pod web not running: {_status(env, 'web')}")
        yield env
    finally:
        try:
            if relay is not None:
                ssh(paths["key"], paths["known_hosts"], host.ip, f"systemctl stop {UNIT}",
                    check=False)
        except Exception:
            pass
        if relay is not None:
            relay.close()
        cluster.stop()
        sandbox.down(SANDBOX)
        shutil.rmtree(work, ignore_errors=True)


def test_logs_container_tail_and_since(env):
    # stdout and stderr reach the CRI log through two pipes; the container's pause
    # between them fixes their order in the log. Wait for the second line first.
    deadline = time.monotonic() + 30
    while "oops" not in (out := kubectl(env.admin, "logs", "web", "-c", "web").stdout) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert out == "hello from web\noops\n"
    assert kubectl(env.admin, "logs", "web", "-c", "web", "--tail=1").stdout == "oops\n"
    assert kubectl(env.admin, "logs", "web", "-c", "web", "--since=1h").stdout == out
    stamped = kubectl(env.admin, "logs", "web", "-c", "web", "--timestamps").stdout
    assert stamped.splitlines()[0].endswith(" hello from web")
    both = kubectl(env.admin, "logs", "web", "--all-containers", "--tail=1").stdout
    assert "oops" in both and "tick" in both


def test_logs_follow_streams_new_lines(env):
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", "logs", "-f",
                             "web", "-c", "ticker", "--tail=1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Lines written after the request started arrive over the same response.
        seen = [int(proc.stdout.readline().split()[1]) for _ in range(4)]
        assert seen == list(range(seen[0], seen[0] + 4))
    finally:
        proc.kill()
        proc.wait(10)


def test_logs_previous_after_a_restart(env):
    assert eventually(lambda: any(c.get("restartCount", 0) >= 1 for c in
                                  _status(env, "crash").get("containerStatuses") or []),
                      timeout=120), _status(env, "crash")
    out = kubectl(env.admin, "logs", "crash", "--previous").stdout
    assert out.startswith("run at ")
    never = kubectl(env.admin, "logs", "web", "-c", "web", "--previous", check=False)
    # The kubelet's 400 text, as a BadRequest Status (upstream's response checker).
    assert never.returncode != 0
    assert 'Error from server (BadRequest): previous terminated container "web"' in never.stderr


def test_logs_without_container_choice(env):
    out = kubectl(env.admin, "get", "--raw", "/api/v1/namespaces/default/pods/web/log",
                  check=False)
    assert "a container name must be specified for pod web, choose one of: [web ticker echo]" \
        in out.stderr


def test_exec_stdin_cp_and_attach(env):
    assert kubectl(env.admin, "exec", "web", "-c", "web", "--", "echo", "hi").stdout == "hi\n"
    data = "through the kubelet\n" * 200
    assert kubectl(env.admin, "exec", "-i", "web", "-c", "web", "--", "cat",
                   stdin=data).stdout == data
    src = env.work / "cp.txt"
    src.write_text(data)
    kubectl(env.admin, "cp", str(src), "default/web:/tmp/cp.txt", "-c", "web")
    back = env.work / "back.txt"
    kubectl(env.admin, "cp", "default/web:/tmp/cp.txt", str(back), "-c", "web")
    assert back.read_text() == data
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", "attach", "web",
                             "-c", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().startswith("tick ")
    finally:
        proc.kill()
        proc.wait(10)


def test_port_forward(env):
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", "port-forward",
                             "pod/web", ":8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert "-> 8080" in line, proc.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=10) as r:
            assert r.read().decode().strip() == "web"
    finally:
        proc.terminate()
        proc.wait(10)


def test_user_without_log_or_exec_permission(env):
    kubectl(env.admin, "create", "role", "rt-pod-reader", "--verb=get,list", "--resource=pods")
    kubectl(env.admin, "create", "rolebinding", "rt-pod-reader", "--role=rt-pod-reader",
            "--user=rt-nobody")
    kc = env.cluster.kubeconfig("rt-nobody")
    logs = kubectl(kc, "logs", "web", "-c", "web", check=False)
    assert 'cannot get resource "pods/log"' in logs.stderr
    ex = kubectl(kc, "exec", "web", "-c", "web", "--", "true", check=False)
    assert 'cannot create resource "pods/exec"' in ex.stderr


def _pty_kubectl(env, *args: str):
    """kubectl with a terminal on stdin/stdout, as a person runs `kubectl exec -it`."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    # 24 rows x 80 columns: kubectl sends its terminal's size over the resize stream.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", *args],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    return proc, master


def _read_until(fd: int, marker: bytes, limit: int = 1 << 16) -> bytes:
    import select
    seen = b""
    while marker not in seen and len(seen) < limit:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"no output; so far {seen!r}"
        seen += os.read(fd, 4096)
    return seen


def test_exec_it_shell_over_a_tty(env):
    proc, fd = _pty_kubectl(env, "exec", "-it", "web", "-c", "web", "--", "sh")
    try:
        _read_until(fd, b"# ")  # the shell's prompt: it runs and reads our terminal
        # The size travels on its own resize stream, as upstream's, and may land a moment
        # after the shell started (then `stty size` fails once): ask again, a few times.
        seen = b""
        for _ in range(5):
            os.write(fd, b"echo $((6*7)) $(stty size)\r")
            seen = _read_until(fd, b"# ")
            if b"42 24 80" in seen:
                break
            time.sleep(0.5)
        # The shell ran it, and the container's TTY has the size of ours.
        assert b"42 24 80" in seen, seen
        os.write(fd, b"exit 0\r")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(fd)


def test_attach_with_stdin(env):
    proc = subprocess.Popen(["/usr/bin/kubectl", f"--kubeconfig={env.admin}", "attach", "-i",
                             "web", "-c", "echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("ping through attach\n")
        proc.stdin.flush()
        # The container's cat gets our line on its stdin and writes it to its stdout.
        assert proc.stdout.readline() == "ping through attach\n"
    finally:
        proc.kill()
        proc.wait(10)
