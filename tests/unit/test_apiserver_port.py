"""kubespray's kube_apiserver_port (kubeadm's localAPIEndpoint.bindPort) flows to
every place that names the API servers' port; the localhost balancer keeps its
own loadbalancer_apiserver_port, as kubespray does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from test_cluster_up_flow import Connector
from test_cluster_up_kubespray_vars import write_inventory

from bootstrap.config.cluster import load_cluster_config
from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.flows import cluster_up as cu
from bootstrap.flows import node_vars, preflight
from bootstrap.flows.init import InitContext
from bootstrap.pki.kubeconfig import read_kubeconfig, server_url
from bootstrap.remote.fake import FakeConnection
from bootstrap.remote.result import Result

PORT = 6444


def _kubeadm_commands(conn: FakeConnection) -> list[str]:
    return [c for c in conn.commands if "bootstrap " in c and (" init " in c or " join " in c)]


def test_kube_apiserver_port_is_applied_by_cluster_up(tmp_path):
    inv = write_inventory(tmp_path, f"kube_apiserver_port: {PORT}\n")
    connect = Connector()
    result = cu.cluster_up(str(inv), tags="pki,loadbalancer,control-plane", connect=connect)
    assert not result.recap.failed
    art = tmp_path / "artifacts"
    # What `bootstrap init` on the first control-plane host reads.
    assert load_cluster_config(art / "kubeadm-config.yaml").bind_port == PORT
    docs = list(yaml.safe_load_all((art / "kubeadm-config.yaml").read_text()))
    assert {"kind": "InitConfiguration", "localAPIEndpoint": {"bindPort": PORT}}.items() <= \
        {k: v for d in docs if d.get("kind") == "InitConfiguration" for k, v in d.items()}.items()
    # The user's admin.conf and the discovery file reach the first API server on its port.
    assert read_kubeconfig(art / "admin.conf").server == f"https://10.9.0.1:{PORT}"
    assert yaml.safe_load((art / "discovery.conf").read_text())["clusters"][0]["cluster"][
        "server"] == f"https://10.9.0.1:{PORT}"
    # Nodes go through the localhost balancer on its own (default) port ...
    assert read_kubeconfig(art / "kube-proxy.conf").server == "https://127.0.0.1:6443"
    # ... which forwards to every API server on the bind port.
    cfg = connect.conns["w1"].files["/etc/haproxy/haproxy.cfg"].decode()
    assert "bind 127.0.0.1:6443" in cfg
    for n in (1, 2, 3):
        assert f"server cp{n} 10.9.0.{n}:{PORT} check" in cfg
    assert ":6443 check" not in cfg
    # Control-plane joins bind their API servers to the same port.
    joins = _kubeadm_commands(connect.conns["cp2"])
    assert joins and all(f"--apiserver-bind-port {PORT}" in c for c in joins), joins


def test_balancer_port_and_bind_port_stay_distinct(tmp_path):
    inv = write_inventory(tmp_path, f"kube_apiserver_port: {PORT}\n"
                                    "loadbalancer_apiserver_port: 7443\n")
    connect = Connector()
    cu.cluster_up(str(inv), tags="pki,loadbalancer", connect=connect)
    cfg = connect.conns["w1"].files["/etc/haproxy/haproxy.cfg"].decode()
    assert "bind 127.0.0.1:7443" in cfg and f"server cp1 10.9.0.1:{PORT} check" in cfg
    assert read_kubeconfig(tmp_path / "artifacts" / "kube-proxy.conf").server == \
        "https://127.0.0.1:7443"


class _Inv:
    """The few inventory facts api_endpoint reads."""

    def __init__(self, cps: int, group_vars: dict | None = None):
        @dataclasses.dataclass
        class H:
            name: str
            node_ip: str

        self.control_plane = [H(f"cp{i}", f"10.0.0.{i}") for i in range(1, cps + 1)]
        self.hosts = [h.name for h in self.control_plane]
        self._vars = group_vars or {}
        self.path = Path("inventory.ini")

    def vars_for(self, host):
        return self._vars


def test_endpoints_name_the_bind_port_where_kubespray_does():
    assert node_vars.api_endpoint(_Inv(1), PORT).url == f"https://10.0.0.1:{PORT}"
    # loadbalancer_apiserver.port | default(kube_apiserver_port)
    lb = _Inv(3, {"loadbalancer_apiserver": {"address": "10.0.0.100"}})
    assert node_vars.api_endpoint(lb, PORT).address == f"10.0.0.100:{PORT}"
    lb_port = _Inv(3, {"loadbalancer_apiserver": {"address": "10.0.0.100", "port": 443}})
    assert node_vars.api_endpoint(lb_port, PORT).port == 443
    # The localhost balancer: loadbalancer_apiserver_port, 6443 by default.
    assert node_vars.api_endpoint(_Inv(3), PORT).address == "127.0.0.1:6443"
    assert [s["port"] for s in node_vars.lb_servers(_Inv(2), PORT)] == [PORT, PORT]


def test_kubeconfig_urls_use_the_bind_port():
    cfg = ClusterConfig(bind_port=PORT)
    assert server_url(cfg, "10.0.0.1") == f"https://10.0.0.1:{PORT}"
    assert server_url(cfg, "10.0.0.1", local=True) == f"https://10.0.0.1:{PORT}"
    # kubeadm: a controlPlaneEndpoint without a port is reached on bindPort ...
    named = dataclasses.replace(cfg, control_plane_endpoint="api.example")
    assert server_url(named, "10.0.0.1") == f"https://api.example:{PORT}"
    # ... one with a port on that port; the local API server still on bindPort.
    lb = dataclasses.replace(cfg, control_plane_endpoint="127.0.0.1:6443")
    assert server_url(lb, "10.0.0.1") == "https://127.0.0.1:6443"
    assert server_url(lb, "10.0.0.1", local=True) == f"https://10.0.0.1:{PORT}"


def test_apiserver_unit_listens_on_the_bind_port():
    from bootstrap.engine.roles import default_roles_path, shared_templates_dir
    from bootstrap.engine.templating import LazyVars, render_file

    roles = default_roles_path()[0]
    defaults = yaml.safe_load(open(f"{roles}/control-plane/defaults/main.yml"))
    v = LazyVars([defaults, {"node_ip": "10.0.0.11", "cluster_name": "kubernetes"},
                  node_vars.control_plane_vars(ClusterConfig(bind_port=PORT), "10.0.0.11")])
    unit = render_file("kube-apiserver.service.j2",
                       [f"{roles}/control-plane/templates", *shared_templates_dir([roles])], v)
    assert f"--secure-port={PORT}" in unit and "--secure-port=6443" not in unit


def test_init_flag_overrides_the_config_and_bad_values_are_one_line(tmp_path):
    ctx = InitContext({"apiserver_bind_port": str(PORT)}, lambda _line: None)
    assert ctx.config.bind_port == PORT
    assert ctx.endpoint_url.endswith(f":{PORT}")
    for bad in ("0", "70000", "https"):
        with pytest.raises(UserError) as ei:
            InitContext({"apiserver_bind_port": bad}, lambda _line: None)
        assert ei.value.line().startswith("--apiserver-bind-port: "), ei.value.line()
        assert "\n" not in ei.value.line() and ei.value.exit_code == 2


def test_preflight_checks_the_bind_port_by_kubeadm_s_name():
    conn = FakeConnection("h", responses={
        r"^id -u": Result(0, "0\n"),
        r"grep -qs": Result(1, ""),
        rf"sport = :{PORT}": Result(0, f"LISTEN 0 4096 *:{PORT} *:*\n"),
        r"command -v": Result(0, "/usr/bin/x\n"),
        r"ip_forward|bridge-nf-call": Result(0, "1\n"),
        r"date -u": Result(0, "0\n"),
    })
    with pytest.raises(UserError) as ei:
        preflight.run_checks(conn, "control-plane", None, lambda _line: None,
                             local_etcd=False, apiserver_port=PORT)
    assert f"[ERROR Port-{PORT}]: Port {PORT} is in use" in ei.value.line()
    # The ignore list takes the check's name.
    preflight.run_checks(conn, "control-plane", f"Port-{PORT},Clock,SystemVerification",
                         lambda _line: None, local_etcd=False, apiserver_port=PORT)


def test_cluster_status_records_the_host_s_bind_port():
    from types import SimpleNamespace

    from bootstrap.flows import init_cluster

    class API:
        patched: dict = {}

        def get(self, *_args):
            return {"data": {"ClusterStatus": "apiEndpoints: {}\n"}}

        def patch(self, _res, _name, body, *_args, **_kw):
            API.patched = body

    ctx = SimpleNamespace(api=API(), advertise_address="10.0.0.2", node_name="cp2",
                          config=ClusterConfig(bind_port=PORT), dry_run=False, changed=0,
                          echo=lambda _line: None)
    init_cluster.register_api_endpoint(ctx)
    status = yaml.safe_load(API.patched["data"]["ClusterStatus"])
    assert status["apiEndpoints"]["cp2"] == {"advertiseAddress": "10.0.0.2", "bindPort": PORT}
