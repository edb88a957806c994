"""The init workflow as data over a fake host: phases, dry run, rendered units, preflight."""

from __future__ import annotations

import re

import pytest

from bootstrap.errors import UserError
from bootstrap.flows import node_vars, preflight
from bootstrap.flows.init import init_workflow
from bootstrap.flows.workflow import phase_paths, run_workflow
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection


def _run(tmp_path, conn, **params):
    lines: list[str] = []
    wf = init_workflow(lines.append, connection=conn)
    base = {"cert_dir": str(tmp_path / "pki"), "kubeconfig_dir": str(tmp_path / "kube"),
            "node_name": "cp-1", "advertise_address": "10.0.0.11", "token":
            "abcdef.0123456789abcdef"}
    run_workflow(wf, {**base, **params}, skip=params.pop("skip", set()))
    return lines


def test_phases_are_kubeadms_in_order():
    wf = init_workflow(print)
    top = [p for p in phase_paths(wf) if "/" not in p]
    assert top == ["preflight", "certs", "kubeconfig", "etcd", "control-plane", "kubelet-start",
                   "wait-control-plane", "upload-config", "upload-certs", "mark-control-plane",
                   "bootstrap-token", "kubelet-finalize", "addons", "show-join-command"]
    assert "addons/coredns" in phase_paths(wf) and "addons/kube-proxy" in phase_paths(wf)


def test_dry_run_writes_nothing_and_says_what_it_would(tmp_path):
    conn = FakeConnection("cp-1", responses={r"^id -u": Result(0, "0\n"),
                                             r"ip_forward": Result(0, "1\n")})
    lines = _run(tmp_path, conn, dry_run=True, ignore_preflight_errors="all",
                 upload_certs=True)
    text = "\n".join(lines)
    assert not (tmp_path / "pki").exists() and not (tmp_path / "kube").exists()
    assert conn.puts == []  # no unit written on the host
    assert re.search(r"Would write certificate authority .*pki/ca.crt", text)
    assert "Would write kubeconfig" in text and "admin.conf" in text
    assert "Would wait for https://10.0.0.11:6443/readyz" in text
    assert "ConfigMap kube-system/kubeadm-config would create" in text
    assert "Would create ConfigMap kube-public/cluster-info" in text
    assert "Service kube-system/kube-dns would create" in text
    assert "bootstrap join 10.0.0.11:6443 --token abcdef.0123456789abcdef" in text
    assert "--control-plane --certificate-key" in text
    assert re.search(r"^\[init\] \d+ would change$", lines[-1])
    assert not any(c.startswith("systemctl start") or c.startswith("systemctl restart")
                   for c in conn.commands)


def test_skip_phases_and_a_single_phase(tmp_path):
    conn = FakeConnection("cp-1")
    lines = _run(tmp_path, conn, dry_run=True, skip={"preflight", "certs", "kubeconfig", "etcd",
                                                     "upload-config", "upload-certs",
                                                     "mark-control-plane", "bootstrap-token",
                                                     "addons", "show-join-command",
                                                     "wait-control-plane", "kubelet-finalize"})
    text = "\n".join(lines)
    assert "[control-plane]" in text and "[kubelet-start]" in text
    assert "[certs]" not in text and "[preflight]" not in text


