"""The node's CNI network config, written from Node.spec.podCIDR.

containerd's CRI plugin loads the first conflist in /etc/cni/net.d and reloads it
when it changes; until one exists the runtime reports NetworkReady=false and the
node stays NotReady, as with upstream's kubelet on an uninitialised network.
The pod's loopback interface needs no entry: containerd's CRI plugin always
brings ``lo`` up itself (go-cni's WithLoNetwork) and loads only the first file.
Masquerading is not the bridge plugin's job here (ipMasq false): the node network
rules masquerade only traffic that leaves the cluster's networks.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

CONFLIST = "10-bootstrap.conflist"
NETWORK = "bootstrap"
BRIDGE = "cni0"
CNI_VERSION = "0.4.0"   # understood by Debian's plugins 1.1 and containerd 1.6's go-cni


def conflist(pod_cidr: str) -> dict:
    net = ipaddress.ip_network(pod_cidr, strict=False)
    gateway = str(next(net.hosts()))
    default = "0.0.0.0/0" if net.version == 4 else "::/0"
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
             "hairpinMode": True, "promiscMode": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net),
                                                         "gateway": gateway}]],
                      "routes": [{"dst": default}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def render(pod_cidr: str) -> str:
    return json.dumps(conflist(pod_cidr), indent=2) + "\n"


def write(conf_dir: str | Path, pod_cidr: str) -> bool:
    """Write the conflist when it differs; True when the file changed."""
    path = Path(conf_dir) / CONFLIST
    text = render(pod_cidr)
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + CONFLIST + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    # A rename, so containerd's watcher never loads a half-written file.
    tmp.replace(path)
    return True
