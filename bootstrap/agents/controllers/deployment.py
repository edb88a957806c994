"""Deployment controller (upstream's pkg/controller/deployment): one ReplicaSet per
pod template, rolled with RollingUpdate (maxSurge/maxUnavailable) or Recreate,
revisions in ``deployment.kubernetes.io/revision`` so ``kubectl rollout
history/undo`` work, pause/resume, history cleanup, and the Progressing and
Available conditions. The arithmetic lives in ``deployment_util``; this module
reads the caches, decides with it and writes."""

from __future__ import annotations

import copy
import logging
import time

from bootstrap.agents.controllers import deployment_util as du
from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.api.cache import OWNER_UID, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.selectors import label_selector_from_dict

log = logging.getLogger(__name__)

DEPLOYMENTS = ("apps", "v1", "deployments")
REPLICASETS = ("apps", "v1", "replicasets")
API_VERSION, KIND = "apps/v1", "Deployment"
SCALING_REPLICA_SET = "ScalingReplicaSet"


class DeploymentController(Controller):
    name = "deployment"
    workers = 5  # --concurrent-deployment-syncs
    from_options = pc.workers_from("concurrent_deployment_syncs")

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.written = pc.LastWritten()
        self.deployments = factory.informer(DEPLOYMENTS)
        self.replicasets = factory.informer(REPLICASETS)
        self.replicasets.add_indexers(pc.owner_indexers())
        self.pods = factory.informer(pc.PODS)
        self.pods.add_indexers(pc.owner_indexers())
        self.deployments.add_handler(on_add=self.enqueue,
                                     on_update=lambda old, new: self.enqueue(new),
                                     on_delete=self._deleted)
        children = pc.ChildEvents(KIND, self.deployments, self.enqueue)
        self.replicasets.add_handler(children.on_add, children.on_update, children.on_delete)
        # Recreate waits for old pods to go: their deletion wakes the Deployment.
        self.pods.add_handler(on_delete=self._pod_deleted)

    def _deleted(self, d: dict) -> None:
        self.written.forget(pc.pod_key(d))
        self.enqueue(d)

    def _pod_deleted(self, pod: dict) -> None:
        ref = pc.controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(ref.get("name", ""), pod["metadata"].get("namespace"))
        if rs is None:
            return
        d = pc.resolve_controller(rs, KIND, self.deployments.get)
        if d is not None and not du.is_rolling(d):
            self.enqueue(d)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.written.fresh(key, self.deployments.get(name, namespace))
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        selector = label_selector_from_dict((d.get("spec") or {}).get("selector"))
        if selector.empty():
            # An empty selector would select every pod of the namespace (upstream refuses).
            pc.event(self.recorder, self._kinded(d), "Warning", "SelectingAll",
                     "This deployment is selecting all pods. A non-empty selector is required.")
            return None
        rss = await pc.claim(self.client, REPLICASETS, d, API_VERSION, KIND, selector,
                             pc.candidates(self.replicasets.indexer, d),
                             pc.fresh_owner_check(self.client, DEPLOYMENTS, d))
        # The cached ReplicaSets are only read here; every write copies first.
        if d["metadata"].get("deletionTimestamp"):
            return await self._sync_status(d, rss, du.find_new(d, rss))
        d = await self._paused_condition(d)
        if (d.get("spec") or {}).get("paused") or du.is_scaling_event(d, rss):
            return await self._sync(d, rss)
        if du.is_rolling(d):
            return await self._rolling(d, rss)
        return await self._recreate(d, rss)

    def _kinded(self, obj: dict, kind: str = KIND) -> dict:
        return pc.kinded(obj, API_VERSION, kind)

    async def _paused_condition(self, d: dict) -> dict:
        if not du.has_progress_deadline(d):
            return d
        status = copy.deepcopy(d.get("status") or {})
        cond = du.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return d
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        now = self.clock()
        if paused and not paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.PAUSED,
                                                      "Deployment is paused", now))
        elif not paused and paused_cond:
            du.set_condition(status, du.new_condition("Progressing", "Unknown", du.RESUMED,
                                                      "Deployment is resumed", now))
        else:
            return d
        return await self._write_status(d, status)

    # ------------------------------------------------------------ replica sets

    async def _new_and_old(self, d: dict, rss: list[dict], create: bool
                           ) -> tuple[dict, dict | None, list[dict]]:
        """getAllReplicaSetsAndSyncRevision: (deployment, new RS or None, old RSs),
        syncing the new RS's revision and annotations and the Deployment's revision."""
        existing = du.find_new(d, rss)
        old = du.find_old(rss, existing)
        revision = du.max_revision(old) + 1
        if existing is not None:
            new_rs = existing
            ann = du.synced_annotations(d, existing, revision)
            min_ready = int(d["spec"].get("minReadySeconds") or 0)
            if ann != du.annotations(existing) or \
                    int(existing["spec"].get("minReadySeconds") or 0) != min_ready:
                obj = copy.deepcopy(existing)
                obj["metadata"]["annotations"] = ann
                obj["spec"]["minReadySeconds"] = min_ready
                new_rs = await self.client.update(REPLICASETS, obj, obj["metadata"]["namespace"])
            d = await self._set_revision(d, du.revision_of(new_rs))
            if du.has_progress_deadline(d) and \
                    du.get_condition(d.get("status") or {}, "Progressing") is None:
                status = copy.deepcopy(d.get("status") or {})
                du.set_condition(status, du.new_condition(
                    "Progressing", "True", du.FOUND_NEW_RS,
                    f'Found new replica set "{new_rs["metadata"]["name"]}"', self.clock()))
                d = await self._write_status(d, status)
            return d, new_rs, old
        if not create:
            return d, None, old
        obj = du.new_rs_object(d, revision)
        obj["spec"]["replicas"] = du.new_rs_new_replicas(d, old, obj)
        try:
            new_rs = await self.client.create(REPLICASETS, obj, obj["metadata"]["namespace"])
        except APIError as exc:
            if exc.code != 409:
                raise
            return await self._collision(d, obj), None, old
        if obj["spec"]["replicas"] > 0:
            self._scaled(d, new_rs, 0, obj["spec"]["replicas"])
        d = await self._set_revision(d, revision)
        if du.has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            du.set_condition(status, du.new_condition(
                "Progressing", "True", du.NEW_RS_CREATED,
                f'Created new replica set "{new_rs["metadata"]["name"]}"', self.clock()))
            d = await self._write_status(d, status)
        return d, new_rs, old

    async def _collision(self, d: dict, wanted: dict) -> dict:
        """A ReplicaSet of the wanted name exists. If it is ours with our template the
        cache is behind (the next sync finds it); otherwise bump collisionCount so the
        next hash, and name, differ."""
        try:
            found = await self.client.get(REPLICASETS, wanted["metadata"]["name"],
                                          wanted["metadata"]["namespace"])
        except APIError as exc:
            if exc.code == 404:
                return d
            raise
        if pc.owned_by(found, d) and du.equal_ignore_hash(
                found["spec"].get("template") or {}, d["spec"].get("template") or {}):
            return d
        status = copy.deepcopy(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        return await self._write_status(d, status)

    async def _set_revision(self, d: dict, revision: int) -> dict:
        if du.annotations(d).get(du.REVISION) == str(revision):
            return d
        obj = copy.deepcopy(d)
        obj["metadata"].setdefault("annotations", {})[du.REVISION] = str(revision)
        return self.written.remember(
            await self.client.update(DEPLOYMENTS, obj, obj["metadata"]["namespace"]))

    async def _scale_rs(self, d: dict, rs: dict, size: int) -> dict:
        """scaleReplicaSetAndRecordEvent: size plus the desired/max annotations."""
        ann = du.replicas_annotations(du.annotations(rs), d)
        old_size = du.replicas(rs)
        if old_size == size and ann == du.annotations(rs):
            return rs
        obj = copy.deepcopy(rs)
        obj["spec"]["replicas"] = size
        obj["metadata"]["annotations"] = ann
        updated = await self.client.update(REPLICASETS, obj, obj["metadata"]["namespace"])
        if old_size != size:
            self._scaled(d, updated, old_size, size)
        return updated

    def _scaled(self, d: dict, rs: dict, old_size: int, size: int) -> None:
        direction = "up" if size > old_size else "down"
        pc.event(self.recorder, self._kinded(d), "Normal", SCALING_REPLICA_SET,
                 f"Scaled {direction} replica set {rs['metadata']['name']} to {size} "
                 f"from {old_size}")

    async def _apply_sizes(self, d: dict, rss: list[dict], sizes: dict[str, int]
                           ) -> list[dict]:
        out = []
        for rs in rss:
            name = rs["metadata"]["name"]
            out.append(await self._scale_rs(d, rs, sizes[name]) if name in sizes else rs)
        return out

    # ------------------------------------------------------------ strategies

    async def _sync(self, d: dict, rss: list[dict]) -> float | None:
        """Paused deployments and scaling events: resize, never roll."""
        d, new_rs, old = await self._new_and_old(d, rss, create=False)
        sizes = du.proportional_scale(d, new_rs, old)
        if new_rs is not None and new_rs["metadata"]["name"] in sizes:
            new_rs = await self._scale_rs(d, new_rs, sizes.pop(new_rs["metadata"]["name"]))
        old = await self._apply_sizes(d, old, sizes)
        if d["spec"].get("paused"):
            await self._cleanup(d, old)
        return await self._sync_status(d, ([new_rs] if new_rs else []) + old, new_rs)

    async def _rolling(self, d: dict, rss: list[dict]) -> float | None:
        d, new_rs, old = await self._new_and_old(d, rss, create=True)
        if new_rs is None:
            return 1.0  # name collision: retry with the new collisionCount
        all_rss = [new_rs] + old
        # reconcileNewReplicaSet
        want = du.replicas(d)
        if du.replicas(new_rs) != want:
            size = want if du.replicas(new_rs) > want else du.new_rs_new_replicas(d, all_rss,
                                                                                  new_rs)
            if size != du.replicas(new_rs):
                new_rs = await self._scale_rs(d, new_rs, size)
                return await self._sync_status(d, [new_rs] + old, new_rs)
        sizes = du.old_scale_down(d, all_rss, old, new_rs)
        if sizes:
            old = await self._apply_sizes(d, old, sizes)
            return await self._sync_status(d, [new_rs] + old, new_rs)
        if du.complete(d, d.get("status") or {}):
            await self._cleanup(d, old)
        return await self._sync_status(d, [new_rs] + old, new_rs)

    async def _recreate(self, d: dict, rss: list[dict]) -> float | None:
        d, new_rs, old = await self._new_and_old(d, rss, create=False)
        act = du.active(old)
        if act:
            old = await self._apply_sizes(d, old, {rs["metadata"]["name"]: 0 for rs in act})
            return await self._sync_status(d, ([new_rs] if new_rs else []) + old, new_rs)
        if self._old_pods_running(old):
            return await self._sync_status(d, ([new_rs] if new_rs else []) + old, new_rs)
        if new_rs is None:
            d, new_rs, old = await self._new_and_old(d, rss, create=True)
            if new_rs is None:
                return 1.0
        if du.replicas(new_rs) != du.replicas(d):
            new_rs = await self._scale_rs(d, new_rs, du.replicas(d))
        if du.complete(d, d.get("status") or {}):
            await self._cleanup(d, old)
        return await self._sync_status(d, [new_rs] + old, new_rs)

    def _old_pods_running(self, old: list[dict]) -> bool:
        for rs in old:
            if du.status_of(rs, "replicas") > 0:
                return True
            for pod in self.pods.indexer.by_index(OWNER_UID, rs["metadata"]["uid"]):
                if pc.pod_phase(pod) not in ("Succeeded", "Failed"):
                    return True
        return False

    async def _cleanup(self, d: dict, old: list[dict]) -> None:
        for rs in du.history_to_delete(d, old):
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"],
                                         rs["metadata"]["namespace"],
                                         preconditions={"uid": rs["metadata"]["uid"]})
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise

    # ------------------------------------------------------------ status

    async def _sync_status(self, d: dict, all_rss: list[dict], new_rs: dict | None
                           ) -> float | None:
        now = self.clock()
        status = du.calculate_status(d, all_rss, new_rs, now)
        paused = bool((d.get("spec") or {}).get("paused"))
        if not paused and not d["metadata"].get("deletionTimestamp"):
            du.rollout_status(d, status, new_rs, now)
        if _strip(status) != _strip(d.get("status") or {}):
            d = await self._write_status(d, status)
        return None if paused else du.requeue_stuck(d, status, now)

    async def _write_status(self, d: dict, status: dict) -> dict:
        obj = copy.deepcopy(d)
        obj["status"] = {k: v for k, v in status.items()
                         if k in ("observedGeneration", "conditions", "collisionCount")
                         or v not in (0, None)}
        return self.written.remember(await self.client.update(
            DEPLOYMENTS, obj, obj["metadata"]["namespace"], subresource="status"))


def _strip(status: dict) -> dict:
    """Status without zero counters (omitempty) for a change check."""
    return {k: v for k, v in status.items() if v not in (0, None) or k == "observedGeneration"}
