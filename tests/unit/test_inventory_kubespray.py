"""kubespray's published inventory layouts, read as kubespray reads them.

Each layout in tests/unit/data/kubespray is resolved by us and by Ansible's
``ansible-inventory --list`` (host membership and every variable). Where
kubespray changes the inventory at play time (its dynamic_groups role adds
k8s_cluster and folds the deprecated group names), Ansible is given the same
groups as one extra inventory source, so the oracle stays Ansible's own
precedence rules.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_inventory_ansible import ANSIBLE_INVENTORY, ansible_view

from bootstrap.config.inventory import (
    ETCD_LOCAL,
    ETCD_MEMBER,
    ETCD_REMOTE,
    JumpHost,
    load_inventory,
)
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.errors import UserError

DATA = Path(__file__).parent / "data" / "kubespray"

# What kubespray's dynamic_groups adds at play time, as an inventory source.
K8S_CLUSTER = "[k8s_cluster:children]\nkube_control_plane\nkube_node\n"
DYNAMIC = {
    "docs-mixed-etcd/inventory.ini": K8S_CLUSTER,
    "yaml-layout/hosts.yaml": K8S_CLUSTER + "calico_rr\n",
    "deprecated/inventory.ini": "[kube_control_plane:children]\nkube-master\n"
                                "[kube_node:children]\nkube-node\n"
                                "[k8s_cluster:children]\nk8s-cluster\n",
    "script/inventory.py": None,
    "bastion-become/inventory.ini": None,
}


@pytest.mark.skipif(ANSIBLE_INVENTORY is None, reason="ansible-core not installed")
@pytest.mark.parametrize("rel", sorted(DYNAMIC))
def test_resolved_like_ansible_inventory(rel, tmp_path):
    path = DATA / rel
    inv = load_inventory(path)
    sources = [path]
    if DYNAMIC[rel]:
        # ansible-inventory takes several -i; the extra source sits beside no group_vars.
        extra = tmp_path / "dynamic" / "groups.ini"
        extra.parent.mkdir()
        extra.write_text(DYNAMIC[rel])
        sources.append(extra)
    hostvars, groups = ansible_view(sources, tmp_path)
    assert set(inv.hosts) <= set(hostvars)
    for name in inv.hosts:
        assert inv.vars_for(name) == hostvars[name], name
    for group, members in groups.items():
        assert inv.groups[group] == [h for h in members if h in inv.hosts], group


def test_docs_example_mixed_etcd_and_dynamic_k8s_cluster():
    inv = load_inventory(DATA / "docs-mixed-etcd" / "inventory.ini")
    assert [h.name for h in inv.etcd] == ["node1", "node2", "node3"]
    assert {n: h.etcd for n, h in inv.hosts.items()} == {
        "node1": ETCD_LOCAL, "node2": ETCD_LOCAL, "node3": ETCD_MEMBER,
        "node4": None, "node5": None, "node6": None}
    assert inv.topology == "mixed"
    assert inv.etcd_servers == "https://10.3.0.1:2379,https://10.3.0.2:2379,https://10.3.0.3:2379"
    assert [m.peer_url for m in inv.etcd_members][2] == "https://10.3.0.3:2380"
    # group_vars/k8s_cluster applies although the inventory never declares the group.
    assert inv.groups["k8s_cluster"] == [f"node{i}" for i in range(1, 7)]
    assert inv.vars_for("node6")["kube_pods_subnet"] == "10.233.64.0/18"
    assert inv.warnings == []


def test_kubespray_variables_become_the_configuration():
    inv = load_inventory(DATA / "docs-mixed-etcd" / "inventory.ini")
    eff = effective_config(inv)
    cfg = eff.config
    assert cfg.networking.service_subnet == "10.233.0.0/18"
    assert cfg.networking.pod_subnet == "10.233.64.0/18"
    assert cfg.networking.dns_domain == "cluster.local"  # "{{ cluster_name }}" rendered
    assert cfg.cluster_name == "cluster.local"
    assert cfg.certificates_dir == "/etc/kubernetes/pki"  # "{{ kube_config_dir }}/pki"
    assert cfg.etcd.local.data_dir == "/var/lib/etcd-data"
    assert cfg.controller_manager.node_cidr_mask_size == 24
    assert cfg.api_server.cert_sans == ("10.0.0.1", "api.example.com")
    assert cfg.bind_port == 6443 and eff.localhost_load_balancer is True
    src = eff.sources
    gv = DATA / "docs-mixed-etcd" / "group_vars"
    assert src["networking.podSubnet"].source == \
        f"kube_pods_subnet ({gv}/k8s_cluster/k8s-cluster.yml:6)"
    assert src["etcd.local.dataDir"].source == f"etcd_data_dir ({gv}/all/all.yml:3)"
    assert src["encryptionAlgorithm"].source == "default"


def test_config_file_wins_over_inventory_with_a_warning(tmp_path):
    inv = load_inventory(DATA / "docs-mixed-etcd" / "inventory.ini")
    config = tmp_path / "c.yaml"
    config.write_text("apiVersion: bootstrap.dev/v1alpha1\nkind: ClusterConfiguration\n"
                      "networking:\n  podSubnet: 10.50.0.0/16\n")
    eff = effective_config(inv, str(config))
    assert eff.config.networking.pod_subnet == "10.50.0.0/16"
    assert eff.config.networking.service_subnet == "10.233.0.0/18"  # not in the file
    assert eff.sources["networking.podSubnet"].source == f"--config {config}"
    assert eff.warnings == [f"networking.podSubnet: --config {config} sets '10.50.0.0/16', "
                            "overriding kube_pods_subnet "
                            f"({DATA}/docs-mixed-etcd/group_vars/k8s_cluster/k8s-cluster.yml:6)"
                            " = '10.233.64.0/18'"]


def test_yaml_layout_external_etcd_ranges_ports_local_and_lb():
    inv = load_inventory(DATA / "yaml-layout" / "hosts.yaml")
    assert list(inv.hosts) == ["cp1", "cp2", "etcda", "etcdb", "etcdc", "w1", "w2", "w3"]
    assert inv.topology == "external"
    assert {inv.hosts[n].etcd for n in ("cp1", "cp2")} == {ETCD_REMOTE}
    assert inv.etcd_members[1].name == "member-b" and inv.etcd_members[1].ip == "10.10.0.22"
    assert inv.hosts["w1"].port == 2222 and inv.hosts["w1"].connection == "ssh"
    assert inv.hosts["w2"].connection == "local" and inv.hosts["w3"].connection == "ssh"
    assert inv.hosts["etcda"].become and inv.hosts["etcda"].become_user == "root"
    assert not inv.hosts["cp1"].become
    assert inv.groups["k8s_cluster"] == ["cp1", "cp2", "w1", "w2", "w3"]
    eff = effective_config(inv)
    assert eff.config.control_plane_endpoint == "api.cluster.example:8443"
    assert eff.config.api_server.cert_sans == ("10.10.0.100", "api.cluster.example")
    assert eff.config.networking.pod_subnet == "10.42.0.0/16"
    assert eff.localhost_load_balancer is False
    assert eff.sources["controlPlaneEndpoint"].source.startswith(
        "apiserver_loadbalancer_domain_name (")


def test_deprecated_names_fold_into_current_ones_with_warnings():
    inv = load_inventory(DATA / "deprecated" / "inventory.ini")
    assert [h.name for h in inv.control_plane] == ["master1"]
    assert [h.name for h in inv.workers] == ["minion01", "minion02"]
    # group_vars under the current names apply to hosts of the old groups.
    assert inv.vars_for("master1")["role_note"] == "current-name"
    assert effective_config(inv).config.networking.pod_subnet == "10.200.0.0/16"
    assert [w.split(";")[0] for w in inv.warnings] == [
        "group 'kube-master' is deprecated", "group 'kube-node' is deprecated",
        "group 'k8s-cluster' is deprecated"]


def test_dynamic_inventory_script(tmp_path):
    inv = load_inventory(DATA / "script" / "inventory.py")
    assert list(inv.hosts) == ["cp-1", "wk-1", "wk-2"]
    assert inv.vars_for("cp-1")["role_var"] == "cp"
    assert inv.hosts["wk-1"].user == "debian" and inv.hosts["wk-1"].become
    assert not inv.hosts["wk-2"].become  # ansible_become: false is kept
    assert effective_config(inv).config.cluster_name == "dyn.local"  # group_vars beside it
    # Without _meta the script is asked --host per host, as Ansible does.
    script = tmp_path / "inv"
    script.write_text((DATA / "script" / "inventory.py").read_text().replace(
        '    "_meta"', '    "_ignored"').replace(
        'print(json.dumps(INVENTORY))',
        'print(json.dumps({k: v for k, v in INVENTORY.items() if k != "_ignored"}))').replace(
        'INVENTORY["_meta"]', 'INVENTORY["_ignored"]'))
    script.chmod(0o755)
    assert load_inventory(script).hosts["wk-1"].address == "10.30.0.2"


@pytest.mark.parametrize("body,fragment", [
    ("import sys; sys.exit('boom')", "inventory script --list exited 1: boom"),
    ("print('{not json')", "inventory script --list printed invalid JSON"),
    ("print('[1]')", "must print a JSON object of groups"),
])
def test_broken_inventory_scripts_are_one_line(tmp_path, body, fragment):
    script = tmp_path / "inv.sh"
    script.write_text(f"#!{shutil.which('python3')}\n{body}\n")
    script.chmod(0o755)
    with pytest.raises(UserError) as exc:
        load_inventory(script)
    assert fragment in exc.value.line() and "\n" not in exc.value.line()


def test_bastion_become_and_own_jump_host():
    inv = load_inventory(DATA / "bastion-become" / "inventory.ini")
    key = os.path.expanduser("~/.ssh/cluster_ed25519")
    bastion = JumpHost("198.51.100.7", 2022, "jump", key)
    assert "bastion" not in inv.hosts
    for name in ("cp1", "cp2", "cp3", "node-a", "node-b"):
        host = inv.hosts[name]
        assert host.jump_host == bastion, name
        assert (host.user, host.become, host.become_user) == ("ubuntu", True, "root")
        assert host.key_file == key
    assert inv.hosts["node-c"].jump_host == JumpHost("203.0.113.5", 2200, "ops")
    # The SSH layer applies host-key options itself (bootstrap.remote.ssh), so
    # StrictHostKeyChecking=no is no "not applied" warning.
    assert inv.warnings == []


def test_ssh_options_nobody_applies_are_a_warning():
    from bootstrap.config._connection import jump_from_args
    jump, unused = jump_from_args("ansible_ssh_common_args",
                                  "-o UserKnownHostsFile=/k -o StrictHostKeyChecking=yes "
                                  "-o ServerAliveInterval=5 -C")
    assert jump is None and unused == ["-o ServerAliveInterval=5", "-C"]


INI_HEAD = "[kube_control_plane]\na ansible_host=10.0.0.1 {extra}\n[etcd]\na\n[kube_node]\na\n"


@pytest.mark.parametrize("extra,fragment", [
    ("ansible_password=secret", "inv.ini:2: host a: ansible_password is set: bootstrap "
                                "authenticates with SSH keys only"),
    ("ansible_ssh_pass=x", "ansible_ssh_pass is set"),
    ("ansible_become_password=x", "ansible_become_password is set"),
    ("ansible_connection=winrm", "host a: ansible_connection 'winrm' is not supported"),
    ("ansible_become=maybe", "ansible_become 'maybe' is not a boolean"),
    ("ansible_user=u ansible_become_method=su", "ansible_become_method 'su' is not supported"),
    ("ansible_ssh_common_args='-o ProxyCommand=\"nc %h %p\"'", "is not 'ssh -W %h:%p"),
    ("ansible_ssh_common_args='-J bad_host!'", "jump host 'bad_host!'"),
])
def test_connection_variables_refused_with_one_line(tmp_path, extra, fragment):
    path = tmp_path / "inv.ini"
    path.write_text(INI_HEAD.format(extra=extra))
    with pytest.raises(UserError) as exc:
        load_inventory(path)
    assert fragment in exc.value.line() and "\n" not in exc.value.line()


def test_proxy_command_bastion_form(tmp_path):
    path = tmp_path / "inv.ini"
    path.write_text(INI_HEAD.format(extra="ansible_ssh_common_args='-o ProxyCommand=\"ssh -W "
                                          "%h:%p -q -p 2201 -i /k/id bob@10.9.9.9\"'"))
    assert load_inventory(path).hosts["a"].jump_host == JumpHost("10.9.9.9", 2201, "bob", "/k/id")


@pytest.mark.parametrize("var,value,fragment", [
    ("kube_network_plugin", "calico", "kube_network_plugin: 'calico' is not supported by "
                                      "bootstrap (set kube_network_plugin: cni"),
    ("kube_pods_subnet", "10.0.0/8", "kube_pods_subnet: networking.podSubnet: '10.0.0/8' is not"),
    ("kube_apiserver_port", "99999", "kube_apiserver_port: 99999 is not a port number"),
    ("kube_cert_dir", "'{{ kube_config_dir | ansible.builtin.dirname }}'",
     "kube_cert_dir: '{{ kube_config_dir | ansible.builtin.dirname }}' is a Jinja expression"),
    ("loadbalancer_apiserver", "{port: 1}", "loadbalancer_apiserver: needs an address"),
])
def test_bad_kubespray_variables_name_the_variable_and_file(tmp_path, var, value, fragment):
    (tmp_path / "group_vars").mkdir()
    gv = tmp_path / "group_vars" / "k8s_cluster.yml"
    gv.write_text(f"{var}: {value}\n")
    path = tmp_path / "inv.ini"
    path.write_text(INI_HEAD.format(extra=""))
    with pytest.raises(UserError) as exc:
        effective_config(load_inventory(path))
    line = exc.value.line()
    assert line.startswith(f"{gv}:1: ") and fragment in line, line


def test_cluster_variable_differing_between_hosts_is_an_error(tmp_path):
    path = tmp_path / "inv.ini"
    path.write_text("[kube_control_plane]\na ansible_host=10.0.0.1\n[etcd]\na\n"
                    "[kube_node]\nb ansible_host=10.0.0.2 kube_pods_subnet=10.9.0.0/16\n")
    with pytest.raises(UserError, match=r"inv.ini:6: kube_pods_subnet is '10.9.0.0/16' for "
                                        "host b but"):
        effective_config(load_inventory(path))


def test_hanging_inventory_script_is_stopped(tmp_path, monkeypatch):
    import bootstrap.config._script as script_mod

    monkeypatch.setattr(script_mod, "TIMEOUT", 1)
    script = tmp_path / "slow"
    script.write_text(f"#!{shutil.which('python3')}\nimport time\ntime.sleep(60)\n")
    script.chmod(0o755)
    with pytest.raises(UserError, match="inventory script did not finish --list within 1s"):
        load_inventory(script)


def test_proxyjump_none_and_domain_name_without_balancer(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "apiserver_loadbalancer_domain_name: api.internal\n")
    path = tmp_path / "inv.ini"
    path.write_text(INI_HEAD.format(extra="ansible_ssh_common_args='-o ProxyJump=none'"))
    inv = load_inventory(path)
    assert inv.hosts["a"].jump_host is None
    eff = effective_config(inv)
    assert eff.config.control_plane_endpoint == ""  # no balancer: no endpoint from the name
    assert eff.config.api_server.cert_sans == ("api.internal",)
    assert eff.localhost_load_balancer is True
