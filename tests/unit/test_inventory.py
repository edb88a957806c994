"""kubespray inventories: both formats, vars resolution, roles, topology, warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bootstrap.config._ini import parse_value
from bootstrap.config._raw import InventorySyntaxError, expand_ranges, split_host_pattern
from bootstrap.config.inventory import Host, load_inventory
from bootstrap.errors import UserError

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "inventories"
DATA = Path(__file__).parent / "data" / "inventories"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def names(hosts) -> list[str]:
    return [h.name for h in hosts]


# -- the shipped samples --------------------------------------------------------

def test_sample_stacked_yaml_with_group_vars_dirs():
    inv = load_inventory(SAMPLES / "sandbox-stacked" / "hosts.yaml")
    assert list(inv.hosts) == [f"node{i}" for i in range(1, 6)]
    assert names(inv.control_plane) == ["node1", "node2", "node3"]
    assert names(inv.etcd) == ["node1", "node2", "node3"]
    assert names(inv.workers) == ["node4", "node5"]
    assert inv.topology == "stacked"
    assert [h.address for h in inv.hosts.values()] == [f"10.250.1.1{i}" for i in range(1, 6)]
    node1 = inv.hosts["node1"]
    assert node1 == Host("node1", "10.250.1.11", 22, "root",
                         "/var/lib/bootstrap/sandbox/stacked/id_ed25519", "10.250.1.11",
                         "10.250.1.11", "etcd1", etcd="local-member")
    # group_vars/all/all.yml and group_vars/k8s_cluster/k8s-cluster.yml both apply.
    assert node1.vars["kube_network_node_prefix"] == 24
    assert inv.vars_for("node4")["cluster_name"] == "cluster.local"
    assert inv.warnings == ["group calico_rr not used by bootstrap; ignored"]
    assert inv.dir == SAMPLES / "sandbox-stacked"
    assert inv.artifacts_dir == SAMPLES / "sandbox-stacked" / "artifacts"


def test_sample_external_ini():
    inv = load_inventory(SAMPLES / "sandbox-external" / "inventory.ini")
    assert inv.topology == "external"
    assert names(inv.etcd) == ["etcd1", "etcd2", "etcd3"]
    assert names(inv.control_plane) == ["cp1", "cp2"]
    assert names(inv.workers) == ["worker1"]
    assert inv.roles("etcd2") == ["etcd"]
    assert inv.group_names("etcd2") == ["etcd"]
    assert inv.group_names("cp1") == ["k8s_cluster", "kube_control_plane"]
    assert inv.hosts["cp1"].user == "root"  # from [all:vars]
    assert inv.warnings == []


def test_sample_single_node_has_every_role():
    inv = load_inventory(SAMPLES / "single-node" / "hosts.yaml")
    assert list(inv.hosts) == ["node1"]
    assert inv.roles("node1") == ["kube_control_plane", "etcd", "kube_node"]
    assert inv.topology == "stacked"
    assert inv.hosts["node1"].node_ip == "10.250.3.11"


def test_sample_production_like_ignores_bastion_and_calico_rr():
    inv = load_inventory(SAMPLES / "production-like" / "inventory.ini")
    assert list(inv.hosts) == ["master-1", "master-2", "master-3",
                               "worker-01", "worker-02", "worker-03", "worker-04"]
    assert "bastion" not in inv.hosts and "rr1" not in inv.hosts
    # bastion is used now: kubespray's bastion-ssh-config makes its first host the
    # jump host of every other host, with the bastion's own user and port.
    assert inv.warnings == [
        "group calico_rr not used by bootstrap; ignored",
        "host rr1 in no cluster group (kube_control_plane, kube_node, etcd); ignored",
    ]
    assert {h.jump_host.spec() for h in inv.hosts.values()} == {"admin@203.0.113.10:22"}
    assert all(h.become and h.become_user == "root" for h in inv.hosts.values())  # ubuntu
    master = inv.hosts["master-2"]
    assert (master.address, master.user, master.etcd_member_name) == \
        ("10.0.1.12", "ubuntu", "etcd2")
    assert master.key_file == str(Path("~/.ssh/id_ed25519").expanduser())
    assert inv.vars_for("master-2")["ansible_ssh_private_key_file"] == "~/.ssh/id_ed25519"
    assert inv.groups["bastion"] == [] and inv.groups["calico_rr"] == []
    assert inv.groups["k8s_cluster"] == list(inv.hosts)


def test_directory_argument_finds_the_one_inventory_file(tmp_path):
    assert list(load_inventory(SAMPLES / "single-node").hosts) == ["node1"]
    with pytest.raises(UserError, match="no inventory file in this directory"):
        load_inventory(tmp_path)
    (tmp_path / "hosts.yaml").write_text("all: {}\n")
    (tmp_path / "inventory.ini").write_text("[all]\n")
    with pytest.raises(UserError, match=r"several inventory files \(hosts.yaml, inventory.ini\)"):
        load_inventory(tmp_path)


# -- the INI dialect ----------------------------------------------------------------

KUBESPRAY_OLD_SAMPLE = """
    # ## Configure 'ip' variable to bind kubernetes services on a
    # ## different ip than the default iface
    # ## We should set etcd_member_name for etcd cluster. The node that is not a etcd member do not need to set the value, or can set the empty string value.
    [all]
    node1 ansible_host=95.54.0.12  ip=10.3.0.1 etcd_member_name=etcd1
    node2 ansible_host=95.54.0.13  ip=10.3.0.2 etcd_member_name=etcd2
    node3 ansible_host=95.54.0.14  ip=10.3.0.3 etcd_member_name=etcd3
    node4 ansible_host=95.54.0.15  ip=10.3.0.4 etcd_member_name=
    node5 ansible_host=95.54.0.16  # ip=10.3.0.5 etcd_member_name=etcd5
    ; a semicolon comment
    [kube_control_plane]
    node1
    node2
    node3

    [etcd]
    node1
    node2
    node3

    [kube_node]
    node2
    node3
    node4
    node5

    [calico_rr]

    [k8s_cluster:children]
    kube_control_plane
    kube_node
    calico_rr
