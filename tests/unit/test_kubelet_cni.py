"""The CNI conflist the kubelet writes from the node's podCIDR."""

from __future__ import annotations

import json

from bootstrap.agents.kubelet import cni


def test_conflist_shape():
    conf = cni.conflist("10.244.1.0/24")
    assert conf["cniVersion"] == "0.4.0" and conf["name"] == "bootstrap"
    bridge, portmap = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] and not bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"] == {"type": "host-local",
                              "ranges": [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_written_only_when_changed(tmp_path):
    assert cni.write(tmp_path, "10.244.1.0/24")
    path = tmp_path / cni.CONFLIST
    mtime = path.stat().st_mtime_ns
    assert not cni.write(tmp_path, "10.244.1.0/24")
    assert path.stat().st_mtime_ns == mtime
    assert cni.write(tmp_path, "10.244.2.0/24")
    assert json.loads(path.read_text())["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] == \
        "10.244.2.0/24"
    assert sorted(p.name for p in tmp_path.iterdir()) == [cni.CONFLIST]
