"""Strategic merge patch as apimachinery's strategicpatch applies it on the server
(MergeParallelList and IgnoreUnmatchedNulls on), with patch metadata
(x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key) from the schemas.

Directives: ``$patch: replace|delete|merge``, ``$setElementOrder/<list>``,
``$deleteFromPrimitiveList/<list>``, ``$retainKeys``.
"""

from __future__ import annotations

import copy
from typing import Any

from bootstrap.api import errors, schema

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
REPLACE, DELETE, MERGE = "replace", "delete", "merge"

_MISSING = object()


class PatchError(Exception):
    """A patch document that cannot be applied (reported as 400 BadRequest)."""


def strategic_merge_patch(obj: dict, patch: dict, gvk) -> dict:
    """Apply ``patch`` to a copy of ``obj``; ``gvk`` selects the schema (merge keys)."""
    if not isinstance(patch, dict):
        raise errors.bad_request("invalid JSON document: a strategic merge patch must be an object")
    node = schema.root_schema(tuple(gvk)) if gvk else None
    try:
        out = _merge_map(copy.deepcopy(obj) if obj else {}, copy.deepcopy(patch), node)
    except PatchError as e:
        raise errors.bad_request(str(e)) from None
    _strip_directives(out)
    return out


def patch_meta(node: dict | None, key: str) -> tuple[dict | None, str, str]:
    """(field schema, patch strategy without retainKeys, merge key) for ``key``."""
    field = schema.field_schema(node, key)
    if field is None:
        return None, "", ""
    strategies = [s for s in (field.get("x-kubernetes-patch-strategy") or "").split(",") if s]
    strategy = next((s for s in strategies if s != "retainKeys"), "")
    return field, strategy, field.get("x-kubernetes-patch-merge-key", "")


def _merge_map(original: dict, patch: dict, node: dict | None) -> dict:
    if DIRECTIVE in patch:
        d = patch[DIRECTIVE]
        if d == REPLACE:
            del patch[DIRECTIVE]
            return patch
        if d == DELETE:
            return {}
        raise PatchError(f"Unknown patch type: {d} in map: {patch}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, node)

    for k in list(patch):
        pv = patch[k]
        is_delete_list = False
        if k.startswith(DELETE_PRIMITIVE):
            k = k[len(DELETE_PRIMITIVE):]
            is_delete_list = True
            if not isinstance(pv, list):
                raise PatchError("invalid patch: $deleteFromPrimitiveList must be a list")
            if isinstance(original.get(k), list):
                original[k] = [v for v in original[k] if v not in pv]
            continue
        if pv is None:
            original.pop(k, None)
            continue
        ov = original.get(k, _MISSING)
        field, strategy, merge_key = patch_meta(node, k)
        if ov is _MISSING or ov is None:
            # A new field: merge into an empty value so nested directives are consumed
            # and unmatched nulls dropped, as the typed decode upstream would.
            original[k] = _fresh(pv, field, strategy, merge_key)
            continue
        if type(ov) is not type(pv):
            original[k] = _fresh(pv, field, strategy, merge_key)
            continue
        if isinstance(pv, dict):
            if strategy == REPLACE:
                original[k] = pv
            else:
                original[k] = _merge_map(ov, pv, field)
        elif isinstance(pv, list):
            original[k] = _merge_list_field(ov, pv, field, strategy, merge_key, is_delete_list)
        else:
            original[k] = pv
    return original


def _fresh(pv: Any, field: dict | None, strategy: str, merge_key: str) -> Any:
    if isinstance(pv, dict):
        if strategy == REPLACE:
            return pv
        return _merge_map({}, pv, field)
    if isinstance(pv, list):
        return _merge_list_field([], pv, field, strategy, merge_key, False)
    return pv


def _merge_list_field(ov: list, pv: list, field: dict | None, strategy: str, merge_key: str,
                      is_delete_list: bool) -> list:
    if strategy == MERGE:
        return _merge_slice(ov, pv, schema.items_schema(field), merge_key, is_delete_list)
    # Non-merging lists are replaced; drop directive elements a client may still send.
    return [v for v in pv if not (isinstance(v, dict) and DIRECTIVE in v)]


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise PatchError("invalid patch: $retainKeys must be a list of field names")
    keep_set = set(keep)
    for k, v in patch.items():
        if v is None or k.startswith(DELETE_PRIMITIVE) or k.startswith(SET_ORDER):
            continue
        if k not in keep_set:
            raise PatchError("doesn't match $retainKeys: all fields in the patch must be present "
                             f"in the $retainKeys list ({k!r} is not)")
    for k in list(original):
        if k not in keep_set:
            del original[k]


def _merge_ordered_lists(original: dict, patch: dict, node: dict | None) -> None:
    """Handle ``$setElementOrder/<k>`` together with the list ``k`` it orders."""
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise PatchError("invalid patch: $setElementOrder list must be a list")
        name = key[len(SET_ORDER):]
        field, strategy, merge_key = patch_meta(node, name)
        o_list = original.get(name, _MISSING)
        p_list = patch.get(name, _MISSING)
        if o_list is not _MISSING and not isinstance(o_list, list):
            raise PatchError(f"invalid patch: {name} is not a list")
        if p_list is not _MISSING and not isinstance(p_list, list):
            raise PatchError(f"invalid patch: {name} is not a list")
        _check_order_list(p_list if p_list is not _MISSING else [], order, merge_key)
        if o_list is _MISSING and p_list is _MISSING:
            continue
        if p_list is _MISSING:
            merged = o_list
        elif o_list is _MISSING or o_list is None:
            merged = _merge_list_field([], p_list, field, strategy, merge_key, False)
        else:
            merged = _merge_list_field(o_list, p_list, field, strategy, merge_key, False)
        in_order, server_only = _partition(merged, order, merge_key)
        server_order = o_list if isinstance(o_list, list) else []
        original[name] = _normalize_order(in_order, server_only, order, server_order, merge_key)
        patch.pop(name, None)


def _check_order_list(p_list: list, order: list, merge_key: str) -> None:
    """validatePatchWithSetOrderList: the patch items (deletions aside) must appear in
    $setElementOrder, in the same relative order."""
    if not order or not p_list:
        return
    items = [i for i in p_list if not (merge_key and isinstance(i, dict) and i.get(DIRECTIVE) == DELETE)]
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        item = items[pi]
        if isinstance(item, dict) and DIRECTIVE in item:
            pi += 1
            continue
        if merge_key:
            if not isinstance(item, dict) or not isinstance(order[oi], dict) \
                    or merge_key not in item or merge_key not in order[oi]:
                raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
            equal = _eq(item[merge_key], order[oi][merge_key])
        else:
            equal = _eq(item, order[oi])
        if equal:
            pi += 1
        oi += 1
    if pi < len(items):
        raise PatchError(f"The order in patch list:\n{p_list}\n doesn't match {SET_ORDER} list:\n{order}\n")


def _key_of(item: Any, merge_key: str) -> Any:
    return item.get(merge_key, _MISSING) if merge_key and isinstance(item, dict) else item


def _index(items: list, value: Any, merge_key: str) -> int:
    want = _key_of(value, merge_key)
    for i, v in enumerate(items):
        if _key_of(v, merge_key) == want and _same_type(_key_of(v, merge_key), want):
            return i
    return -1


def _same_type(a: Any, b: Any) -> bool:
    # Go compares interface values: 1 (float64) != "1" and True != 1.
    return type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                  and not isinstance(a, bool) and not isinstance(b, bool))


