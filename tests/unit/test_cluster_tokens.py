"""Bootstrap tokens as data, the API endpoint decision, and cluster up's artifacts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.cli import main
from bootstrap.config.inventory import load_inventory
from bootstrap.config.model import ClusterConfig
from bootstrap.errors import UserError
from bootstrap.flows import apiobjects, node_vars
from bootstrap.flows import token as flow

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text, want", [
    ("24h", timedelta(hours=24)), ("1h30m", timedelta(minutes=90)), ("90s", timedelta(seconds=90)),
    ("0", None), ("1.5h", timedelta(minutes=90)),
])
def test_ttl_is_a_go_duration(text, want):
    assert flow.parse_ttl(text) == want


@pytest.mark.parametrize("args, needle", [
    (["--ttl", "3x"], "invalid duration"),
    (["--ttl", "h"], "invalid duration"),
    (["--usages", "signing,nope"], "invalid bootstrap token usage 'nope'"),
    (["--groups", "system:masters"], "must match"),
    (["--usages", "signing", "--groups", "system:bootstrappers:x"], "authentication usage"),
    (["not-a-token"], "wrong format"),
])
def test_bad_create_flags_are_one_line_exit_2(args, needle, tmp_path):
    res = CliRunner().invoke(main, ["token", "create", *args, "--kubeconfig",
                                    str(tmp_path / "none")])
    assert res.exit_code == 2 and needle in res.output and res.output.count("\n") == 1, res.output


class FakeAPI:
    def __init__(self):
        self.objs: dict[str, dict] = {}

    def get(self, resource, name, namespace=None):
        return self.objs.get(name)

    def create(self, obj):
        self.objs[obj["metadata"]["name"]] = obj
        return obj

    def list(self, resource, namespace=None, **selectors):
        return list(self.objs.values())

    def delete(self, resource, name, namespace=None):
        return self.objs.pop(name, None) is not None


def test_create_list_delete_round_trip():
    api = FakeAPI()
    token = flow.create(api, "abcdef.0123456789abcdef", ttl=timedelta(hours=2),
                        usages=("signing", "authentication"),
                        groups=(apiobjects.NODE_TOKEN_GROUP,), description="for w1", now=NOW)
    secret = api.objs["bootstrap-token-abcdef"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data == {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                    "expiration": "2026-01-01T02:00:00Z", "usage-bootstrap-signing": "true",
                    "usage-bootstrap-authentication": "true",
                    "auth-extra-groups": apiobjects.NODE_TOKEN_GROUP, "description": "for w1"}
    with pytest.raises(UserError, match="already exists"):
        flow.create(api, token, ttl=None, usages=("signing",), groups=())
    [row] = flow.list_tokens(api, now=NOW + timedelta(minutes=30))
    assert (row.token, row.ttl, row.usages) == (token, "1h", "authentication,signing")
    [expired] = flow.list_tokens(api, now=NOW + timedelta(hours=3))
    assert expired.ttl == "<invalid>"
    assert flow.delete(api, "abcdef") == "abcdef"
    with pytest.raises(UserError, match="not found"):
        flow.delete(api, "abcdef")
    with pytest.raises(UserError, match="didn't match pattern"):
        flow.delete(api, "ABC")


def _inventory(tmp_path: Path, cps: int, extra: str = "") -> object:
    hosts = "".join(f"    h{i}: {{ansible_host: 10.0.0.{i}, ip: 10.0.0.{i}}}\n"
                    for i in range(1, cps + 2))
    cp = ", ".join(f"h{i}: {{}}" for i in range(1, cps + 1))
    all_ = ", ".join(f"h{i}: {{}}" for i in range(1, cps + 2))
    path = tmp_path / "hosts.yaml"
    path.write_text(f"""all:
  hosts:
{hosts}  vars: {{{extra}}}
  children:
    kube_control_plane: {{hosts: {{{cp}}}}}
    kube_node: {{hosts: {{{all_}}}}}
    etcd: {{hosts: {{{cp}}}}}
    k8s_cluster: {{children: {{kube_control_plane: {{}}, kube_node: {{}}}}}}
""")
    return load_inventory(path)


def test_endpoint_modes(tmp_path):
    one = node_vars.api_endpoint(_inventory(tmp_path, 1))
    assert (one.mode, one.address) == ("single", "10.0.0.1:6443")
    three = node_vars.api_endpoint(_inventory(tmp_path, 3))
    assert (three.mode, three.url) == ("localhost-lb", "https://127.0.0.1:6443")
    lb = node_vars.api_endpoint(_inventory(tmp_path, 3, "loadbalancer_apiserver: "
                                                        "{address: 10.0.0.100, port: 8443}"))
    assert (lb.mode, lb.address) == ("external-lb", "10.0.0.100:8443")
    with pytest.raises(UserError, match="needs an address"):
        node_vars.api_endpoint(_inventory(tmp_path, 3, "loadbalancer_apiserver: {port: 1}"))


def test_host_config_names_the_endpoint_in_sans(tmp_path):
    inv = _inventory(tmp_path, 3)
    cfg = node_vars.host_config(ClusterConfig(), inv, node_vars.api_endpoint(inv))
    assert cfg.control_plane_endpoint == "127.0.0.1:6443"
    assert {"127.0.0.1", "localhost"} <= set(cfg.api_server.cert_sans)
    assert cfg.etcd.local is not None  # stacked: the local member


def test_lb_servers_are_every_control_plane_host(tmp_path):
    servers = node_vars.lb_servers(_inventory(tmp_path, 3))
    assert [(s["name"], s["address"], s["port"]) for s in servers] == [
        ("h1", "10.0.0.1", 6443), ("h2", "10.0.0.2", 6443), ("h3", "10.0.0.3", 6443)]


def test_artifacts_are_made_once_and_kept(tmp_path):
    from bootstrap.flows import cluster_nodes
    from bootstrap.flows.cluster_pki import ensure_cluster_pki
    from bootstrap.pki.kubeconfig import read_kubeconfig

    inv = _inventory(tmp_path, 3)
    pki, _ = ensure_cluster_pki(inv, ClusterConfig())

    class Ctx:
        inventory, config, pki_dir = inv, ClusterConfig(), pki

    a = cluster_nodes.prepare_artifacts(Ctx(), now=0)
    assert read_kubeconfig(a.admin).server == "https://10.0.0.1:6443"  # reachable from here
    assert read_kubeconfig(a.kube_proxy).server == "https://127.0.0.1:6443"
    assert "controlPlaneEndpoint: 127.0.0.1:6443" in a.config.read_text()
    stamps = {p: p.stat().st_mtime_ns for p in (a.admin, a.kube_proxy, a.config, a.discovery)}
    b = cluster_nodes.prepare_artifacts(Ctx(), now=0)
    assert b.token == a.token
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing rewritten


def test_controller_manager_extra_args_reach_the_unit_once():
    import dataclasses

    from bootstrap.config.model import ControllerManager

    cfg = dataclasses.replace(ClusterConfig(), controller_manager=ControllerManager(
        extra_args={"node-cidr-mask-size": "26", "v": "2"}))
    v = node_vars.control_plane_vars(cfg, "10.0.0.1")
    assert v["node_cidr_mask_size"] == 26
    assert v["controller_manager_extra_args"] == {"v": "2"}
