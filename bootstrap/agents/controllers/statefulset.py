"""StatefulSet controller (upstream's pkg/controller/statefulset): pods with stable
ordinal names ``<set>-<n>``, created in order and each Running and Ready before
the next with OrderedReady (all at once with Parallel), removed from the highest
ordinal, and rolled from the highest ordinal down to ``partition``. Templates are
versioned in ControllerRevisions (status.currentRevision / updateRevision).

volumeClaimTemplates need PersistentVolumes, which this cluster does not
provision yet: such a set gets a Warning event and a ReplicaFailure condition
saying so, and no pods (rather than pods that could never start).
"""

from __future__ import annotations

import copy
import re
import time

from bootstrap.agents.controllers import history as hist
from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.api.cache import OWNER_UID, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.selectors import label_selector_from_dict

STATEFULSETS = ("apps", "v1", "statefulsets")
API_VERSION, KIND = "apps/v1", "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
VCT_REASON = "VolumeClaimTemplatesUnsupported"
VCT_MESSAGE = ("volumeClaimTemplates are not supported yet: this cluster provisions no "
               "PersistentVolumes; remove spec.volumeClaimTemplates or use other volumes")


def ordinal(set_name: str, pod: dict) -> int | None:
    m = re.fullmatch(re.escape(set_name) + r"-(\d+)", pod["metadata"].get("name", ""))
    return int(m.group(1)) if m else None


def _replicas(sts: dict) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _revision_of(pod: dict) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(hist.CONTROLLER_REVISION_HASH)


def _terminating(pod: dict) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


