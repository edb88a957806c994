"""Pod volumes: emptyDir, configMap, secret, projected, downwardAPI, hostPath.

Each volume gets a host directory under
``<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`` (upstream's
layout); what the pod sees is a CRI bind mount of it. configMap, secret,
downwardAPI and projected contents go through the atomic writer on every sync,
so updates propagate. Service-account tokens come from the TokenRequest API and
are refreshed at 80% of their lifetime (or after 24 h), as upstream's token manager.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bootstrap.agents.kubelet import atomic_writer as aw
from bootstrap.agents.kubelet.translate import NodeContext, PodInputs, field_ref, resource_field

log = logging.getLogger(__name__)

PLUGINS = {"emptyDir": "empty-dir", "configMap": "configmap", "secret": "secret",
           "projected": "projected", "downwardAPI": "downward-api"}
READ_ONLY = frozenset({"configMap", "secret", "projected", "downwardAPI"})
DEFAULT_MODE = 0o644
TOKEN_EXPIRATION = 3600
TOKEN_MAX_AGE = 24 * 3600


class VolumeError(Exception):
    """A volume cannot be set up (event FailedMount; the pod waits in ContainerCreating)."""


class Mounter:
    """tmpfs mounts for Memory emptyDirs and secret-bearing volumes."""

    def mount_tmpfs(self, path: Path, size: str | None = None) -> None:
        if os.path.ismount(path):
            return
        opts = ["-o", f"size={size}"] if size else []
        subprocess.run(["mount", "-t", "tmpfs", *opts, "tmpfs", str(path)], check=True,
                       capture_output=True)

    def unmount_under(self, root: Path) -> None:
        prefix = str(root).rstrip("/") + "/"
        points = []
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                mp = line.split()[4].replace("\\040", " ")
                if mp.startswith(prefix):
                    points.append(mp)
        for mp in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False, capture_output=True)


class NoMounter(Mounter):
    """For unit tests: directories only."""

    def mount_tmpfs(self, path: Path, size: str | None = None) -> None:
        pass

    def unmount_under(self, root: Path) -> None:
        pass


@dataclass
class _Token:
    token: str
    issued: float
    expires: float


Fetch = Callable[[str, str, str], Awaitable[dict | None]]  # (kind, namespace, name)


@dataclass
class VolumeManager:
    root_dir: Path
    fetch: Fetch                                   # configmaps/secrets, None on 404
    request_token: Callable[[str, str, dict], Awaitable[dict]]  # (ns, sa, TokenRequest)
    node: NodeContext
    mounter: Mounter = field(default_factory=Mounter)
    clock: Callable[[], float] = time.time
    _tokens: dict[tuple, _Token] = field(default_factory=dict)

    def pod_dir(self, uid: str) -> Path:
        return self.root_dir / "pods" / uid

    async def setup(self, pod: dict, inputs: PodInputs) -> None:
        """Create or refresh every volume of the pod; fills ``inputs.mounts``."""
        uid = pod["metadata"]["uid"]
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol["name"]
            kind = next((k for k in vol if k != "name"), "")
            if kind == "hostPath":
                inputs.mounts[name] = self._host_path(vol["hostPath"])
                continue
            if kind not in PLUGINS:
                raise VolumeError(f"volume {name!r}: unsupported volume type {kind!r}")
            target = self.pod_dir(uid) / "volumes" / f"kubernetes.io~{PLUGINS[kind]}" / name
            target.mkdir(parents=True, exist_ok=True)
            src = vol[kind] or {}
            if kind == "emptyDir":
                if src.get("medium") == "Memory":
                    self.mounter.mount_tmpfs(target, src.get("sizeLimit"))
                os.chmod(target, 0o777)  # upstream: emptyDirs are world-writable
            else:
                if kind in ("secret", "projected"):
                    self.mounter.mount_tmpfs(target)
                payload = await self._payload(pod, kind, src, name)
                if payload is not None:
                    aw.write(target, payload)
                inputs.readonly_volumes = inputs.readonly_volumes | {name}
            inputs.mounts[name] = str(target)

    def _host_path(self, src: dict) -> str:
        path, type_ = src.get("path", ""), src.get("type") or ""
        p = Path(path)
        checks = {
            "Directory": p.is_dir, "File": p.is_file,
            "Socket": lambda: p.is_socket(), "CharDevice": lambda: p.is_char_device(),
            "BlockDevice": lambda: p.is_block_device(),
        }
        if type_ == "DirectoryOrCreate":
            p.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif type_ == "FileOrCreate":
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch(0o644)
        elif type_ in checks and not checks[type_]():
            raise VolumeError(f"hostPath type check failed: {path} is not a "
                              f"{type_.lower() if type_ != 'File' else 'file'}")
        return path

    async def _payload(self, pod: dict, kind: str, src: dict, name: str
                       ) -> dict[str, aw.FileProjection] | None:
        ns = pod["metadata"].get("namespace", "default")
        if kind in ("configMap", "secret"):
            obj_name = src.get("name") if kind == "configMap" else src.get("secretName")
            return await self._keys(kind, ns, obj_name or "", src, src.get("defaultMode"))
        if kind == "downwardAPI":
            return self._downward(pod, src.get("items") or [], src.get("defaultMode"))
        payload: dict[str, aw.FileProjection] = {}
        mode = src.get("defaultMode")
        for source in src.get("sources") or []:
            if source.get("configMap"):
                s = source["configMap"]
                payload.update(await self._keys("configMap", ns, s.get("name", ""), s, mode)
                               or {})
            elif source.get("secret"):
                s = source["secret"]
                payload.update(await self._keys("secret", ns, s.get("name", ""), s, mode) or {})
            elif source.get("downwardAPI"):
                payload.update(self._downward(pod, source["downwardAPI"].get("items") or [],
                                              mode))
            elif source.get("serviceAccountToken"):
                s = source["serviceAccountToken"]
                token = await self._token(pod, s)
                payload[s["path"]] = aw.FileProjection(token.encode(), _mode(mode, 0o600))
        return payload

    async def _keys(self, kind: str, ns: str, obj_name: str, src: dict, default_mode
                    ) -> dict[str, aw.FileProjection] | None:
        obj = await self.fetch(kind, ns, obj_name)
        optional = bool(src.get("optional"))
        if obj is None:
            if optional:
                return {}
            raise VolumeError(f'{kind.lower()} "{obj_name}" not found')
        data: dict[str, bytes] = {}
        if kind == "secret":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        else:
            data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        items = src.get("items")
        if not items:
            return {k: aw.FileProjection(v, _mode(default_mode)) for k, v in data.items()}
        out = {}
        for item in items:
            key = item.get("key", "")
            if key not in data:
                if optional:
                    continue
                raise VolumeError(f"configmap references non-existent config key: {key}"
                                  if kind == "configMap" else
                                  f"references non-existent secret key: {key}")
            out[item.get("path") or key] = aw.FileProjection(
                data[key], _mode(item.get("mode"), _mode(default_mode)))
        return out

    def _downward(self, pod: dict, items: list[dict], default_mode
                  ) -> dict[str, aw.FileProjection]:
        out = {}
        inputs = PodInputs(pod_ip=((pod.get("status") or {}).get("podIP") or ""))
        for item in items:
            if item.get("fieldRef"):
                value = field_ref(pod, item["fieldRef"].get("fieldPath", ""), inputs, self.node)
            elif item.get("resourceFieldRef"):
                value = resource_field(pod, None, item["resourceFieldRef"], self.node)
            else:
                continue
            out[item["path"]] = aw.FileProjection(value.encode(),
                                                  _mode(item.get("mode"), _mode(default_mode)))
        return out

    async def _token(self, pod: dict, src: dict) -> str:
        meta = pod["metadata"]
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        audience = src.get("audience") or ""
        expiration = int(src.get("expirationSeconds") or TOKEN_EXPIRATION)
        key = (meta["uid"], sa, audience, expiration)
        cached = self._tokens.get(key)
        now = self.clock()
        if cached is not None and not _needs_refresh(cached, now):
            return cached.token
        spec: dict = {"expirationSeconds": expiration,
                      "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                         "name": meta["name"], "uid": meta["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        resp = await self.request_token(meta.get("namespace", "default"), sa, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        status = resp.get("status") or {}
        exp = _parse_time(status.get("expirationTimestamp")) or now + expiration
        self._tokens[key] = _Token(status.get("token", ""), now, exp)
        return self._tokens[key].token

    def next_token_refresh(self, uid: str) -> float | None:
        """Seconds until the first of the pod's tokens wants a refresh."""
        due = [t.issued + 0.8 * (t.expires - t.issued) for k, t in self._tokens.items()
               if k[0] == uid]
        return max(0.0, min(due) - self.clock()) if due else None

    def teardown(self, uid: str) -> None:
        d = self.pod_dir(uid)
        for k in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[k]
        if d.exists():
            self.mounter.unmount_under(d)
            shutil.rmtree(d, ignore_errors=True)


def _needs_refresh(tok: _Token, now: float) -> bool:
    ttl = tok.expires - tok.issued
    return now > tok.expires - 0.2 * ttl or now - tok.issued > TOKEN_MAX_AGE


def _mode(value, default: int = DEFAULT_MODE) -> int:
    return int(value) if value is not None else default


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
