"""An in-memory API with the ``bootstrap.api.client.Client`` surface, for unit tests
of controllers and agents (client-go's ``kubernetes/fake``, plus a real watch).

Objects in, requests out: seed objects, run the controller (its informers list
and watch this fake unchanged), then assert on ``requests`` and ``objects()``.
It keeps the API semantics controllers depend on: one increasing resourceVersion
across all objects, uid and creationTimestamp on create, generation bumped on spec
changes, 409 on a stale resourceVersion, status written only through ``/status``,
deletionTimestamp + finalizers (the object stays until its finalizers are gone),
graceful deletion of bound pods, pods/binding, pods/eviction and ``/scale``.
Patches and selectors reuse the API server's own implementations.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bootstrap.api import discovery, errors, meta
from bootstrap.api.client import PATCH_TYPES, ResourceRef, _resource
from bootstrap.api.patch import json_patch, merge_patch
from bootstrap.api.patch_apply import apply as server_side_apply
from bootstrap.api.patch_strategic import PatchError, strategic_merge_patch
from bootstrap.api.resources import CATALOGUE, Resource, by_gvr
from bootstrap.api.selectors import parse_field_selector, parse_label_selector

PODS = by_gvr("", "v1", "pods")
_STATUS_KEY = "status"
_FIELD_SUBRESOURCES = {"finalize": ("spec", "finalizers"), "approval": ("status", "conditions")}


@dataclass
class FakeRequest:
    verb: str           # get, list, watch, create, update, patch, delete
    resource: str       # plural
    namespace: str | None
    name: str | None
    subresource: str | None = None
    body: Any = None
    params: dict = field(default_factory=dict)


@dataclass
class _Change:
    rv: int
    gvr: tuple
    type: str           # ADDED, MODIFIED, DELETED
    old: dict | None
    new: dict


class FakeClient:
    def __init__(self, namespace: str = "default"):
        self.namespace = namespace
        self.server = "fake://"
        self.requests: list[FakeRequest] = []
        self.rv = 0
        self._store: dict[tuple, dict[tuple[str, str], dict]] = {}
        self._history: list[_Change] = []
        self._oldest = 0           # history before this revision was compacted
        self._watchers: list[asyncio.Queue] = []
        self._errors: list[list] = []  # [verb, plural, name, error, times]
        # Resources served beyond the static catalogue (a CRD's), listed by discovery.
        self.served: list[Resource] = []

    # test helpers ------------------------------------------------------------------

    def serve(self, *resources: Resource) -> None:
        """Serve custom resources: discovery lists them from now on."""
        self.served.extend(resources)

    def unserve(self, resource: Resource) -> None:
        self.served = [r for r in self.served if r.gvr != resource.gvr]

    async def request(self, method: str, path: str, **kwargs) -> Any:
        """Raw requests: only discovery (/api, /apis), from CATALOGUE plus ``served``."""
        self.requests.append(FakeRequest(method.lower(), path, None, None))
        for entry in self._errors:  # fail("get", "/apis", error) breaks discovery
            if entry[0] == method.lower() and entry[1] == path and entry[4]:
                entry[4] -= 1
                raise entry[3]
        if method != "GET" or path not in ("/api", "/apis"):
            raise errors.APIError(404, "NotFound",
                                  "the server could not find the requested resource")
        every = [r for r in CATALOGUE if r.stored] + self.served
        return discovery.document([r for r in every if bool(r.group) == (path == "/apis")])

    def seed(self, *objs: dict) -> None:
        """Store objects as if they had been created (no request is recorded)."""
        for obj in objs:
            group, _, version = obj.get("apiVersion", "").rpartition("/")
            res = next((r for r in self.served if r.gvk == (group, version, obj.get("kind"))),
                       None) or _resource_of(obj)
            self._create(res, copy.deepcopy(obj), obj.get("metadata", {}).get("namespace"))

    def objects(self, plural: str, namespace: str | None = None) -> list[dict]:
        out = []
        for (gvr, ns_name), obj in self._all():
            if gvr[2] == plural and (namespace is None or ns_name[0] == namespace):
                out.append(copy.deepcopy(obj))
        return out

    def requests_for(self, verb: str | None = None, resource: str | None = None,
                     subresource: str | None = None) -> list[FakeRequest]:
        return [r for r in self.requests if (verb is None or r.verb == verb)
                and (resource is None or r.resource == resource)
                and (subresource is None or r.subresource == subresource)]

    def writes(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.verb not in ("get", "list", "watch")]

    def fail(self, verb: str, resource: str, error: errors.APIError, *,
             name: str | None = None, times: int = 1) -> None:
        """The next ``times`` matching requests raise ``error`` (and change nothing)."""
        self._errors.append([verb, resource, name, error, times])

    def compact(self) -> None:
        """Forget the change history: watches from older revisions get 410 Expired."""
        self._history.clear()
        self._oldest = self.rv

    def end_watches(self) -> None:
        """End every open watch stream cleanly, as a server-side timeout does."""
        for q in self._watchers:
            q.put_nowait(self.rv)  # the revision this stream has been delivered up to

    def _all(self):
        for gvr, objs in self._store.items():
            for ns_name, obj in sorted(objs.items()):
                yield (gvr, ns_name), obj

    # bookkeeping -------------------------------------------------------------------

    def _record(self, verb, res: Resource, namespace, name, subresource=None, body=None,
                **params) -> None:
        self.requests.append(FakeRequest(verb, res.plural, namespace, name, subresource,
                                         copy.deepcopy(body),
                                         {k: v for k, v in params.items() if v is not None}))
        for entry in self._errors:
            verb_, plural, want_name, error, times = entry
            if verb_ == verb and plural == res.plural and want_name in (None, name) and times:
                entry[4] -= 1
                raise error

    def _check_reached(self, resource_version: str | None, retry_after: int = 0) -> None:
        """A revision this fake has not reached (a caller's from before a restore, or a
        test's) is refused as the API server refuses it."""
        if resource_version and resource_version.isdigit() and int(resource_version) > self.rv:
            raise errors.too_large_resource_version(int(resource_version), self.rv,
                                                    retry_after=retry_after)

    def _bucket(self, res: Resource) -> dict[tuple[str, str], dict]:
        return self._store.setdefault(res.gvr, {})

    def _ns(self, res: Resource, namespace: str | None) -> str:
        return (namespace or self.namespace) if res.namespaced else ""

    def _current(self, res: Resource, namespace: str, name: str) -> dict:
        obj = self._bucket(res).get((namespace, name))
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        return obj

    def _commit(self, res: Resource, type_: str, old: dict | None, new: dict) -> dict:
        self.rv += 1
        md = new["metadata"]
        md["resourceVersion"] = str(self.rv)
        key = (md.get("namespace", ""), md["name"])
        if type_ == "DELETED":
            self._bucket(res).pop(key, None)
        else:
            self._bucket(res)[key] = new
        change = _Change(self.rv, res.gvr, type_, copy.deepcopy(old), copy.deepcopy(new))
        self._history.append(change)
        for q in self._watchers:
            q.put_nowait(change)
        return copy.deepcopy(new)

    # reads -------------------------------------------------------------------------

    async def get(self, resource: ResourceRef, name: str, namespace: str | None = None,
                  *, subresource: str | None = None, params: dict | None = None) -> dict:
        res = _resource(resource)
        ns = self._ns(res, namespace)
        self._record("get", res, ns or None, name, subresource)
        obj = self._current(res, ns, name)
        if subresource == "scale":
            return _scale(res, obj)
        return copy.deepcopy(obj)

    async def list(self, resource: ResourceRef, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None,
                   resource_version_match: str | None = None) -> dict:
        res = _resource(resource)
        self._record("list", res, namespace, None, label_selector=label_selector,
                     field_selector=field_selector, limit=limit)
        self._check_reached(resource_version)
        match = _matcher(res, label_selector, field_selector)
        items = [copy.deepcopy(o) for (ns, _), o in sorted(self._bucket(res).items())
                 if (not namespace or not res.namespaced or ns == namespace) and match(o)]
        start = int(continue_ or 0)
        meta_out: dict = {"resourceVersion": str(self.rv)}
        if limit and start + limit < len(items):
            meta_out["continue"] = str(start + limit)
            items = items[start:start + limit]
        else:
            items = items[start:]
        return {"kind": res.list_kind, "apiVersion": res.gv, "metadata": meta_out,
                "items": items}

    async def list_all(self, resource: ResourceRef, namespace: str | None = None, *,
                       page_size: int = 500, **selectors) -> dict:
        return await self.list(resource, namespace, **selectors)

    async def watch(self, resource: ResourceRef, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True,
                    send_initial_events: bool | None = None) -> AsyncIterator[dict]:
        """Events after ``resource_version`` (or the current objects as ADDED first when
        it is empty or "0"), then live ones until ``timeout_seconds`` or end_watches()."""
        res = _resource(resource)
        self._record("watch", res, namespace, None, resource_version=resource_version,
                     label_selector=label_selector, field_selector=field_selector)
        match = _matcher(res, label_selector, field_selector)
        queue: asyncio.Queue = asyncio.Queue()
        backlog: list[dict] = []
        if resource_version in (None, "", "0"):
            backlog = [{"type": "ADDED", "object": copy.deepcopy(o)}
                       for (ns, _), o in sorted(self._bucket(res).items())
                       if (not namespace or ns == namespace) and match(o)]
        else:
            self._check_reached(resource_version, retry_after=1)
            since = int(resource_version)
            if since < self._oldest:
                raise errors.gone(f"too old resource version: {since} ({self._oldest})")
            for change in self._history:
                if change.rv > since:
                    queue.put_nowait(change)
        self._watchers.append(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds if timeout_seconds else None
        try:
            for event in backlog:
                yield event
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    # Not wait_for: on Python 3.11 it can swallow a cancel that races
                    # a ready event, and a stopping informer then never finishes.
                    async with asyncio.timeout(remaining):
                        change = await queue.get()
                except TimeoutError:
                    return
                if isinstance(change, int):  # end_watches(): a bookmark, then the end
                    if allow_bookmarks:
                        yield {"type": "BOOKMARK", "object": {
                            "kind": res.kind, "apiVersion": res.gv,
                            "metadata": {"resourceVersion": str(change)}}}
                    return
                event = _filter(change, res, namespace, match)
                if event is not None:
                    yield event
        finally:
            self._watchers.remove(queue)

    # writes ------------------------------------------------------------------------

    async def create(self, resource: ResourceRef, obj: dict, namespace: str | None = None, *,
                     subresource: str | None = None, name: str | None = None,
                     dry_run: bool = False, field_manager: str | None = None) -> dict:
        res = _resource(resource)
        ns = self._ns(res, namespace or (obj.get("metadata") or {}).get("namespace"))
        name = name or (obj.get("metadata") or {}).get("name")
        self._record("create", res, ns or None, name if subresource else None, subresource,
                     obj, field_manager=field_manager)
        if subresource == "binding":
            return self._bind(res, ns, name, obj)
        if subresource == "eviction":
            await self._delete(res, ns, name, (obj.get("deleteOptions") or {}))
            return _success(201)
        if subresource:
            raise errors.method_not_supported(f"{res.plural}/{subresource}", "create", res.group)
        if dry_run:
            return copy.deepcopy(obj)
        return self._create(res, copy.deepcopy(obj), ns)

    def _create(self, res: Resource, obj: dict, ns: str | None) -> dict:
        md = obj.setdefault("metadata", {})
        if not md.get("name") and md.get("generateName"):
            md["name"] = meta.generate_name(md["generateName"])
        if not md.get("name"):
            raise errors.invalid(res.kind, "", [errors.required("metadata.name",
                                                                "name or generateName is required")],
                                 res.group)
        if res.namespaced:
            md["namespace"] = ns or md.get("namespace") or self.namespace
        else:
            md.pop("namespace", None)
        if (md.get("namespace", ""), md["name"]) in self._bucket(res):
            raise errors.already_exists(res.plural, md["name"], res.group)
        obj.setdefault("apiVersion", res.gv)
        obj.setdefault("kind", res.kind)
        md["uid"] = md.get("uid") or meta.new_uid()
        md["creationTimestamp"] = md.get("creationTimestamp") or meta.now_rfc3339()
        md.pop("deletionTimestamp", None)
        meta.bump_generation(None, obj)
        return self._commit(res, "ADDED", None, obj)

    async def update(self, resource: ResourceRef, obj: dict, namespace: str | None = None, *,
                     subresource: str | None = None, dry_run: bool = False,
                     field_manager: str | None = None) -> dict:
        res = _resource(resource)
        md = obj.get("metadata") or {}
        ns = self._ns(res, namespace or md.get("namespace"))
        self._record("update", res, ns or None, md.get("name"), subresource, obj,
                     field_manager=field_manager)
        current = self._current(res, ns, md.get("name", ""))
        want = md.get("resourceVersion")
        if want and want != current["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, md["name"], res.group)
        if subresource == "scale":
            return self._write_scale(res, current, obj, dry_run)
        return self._replace(res, current, copy.deepcopy(obj), subresource, dry_run)

    def _replace(self, res: Resource, current: dict, new: dict, subresource: str | None,
                 dry_run: bool) -> dict:
        """The update path shared by PUT, PATCH, /status and /scale."""
        if subresource in _FIELD_SUBRESOURCES and subresource in res.subresources:
            # namespaces/finalize and certificatesigningrequests/approval change one field.
            top, key = _FIELD_SUBRESOURCES[subresource]
            out = copy.deepcopy(current)
            out.setdefault(top, {})[key] = copy.deepcopy((new.get(top) or {}).get(key) or [])
            new = out
        elif subresource not in (None, "", _STATUS_KEY):
            raise errors.method_not_supported(f"{res.plural}/{subresource}", "update",
                                              res.group)
        has_status = _STATUS_KEY in res.subresources
        if subresource in _FIELD_SUBRESOURCES:
            pass
        elif subresource == _STATUS_KEY:
            # /status changes status only; everything else stays as stored.
            out = copy.deepcopy(current)
            out[_STATUS_KEY] = new.get(_STATUS_KEY)
            if out[_STATUS_KEY] is None:
                out.pop(_STATUS_KEY)
            new = out
        elif has_status:
            new.pop(_STATUS_KEY, None)
            if _STATUS_KEY in current:
                new[_STATUS_KEY] = copy.deepcopy(current[_STATUS_KEY])
        cm, md = current["metadata"], new.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "name", "namespace"):
            if k in cm:
                md[k] = cm[k]
            else:
                md.pop(k, None)
        new.setdefault("apiVersion", current.get("apiVersion"))
        new.setdefault("kind", current.get("kind"))
        meta.bump_generation(current, new)
        md["resourceVersion"] = cm["resourceVersion"]
        if dry_run:
            return copy.deepcopy(new)
        if new == current:
            return copy.deepcopy(current)  # a no-op write keeps its resourceVersion
        # A namespace is also held by spec.finalizers (released through /finalize).
        held = md.get("finalizers") or (res.kind == "Namespace" and
                                        (new.get("spec") or {}).get("finalizers"))
        if cm.get("deletionTimestamp") and not held \
                and not cm.get("deletionGracePeriodSeconds"):
            return self._commit(res, "DELETED", current, new)  # last finalizer removed
        return self._commit(res, "MODIFIED", current, new)

    async def patch(self, resource: ResourceRef, name: str, patch: Any,
                    namespace: str | None = None, *, patch_type: str = "strategic",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool | None = None, dry_run: bool = False) -> dict:
        res = _resource(resource)
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {', '.join(PATCH_TYPES)}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        ns = self._ns(res, namespace)
        self._record("patch", res, ns or None, name, subresource, patch,
                     patch_type=patch_type, field_manager=field_manager, force=force)
        current = self._bucket(res).get((ns, name))
        if current is None:
            if patch_type != "apply" or subresource:
                raise errors.not_found(res.plural, name, res.group)
            obj = server_side_apply(None, patch, res.gvk, field_manager, bool(force))
            obj.setdefault("metadata", {})["name"] = name
            return self._create(res, obj, ns)
        base = _scale(res, current) if subresource == "scale" else current
        patched = self._apply_patch(res, base, patch, patch_type, field_manager, force,
                                    subresource)
        want = (patched.get("metadata") or {}).get("resourceVersion")
        if want and want != current["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name, res.group)
        if subresource == "scale":
            return self._write_scale(res, current, patched, dry_run)
        return self._replace(res, current, patched, subresource, dry_run)

    @staticmethod
    def _apply_patch(res, base, patch, patch_type, field_manager, force, subresource):
        if patch_type == "json":
            return json_patch(base, patch)
        if patch_type == "merge":
            return merge_patch(base, patch)
        if patch_type == "apply":
            return server_side_apply(copy.deepcopy(base), patch, res.gvk, field_manager,
                                     bool(force), subresource=subresource or "")
        try:
            return strategic_merge_patch(copy.deepcopy(base), patch, res.gvk)
        except PatchError as exc:
            raise errors.bad_request(str(exc)) from None

    async def delete(self, resource: ResourceRef, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict | None = None, dry_run: bool = False) -> dict:
        res = _resource(resource)
        ns = self._ns(res, namespace)
        options = {"propagationPolicy": propagation_policy,
                   "gracePeriodSeconds": grace_period_seconds, "preconditions": preconditions}
        self._record("delete", res, ns or None, name, None,
                     {k: v for k, v in options.items() if v is not None})
        if dry_run:
            return copy.deepcopy(self._current(res, ns, name))
        return await self._delete(res, ns, name, options)

    async def _delete(self, res: Resource, ns: str, name: str, options: dict) -> dict:
        current = self._current(res, ns, name)
        md = current["metadata"]
        pre = options.get("preconditions") or {}
        for field_, ours in (("uid", md.get("uid")), ("resourceVersion", md["resourceVersion"])):
            if pre.get(field_) and pre[field_] != ours:
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: {field_} in precondition: "
                                      f"{pre[field_]}, {field_} in object meta: {ours}")
        new = copy.deepcopy(current)
        nmd = new["metadata"]
        finalizers = list(nmd.get("finalizers") or [])
        policy = options.get("propagationPolicy")
        extra = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy or "")
        if extra and extra not in finalizers:
            finalizers.append(extra)
        grace = options.get("gracePeriodSeconds")
        if res.kind == "Namespace" and (current.get("spec") or {}).get("finalizers"):
            # spec.finalizers hold a namespace in Terminating until the controller finalizes.
            if md.get("deletionTimestamp"):
                return copy.deepcopy(current)
            nmd["deletionTimestamp"] = meta.now_rfc3339()
            nmd["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            return self._commit(res, "MODIFIED", current, new)
        if res.gvr == PODS.gvr and (current.get("spec") or {}).get("nodeName") and \
                (current.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            g = grace if grace is not None else \
                (current.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if g > 0:
                if md.get("deletionTimestamp") and g >= md.get("deletionGracePeriodSeconds", 0):
                    return copy.deepcopy(current)
                nmd["deletionTimestamp"] = _in_seconds(g)
                nmd["deletionGracePeriodSeconds"] = g
                if finalizers:
                    nmd["finalizers"] = finalizers
                return self._commit(res, "MODIFIED", current, new)
            nmd["deletionGracePeriodSeconds"] = 0
        if finalizers:
            if nmd.get("finalizers") == finalizers and md.get("deletionTimestamp"):
                return copy.deepcopy(current)
            nmd.setdefault("deletionTimestamp", meta.now_rfc3339())
            nmd["deletionGracePeriodSeconds"] = 0
            nmd["finalizers"] = finalizers
            return self._commit(res, "MODIFIED", current, new)
        return self._commit(res, "DELETED", current, new)

    # subresources ------------------------------------------------------------------

    def _bind(self, res: Resource, ns: str, name: str, binding: dict) -> dict:
        current = self._current(res, ns, name)
        if (current.get("spec") or {}).get("nodeName"):
            raise errors.conflict("pods/binding", name, "",
                                  f"pod {name} is already assigned to node "
                                  f"\"{current['spec']['nodeName']}\"")
        if current["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", name, "",
                                  f"pod {name} is being deleted, cannot be assigned to a host")
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["nodeName"] = (binding.get("target") or {}).get("name")
        conds = new.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": meta.now_rfc3339()})
        self._commit(res, "MODIFIED", current, new)
        return _success(201)

    def _write_scale(self, res: Resource, current: dict, scale: dict, dry_run: bool) -> dict:
        if "scale" not in res.subresources:
            raise errors.not_found(f"{res.plural}/scale", current["metadata"]["name"],
                                   res.group)
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = (scale.get("spec") or {}).get("replicas", 0)
        out = self._replace(res, current, new, None, dry_run)
        return _scale(res, out)

    # lifecycle (Client compatibility) ------------------------------------------------

    async def close(self) -> None:
        self.end_watches()

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _resource_of(obj: dict) -> Resource:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group, _, version = api_version.rpartition("/")
    from bootstrap.api.resources import by_gvk
    res = by_gvk(group, version, kind)
    if res is None:
        raise ValueError(f"seed: unknown kind {api_version} {kind}")
    return res


def _matcher(res: Resource, label_selector: str | None, field_selector: str | None):
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, res.plural)

    def match(obj: dict) -> bool:
        return labels.matches((obj.get("metadata") or {}).get("labels") or {}) and \
            fields.matches(obj)
    return match


def _filter(change: _Change, res: Resource, namespace: str | None, match) -> dict | None:
    """The event one watcher sees: an object moving into or out of its selector is
    ADDED or DELETED for it, as the API server's watch cache reports."""
    if change.gvr != res.gvr:
        return None
    ns = change.new["metadata"].get("namespace", "")
    if namespace and res.namespaced and ns != namespace:
        return None
    new_in = match(change.new)
    old_in = change.old is not None and match(change.old)
    type_ = change.type
    if type_ == "MODIFIED":
        if new_in and not old_in:
            type_ = "ADDED"
        elif old_in and not new_in:
            type_ = "DELETED"
        elif not new_in:
            return None
    elif not new_in:
        return None
    return {"type": type_, "object": copy.deepcopy(change.new)}


def _scale(res: Resource, obj: dict) -> dict:
    if "scale" not in res.subresources:
        raise errors.not_found(f"{res.plural}/scale", obj["metadata"]["name"], res.group)
    md = obj["metadata"]
    status = obj.get("status") or {}
    selector = ((obj.get("spec") or {}).get("selector") or {})
    sel = selector.get("matchLabels") if isinstance(selector, dict) else None
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                             "creationTimestamp") if k in md},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items()))}}


def _in_seconds(seconds: int) -> str:
    """deletionTimestamp of a graceful delete: when the grace period ends."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _success(code: int) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": code}