def test_apiserver_unit_carries_the_kube_flags(tmp_path):
    from bootstrap.config.model import ClusterConfig
    from bootstrap.engine.roles import default_roles_path, shared_templates_dir
    from bootstrap.engine.templating import LazyVars, render_file

    roles = default_roles_path()[0]
    search = [f"{roles}/control-plane/templates", *shared_templates_dir([roles])]
    defaults = __import__("yaml").safe_load(open(f"{roles}/control-plane/defaults/main.yml"))
    v = LazyVars([defaults, {"node_ip": "10.0.0.11", "cluster_name": "kubernetes"},
                  node_vars.control_plane_vars(ClusterConfig(), "10.0.0.11")])
    unit = render_file("kube-apiserver.service.j2", search, v)
    for flag in ("--advertise-address=10.0.0.11", "--etcd-servers=https://127.0.0.1:2379",
                 "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
                 "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                 "--enable-bootstrap-token-auth=true", "--client-ca-file="):
        assert flag in unit
    assert "ExecStart=/opt/bootstrap/current/bin/bootstrap-apiserver" in unit
    cm = render_file("kube-controller-manager.service.j2",
                     [f"{roles}/control-plane/templates", *shared_templates_dir([roles])], v)
    assert "--controllers=*,bootstrapsigner,tokencleaner" in cm
    assert "--cluster-cidr=10.244.0.0/16" in cm and "--secure-port=10257" in cm


def test_preflight_names_and_ignores():
    conn = FakeConnection("h", responses={
        r"^id -u": Result(0, "1000\n"),
        r"grep -qs": Result(1, ""),
        r"sport = :6443": Result(0, "LISTEN 0 4096 *:6443 *:*\n"),
        r"command -v": Result(0, "/usr/bin/x\n"),
        r"ip_forward": Result(0, "1\n"),
        r"tail -n \+2 /proc/swaps": Result(0, "/swapfile file 100 0 -2\n"),
        r"date -u": Result(0, "0\n"),
    })
    lines: list[str] = []
    with pytest.raises(UserError) as ei:
        preflight.run_checks(conn, "control-plane", None, lines.append)
    msg = ei.value.line()
    assert "[ERROR IsPrivilegedUser]" in msg and "[ERROR Port-6443]" in msg
    assert "[ERROR Clock]" in msg and "\n" not in msg
    assert any("[WARNING Swap]" in ln for ln in lines)  # a warning, never an error
    lines.clear()
    with pytest.raises(UserError) as ei:
        preflight.run_checks(conn, "control-plane", "IsPrivilegedUser,Port-6443", lines.append)
    assert "IsPrivilegedUser" not in ei.value.line() and "[ERROR Clock]" in ei.value.line()
    assert any("[WARNING IsPrivilegedUser]" in ln for ln in lines)
    preflight.run_checks(conn, "control-plane", "all", lines.append)  # nothing raised
    with pytest.raises(UserError, match="unknown check 'Nope'.*checks: all, IsPrivilegedUser"):
        preflight.run_checks(conn, "node", "Nope", lines.append)


def test_our_own_units_do_not_fail_the_port_checks():
    conn = FakeConnection("h", responses={
        r"grep -qs 'Managed by bootstrap' /etc/systemd/system/kube-apiserver.service":
            Result(0, ""),
        r"grep -qs": Result(1, ""),
        r"sport = :": Result(0, "LISTEN 0 4096 *:1 *:*\n"),
    })
    assert preflight._port(6443, "kube-apiserver")(conn) is None
    assert preflight._port(10259, "kube-scheduler")(conn) == "Port 10259 is in use"


def test_dns_ip_is_the_tenth_service_address():
    from bootstrap.config.model import ClusterConfig, Networking

    assert node_vars.cluster_dns_ip(ClusterConfig()) == "10.96.0.10"
    cfg = ClusterConfig(networking=Networking(service_subnet="10.100.0.0/16"))
    assert node_vars.cluster_dns_ip(cfg) == "10.100.0.10"


def test_apply_writes_only_what_differs():
    from bootstrap.flows.kubeapi import KubeAPI, contains

    live = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "2"},
            "metadata": {"name": "x", "namespace": "kube-system", "resourceVersion": "7",
                         "labels": {"k": "v"}}}
    want = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"},
            "metadata": {"name": "x", "namespace": "kube-system"}}
    assert contains(live, want)
    assert not contains(live, {**want, "data": {"a": "2"}})
    assert not contains({"l": [1, 2]}, {"l": [1]})

    calls = []

    class Fake(KubeAPI):
        def __init__(self):
            super().__init__(lambda: None, "fake")

        def get(self, resource, name, namespace=None):
            return live

        def _call(self, fn):
            calls.append(fn)
            return {"metadata": {"resourceVersion": "8"}}

    api = Fake()
    assert api.apply(want) == "unchanged" and calls == []
    assert api.apply({**want, "data": {"a": "9"}}) == "configured" and len(calls) == 1


def test_kubelet_finalize_then_init_again_keeps_the_rotated_credentials(tmp_path):
    from bootstrap.flows import init_node

    pki, kube = tmp_path / "pki", tmp_path / "kube"
    lines: list[str] = []
    wf = init_workflow(lines.append, connection=FakeConnection("cp-1"))
    params = {"cert_dir": str(pki), "kubeconfig_dir": str(kube), "node_name": "cp-1",
              "advertise_address": "10.0.0.11"}
    from bootstrap.flows.workflow import run_tree

    ctx = wf.make_context(wf.params(params))
    run_tree([p for p in wf.phases if p.name in ("certs", "kubeconfig")], ctx)
    pem = tmp_path / "kubelet-client-current.pem"
    pem.write_text("rotated")
    ctx.params["kubelet_client_pem"] = str(pem)
    init_node.run_kubelet_finalize(ctx)
    assert f"client-certificate: {pem}" in (kube / "kubelet.conf").read_text()
    again = wf.make_context(wf.params(params))
    lines.clear()
    run_tree([p for p in wf.phases if p.name == "kubeconfig"], again)
    assert any("rotated kubelet client certificate" in ln for ln in lines)
    assert again.changed == 0
