"""Patch types the API server accepts: JSON patch, JSON merge patch, strategic
merge patch and server-side apply (the last two live in their own modules and
are re-exported here so callers import one place)."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from bootstrap.api import errors
from bootstrap.api.patch_apply import apply, track_update
from bootstrap.api.patch_strategic import strategic_merge_patch

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


def _invalid(message: str) -> errors.APIError:
    # The apiserver answers failed JSON patch application with a bare 422.
    return errors.APIError(422, "Invalid", message, {"causes": [{"message": message}]})


def json_patch(obj: dict, ops: Any) -> dict:
    """RFC 6902. A malformed document is 400; an operation that cannot apply is 422."""
    if not isinstance(ops, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        patch = jsonpatch.JsonPatch(ops)
    except (jsonpatch.InvalidJsonPatch, TypeError) as e:
        raise errors.bad_request(str(e)) from None
    try:
        return patch.apply(copy.deepcopy(obj))
    except jsonpatch.JsonPatchTestFailed as e:
        raise _invalid(f"the server rejected our request due to an error in our request: {e}") from None
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException,
            KeyError, IndexError, TypeError) as e:
        raise _invalid(f"the server rejected our request due to an error in our request: {e}") from None


def merge_patch(obj: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    target = copy.deepcopy(obj) if isinstance(obj, dict) else {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict):
            target[k] = merge_patch(target.get(k), v)
        else:
            target[k] = copy.deepcopy(v)
    return target


__all__ = [
    "APPLY_PATCH", "JSON_PATCH", "MERGE_PATCH", "PATCH_TYPES", "STRATEGIC_MERGE_PATCH",
    "apply", "json_patch", "merge_patch", "strategic_merge_patch", "track_update",
]