class StatefulSetController(Controller):
    name = "statefulset"
    workers = 5  # --concurrent-statefulset-syncs
    from_options = pc.workers_from("concurrent_statefulset_syncs")

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.expectations = pc.Expectations(clock)
        self.sets = factory.informer(STATEFULSETS)
        self.pods = factory.informer(pc.PODS)
        self.pods.add_indexers(pc.owner_indexers())
        self.revisions = factory.informer(hist.CONTROLLER_REVISIONS)
        self.revisions.add_indexers(pc.owner_indexers())
        self.sets.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                              on_delete=lambda s: self.expectations.delete(pc.pod_key(s)))
        children = pc.ChildEvents(KIND, self.sets, self.enqueue, self.expectations)
        self.pods.add_handler(children.on_add, children.on_update, children.on_delete)

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.sets.get(name, namespace)
        if cached is None:
            self.expectations.delete(key)
            return None
        sts = copy.deepcopy(cached)
        selector = label_selector_from_dict((sts.get("spec") or {}).get("selector"))
        if selector.empty():
            return None
        owner = pc.kinded(sts, API_VERSION, KIND)
        pods = await pc.claim(self.client, pc.PODS, sts, API_VERSION, KIND, selector,
                              pc.candidates(self.pods.indexer, sts),
                              pc.fresh_owner_check(self.client, STATEFULSETS, sts))
        if sts["spec"].get("volumeClaimTemplates"):
            pc.event(self.recorder, owner, "Warning", "FailedCreate",
                     f"create Pod {name}-0 in StatefulSet {name} failed error: {VCT_MESSAGE}")
            await self._write_status(sts, self._status(sts, pods, None, None, refused=True))
            return None
        update_rev = await self._update_revision(sts)
        if update_rev is None:
            return 1.0
        revisions = {r["metadata"]["name"]: r for r in self._owned_revisions(sts)}
        current_rev = revisions.get((sts.get("status") or {}).get("currentRevision") or "") \
            or update_rev
        err = None
        if self.expectations.satisfied(key) and not sts["metadata"].get("deletionTimestamp"):
            err = await self._manage(sts, key, owner, pods, current_rev, update_rev)
        status = self._status(sts, pods, current_rev, update_rev)
        await self._write_status(sts, status)
        await self._truncate(sts, pods, {current_rev["metadata"]["name"],
                                         update_rev["metadata"]["name"]})
        if err is not None:
            raise err
        return None

    # ------------------------------------------------------------ pods

    def _pod(self, sts: dict, ord_: int, rev: dict) -> dict:
        name = f"{sts['metadata']['name']}-{ord_}"
        template = hist.template_of(rev)
        pod = pc.pod_from_template(template, sts, API_VERSION, KIND, name=name, extra_labels={
            POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ord_),
            hist.CONTROLLER_REVISION_HASH: hist.revision_hash(rev)})
        pod["spec"]["hostname"] = name
        if sts["spec"].get("serviceName"):
            pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
        return pod

    async def _manage(self, sts, key, owner, pods, current_rev, update_rev
                      ) -> Exception | None:
        set_name = sts["metadata"]["name"]
        count = _replicas(sts)
        ordered = (sts["spec"].get("podManagementPolicy") or "OrderedReady") != "Parallel"
        strategy = sts["spec"].get("updateStrategy") or {}
        rolling = (strategy.get("type") or "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        now = self.clock()
        slots: dict[int, dict] = {}
        condemned: list[tuple[int, dict]] = []
        for pod in pods:
            o = ordinal(set_name, pod)
            if o is None:
                continue
            if o < count:
                slots[o] = pod
            else:
                condemned.append((o, pod))
        condemned.sort(key=lambda item: -item[0])

        def healthy(pod: dict) -> bool:
            return pc.pod_phase(pod) == "Running" and pc.is_available(pod, min_ready, now) \
                and not _terminating(pod)

        creates: list[dict] = []
        deletes: list[dict] = []
        for o in range(count):
            pod = slots.get(o)
            if pod is not None and pc.is_terminal(pod) and not _terminating(pod):
                deletes.append(pod)             # failed or finished: recreate it
                if ordered:
                    break
                continue
            if pod is None:
                rev = current_rev if rolling and o < partition else update_rev
                creates.append(self._pod(sts, o, rev))
                if ordered:
                    break
                continue
            if ordered and not healthy(pod):
                break                           # wait for this one before the next
        else:
            for _o, pod in condemned:
                if _terminating(pod):
                    if ordered:
                        break
                    continue
                deletes.append(pod)
                if ordered:
                    break
            else:
                if rolling and not deletes and not creates:
                    for o in range(count - 1, partition - 1, -1):
                        pod = slots.get(o)
                        if pod is None:
                            break
                        if _revision_of(pod) != hist.revision_hash(update_rev) and \
                                not _terminating(pod):
                            deletes.append(pod)
                            break
                        if not healthy(pod):
                            break
        err = None
        if deletes:
            err = await pc.delete_pods(self.client, self.recorder, owner, self.expectations,
                                       key, deletes)
        if creates and err is None:
            it = iter(creates)
            err = await pc.create_pods(self.client, self.recorder, owner, self.expectations,
                                       key, lambda: next(it), len(creates))
        return err

    # ------------------------------------------------------------ history

    def _owned_revisions(self, sts: dict) -> list[dict]:
        return [r for r in self.revisions.indexer.by_index(OWNER_UID, sts["metadata"]["uid"])
                if pc.owned_by(r, sts)]

    async def _update_revision(self, sts: dict) -> dict | None:
        template = sts["spec"].get("template") or {}
        owned = self._owned_revisions(sts)
        top = hist.next_revision_number(owned)
        for rev in hist.sorted_revisions(owned):
            if hist.same_template(rev, template):
                if int(rev.get("revision") or 0) < top - 1:
                    rev = copy.deepcopy(rev)
                    rev["revision"] = top
                    rev = await self.client.update(hist.CONTROLLER_REVISIONS, rev,
                                                   rev["metadata"]["namespace"])
                return rev
        collisions = int((sts.get("status") or {}).get("collisionCount") or 0)
        rev = hist.new_revision(sts, API_VERSION, KIND, template, top, collisions,
                                labels=dict((template.get("metadata") or {}).get("labels")
                                            or {}))
        try:
            return await self.client.create(hist.CONTROLLER_REVISIONS, rev,
                                            rev["metadata"]["namespace"])
        except APIError as exc:
            if exc.code != 409:
                raise
        found = await self.client.get(hist.CONTROLLER_REVISIONS, rev["metadata"]["name"],
                                      rev["metadata"]["namespace"])
        if pc.owned_by(found, sts) and hist.same_template(found, template):
            return found
        obj = copy.deepcopy(sts)
        obj.setdefault("status", {})["collisionCount"] = collisions + 1
        await self.client.update(STATEFULSETS, obj, obj["metadata"]["namespace"],
                                 subresource="status")
        return None

    async def _truncate(self, sts: dict, pods: list[dict], keep: set[str]) -> None:
        limit = int(sts["spec"].get("revisionHistoryLimit", 10))
        live = {_revision_of(p) for p in pods}
        old = [r for r in self._owned_revisions(sts) if r["metadata"]["name"] not in keep
               and hist.revision_hash(r) not in live]
        for rev in hist.sorted_revisions(old)[:max(0, len(old) - limit)]:
            try:
                await self.client.delete(hist.CONTROLLER_REVISIONS, rev["metadata"]["name"],
                                         rev["metadata"]["namespace"])
            except APIError as exc:
                if exc.code != 404:
                    raise

    # ------------------------------------------------------------ status

    def _status(self, sts, pods, current_rev, update_rev, refused: bool = False) -> dict:
        set_name = sts["metadata"]["name"]
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        now = self.clock()
        mine = [p for p in pods if ordinal(set_name, p) is not None]
        status: dict = {"observedGeneration": sts["metadata"].get("generation", 1),
                        "replicas": len(mine),
                        "readyReplicas": sum(1 for p in mine if pc.is_ready(p)),
                        "availableReplicas": sum(1 for p in mine
                                                 if pc.is_available(p, min_ready, now))}
        old = sts.get("status") or {}
        if current_rev is not None and update_rev is not None:
            cur, upd = hist.revision_hash(current_rev), hist.revision_hash(update_rev)
            status["currentReplicas"] = sum(1 for p in mine if _revision_of(p) == cur)
            status["updatedReplicas"] = sum(1 for p in mine if _revision_of(p) == upd)
            status["currentRevision"] = current_rev["metadata"]["name"]
            status["updateRevision"] = update_rev["metadata"]["name"]
            # completeRollingUpdate: every pod updated and ready -> update becomes current
            if status["updatedReplicas"] == status["replicas"] == _replicas(sts) and \
                    status["readyReplicas"] == status["replicas"]:
                status["currentRevision"] = status["updateRevision"]
                status["currentReplicas"] = status["updatedReplicas"]
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if refused:
            prev = next((c for c in old.get("conditions") or []
                         if c.get("type") == "ReplicaFailure"), None)
            stamp = (prev or {}).get("lastTransitionTime") or \
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            conditions.append({"type": "ReplicaFailure", "status": "True", "reason": VCT_REASON,
                               "message": VCT_MESSAGE, "lastTransitionTime": stamp})
        if conditions:
            status["conditions"] = conditions
        return {k: v for k, v in status.items()
                if v not in (0, None) or k in ("replicas", "availableReplicas",
                                               "observedGeneration")}

    async def _write_status(self, sts: dict, status: dict) -> None:
        if status == (sts.get("status") or {}):
            return
        obj = copy.deepcopy(sts)
        obj["status"] = status
        await self.client.update(STATEFULSETS, obj, obj["metadata"]["namespace"],
                                 subresource="status")
