"""DaemonSet controller (upstream's pkg/controller/daemon): one pod per eligible
node. Eligibility is upstream's NodeShouldRunDaemonPod over the template plus the
automatic DaemonSet tolerations; pods carry a required node affinity on
``metadata.name`` so the scheduler binds them (the controller never sets
nodeName). Templates are versioned in ControllerRevisions; RollingUpdate
replaces old pods within maxUnavailable (or surges by maxSurge), OnDelete waits
for the user."""

from __future__ import annotations

import copy
import time

from bootstrap.agents.controllers import history as hist
from bootstrap.agents.controllers import podcontrol as pc
from bootstrap.agents.controllers import taints as tn
from bootstrap.agents.controllers.intstr import scaled_value
from bootstrap.api.cache import OWNER_UID, split_key
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.placement import required_node_affinity, tolerated
from bootstrap.api.selectors import label_selector_from_dict

DAEMONSETS = ("apps", "v1", "daemonsets")
NODES = ("", "v1", "nodes")
API_VERSION, KIND = "apps/v1", "DaemonSet"
POD_TEMPLATE_GENERATION = "pod-template-generation"

# AddOrUpdateDaemonPodTolerations: (key, effect), plus network-unavailable for hostNetwork.
AUTO_TOLERATIONS = ((tn.NOT_READY, tn.NO_EXECUTE), (tn.UNREACHABLE, tn.NO_EXECUTE),
                    (tn.DISK_PRESSURE, tn.NO_SCHEDULE), (tn.MEMORY_PRESSURE, tn.NO_SCHEDULE),
                    (tn.PID_PRESSURE, tn.NO_SCHEDULE), (tn.UNSCHEDULABLE, tn.NO_SCHEDULE))
HOST_NETWORK_TOLERATIONS = ((tn.NETWORK_UNAVAILABLE, tn.NO_SCHEDULE),)


def daemon_pod_spec(template: dict) -> dict:
    """The template's pod spec with the automatic tolerations added."""
    spec = copy.deepcopy(template.get("spec") or {})
    tolerations = list(spec.get("tolerations") or [])
    wanted = AUTO_TOLERATIONS + (HOST_NETWORK_TOLERATIONS if spec.get("hostNetwork") else ())
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect and
                   t.get("operator") == "Exists" for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations
    return spec


