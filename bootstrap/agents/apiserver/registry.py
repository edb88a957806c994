"""Object-level REST operations: create, update, delete with upstream metadata rules.

HTTP-free: handlers parse requests into these calls. Every write runs
defaulting, validation and admission, and is skipped at the last step for
dryRun=All.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bootstrap.api import defaults, errors, meta, patch
from bootstrap.api.resources import Resource, by_gvr

from . import strategy
from .storage import alloc
from .storage.store import Store

Admit = Callable[[str, Resource, dict, dict | None, object], Awaitable[dict]]


@dataclass
class Ctx:
    """Per-request options every write honours."""

    user: object = None
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Strict"
    warnings: list[str] = field(default_factory=list)
    subresource: str = ""
    # Server-side apply: managedFields were already computed by the apply itself.
    apply: bool = False


def _track(old: dict | None, new: dict, res: Resource, ctx: Ctx) -> None:
    """Record the write in managedFields as an Update by the request's field manager."""
    if ctx.apply:
        return
    patch.track_update(old, new, res.gvk, ctx.field_manager or "unknown",
                       subresource=ctx.subresource if ctx.subresource == "status" else "")


class Registry:
    def __init__(self, store: Store, allocator: alloc.Allocator, admit: Admit | None = None):
        self.store = store
        self.alloc = allocator
        self.admit = admit

    async def _admit(self, op: str, res: Resource, obj: dict, old: dict | None,
                     ctx: Ctx) -> dict:
        if self.admit is None:
            return obj
        out = await self.admit(op, res, obj, old, ctx)
        return obj if out is None else out

    # -- create -----------------------------------------------------------------
    async def create(self, res: Resource, ns: str | None, obj: dict, ctx: Ctx) -> dict:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request was not a JSON object")
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be "
                                     "created")
        # TypeMeta first, as upstream serialises it.
        obj = {"apiVersion": res.gv, "kind": res.kind,
               **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}}
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = meta.generate_name(md["generateName"])
            else:
                raise errors.invalid(res.kind, "", [errors.required(
                    "metadata.name", "name or generateName is required")], res.group)
        ctx.warnings += strategy.decode(obj, res, ctx.field_validation)
        strategy.normalize(obj, res)
        strategy.apply_defaults(obj, res)
        # System fields before validation, as upstream's BeforeCreate: a Job's
        # generated selector is keyed on its uid.
        md.update(uid=meta.new_uid(), creationTimestamp=meta.now_rfc3339())
        if res.kind == "Job":
            defaults.generate_job_selector(obj)
        strategy.validate(obj, res)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        strategy.prepare_create(res, obj)
        if res.kind == "CertificateSigningRequest":
            _stamp_requestor(obj, ctx.user)
        meta.bump_generation(None, obj)
        obj = await self._admit("CREATE", res, obj, None, ctx)
        _track(None, obj, res, ctx)
        extra_cmp, extra_ops = [], []
        user_ip = (obj.get("spec") or {}).get("clusterIP") if res.kind == "Service" else None
        if res.kind == "Service":
            extra_cmp, extra_ops = await self._allocate_service(obj, None)
        if ctx.dry_run:
            return obj
        for _ in range(8):
            try:
                return await self.store.create(res, obj, extra_cmp=extra_cmp,
                                               extra_ops=extra_ops,
                                               on_extra_fail=_alloc_raced(res, obj, user_ip))
            except _Retry:
                extra_cmp, extra_ops = await self._allocate_service(obj, None, retry=True)
        raise errors.internal_error("could not allocate service addresses")

    async def _allocate_service(self, svc: dict, old: dict | None, retry: bool = False):
        """Claims for new ClusterIPs/NodePorts, releases for dropped ones."""
        spec = svc.setdefault("spec", {})
        name = f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}"
        cmps, ops = [], []
        if old is None:
            if spec.get("type") == "ExternalName":
                spec.pop("clusterIP", None)
            elif spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            else:
                ip = spec.get("clusterIP") if not retry else None
                if ip and ip == self.alloc.kubernetes_ip and name == "default/kubernetes":
                    pass
                elif ip:
                    self.alloc.check_ip(ip)
                else:
                    ip = await self.alloc.pick_ip()
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                c, o = self.alloc.claim(alloc.ip_key(ip), name)
                cmps += c
                ops += o
        else:
            # Values the client left out are kept, as upstream's patchAllocatedValues.
            for k in ("clusterIP", "clusterIPs"):
                if not spec.get(k) and (old.get("spec") or {}).get(k):
                    spec[k] = old["spec"][k]
            if alloc.wants_node_ports(svc):
                before = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                          for p in (old.get("spec") or {}).get("ports") or []}
                for p in spec.get("ports") or []:
                    if not p.get("nodePort"):
                        kept = before.get((p.get("port"), p.get("protocol", "TCP")))
                        if kept:
                            p["nodePort"] = kept
        old_ports = set(alloc.service_node_ports(old)) if old else set()
        if alloc.wants_node_ports(svc):
            lo, hi = alloc.NODEPORT_RANGE
            bad = [errors.invalid_value(f"spec.ports[{i}].nodePort", p["nodePort"],
                                        f"provided port is not in the valid range. The range "
                                        f"of valid ports is {lo}-{hi}")
                   for i, p in enumerate(spec.get("ports") or [])
                   if p.get("nodePort") and p["nodePort"] not in old_ports
                   and not lo <= p["nodePort"] <= hi]
            if bad:
                raise errors.invalid("Service", svc["metadata"]["name"], bad)
            missing = [p for p in spec.get("ports") or [] if not p.get("nodePort")]
            fresh = await self.alloc.pick_ports(len(missing), old_ports)
            for p, port in zip(missing, fresh, strict=True):
                p["nodePort"] = port
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        new_ports = set(alloc.service_node_ports(svc))
        for port in new_ports - old_ports:
            c, o = self.alloc.claim(alloc.port_key(port), name)
            cmps += c
            ops += o
        for port in old_ports - new_ports:
            ops.append(self.alloc.release(alloc.port_key(port)))
        return cmps, ops

    # -- update -----------------------------------------------------------------
    async def update(self, res: Resource, ns: str | None, name: str,
                     compute: Callable[[dict], Awaitable[dict]], ctx: Ctx, *,
                     precondition_rv: str | None = None) -> dict:
        """Update via ``compute(current) -> desired`` with the strategy for ctx.subresource."""
        sub = ctx.subresource
        extra_state: dict = {}

        async def mutate(current: dict) -> dict | None:
            desired = await compute(copy.deepcopy(current))
            if not isinstance(desired, dict):
                raise errors.bad_request("the body of the request was not a JSON object")
            md = desired.setdefault("metadata", {})
            if not isinstance(md, dict):
                raise errors.bad_request("metadata must be an object")
            # A resourceVersion the desired object carries is a precondition, whether a
            # PUT body or a patch (merge, strategic, JSON, apply) put it there: a
            # read-modify-write from a stale read must conflict, never overwrite.
            if md.get("resourceVersion") and str(md["resourceVersion"]) != \
                    current["metadata"].get("resourceVersion"):
                raise errors.conflict(res.plural, name, res.group)
            if md.get("name") and md["name"] != name:
                raise errors.bad_request(
                    f'the name of the object ({md["name"]}) does not match the name on '
                    f'the URL ({name})')
            if res.namespaced and md.get("namespace") and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not "
                                         "match the namespace sent on the request")
            desired["apiVersion"], desired["kind"] = res.gv, res.kind
            ctx.warnings += strategy.decode(desired, res, ctx.field_validation)
            if sub == "status":
                desired = strategy.prepare_status_update(res, desired, current)
            elif sub == "approval":
                desired = strategy.prepare_approval_update(desired, current)
            else:
                strategy.normalize(desired, res)
                strategy.apply_defaults(desired, res)
            strategy.validate(desired, res)
            cm = current["metadata"]
            md = desired["metadata"]
            for k in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "name", "namespace"):
                if k in cm:
                    md[k] = cm[k]
                else:
                    md.pop(k, None)
            md.setdefault("generation", cm.get("generation", 1))
            if sub == "":
                strategy.prepare_update(res, desired, current)
            strategy.validate_update(desired, current, res)
            desired = await self._admit("UPDATE", res, desired, current, ctx)
            _track(current, desired, res, ctx)
            if res.kind == "Service" and sub == "":
                extra_state["svc"] = await self._allocate_service(desired, current)
            # A graceful pod deletion still running keeps the pod until the kubelet
            # deletes it with grace 0; otherwise the last finalizer removes it.
            md = desired["metadata"]
            ns_pending = res.kind == "Namespace" and (desired.get("spec") or {}).get(
                "finalizers")
            if (cm.get("deletionTimestamp") and not md.get("finalizers")
                    and not cm.get("deletionGracePeriodSeconds") and not ns_pending):
                return None  # the last finalizer is gone: the object goes away now
            return desired

        def extra(current, new):
            if new is None and res.kind == "Service":
                return (), self._service_releases(current)
            return extra_state.get("svc", ((), ()))

        if ctx.dry_run:
            current = await self.store.get(res, ns, name)
            if precondition_rv and precondition_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, res.group)
            out = await mutate(copy.deepcopy(current))
            return out if out is not None else current
        _, new = await self.store.guaranteed_update(res, ns, name, mutate,
                                                    precondition_rv=precondition_rv,
                                                    extra=extra)
        return new

    def _service_releases(self, svc: dict) -> list:
        ops = [self.alloc.release(alloc.ip_key(ip)) for ip in alloc.service_ips(svc)]
        ops += [self.alloc.release(alloc.port_key(p)) for p in alloc.service_node_ports(svc)]
        return ops

    # -- delete -----------------------------------------------------------------
    async def delete(self, res: Resource, ns: str | None, name: str, ctx: Ctx,
                     options: dict | None = None) -> tuple[dict, bool]:
        """Returns (object, deleted_now). Objects with finalizers get a deletionTimestamp."""
        options = options or {}
        pre = options.get("preconditions") or {}
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        grace = options.get("gracePeriodSeconds")
        state: dict = {}

        async def mutate(current: dict) -> dict | None:
            md = current["metadata"]
            if pre.get("uid") and pre["uid"] != md.get("uid"):
                raise errors.conflict(res.plural, name, res.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {md.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != md.get(
                    "resourceVersion"):
                raise errors.conflict(res.plural, name, res.group,
                                      "Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object "
                                      f"meta: {md.get('resourceVersion')}")
            await self._admit("DELETE", res, current, current, ctx)
            finalizers = list(md.get("finalizers") or [])
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            elif policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if res.kind == "Namespace":
                return self._terminate_namespace(current)
            graceful = (res.kind == "Pod" and (current.get("spec") or {}).get("nodeName")
                        and current.get("status", {}).get("phase") not in ("Succeeded",
                                                                         "Failed"))
            if graceful:
                g = grace if grace is not None else (current.get("spec") or {}).get(
                    "terminationGracePeriodSeconds", 30)
                if md.get("deletionTimestamp") and g > 0 and g >= md.get(
                        "deletionGracePeriodSeconds", 0):
                    state["pending"] = True  # already terminating at least this fast
                    return current
                if g <= 0 and md.get("deletionTimestamp"):
                    md["deletionGracePeriodSeconds"] = 0
                if g > 0:
                    md["deletionGracePeriodSeconds"] = g
                    md["deletionTimestamp"] = _in_seconds(g)
                    if finalizers:
                        md["finalizers"] = finalizers
                    state["pending"] = True
                    return current
            if finalizers:
                if not md.get("deletionTimestamp"):
                    md["deletionTimestamp"] = meta.now_rfc3339()
                    md["deletionGracePeriodSeconds"] = 0
                md["finalizers"] = finalizers
                state["pending"] = True
                return current
            return None

        def extra(current, new):
            if new is None and res.kind == "Service":
                return (), self._service_releases(current)
            return (), ()

        if ctx.dry_run:
            current = await self.store.get(res, ns, name)
            out = await mutate(copy.deepcopy(current))
            return (out or current), out is None
        old, new = await self.store.guaranteed_update(res, ns, name, mutate, extra=extra)
        if state.get("pending"):
            return new, False
        return new, True

    def _terminate_namespace(self, ns_obj: dict) -> dict | None:
        md = ns_obj["metadata"]
        if not md.get("deletionTimestamp"):
            md["deletionTimestamp"] = meta.now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
        ns_obj.setdefault("status", {})["phase"] = "Terminating"
        if not (ns_obj.get("spec") or {}).get("finalizers") and not md.get("finalizers"):
            return None
        return ns_obj


class _Retry(Exception):
    """A racing API server took the address we picked: pick again."""


def _alloc_raced(res: Resource, obj: dict, user_ip: str | None):
    """The create transaction failed on an address claim rather than on the name."""
    if res.kind != "Service":
        return None

    async def fail():
        if user_ip and user_ip != "None":
            raise errors.invalid("Service", obj["metadata"]["name"], [errors.invalid_value(
                "spec.clusterIPs", [user_ip],
                f"failed to allocate IP {user_ip}: provided IP is already allocated")])
        raise _Retry()
    return fail


def _stamp_requestor(csr: dict, user) -> None:
    """CSRs record who asked, from the authenticated user, never from the body."""
    spec = csr.setdefault("spec", {})
    for k in ("username", "uid", "groups", "extra"):
        spec.pop(k, None)
    if user is None:
        return
    spec["username"] = user.name
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}


def _in_seconds(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource_for(group: str, version: str, plural: str) -> Resource:
    res = by_gvr(group, version, plural)
    if res is None:
        raise errors.APIError(404, "NotFound", "the server could not find the requested "
                                               "resource")
    return res