def _partition(merged: list, by: list, merge_key: str) -> tuple[list, list]:
    present, server_only = [], []
    for v in merged:
        (present if _index(by, v, merge_key) >= 0 else server_only).append(v)
    return present, server_only


def _sort_by(items: list, order: list, merge_key: str) -> list:
    # Items missing from `order` keep their place relative to each other (stable sort);
    # upstream's comparator is not a strict order, so sort only the ones it can place.
    placed = [(i, _index(order, v, merge_key)) for i, v in enumerate(items)]
    known = sorted((p for p in placed if p[1] >= 0), key=lambda p: p[1])
    it = iter(known)
    out = []
    for i, pos in placed:
        out.append(items[next(it)[0]] if pos >= 0 else items[i])
    return out


def _normalize_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                     merge_key: str) -> list:
    """Patch items in patch order, server-only items in live order, interleaved by live position."""
    left = _sort_by(server_only, server_order, merge_key)
    right = _sort_by(patch_items, patch_order, merge_key)
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key)
            ri = _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _merge_slice(original: list, patch: list, item_node: dict | None, merge_key: str,
                 is_delete_list: bool) -> list:
    if not original and not patch:
        return original
    sample = next(iter(original + patch), None)
    if isinstance(sample, list):
        raise PatchError("lists of lists are not supported")
    if not isinstance(sample, dict):
        if is_delete_list:
            return [v for v in original if v not in patch]
        merged = []
        for v in original + patch:
            if not any(_eq(v, m) for m in merged):
                merged.append(v)
        present, server_only = _partition(merged, patch, "")
        return _normalize_order(present, server_only, patch, original, "")
    if not merge_key:
        raise PatchError("cannot merge lists without merge key")
    original, patch = _special_elements(list(original), patch, merge_key)
    merged = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"invalid list item {item!r}: expected an object")
        if merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        idx = _find(merged, merge_key, item[merge_key])
        if idx >= 0:
            merged[idx] = _merge_map(merged[idx], item, item_node)
        else:
            merged.append(_merge_map({}, item, item_node))
    present, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(present, server_only, patch, original, merge_key)


def _eq(a: Any, b: Any) -> bool:
    return a == b and _same_type(a, b)


def _find(items: list, merge_key: str, value: Any) -> int:
    for i, v in enumerate(items):
        if isinstance(v, dict) and merge_key in v and _eq(v[merge_key], value):
            return i
    return -1


def _special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    plain: list = []
    replace = False
    for item in patch:
        if not isinstance(item, dict) or DIRECTIVE not in item:
            plain.append(item)
            continue
        d = item[DIRECTIVE]
        if d == DELETE:
            if merge_key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
            original = [o for o in original
                        if not (isinstance(o, dict) and merge_key in o and _eq(o[merge_key], item[merge_key]))]
        elif d == REPLACE:
            replace = True
        elif d == MERGE:
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"Unknown patch type: {d} in map: {item}")
    if replace:
        return plain, []
    return original, plain


def _strip_directives(value: Any) -> None:
    if isinstance(value, dict):
        for k in [k for k in value if k == DIRECTIVE or k == RETAIN_KEYS
                  or k.startswith(SET_ORDER) or k.startswith(DELETE_PRIMITIVE)]:
            del value[k]
        for v in value.values():
            _strip_directives(v)
    elif isinstance(value, list):
        for v in value:
            _strip_directives(v)
