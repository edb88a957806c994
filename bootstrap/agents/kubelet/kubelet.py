"""The kubelet's control loop: pods bound to this node (and static pods) -> CRI.

A Controller (bootstrap.api.controller) keyed by pod UID: the pod informer
(fieldSelector spec.nodeName=<node>), the static pod source, the probe workers
and the PLEG (a 1 s relist of the runtime, as upstream's generic PLEG) all only
enqueue UIDs; ``reconcile(uid)`` reads the caches and the runtime, runs the pod
worker (sync.py) and writes the status through pods/status when it changed.
Pods that are gone are cleaned up from whatever the runtime still holds, which
is also how a restarted kubelet adopts live pods and removes orphans.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import shutil
import time
from pathlib import Path

from bootstrap.agents.kubelet import cni
from bootstrap.agents.kubelet import labels as L
from bootstrap.agents.kubelet import node as N
from bootstrap.agents.kubelet import static as SP
from bootstrap.agents.kubelet import status as S
from bootstrap.agents.kubelet import translate as T
from bootstrap.agents.kubelet.images import ImageManager
from bootstrap.agents.kubelet.prober import ProbeManager
from bootstrap.agents.kubelet.sync import PodSyncer
from bootstrap.agents.kubelet.volumes import Mounter, VolumeManager
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError

log = logging.getLogger(__name__)

PODS = ("", "v1", "pods")
SERVICES = ("", "v1", "services")
NODES = ("", "v1", "nodes")
CONFIGMAPS = ("", "v1", "configmaps")
SECRETS = ("", "v1", "secrets")
SERVICEACCOUNTS = ("", "v1", "serviceaccounts")
UID_INDEX = "uid"
PLEG_PERIOD = 1.0
HOUSEKEEPING_PERIOD = 2.0


def _uid(obj: dict) -> list[str]:
    return [obj["metadata"]["uid"]]


class Kubelet(Controller):
    name = "kubelet"
    workers = 32   # pods sync concurrently, one worker per pod at a time (the queue's rule)

    def __init__(self, client, factory, recorder, cfg, runtime, node_ip: str, *,
                 mounter: Mounter | None = None, clock=time.time, host_dns=None):
        super().__init__(client, factory, recorder)
        self.cfg = cfg
        self.node_name = cfg.node_name
        self.node_ip = node_ip
        self.runtime = runtime
        self.clock = clock
        self.pods = factory.informer(PODS, field_selector=f"spec.nodeName={self.node_name}")
        self.pods.add_indexers({UID_INDEX: _uid})
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n),
                              on_delete=self._on_pod)
        self.services = factory.informer(SERVICES)
        self.nodes = factory.informer(NODES, field_selector=f"metadata.name={self.node_name}")
        self.nodes.add_handler(on_add=self._on_node, on_update=lambda _o, n: self._on_node(n))
        self.static: dict[str, dict] = {}
        self.last_sent: dict[str, dict] = {}
        self.seen: dict[str, dict] = {}      # uid -> the last pod object synced (for cleanup)
        self.node_ctx = self._node_context(host_dns)
        self.prober = ProbeManager(runtime, on_change=self.queue.add)
        self.volumes = VolumeManager(Path(cfg.root_dir), self._fetch, self._request_token,
                                     self.node_ctx, mounter or Mounter(), clock)
        self.images = ImageManager(runtime, self._event)
        self.syncer = PodSyncer(runtime, self.node_ctx, self.volumes, self.images, self.prober,
                                self._event, self._inputs, clock)
        self.node_agent = N.NodeAgent(client, runtime, cfg, node_ip, clock=clock)
        if cfg.pod_cidr:
            self._write_cni(cfg.pod_cidr)

    # --- inputs ---------------------------------------------------------------------------

    def _node_context(self, host_dns) -> T.NodeContext:
        if host_dns is None:
            try:
                host_dns = T.ResolvConf.parse(Path(self.cfg.resolv_conf).read_text())
            except OSError:
                host_dns = T.ResolvConf()
        facts = N.meminfo()
        return T.NodeContext(node_name=self.node_name, node_ip=self.node_ip,
                             cluster_dns=tuple(self.cfg.cluster_dns),
                             cluster_domain=self.cfg.cluster_domain, host_dns=host_dns,
                             cgroup_driver=self.cfg.cgroup_driver,
                             memory_capacity=facts.get("MemTotal", 0),
                             milli_cpu_capacity=(os.cpu_count() or 1) * 1000,
                             pod_log_root=self.cfg.pod_log_root)

    def _event(self, ref: dict, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(ref, type_, reason, message)

    async def _fetch(self, kind: str, namespace: str, name: str) -> dict | None:
        res = CONFIGMAPS if kind.lower() == "configmap" else SECRETS
        try:
            return await self.client.get(res, name, namespace)
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def _request_token(self, namespace: str, sa: str, body: dict) -> dict:
        return await self.client.create(SERVICEACCOUNTS, body, namespace, subresource="token",
                                        name=sa)

    async def _inputs(self, pod: dict) -> T.PodInputs:
        ns = pod["metadata"].get("namespace", "default")
        cms: set[str] = set()
        secrets: set[str] = set()
        spec = pod.get("spec") or {}
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                if vf.get("configMapKeyRef"):
                    cms.add(vf["configMapKeyRef"].get("name", ""))
                if vf.get("secretKeyRef"):
                    secrets.add(vf["secretKeyRef"].get("name", ""))
            for ef in c.get("envFrom") or []:
                if ef.get("configMapRef"):
                    cms.add(ef["configMapRef"].get("name", ""))
                if ef.get("secretRef"):
                    secrets.add(ef["secretRef"].get("name", ""))
        inputs = T.PodInputs(service_env=T.service_env(self.services.list(), ns))
        for name in cms - {""}:
            inputs.configmaps[name] = await self._fetch("configmap", ns, name)
        for name in secrets - {""}:
            inputs.secrets[name] = await self._fetch("secret", ns, name)
        return inputs

    # --- the desired pods --------------------------------------------------------------------

    def _on_pod(self, pod: dict) -> None:
        if SP.is_mirror(pod):
            for uid, sp in self.static.items():
                if sp["metadata"]["name"] == pod["metadata"]["name"]:
                    self.queue.add(uid)
            return
        self.queue.add(pod["metadata"]["uid"])

    def _on_node(self, node: dict) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr and not self.cfg.pod_cidr:
            self._write_cni(cidr)

    def _write_cni(self, cidr: str) -> None:
        try:
            if cni.write(self.cfg.cni_conf_dir, cidr):
                log.info("wrote CNI config for pod CIDR %s", cidr)
        except OSError as exc:
            log.warning("writing CNI config failed: %s", exc)

    def desired(self, uid: str) -> dict | None:
        if uid in self.static:
            return self.static[uid]
        found = self.pods.indexer.by_index(UID_INDEX, uid)
        return found[0] if found and not SP.is_mirror(found[0]) else None

    def all_pods(self) -> list[dict]:
        api = [p for p in self.pods.list() if not SP.is_mirror(p)]
        return api + list(self.static.values())

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        uid = key
        pod = self.desired(uid)
        if pod is None:
            await self.syncer.cleanup(uid, self.seen.pop(uid, None))
            self._remove_logs(uid)
            self.last_sent.pop(uid, None)
            return None
        self.seen[uid] = pod
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self.syncer.terminate(pod)
            if uid not in self.static:
                await self._finish_deletion(pod)
            return None
        started = time.monotonic()
        outcome = await self.syncer.sync(pod)
        synced = time.monotonic()
        status = S.pod_status(pod, outcome.runtime, outcome.view, self.node_ip, self.clock())
        await self._write_status(pod, status)
        log.debug("synced pod %s/%s: %s in %.3fs (status write %.3fs)",
                  pod["metadata"].get("namespace"), pod["metadata"]["name"], status["phase"],
                  synced - started, time.monotonic() - synced)
        delay = outcome.requeue
        if status["phase"] in ("Succeeded", "Failed") and \
                (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            delay = 0.0  # stop the sandbox of a finished pod on the next pass
        periodic = self.cfg.sync_frequency
        return periodic if delay is None else min(delay, periodic)

    async def _write_status(self, pod: dict, status: dict) -> None:
        uid = pod["metadata"]["uid"]
        if not S.changed(self.last_sent.get(uid), status):
            return
        meta = pod["metadata"]
        if uid in self.static:
            pod["status"] = status
            mirror = self.pods.get(meta["name"], meta.get("namespace"))
            if mirror is None:
                await self._ensure_mirror(pod)
                return
            body = {"status": status}
        else:
            body = {"metadata": {"uid": uid}, "status": status}
        try:
            # Strategic merge: conditions merge by type, so conditions other writers own
            # (the scheduler's, DisruptionTarget) survive, as with upstream's status manager.
            await self.client.patch(PODS, meta["name"], body, meta.get("namespace"),
                                    patch_type="strategic", subresource="status")
        except APIError as exc:
            if exc.code == 404:
                return
            raise
        self.last_sent[uid] = status

    async def _finish_deletion(self, pod: dict) -> None:
        """All containers are stopped: tell the API server it may drop the object
        (upstream's status manager deletes with grace 0 and a UID precondition)."""
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta.get("namespace"),
                                     grace_period_seconds=0,
                                     preconditions={"uid": meta["uid"]})
        except APIError as exc:
            if exc.code not in (404, 409):
                raise

    def _remove_logs(self, uid: str) -> None:
        for d in glob.glob(f"{glob.escape(self.cfg.pod_log_root)}/*_{glob.escape(uid)}"):
            shutil.rmtree(d, ignore_errors=True)

    # --- static pods --------------------------------------------------------------------------

    async def _ensure_mirror(self, pod: dict) -> None:
        meta = pod["metadata"]
        mirror = self.pods.get(meta["name"], meta.get("namespace"))
        want = meta["annotations"][L.CONFIG_HASH]
        if mirror is not None:
            have = (mirror["metadata"].get("annotations") or {}).get(L.CONFIG_MIRROR)
            if have == want and not mirror["metadata"].get("deletionTimestamp"):
                return
            try:
                await self.client.delete(PODS, meta["name"], meta.get("namespace"),
                                         grace_period_seconds=0)
            except APIError as exc:
                if exc.code != 404:
                    raise
        body = SP.mirror_of(pod, self.node_name, self.node_agent.node_uid)
        try:
            await self.client.create(PODS, body, meta.get("namespace"))
        except APIError as exc:
            if exc.code != 409:
                log.warning("creating mirror pod %s/%s failed: %s", meta.get("namespace"),
                            meta["name"], exc)

    async def static_loop(self) -> None:
        while True:
            try:
                await self.refresh_static()
            except Exception:
                log.exception("static pods")
            await asyncio.sleep(self.cfg.file_check_frequency)

    async def refresh_static(self) -> None:
        found = await asyncio.to_thread(SP.load_manifests, self.cfg.static_pod_path,
                                        self.node_name)
        for uid in set(self.static) - set(found):
            gone = self.static.pop(uid)
            self.queue.add(uid)
            meta = gone["metadata"]
            try:
                await self.client.delete(PODS, meta["name"], meta.get("namespace"),
                                         grace_period_seconds=0)
            except APIError as exc:
                if exc.code != 404:
                    log.warning("deleting mirror pod %s: %s", meta["name"], exc)
        for uid, pod in found.items():
            if uid not in self.static:
                pod["metadata"]["annotations"][L.CONFIG_SEEN] = N.micro_time(self.clock())
                self.static[uid] = pod
                self.queue.add(uid)
        for pod in list(self.static.values()):
            if self.node_agent.registered.is_set():
                await self._ensure_mirror(pod)

    # --- PLEG and housekeeping -----------------------------------------------------------------

    async def pleg(self) -> None:
        """Relist the runtime every second; enqueue pods whose containers changed, and
        pods the runtime holds that nobody wants (orphans: cleaned up, never leaked)."""
        previous: dict[str, tuple] = {}
        last_housekeeping = 0.0
        while True:
            try:
                current: dict[str, tuple] = {}
                for c in await self.runtime.list_containers():
                    uid = c.labels.get(L.POD_UID)
                    if uid:
                        current[c.id] = (uid, c.state)
                for sb in await self.runtime.list_pod_sandbox():
                    uid = sb.labels.get(L.POD_UID)
                    if uid:
                        current[sb.id] = (uid, sb.state)
                changed = {v[0] for k, v in current.items() if previous.get(k) != v}
                changed |= {v[0] for k, v in previous.items() if k not in current}
                now = time.monotonic()
                if now - last_housekeeping >= HOUSEKEEPING_PERIOD and self.pods.has_synced:
                    last_housekeeping = now
                    changed |= {v[0] for v in current.values()
                                if self.desired(v[0]) is None}
                for uid in changed:
                    self.queue.add(uid)
                previous = current
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("PLEG relist failed: %s", exc)
            await asyncio.sleep(PLEG_PERIOD)

    async def close(self) -> None:
        await self.prober.close()