def should_run(spec: dict, node: dict) -> tuple[bool, bool]:
    """(should run, should continue running) of a daemon pod with ``spec`` on ``node``."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    if not required_node_affinity(spec, labels, name):
        return False, False
    tolerations = spec.get("tolerations") or []
    untolerated = [t for t in (node.get("spec") or {}).get("taints") or []
                   if t.get("effect") in (tn.NO_SCHEDULE, tn.NO_EXECUTE)
                   and not tolerated(tolerations, t)]
    if not untolerated:
        return True, True
    return False, not any(t.get("effect") == tn.NO_EXECUTE for t in untolerated)


def target_node(pod: dict) -> str | None:
    """GetTargetNodeName: spec.nodeName, or the node named by the metadata.name affinity."""
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        return node
    required = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and \
                    len(f.get("values") or []) == 1:
                return f["values"][0]
    return None


def pin_to_node(spec: dict, node_name: str) -> dict:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required node affinity becomes
    exactly ``metadata.name In [node]`` (the node was already checked)."""
    spec = copy.deepcopy(spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return spec


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2  # --concurrent-daemonset-syncs
    from_options = pc.workers_from("concurrent_daemonset_syncs")

    def __init__(self, client, factory, recorder=None, *, clock=time.time):
        super().__init__(client, factory, recorder)
        self.clock = clock
        self.expectations = pc.Expectations(clock)
        self.daemonsets = factory.informer(DAEMONSETS)
        self.pods = factory.informer(pc.PODS)
        self.pods.add_indexers(pc.owner_indexers())
        self.nodes = factory.informer(NODES)
        self.revisions = factory.informer(hist.CONTROLLER_REVISIONS)
        self.revisions.add_indexers(pc.owner_indexers())
        self.daemonsets.add_handler(on_add=self.enqueue,
                                    on_update=lambda old, new: self.enqueue(new),
                                    on_delete=lambda ds: self.expectations.delete(
                                        pc.pod_key(ds)))
        children = pc.ChildEvents(KIND, self.daemonsets, self.enqueue, self.expectations,
                                  on_change=self._pod_changed)
        self.pods.add_handler(children.on_add, children.on_update, children.on_delete)
        self.nodes.add_handler(on_add=self._all, on_update=self._node_changed,
                               on_delete=self._all)

    def _all(self, _obj=None) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    def _node_changed(self, old: dict, new: dict) -> None:
        # Only what NodeShouldRunDaemonPod reads can change where daemons run.
        if _node_fields(old) != _node_fields(new):
            self._all()

    def _pod_changed(self, ds: dict, old: dict, new: dict) -> None:
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and not pc.is_ready(old) and pc.is_ready(new):
            self.enqueue_after(ds, min_ready + 1)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        cached = self.daemonsets.get(name, namespace)
        if cached is None:
            self.expectations.delete(key)
            return None
        ds = copy.deepcopy(cached)
        selector = label_selector_from_dict((ds.get("spec") or {}).get("selector"))
        if selector.empty():
            return None
        pods = await pc.claim(self.client, pc.PODS, ds, API_VERSION, KIND, selector,
                              pc.candidates(self.pods.indexer, ds),
                              pc.fresh_owner_check(self.client, DAEMONSETS, ds))
        ds, current = await self._revision(ds)
        if current is None:
            return 1.0
        digest = hist.revision_hash(current)
        spec = daemon_pod_spec(ds["spec"].get("template") or {})
        by_node: dict[str, list[dict]] = {}
        for pod in pods:
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            node = target_node(pod)
            if node:
                by_node.setdefault(node, []).append(pod)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        plan = {name: should_run(spec, node) for name, node in nodes.items()}
        err = None
        now = self.clock()
        if self.expectations.satisfied(key) and not ds["metadata"].get("deletionTimestamp"):
            err = await self._manage(ds, key, spec, digest, plan, by_node, now)
        await self._status(ds, plan, by_node, digest, now)
        await self._truncate(ds, current, pods)
        if err is not None:
            raise err
        return None

    async def _manage(self, ds, key, spec, digest, plan, by_node, now) -> Exception | None:
        create: list[str] = []
        delete: list[dict] = []
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        for node, (run, keep) in plan.items():
            pods = by_node.get(node, [])
            if run and not pods:
                create.append(node)
            elif run:
                failed = [p for p in pods if pc.pod_phase(p) == "Failed"]
                delete += failed
                alive = sorted((p for p in pods if p not in failed),
                               key=lambda p: p["metadata"].get("creationTimestamp", ""))
                if len(alive) > 1 and not self._surging(ds):
                    delete += alive[1:]
                elif len(alive) > 1:
                    # during a surge an old and a new pod may share a node, no more
                    delete += [p for p in alive if _hash(p) != digest][1:] + \
                        [p for p in alive if _hash(p) == digest][1:]
            elif not keep:
                delete += pods
        for node in by_node:
            if node not in plan:
                delete += by_node[node]   # the node is gone
        if not create and not delete and self._rolling(ds):
            create, delete = self._rolling_update(ds, digest, plan, by_node, now, min_ready)
        owner = pc.kinded(ds, API_VERSION, KIND)
        err = None
        if delete:
            err = await pc.delete_pods(self.client, self.recorder, owner, self.expectations,
                                       key, delete)
        if create and err is None:
            nodes = iter(create)
            template = ds["spec"].get("template") or {}
            labels = {hist.CONTROLLER_REVISION_HASH: digest,
                      POD_TEMPLATE_GENERATION: str(ds["metadata"].get("generation", 1))}

            def make() -> dict:
                pod = pc.pod_from_template(template, ds, API_VERSION, KIND, extra_labels=labels)
                pod["spec"] = pin_to_node(spec, next(nodes))
                return pod
            err = await pc.create_pods(self.client, self.recorder, owner, self.expectations,
                                       key, make, len(create))
        return err

    def _rolling(self, ds: dict) -> bool:
        return ((ds["spec"].get("updateStrategy") or {}).get("type") or "RollingUpdate") \
            == "RollingUpdate"

    def _limits(self, ds: dict, desired: int) -> tuple[int, int]:
        ru = (ds["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
        surge = scaled_value(ru.get("maxSurge", 0), desired, True)
        unavailable = scaled_value(ru.get("maxUnavailable", 1), desired, True)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    def _surging(self, ds: dict) -> bool:
        return self._rolling(ds) and self._limits(ds, 1)[0] > 0

    def _rolling_update(self, ds, digest, plan, by_node, now, min_ready):
        """rollingUpdate: (nodes to create new pods on, old pods to delete)."""
        desired = sum(1 for run, _ in plan.values() if run)
        surge, max_unavailable = self._limits(ds, desired)
        create: list[str] = []
        delete: list[dict] = []
        unavailable = 0
        old_available: list[tuple[str, dict]] = []
        for node, (run, _) in plan.items():
            if not run:
                continue
            pods = by_node.get(node, [])
            new = [p for p in pods if _hash(p) == digest]
            old = [p for p in pods if _hash(p) != digest]
            if not any(pc.is_available(p, min_ready, now) for p in pods):
                unavailable += 1
            for p in old:
                if not pc.is_available(p, min_ready, now):
                    delete.append(p)          # an old pod that is down goes at once
                elif new and surge and any(pc.is_available(n, min_ready, now) for n in new):
                    delete.append(p)          # its replacement is up
                elif not new:
                    old_available.append((node, p))
        if surge:
            surging = sum(1 for node, (run, _) in plan.items() if run and
                          any(_hash(p) == digest for p in by_node.get(node, [])) and
                          any(_hash(p) != digest for p in by_node.get(node, [])))
            room = max(0, surge - surging)
            create = [node for node, _ in old_available[:room]]
        else:
            room = max(0, max_unavailable - unavailable)
            delete += [p for _, p in old_available[:room]]
        return create, delete

    # ------------------------------------------------------------ history

    async def _revision(self, ds: dict) -> tuple[dict, dict | None]:
        """The ControllerRevision of the current template (created or renumbered)."""
        template = ds["spec"].get("template") or {}
        owned = [r for r in self.revisions.indexer.by_index(OWNER_UID, ds["metadata"]["uid"])
                 if pc.owned_by(r, ds)]
        top = hist.next_revision_number(owned)
        for rev in hist.sorted_revisions(owned):
            if hist.same_template(rev, template):
                if int(rev.get("revision") or 0) < top - 1:
                    rev = copy.deepcopy(rev)
                    rev["revision"] = top
                    rev = await self.client.update(hist.CONTROLLER_REVISIONS, rev,
                                                   rev["metadata"]["namespace"])
                return ds, rev
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        rev = hist.new_revision(ds, API_VERSION, KIND, template, top, collisions,
                                labels=dict(((template.get("metadata") or {}).get("labels"))
                                            or {}))
        try:
            return ds, await self.client.create(hist.CONTROLLER_REVISIONS, rev,
                                                rev["metadata"]["namespace"])
        except APIError as exc:
            if exc.code != 409:
                raise
        found = await self.client.get(hist.CONTROLLER_REVISIONS, rev["metadata"]["name"],
                                      rev["metadata"]["namespace"])
        if pc.owned_by(found, ds) and hist.same_template(found, template):
            return ds, found
        obj = copy.deepcopy(ds)
        obj.setdefault("status", {})["collisionCount"] = collisions + 1
        await self.client.update(DAEMONSETS, obj, obj["metadata"]["namespace"],
                                 subresource="status")
        return ds, None

    async def _truncate(self, ds: dict, current: dict, pods: list[dict]) -> None:
        limit = int(ds["spec"].get("revisionHistoryLimit", 10))
        live = {_hash(p) for p in pods}
        owned = [r for r in self.revisions.indexer.by_index(OWNER_UID, ds["metadata"]["uid"])
                 if pc.owned_by(r, ds) and r["metadata"]["name"] != current["metadata"]["name"]
                 and hist.revision_hash(r) not in live]
        for rev in hist.sorted_revisions(owned)[:max(0, len(owned) - limit)]:
            try:
                await self.client.delete(hist.CONTROLLER_REVISIONS, rev["metadata"]["name"],
                                         rev["metadata"]["namespace"])
            except APIError as exc:
                if exc.code != 404:
                    raise

    # ------------------------------------------------------------ status

    async def _status(self, ds, plan, by_node, digest, now) -> None:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        counts = dict.fromkeys(("desiredNumberScheduled", "currentNumberScheduled",
                                "numberMisscheduled", "numberReady", "numberAvailable",
                                "updatedNumberScheduled"), 0)
        for node, (run, _) in plan.items():
            pods = by_node.get(node, [])
            if run:
                counts["desiredNumberScheduled"] += 1
                if pods:
                    counts["currentNumberScheduled"] += 1
                    pod = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp",
                                                                       ""))[0]
                    counts["numberReady"] += pc.is_ready(pod)
                    counts["numberAvailable"] += pc.is_available(pod, min_ready, now)
                    counts["updatedNumberScheduled"] += any(_hash(p) == digest for p in pods)
            elif pods:
                counts["numberMisscheduled"] += 1
        status = {**counts, "observedGeneration": ds["metadata"].get("generation", 1),
                  "numberUnavailable": counts["desiredNumberScheduled"] -
                  counts["numberAvailable"]}
        old = ds.get("status") or {}
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        if not status["numberUnavailable"]:
            status.pop("numberUnavailable")   # omitempty upstream
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if status != old:
            obj = copy.deepcopy(ds)
            obj["status"] = status
            await self.client.update(DAEMONSETS, obj, obj["metadata"]["namespace"],
                                     subresource="status")


def _node_fields(node: dict) -> tuple:
    return ((node.get("metadata") or {}).get("labels"), (node.get("spec") or {}).get("taints"),
            (node.get("spec") or {}).get("unschedulable"))


def _hash(pod: dict) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(hist.CONTROLLER_REVISION_HASH)
