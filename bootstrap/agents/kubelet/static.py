"""Static pods: manifests in staticPodPath run without the API, mirrored into it.

As upstream's file config source (pkg/kubelet/config/file.go, common.go): each
YAML/JSON Pod manifest becomes a pod named ``<name>-<node>`` bound to this node,
with a UID hashed from the manifest, the node name and the file, and the
annotations kubernetes.io/config.source=file, config.hash, config.seen. The API
gets a mirror pod carrying kubernetes.io/config.mirror=<hash> and an owner
reference to the Node; it is status only: the manifest stays the source of truth.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import uuid
from pathlib import Path

import yaml

from bootstrap.agents.kubelet import labels as L

log = logging.getLogger(__name__)


def load_manifests(path: str | Path, node: str) -> dict[str, dict]:
    """uid -> static pod, for every readable Pod manifest under ``path``."""
    out: dict[str, dict] = {}
    root = Path(path)
    if not root.is_dir():
        return out
    for f in sorted(root.iterdir()):
        if f.name.startswith(".") or not f.is_file():
            continue  # upstream ignores dotfiles (editor swap files)
        try:
            text = f.read_text()
            doc = yaml.safe_load(text)
        except (OSError, yaml.YAMLError) as exc:
            log.warning("static pod %s: cannot read: %s", f, exc)
            continue
        if not isinstance(doc, dict) or doc.get("kind") != "Pod":
            log.warning("static pod %s: not a Pod manifest", f)
            continue
        pod = static_pod(doc, node, str(f), text)
        out[pod["metadata"]["uid"]] = pod
    return out


def static_pod(doc: dict, node: str, source: str, text: str) -> dict:
    pod = copy.deepcopy(doc)
    meta = pod.setdefault("metadata", {})
    h = hashlib.md5(usedforsecurity=False)
    h.update(text.encode())
    h.update(node.encode())
    h.update(source.encode())
    uid = str(uuid.UUID(h.hexdigest()))
    meta["name"] = f"{meta.get('name', 'static')}-{node}"
    meta.setdefault("namespace", "default")
    meta["uid"] = uid
    ann = meta.setdefault("annotations", {})
    ann[L.CONFIG_SOURCE] = "file"
    ann[L.CONFIG_HASH] = uid.replace("-", "")
    ann.setdefault(L.CONFIG_SEEN, "")
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("enableServiceLinks", True)
    for c in spec.get("containers") or []:
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("imagePullPolicy", "IfNotPresent" if ":" in c.get("image", "")
                     and not c["image"].endswith(":latest") else "Always")
    pod.setdefault("status", {})
    return pod


def is_mirror(pod: dict) -> bool:
    return L.CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def mirror_of(static: dict, node_name: str, node_uid: str) -> dict:
    """The API object for a static pod (no uid: the API server gives it its own)."""
    pod = copy.deepcopy(static)
    meta = pod["metadata"]
    meta.pop("uid", None)
    meta.pop("resourceVersion", None)
    meta["annotations"][L.CONFIG_MIRROR] = meta["annotations"][L.CONFIG_HASH]
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                    "uid": node_uid, "controller": True}]
    pod.pop("status", None)
    pod["apiVersion"], pod["kind"] = "v1", "Pod"
    return pod