"""


def test_kubespray_docs_ini_sample(tmp_path):
    inv = load_inventory(write(tmp_path, "inventory.ini", KUBESPRAY_OLD_SAMPLE))
    assert list(inv.hosts) == ["node1", "node2", "node3", "node4", "node5"]
    assert inv.hosts["node4"].etcd_member_name is None  # empty string means "not a member"
    assert inv.hosts["node5"].ip is None  # commented out after '#'
    assert inv.hosts["node5"].node_ip == "95.54.0.16"
    assert names(inv.workers) == ["node2", "node3", "node4", "node5"]
    assert inv.topology == "stacked"
    assert inv.warnings == ["group calico_rr not used by bootstrap; ignored"]


def test_children_may_be_declared_after_use_and_etcd_via_children(tmp_path):
    path = write(tmp_path, "inv.ini", """
        [k8s_cluster:children]
        kube_control_plane
        kube_node
        [etcd:children]
        kube_control_plane
        [kube_node]
        b ansible_host=10.0.0.2
        [kube_control_plane]
        a ansible_host=10.0.0.1
    """)
    inv = load_inventory(path)
    assert list(inv.hosts) == ["b", "a"]  # order of first appearance in the file
    assert names(inv.etcd) == ["a"]
    assert inv.groups["k8s_cluster"] == ["a", "b"]


@pytest.mark.parametrize("text,expected", [
    ("2222", 2222), ("True", True), ("1.5", 1.5), ("[1, 'a']", [1, "a"]),
    ("{'k': 1}", {"k": 1}), ("'quoted'", "quoted"), ("10.3.0.1", "10.3.0.1"),
    ("yes", "yes"), ("", ""), ("a b", "a b"), ("1+2j", "1+2j"), ("...", "..."),
])
def test_ini_values_are_python_literals_when_they_parse(text, expected):
    assert parse_value(text) == expected


def test_ini_host_line_quotes_and_comments(tmp_path):
    path = write(tmp_path, "inv.ini", """
        [kube_control_plane]
        a ansible_host=10.0.0.1 note="two words" other='x y'  extra=1 # note=ignored
        [etcd]
        a
        [kube_node]
        a
        [kube_node:vars]
        spaced = a value # vars lines keep text after '#', as Ansible does
    """)
    v = load_inventory(path).vars_for("a")
    assert (v["note"], v["other"], v["extra"]) == ("two words", "x y", 1)
    assert v["spaced"] == "a value # vars lines keep text after '#', as Ansible does"


def test_host_patterns_ranges_and_ports():
    assert split_host_pattern("node1", "f") == (["node1"], None)
    assert split_host_pattern("node1:2222", "f") == (["node1"], 2222)
    assert split_host_pattern("10.0.0.1:22", "f") == (["10.0.0.1"], 22)
    assert split_host_pattern("2001:db8::1", "f") == (["2001:db8::1"], None)
    assert split_host_pattern("[2001:db8::1]:2200", "f") == (["2001:db8::1"], 2200)
    assert split_host_pattern("n[1:3]:2200", "f") == (["n1", "n2", "n3"], 2200)
    assert expand_ranges("web[01:10:3]", "f") == ["web01", "web04", "web07", "web10"]
    assert expand_ranges("db-[a:c]", "f") == ["db-a", "db-b", "db-c"]
    assert expand_ranges("r[1:2]n[a:b]", "f") == ["r1na", "r1nb", "r2na", "r2nb"]
    assert expand_ranges("n[:2]", "f") == ["n0", "n1", "n2"]
    for bad in ("n[1:]", "n[3:1]", "n[01:100]", "n[1:2", "n]", "n[1]", "n[a:10]", "n[1:2:0]"):
        with pytest.raises(InventorySyntaxError):
            expand_ranges(bad, "f")
    with pytest.raises(InventorySyntaxError, match="ends in ':'"):
        split_host_pattern("node1:", "f")


def test_extensionless_file_is_sniffed(tmp_path):
    ini = write(tmp_path, "a/hosts", "[kube_control_plane]\nn1\n[etcd]\nn1\n[kube_node]\nn1\n")
    assert list(load_inventory(ini).hosts) == ["n1"]
    yml = write(tmp_path, "b/hosts", """
        all:
          children:
            kube_control_plane: {hosts: {n1: }}
            etcd: {hosts: {n1: }}
            kube_node: {hosts: {n1: }}
    """)
    assert list(load_inventory(yml).hosts) == ["n1"]


# -- YAML format and vars files -------------------------------------------------------

def test_yaml_nested_groups_vars_and_ports(tmp_path):
    path = write(tmp_path, "hosts.yml", """
        all:
          vars:
            ansible_user: admin
          children:
            k8s_cluster:
              vars: {ansible_port: 2200}
              children:
                kube_control_plane:
                  hosts:
                    cp[1:3]:
                      ansible_ssh_private_key_file: /keys/id
                kube_node:
                  hosts:
                    "w1:2201": {ansible_host: 10.0.1.1}
            etcd:
              children:
                kube_control_plane:
    """)
    inv = load_inventory(path)
    assert names(inv.control_plane) == ["cp1", "cp2", "cp3"]
    assert names(inv.etcd) == ["cp1", "cp2", "cp3"]
    assert inv.hosts["cp1"].port == 2200 and inv.hosts["cp1"].user == "admin"
    assert inv.hosts["cp1"].key_file == "/keys/id"
    assert inv.hosts["w1"].port == 2201  # host entry beats group vars
    assert inv.hosts["cp2"].address == "cp2"
    assert inv.warnings == []


def test_group_vars_forms_and_host_vars(tmp_path):
    write(tmp_path, "hosts.yaml", """
        all:
          hosts:
            n1: {ansible_host: 10.0.0.1, v: inline-host}
            n2: {ansible_host: 10.0.0.2}
          children:
            kube_control_plane: {hosts: {n1: , n2: }}
            etcd: {hosts: {n1: }}
            kube_node: {hosts: {n2: }}
    """)
    write(tmp_path, "group_vars/all/a.yml", "v: all-a\nw: all-a\n")
    write(tmp_path, "group_vars/all/sub/b.yml", "w: all-sub-b\n")
    write(tmp_path, "group_vars/all/c.txt", "w: ignored-extension\n")
    write(tmp_path, "group_vars/all/d.yml~", "w: ignored-backup\n")
    write(tmp_path, "group_vars/etcd.json", '{"v": "etcd-json"}\n')
    write(tmp_path, "group_vars/kube_node", "v: node-no-extension\n")
    write(tmp_path, "group_vars/kube_control_plane.yaml", "---\n# empty file is fine\n")
    write(tmp_path, "host_vars/n1.yml", "v: host_vars\n")
    inv = load_inventory(tmp_path / "hosts.yaml")
    assert inv.vars_for("n1")["v"] == "host_vars"
    assert inv.vars_for("n1")["w"] == "all-sub-b"
    assert inv.vars_for("n2")["v"] == "node-no-extension"


def test_legacy_group_names_are_read_with_a_warning(tmp_path):
    path = write(tmp_path, "inv.ini", """
        [kube-master]
        m1 ansible_host=10.0.0.1
        [etcd]
        m1
        [kube-node]
        n1 ansible_host=10.0.0.2
        [k8s-cluster:children]
        kube-master
        kube-node
    """)
    inv = load_inventory(path)
    assert names(inv.control_plane) == ["m1"] and names(inv.workers) == ["n1"]
    assert inv.groups["k8s_cluster"] == ["m1", "n1"]
    assert inv.groups["kube-master"] == ["m1"]
    assert inv.warnings == [
        "group 'kube-master' is deprecated; rename it to 'kube_control_plane' (read as that for now)",
        "group 'kube-node' is deprecated; rename it to 'kube_node' (read as that for now)",
        "group 'k8s-cluster' is deprecated; rename it to 'k8s_cluster' (read as that for now)",
    ]


def test_even_etcd_is_a_warning_and_missing_k8s_cluster_is_defined(tmp_path):
    path = write(tmp_path, "inv.ini", """
        [kube_control_plane]
        a ansible_host=10.0.0.1
        b ansible_host=10.0.0.2
        [etcd:children]
        kube_control_plane
        [kube_node]
        a
    """)
    inv = load_inventory(path)
    assert inv.warnings == [
        "etcd has 2 members; an odd number tolerates as many failures with one member less "
        "(1 or 3)",
    ]
    assert inv.groups["k8s_cluster"] == ["a", "b"]
    assert inv.group_names("b") == ["etcd", "k8s_cluster", "kube_control_plane"]


def test_same_address_different_ports_is_allowed(tmp_path):
    path = write(tmp_path, "inv.ini", """
        [kube_control_plane]
        a ansible_host=192.0.2.1 ansible_port=2201 ip=10.0.0.1
        [etcd]
        a
        [kube_node]
        b ansible_host=192.0.2.1 ansible_port=2202 ip=10.0.0.2
    """)
    inv = load_inventory(path)
    assert [(h.address, h.port) for h in inv.hosts.values()] == \
        [("192.0.2.1", 2201), ("192.0.2.1", 2202)]


def test_unknown_host_in_vars_for_is_a_key_error():
    inv = load_inventory(SAMPLES / "single-node")
    with pytest.raises(KeyError):
        inv.vars_for("nope")


# -- malformed inputs: one line naming the file (and line) and the host or group ----

MALFORMED = {
    "no-etcd.ini": "no-etcd.ini: group etcd has no hosts",
    "no-control-plane.yaml": "no-control-plane.yaml:6: group kube_control_plane has no hosts",
    "duplicate-address.ini": "duplicate-address.ini:4: host node2: address 10.0.0.1:22 is also "
                             "used by host node1",
    "duplicate-ip.yaml": "duplicate-ip.yaml:5: host node2: ip 10.0.0.1 is also used by host node1",
    "duplicate-member-name.ini": "duplicate-member-name.ini:4: host node2: etcd_member_name etcd1",
    "unknown-child.ini": "unknown-child.ini:13: [k8s_cluster:children] includes undefined group "
                         "'kube_nodes'",
    "unknown-child.yaml": "unknown-child.yaml:15: children of 'k8s_cluster' include undefined "
                          "group 'kube_nodes'",
    "cycle.ini": "cycle.ini:11: group 'a' is its own descendant: a -> b -> a",
    "bad-port.ini": "bad-port.ini:3: host node1: ansible_port: 'ssh' is not a port number",
    "port-out-of-range.ini": "port-out-of-range.ini:3: invalid port in host pattern 'node1:70000'",
    "bad-host-vars": "bad-host-vars/host_vars/node1.yml:3: host node1: ansible_port: 0 is not",
    "bad-syntax.yaml": "bad-syntax.yaml:6:6: invalid YAML",
    "duplicate-key.yaml": "duplicate-key.yaml:5:5: invalid YAML: duplicate key 'node1'",
    "bad-group-vars": "bad-group-vars/group_vars/all.yml:4:1: invalid YAML",
    "vault-group-vars": "vault-group-vars/group_vars/all.yml: Ansible Vault-encrypted vars",
    "bad-section.ini": "bad-section.ini:2: invalid section [kube control plane]",
    "bad-section-type.ini": "bad-section-type.ini:2: section [kube_control_plane:childs] has "
                            "unknown type 'childs'",
    "bad-ip.yaml": "bad-ip.yaml:4: host node1: ip 'node1.example.com' is not an IP address",
    "bad-range.ini": "bad-range.ini:3: host range [1:] has no end",
    "unclosed-quote.ini": "unclosed-quote.ini:3: cannot parse host line: No closing quotation",
    "vars-undefined-group.ini": "vars-undefined-group.ini:11: [kube_nodes:vars] is for an "
                                "undefined group",
    "unknown-key.yaml": "unknown-key.yaml:5: group 'kube_control_plane' has unknown key 'host' "
                        "(did you mean 'hosts'?)",
    "hosts-list.yaml": "hosts-list.yaml:5: hosts of group 'kube_control_plane' must be a mapping",
    "empty.yaml": "empty.yaml: the inventory is empty",
    "bad-node-name.ini": "bad-node-name.ini:3: host Node_1: not a valid Kubernetes node name",
}


def test_every_malformed_sample_is_covered():
    on_disk = {p.name for p in DATA.iterdir() if not p.name.startswith("ok-")}
    assert on_disk == set(MALFORMED)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_inventory_is_one_user_error(name):
    path = DATA / name
    with pytest.raises(UserError) as exc:
        load_inventory(path / "hosts.yaml" if path.is_dir() else path)
    line = exc.value.line()
    assert "\n" not in line
    assert line.startswith(str(DATA))
    assert MALFORMED[name] in line


def test_missing_inventory(tmp_path):
    with pytest.raises(UserError, match="inventory not found"):
        load_inventory(tmp_path / "nope.ini")


def test_templated_connection_vars_are_refused_with_the_reason(tmp_path):
    path = write(tmp_path, "inv.ini", """
        [kube_control_plane]
        a ansible_host="{{ lookup('env', 'A') }}"
        [etcd]
        a
        [kube_node]
        a
    """)
    with pytest.raises(UserError, match=r"inv.ini:2: host a: ansible_host .* is a Jinja template"):
        load_inventory(path)
