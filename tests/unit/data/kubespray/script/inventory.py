#!/usr/bin/env python3
"""A dynamic inventory, as a cloud provider's script prints it (ansible's script protocol)."""
import json
import sys

INVENTORY = {
    "kube_control_plane": {"hosts": ["cp-1"], "vars": {"role_var": "cp"}},
    "etcd": ["cp-1"],
    "kube_node": {"hosts": ["wk-1", "wk-2"]},
    "k8s_cluster": {"children": ["kube_control_plane", "kube_node"]},
    "_meta": {"hostvars": {
        "cp-1": {"ansible_host": "10.30.0.1", "ip": "10.30.0.1"},
        "wk-1": {"ansible_host": "10.30.0.2", "ansible_user": "debian"},
        "wk-2": {"ansible_host": "10.30.0.3", "ansible_user": "debian",
                 "ansible_become": False},
    }},
}
if sys.argv[1:] == ["--list"]:
    print(json.dumps(INVENTORY))
elif sys.argv[1:2] == ["--host"]:
    print(json.dumps(INVENTORY["_meta"]["hostvars"].get(sys.argv[2], {})))
else:
    sys.exit("usage: inventory.py --list | --host NAME")
