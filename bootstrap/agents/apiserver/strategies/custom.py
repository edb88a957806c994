"""Strategies of CustomResourceDefinitions and of the custom resources they define
(upstream's apiextensions-apiserver registry strategies)."""

from __future__ import annotations

from bootstrap.api import (
    cel_rules,
    crd,
    errors,
    meta,
    schema,
    structural,
    validation,
    validation_crd,
)
from bootstrap.api.resources import Resource

from .base import Strategy

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def _storage_version(obj: dict) -> str | None:
    for v in (obj.get("spec") or {}).get("versions") or []:
        if isinstance(v, dict) and v.get("storage"):
            return v.get("name")
    return None


class CRDStrategy(Strategy):
    """Status (conditions, acceptedNames, storedVersions) is the server's: a create
    starts with storedVersions = [the storage version]; later storage versions are
    appended, as upstream, so old objects stay readable."""

    def validate(self, obj: dict) -> None:
        schema.validate_object(obj, self.res.gvk)
        causes = validation_crd.validate_crd(obj)
        if causes:
            raise errors.invalid(self.res.kind, obj["metadata"].get("name", ""), causes,
                                 self.res.group)

    def validate_update(self, new: dict, old: dict) -> None:
        causes = validation_crd.validate_crd_update(new, old)
        if causes:
            raise errors.invalid(self.res.kind, new["metadata"].get("name", ""), causes,
                                 self.res.group)

    def prepare_create(self, obj: dict) -> None:
        # The server's CRD finalizer deletes the objects before the CRD goes.
        fins = obj["metadata"].setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in fins:
            fins.append(CLEANUP_FINALIZER)
        storage = _storage_version(obj)
        obj["status"] = {"conditions": [], "acceptedNames": {"plural": "", "kind": ""},
                         "storedVersions": [storage] if storage else []}

    def prepare_update(self, new: dict, old: dict) -> None:
        super().prepare_update(new, old)
        storage = _storage_version(new)
        stored = new.setdefault("status", {}).setdefault("storedVersions", [])
        if storage and storage not in stored:
            stored.append(storage)


class CustomResourceStrategy(Strategy):
    """Decode prunes what the schema does not name (400 with fieldValidation=Strict,
    a warning with Warn); defaults come from the schema's ``default``; validation is
    the structural schema's, with kube-openapi's messages."""

    def __init__(self, res: Resource):
        super().__init__(res)
        self.cv: crd.CustomVersion = res.custom

    @property
    def scalable(self) -> bool:  # type: ignore[override]
        return self.cv.scale is not None

    def before_validate(self, obj: dict, user) -> None:
        if self.cv.terminating:
            raise errors.APIError(405, "MethodNotAllowed", "create not allowed while custom "
                                  "resource definition is terminating")

    def decode(self, obj: dict, mode: str) -> list[str]:
        removed: list[str] = []
        structural.prune(obj, self.cv.schema, removed=removed)
        if not removed:
            return []
        if mode == "Strict":
            raise errors.bad_request("strict decoding error: " + ", ".join(
                f'unknown field "{u}"' for u in removed))
        return [f'unknown field "{u}"' for u in removed] if mode == "Warn" else []

    def apply_defaults(self, obj: dict) -> None:
        structural.apply_defaults(obj, self.cv.schema)

    def validate(self, obj: dict) -> None:
        causes = validation.validate_meta(obj, self.res.kind)
        causes += structural.validate(obj, self.cv.schema)
        if not causes:
            # Upstream runs CEL rules only on values the schema already accepted.
            causes += cel_rules.evaluate(obj, self.cv.schema)
        if causes:
            raise errors.invalid(self.res.kind, obj["metadata"].get("name", ""), causes,
                                 self.res.group)

    def validate_update(self, new: dict, old: dict) -> None:
        causes = cel_rules.evaluate(new, self.cv.schema, old, transitions=True)
        if causes:
            raise errors.invalid(self.res.kind, new["metadata"].get("name", ""), causes,
                                 self.res.group)

    def bump_generation(self, old: dict | None, new: dict) -> None:
        md = new.setdefault("metadata", {})
        if old is None:
            md["generation"] = 1
        else:
            cur = (old.get("metadata") or {}).get("generation", 1)
            md["generation"] = cur + 1 if meta.spec_changed(old, new) else cur

    def prepare_create(self, obj: dict) -> None:
        if self.cv.status:
            obj.pop("status", None)  # with a status subresource, create cannot set it

    def prepare_subresource_update(self, sub: str, new: dict, old: dict) -> dict:
        out = super().prepare_subresource_update(sub, new, old)
        if "status" not in new:
            out.pop("status", None)
        structural.apply_defaults(out, self.cv.schema)
        return out

    # scale: the CRD names where replicas live.
    def _paths(self) -> tuple[str, str, str | None]:
        s = self.cv.scale or {}
        return (s.get("specReplicasPath", ".spec.replicas"),
                s.get("statusReplicasPath", ".status.replicas"),
                s.get("labelSelectorPath"))

    def set_replicas(self, obj: dict, replicas: int) -> None:
        spec_path = self._paths()[0]
        keys = [k for k in spec_path.split(".") if k]
        cur = obj
        for k in keys[:-1]:
            cur = cur.setdefault(k, {})
        cur[keys[-1]] = replicas

    def scale(self, obj: dict) -> dict:
        spec_path, status_path, selector_path = self._paths()
        m = obj["metadata"]
        status = {"replicas": crd.json_path(obj, status_path) or 0}
        if selector_path:
            sel = crd.json_path(obj, selector_path)
            if isinstance(sel, str):
                status["selector"] = sel
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in m},
                "spec": {"replicas": crd.json_path(obj, spec_path) or 0},
                "status": status}


def strategy_for(res: Resource) -> Strategy | None:
    if res.custom is not None:
        return CustomResourceStrategy(res)
    if res.gvk == (crd.GROUP, crd.VERSION, crd.KIND):
        return CRDStrategy(res)
    return None
