"""containerd, images and the registry on sandbox hosts, converged by the roles over SSH.

Host 1 runs the registry; both run containerd with the air-gapped images
imported. A pod sandbox gets an IP from the CNI bridge and serves HTTP; an
image pushed to host 1's registry is pulled on host 2 through CRI PullImage.
Teardown of the sandbox leaves no shim, mount or netns on the machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from cri_api.v1 import api_pb2
from cri_helpers import conflist, cri_client, host_socket, pod
from e2e_names import sandbox_name

from bootstrap import pki
from bootstrap.config.inventory import load_inventory
from bootstrap.config.model import ClusterConfig
from bootstrap.engine import Play, run_play
from bootstrap.errors import UserError
from bootstrap.images import BUSYBOX_REF, PAUSE_REF, build, busybox_spec, pause_spec
from bootstrap.images.registry import push, registry_vars
from bootstrap.remote.pool import close_all, connect_all
from bootstrap.sandbox import host, lifecycle
from bootstrap.sandbox import state as sandbox_state

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(900)]

SANDBOX = sandbox_name("rtcd")


def _converge(env, roles: list[str]):
    h1 = env.hosts[0]
    plan = {h: [{"src": str(env.pki / "ca.crt"), "dest": "/etc/kubernetes/pki/ca.crt",
                 "mode": "0644"}] for h in env.hosts}
    extra = {"pki_plan": plan, "containerd_images_local": str(env.images), **env.registry}
    assert env.inv.hosts[h1].node_ip == env.ip1
    return run_play(Play("node", ["all"], roles), env.inv, env.conns, extra_vars=extra,
                    dry_run=False)


@pytest.fixture(scope="module")
def env(sandbox_factory, tmp_path_factory):
    work = tmp_path_factory.mktemp("rtcd")
    images = work / "images"
    build(busybox_spec(), images)
    build(pause_spec(), images)
    pki_dir = work / "pki"
    pki.ensure_cas(pki_dir, ClusterConfig())
    try:
        inv = load_inventory(sandbox_factory(SANDBOX, 2))
        hosts = sorted(inv.hosts)
        ip1 = inv.hosts[hosts[0]].node_ip
        conns = connect_all(list(inv.hosts.values()))
        try:
            env = SimpleNamespace(inv=inv, conns=conns, hosts=hosts, ip1=ip1, images=images,
                                  pki=pki_dir, registry=registry_vars(pki_dir, hosts[0], ip1),
                                  work=work)
            recap = _converge(env, ["pki", "registry", "containerd"])
            recap.raise_on_failure()
            yield env
        finally:
            close_all(conns)
    finally:
        sandbox_factory.down(SANDBOX)


def test_second_converge_changes_nothing(env):
    recap = _converge(env, ["pki", "registry", "containerd"])
    recap.raise_on_failure()
    assert recap.changed == 0


def test_config_and_units(env):
    h1, h2 = (env.conns[h] for h in env.hosts)
    for conn in (h1, h2):
        assert conn.run("systemctl is-enabled containerd").stdout.strip() == "enabled"
        # Sandbox hosts cannot lower OOM scores: the role detected it.
        dump = conn.run("containerd config dump").stdout
        assert "restrict_oom_score_adj = true" in dump
        assert "SystemdCgroup = false" in dump
        # The state dir is the per-host bind mount on the machine's disk, not the overlay root.
        fstype = conn.run("findmnt -n -o FSTYPE --target /var/lib/containerd").stdout.strip()
        assert fstype not in ("overlay", "tmpfs", "")
        images = conn.run("ctr -n k8s.io images ls -q").stdout.split()
        assert BUSYBOX_REF in images and PAUSE_REF in images
    # Only the registry host runs the registry; elsewhere it stays masked.
    assert h1.run("systemctl is-active docker-registry").stdout.strip() == "active"
    assert h2.run("systemctl is-enabled docker-registry", check=False).stdout.strip() == "masked"


def test_containerd_never_runs_on_the_machine(env):
    machine_mnt = os.stat("/proc/self/ns/mnt").st_ino
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            mnt = os.stat(entry / "ns" / "mnt").st_ino
        except OSError:
            continue
        if comm.startswith("containerd"):
            assert mnt != machine_mnt, f"{comm} (pid {entry.name}) runs on the machine itself"


def test_pod_gets_a_bridge_ip_and_serves(env):
    host = env.hosts[1]
    conn = env.conns[host]
    conn.run("cat > /etc/cni/net.d/10-rtcd.conflist",
             input=conflist("rtcd", "10.244.7.0/24"))
    try:
        with cri_client(host_socket(SANDBOX, host)) as cri, pod(cri, "web") as (pod_id, cfg):
            ip = cri.pod_ip(pod_id)
            assert ip.startswith("10.244.7.")
            cri.start_container(pod_id, cfg, "httpd", BUSYBOX_REF,
                                ["httpd", "-f", "-p", "8080", "-h", "/etc"])
            # The pod's /etc/hostname is the sandbox hostname; wget retries until httpd listens.
            out = conn.run(f"for i in $(seq 50); do wget -q -T 2 -O- http://{ip}:8080/hostname "
                           "&& break; sleep 0.1; done", check=False, timeout=60)
            assert out.stdout.strip() == "web"
    finally:
        conn.run("rm -f /etc/cni/net.d/10-rtcd.conflist")


def _client_pair(env) -> tuple[Path, Path]:
    return (Path(env.registry["registry_client_cert_local"]),
            Path(env.registry["registry_client_key_local"]))


def test_push_to_registry_and_pull_on_the_other_host(env):
    ref = f"{env.ip1}:5000/busybox:1.35"
    push(env.images / "busybox-1.35.tar", ref, env.pki / "ca.crt", *_client_pair(env))
    with cri_client(host_socket(SANDBOX, env.hosts[1])) as cri:
        pulled = cri.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)),
                                      timeout=120)
        assert pulled.image_ref.startswith("sha256:")
        status = cri.images.ImageStatus(api_pb2.ImageStatusRequest(
            image=api_pb2.ImageSpec(image=ref)), timeout=60)
        assert ref in status.image.repo_tags


def test_push_refuses_a_registry_signed_by_another_ca(env, tmp_path):
    other = tmp_path / "other"
    pki.ensure_cas(other, ClusterConfig())
    with pytest.raises(UserError, match="push of .* failed"):
        push(env.images / "busybox-1.35.tar", f"{env.ip1}:5000/busybox:evil", other / "ca.crt",
             *_client_pair(env))


def test_registry_refuses_clients_without_a_cluster_client_certificate(env, tmp_path):
    # Pushing without the pair, or with a pair from another CA, fails at the TLS handshake.
    with pytest.raises(UserError, match="push of .* failed"):
        push(env.images / "busybox-1.35.tar", f"{env.ip1}:5000/busybox:anon", env.pki / "ca.crt")
    other = tmp_path / "other"
    pki.ensure_cas(other, ClusterConfig())
    from bootstrap.images.registry import ensure_client_cert
    forged = ensure_client_cert(other, other)[:2]
    with pytest.raises(UserError, match="push of .* failed"):
        push(env.images / "busybox-1.35.tar", f"{env.ip1}:5000/busybox:forged",
             env.pki / "ca.crt", *forged)
    # Reads are guarded the same way: no pair, no manifest.
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes((env.pki / "ca.crt").read_bytes())
    read = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs),
                           f"docker://{env.ip1}:5000/busybox:1.35"],
                          capture_output=True, text=True, timeout=60)
    assert read.returncode != 0 and "Digest" not in read.stdout


def test_pull_from_untrusted_registry_fails(env):
    # host 2 trusts only the cluster registry; the same registry under another
    # name has no hosts.toml, so containerd verifies with the system store and fails.
    ref = f"{env.hosts[0]}:5000/busybox:1.35"
    with cri_client(host_socket(SANDBOX, env.hosts[1])) as cri:
        with pytest.raises(Exception, match="certificate|x509|tls"):
            cri.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)),
                                 timeout=60)


def _shims_of(inodes: set[int]) -> set[tuple[int, int]]:
    """(pid, start time) of containerd shims living in the given PID namespaces."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().startswith("containerd-shim") and \
                    os.stat(entry / "ns" / "pid").st_ino in inodes:
                found.add((int(entry.name), host.proc_start_time(int(entry.name))))
        except OSError:
            continue
    return found


def test_teardown_leaves_nothing_on_the_machine(env):
    host_dir = lifecycle.paths(SANDBOX)["dir"]
    env.conns[env.hosts[0]].run("cat > /etc/cni/net.d/10-rtcd.conflist",
                                input=conflist("rtcd", "10.244.8.0/24"))
    with cri_client(host_socket(SANDBOX, env.hosts[0])) as cri:
        cri.run_pod("left-behind")  # a running pod: down must clean it up anyway
    # Other sandboxes on this machine run shims too: look only at this sandbox's.
    pid_ns = {os.stat(f"/proc/{h.init_pid}/ns/pid").st_ino
              for h in sandbox_state.load(SANDBOX).hosts.values()}
    shims = _shims_of(pid_ns)
    assert shims, "the pod's shim should be running before teardown"
    lifecycle.down(SANDBOX)
    assert not [p for p, start in shims if host.proc_start_time(p) == start]
    with open("/proc/self/mountinfo") as fh:
        assert str(host_dir) not in fh.read()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "cni-" not in netns
    assert not host_dir.exists()
