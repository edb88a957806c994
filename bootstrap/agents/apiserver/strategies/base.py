"""The generic strategy: what every kind does unless its own strategy says otherwise."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from bootstrap.api import defaults, meta, schema
from bootstrap.api.resources import Resource

# Returned by Strategy.delete to let the registry apply the generic finalizer rules.
DEFAULT = object()


@dataclass
class Extras:
    """Etcd compares and operations a write must carry in its transaction, and what
    to do when one of the extra compares fails instead of the object's own."""

    compares: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    on_conflict: object = None  # async callable, or None


class Strategy:
    # Status is written only through /status: a create starts with an empty one.
    reset_status_on_create = False
    # Upstream's AllowCreateOnUpdate: a PUT to a missing name creates it.
    allow_create_on_update = False
    # Served by the scale subresource (autoscaling/v1 Scale).
    scalable = False

    def __init__(self, res: Resource):
        self.res = res

    @property
    def has_status(self) -> bool:
        return "status" in self.res.subresources

    # decoding, defaulting, validation -------------------------------------------
    def decode(self, obj: dict, mode: str) -> list[str]:
        """Type and unknown-field checks, before defaulting; returns warnings."""
        return schema.decode(obj, self.res.gvk, mode=mode)

    def normalize(self, obj: dict) -> None:
        """Conversion-time rules (write-only sugar fields)."""

    def apply_defaults(self, obj: dict) -> None:
        defaults.apply_defaults(obj, self.res.gvk)

    def validate(self, obj: dict) -> None:
        """Required fields and per-kind rules, after defaulting; 422 on failure."""
        schema.validate_object(obj, self.res.gvk)

    def validate_update(self, new: dict, old: dict) -> None:
        schema.validate_update(new, old, self.res.gvk)

    # create -----------------------------------------------------------------------
    def before_validate(self, obj: dict, user) -> None:
        """Runs after the system fields (uid, creationTimestamp) are set, before
        validation: fields derived from them, or from who asks."""

    def prepare_create(self, obj: dict) -> None:
        if self.reset_status_on_create:
            obj["status"] = {}

    async def create_extras(self, obj: dict, retry: bool = False) -> Extras:
        return Extras()

    # update -----------------------------------------------------------------------
    def prepare_update(self, new: dict, old: dict) -> None:
        """Main-resource update: with a status subresource, status changes are ignored."""
        if self.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        self.bump_generation(old, new)

    def bump_generation(self, old: dict | None, new: dict) -> None:
        meta.bump_generation(old, new)

    def prepare_subresource_update(self, sub: str, new: dict, old: dict) -> dict:
        """An update through a subresource changes only what that subresource owns."""
        if sub != "status":
            raise NotImplementedError(sub)
        out = copy.deepcopy(old)
        out["status"] = copy.deepcopy(new.get("status") or {})
        out["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get(
            "resourceVersion", old["metadata"].get("resourceVersion"))
        return out

    def owns_subresource_update(self, sub: str) -> bool:
        return sub == "status"

    async def update_extras(self, new: dict, old: dict) -> Extras:
        return Extras()

    def still_finalizing(self, obj: dict) -> bool:
        """With deletionTimestamp set and no finalizers left, is the object kept?"""
        return False

    # delete -----------------------------------------------------------------------
    def delete(self, current: dict, grace: int | None, finalizers: list[str]):
        """The object after a DELETE request: the updated object to keep, None to
        remove it now, or DEFAULT for the generic finalizer rules."""
        return DEFAULT

    def removal_extras(self, obj: dict) -> Extras:
        """What removing the object from storage must release."""
        return Extras()

    # views ------------------------------------------------------------------------
    def set_replicas(self, obj: dict, replicas: int) -> None:
        """What a write through the scale subresource changes."""
        obj.setdefault("spec", {})["replicas"] = replicas

    def scale(self, obj: dict) -> dict:
        """autoscaling/v1 Scale view (only for ``scalable`` kinds)."""
        m = obj["metadata"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                           "creationTimestamp") if k in m},
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))},
        }
