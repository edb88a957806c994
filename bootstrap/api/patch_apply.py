"""Server-side apply and managedFields bookkeeping for ordinary writes.

Semantics follow the apiserver's fieldmanager on top of structured-merge-diff:
- Apply: the applied configuration is merged into the live object; fields the
  manager applied before but no longer specifies are removed unless another
  manager owns them; a field owned by another manager whose value the apply
  would change is a conflict (409) unless force, which takes ownership.
- Update (create/update/patch): fields the write added or changed move to the
  writing manager; removed fields leave every manager's set.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson

from bootstrap.api import errors, meta, schema
from bootstrap.api.managedfields import (
    Path,
    absent,
    field_set,
    from_fields_v1,
    item_key,
    list_info,
    path_string,
    remove_path,
    to_fields_v1,
    value_at,
)

APPLY = "Apply"
UPDATE = "Update"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Only kubectl's own server-side manager keeps the client-side annotation in step
# (upstream's lastAppliedUpdater / lastAppliedManager); others opt out by name.
KUBECTL_SSA_MANAGER = "kubectl"


def _api_version(gvk) -> str:
    g, v, _ = gvk
    return f"{g}/{v}" if g else v


def _entries(obj: dict | None) -> list[dict]:
    return copy.deepcopy(((obj or {}).get("metadata") or {}).get("managedFields") or [])


def _same_entry(e: dict, manager: str, operation: str, subresource: str) -> bool:
    return (e.get("manager", "") == manager and e.get("operation") == operation
            and e.get("subresource", "") == subresource)


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], subresource: str,
           now: str) -> dict:
    e = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
         "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        e["subresource"] = subresource
    return e


def go_json(value: Any) -> str:
    """encoding/json's output for an unstructured object: sorted keys, compact, HTML
    characters escaped, a trailing newline (what kubectl writes into the annotation)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text + "\n"


def _last_applied(live: dict | None) -> dict | None:
    raw = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _allowed_by_last_applied(live: dict, gvk) -> set[Path]:
    """Fields the client-side annotation names whose live value it still matches:
    kubectl's server-side apply may take them over without a conflict."""
    last = _last_applied(live)
    if last is None:
        return set()
    return {p for p in field_set(last, gvk) if not _values_differ(last, live, p)}


def _fingerprint(entries: list[dict]) -> list[str]:
    return sorted(orjson.dumps({k: v for k, v in e.items() if k != "time"},
                               option=orjson.OPT_SORT_KEYS).decode() for e in entries)


def _without_managed(obj: dict) -> dict:
    return {**obj, "metadata": {k: v for k, v in (obj.get("metadata") or {}).items()
                                if k != "managedFields"}}


def _manager_label(e: dict) -> str:
    """printManager: "name" [with subresource "s"] [using apiVersion at time] for Update."""
    s = f'"{e.get("manager", "")}"'
    if e.get("subresource"):
        s += f' with subresource "{e["subresource"]}"'
    if e.get("operation") == UPDATE:
        s += f' using {e.get("apiVersion", "")}'
        if e.get("time"):
            s += f' at {e["time"]}'
    return s


def conflict_error(conflicts: list[tuple[dict, Path]]) -> errors.APIError:
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_manager_label(e)}",
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        msg = f"Apply failed with 1 conflict: conflict with {_manager_label(e)}: {path_string(p)}"
    else:
        by_mgr: dict[str, list[str]] = {}
        for e, p in conflicts:
            by_mgr.setdefault(_manager_label(e), []).append(path_string(p))
        lines = []
        for label in sorted(by_mgr):
            lines.append(f"conflicts with {label}:")
            lines.extend(f"- {p}" for p in by_mgr[label])
        msg = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.APIError(409, "Conflict", msg, {"causes": causes})


def default_reset_fields(gvk, subresource: str, obj: dict | None) -> tuple[str, ...]:
    """Top-level fields a write through this endpoint cannot set (upstream's
    ResetFieldsStrategy): status on the main resource of kinds with a status
    subresource, everything but status through /status."""
    from bootstrap.api import resources

    r = resources.by_gvk(*gvk)
    if r is None or "status" not in r.subresources:
        return ()
    if subresource == "status":
        return tuple(k for k in (obj or {}) if k not in ("status", "metadata", "apiVersion", "kind"))
    return ("status",)


# -------------------------------------------------------------------- merge

def _merge(live: Any, applied: Any, prop: dict | None) -> Any:
    if isinstance(applied, dict) and isinstance(live, dict):
        node = schema.resolve(prop)
        if node is not None and node.get("x-kubernetes-map-type") == "atomic":
            return _strip_nulls(applied)
        out = copy.deepcopy(live)
        for k, v in applied.items():
            if v is None:
                continue
            out[k] = _merge(live.get(k), v, schema.field_schema(prop, k))
        return out
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = list_info(prop)
        if kind == "map":
            items = schema.items_schema(prop)
            lhs = {item_key(i, keys): i for i in live if isinstance(i, dict)}
            rhs = {item_key(a, keys): a for a in applied if isinstance(a, dict)}
            return [_merge(lhs[k], rhs[k], items) if k in lhs and k in rhs
                    else copy.deepcopy(lhs[k]) if k in lhs else _strip_nulls(rhs[k])
                    for k in _merged_order(list(lhs), list(rhs))]
        if kind == "set":
            enc = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS): v for v in live + applied}
            order = _merged_order([orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in live],
                                  [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in applied])
            return [enc[k] for k in order]
    return _strip_nulls(applied)


def _merged_order(lhs: list, rhs: list) -> list:
    """Item order of SMD's merge (visitListItems): live items stay in place, applied
    items follow the applied order, shared items are placed where the applied list
    puts them."""
    lhs_set, rhs_set = set(lhs), set(rhs)
    shared = [k for k in rhs if k in lhs_set]
    nxt = shared.pop(0) if shared else None
    out: list = []
    li = ri = 0
    while li < len(lhs) or ri < len(rhs):
        if li < len(lhs) and ri < len(rhs):
            k = lhs[li]
            if k == rhs[ri]:
                out.append(k)
                li, ri = li + 1, ri + 1
                nxt = shared.pop(0) if shared else None
                continue
            if k in rhs_set and nxt is not None and nxt != k:
                li += 1
                continue
        if li < len(lhs) and lhs[li] not in rhs_set:
            out.append(lhs[li])
            li += 1
            continue
        if ri < len(rhs):
            k = rhs[ri]
            out.append(k)
            ri += 1
            if nxt is not None and nxt == k:
                nxt = shared.pop(0) if shared else None
            continue
        li += 1  # a live item the applied list already placed
    return out


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _values_differ(live: Any, merged: Any, path: Path) -> bool:
    a, b = value_at(live, path), value_at(merged, path)
    if absent(a) or absent(b):
        return absent(a) != absent(b)
    # Keyed items and set members are identified by their key: their presence is
    # what the path claims; their fields are separate paths.
    if path and path[-1][0] in ("k", "v"):
        return False
    return a != b


def _prefixes(paths: set[Path]) -> set[Path]:
    return {p[:n] for p in paths for n in range(1, len(p) + 1)}


def _prune_empty(obj: Any, path: Path) -> None:
    """After removing a field, drop parents that became empty maps (SMD removes them)."""
    for n in range(len(path) - 1, 0, -1):
        parent = value_at(obj, path[:n])
        if isinstance(parent, dict) and not parent and path[n - 1][0] == "f":
            remove_path(obj, path[:n])
        else:
            break


def apply(live: dict | None, applied: dict, gvk, field_manager: str, force: bool = False, *,
          subresource: str = "", reset_fields: tuple[str, ...] | None = None,
          now: str | None = None) -> dict:
    """Server-side apply of ``applied`` onto ``live`` (None on create); returns the new object
    with metadata.managedFields updated. Raises 409 Conflict listing contested fields."""
    if not field_manager:
        raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
    if not isinstance(applied, dict):
        raise errors.bad_request("the apply configuration must be an object")
    gvk = tuple(gvk)
    now = now or meta.now_rfc3339()
    api_version = _api_version(gvk)
    # Same checks and wording as the apiserver's applyPatcher.
    if applied.get("apiVersion") != api_version:
        raise errors.bad_request("Incorrect version specified in apply patch. Specified patch "
                                 f"version: {applied.get('apiVersion', '')}, expected: {api_version}")
    if applied.get("kind") != gvk[2]:
        raise errors.bad_request("Incorrect kind specified in apply patch. Specified patch "
                                 f"kind: {applied.get('kind', '')}, expected: {gvk[2]}")
    if (applied.get("metadata") or {}).get("managedFields"):
        raise errors.bad_request("metadata.managedFields must be nil")
    original = applied
    if reset_fields is None:
        reset_fields = default_reset_fields(gvk, subresource, applied)
    applied = {k: v for k, v in applied.items() if k not in reset_fields}
    applied["metadata"] = dict(applied.get("metadata") or {})

    entries = _entries(live)
    applied_set = field_set(applied, gvk, reset=reset_fields)
    mine = next((e for e in entries if _same_entry(e, field_manager, APPLY, subresource)), None)
    prev_set = from_fields_v1(mine.get("fieldsV1")) if mine else set()
    others = [e for e in entries if e is not mine]

    root = schema.root_schema(gvk)
    base = copy.deepcopy(live) if live else {}
    merged = _merge(base, applied, root) if live else _strip_nulls(applied)

    conflicts: list[tuple[dict, Path]] = []
    other_sets = [(e, from_fields_v1(e.get("fieldsV1"))) for e in others]
    for e, s in other_sets:
        for p in sorted(applied_set & s, key=path_string):
            if _values_differ(live or {}, merged, p):
                conflicts.append((e, p))
    if conflicts and not force and field_manager == KUBECTL_SSA_MANAGER and live:
        # Taking over from client-side apply: what the last-applied annotation set and
        # nobody changed since is not contested.
        allowed = _allowed_by_last_applied(live, gvk)
        if all(p in allowed for _, p in conflicts):
            force = True
        else:
            conflicts = [(e, p) for e, p in conflicts if p not in allowed]
    if conflicts and not force:
        raise conflict_error(conflicts)

    # Forced: the applier takes the contested fields away from their owners.
    taken = {p for _, p in conflicts}
    new_entries: list[dict] = []
    owned_by_others: set[Path] = set()
    for e, s in other_sets:
        s = s - taken
        owned_by_others |= s
        if s:
            e = dict(e)
            e["fieldsV1"] = to_fields_v1(s)
            new_entries.append(e)

    # Fields this manager stopped applying go away unless someone still owns them or
    # something beneath them. Shortest first: removing a list item removes its fields.
    kept = _prefixes(owned_by_others) | _prefixes(applied_set)
    for p in sorted(prev_set - applied_set, key=len):
        if p in kept:
            continue
        remove_path(merged, p)
        _prune_empty(merged, p)

    merged.setdefault("metadata", {})
    for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation"):
        if live and key in (live.get("metadata") or {}):
            merged["metadata"][key] = live["metadata"][key]
    if field_manager == KUBECTL_SSA_MANAGER and _last_applied(live) is not None:
        # Keep a later client-side apply computing the right patch.
        ann = {k: v for k, v in ((original.get("metadata") or {}).get("annotations")
                                 or {}).items() if k != LAST_APPLIED}
        config = {**original, "metadata": {**(original.get("metadata") or {})}}
        if ann:
            config["metadata"]["annotations"] = ann
        else:
            config["metadata"].pop("annotations", None)
        merged["metadata"]["annotations"] = {**(merged["metadata"].get("annotations") or {}),
                                             LAST_APPLIED: go_json(config)}
    if applied_set:
        new_entries.append(_entry(field_manager, APPLY, api_version, applied_set, subresource, now))
    if live is not None and _fingerprint(new_entries) == _fingerprint(entries) and \
            _without_managed(merged) == _without_managed(live):
        # Nothing changed: the object stays as it was, timestamps included, so the
        # store writes nothing and resourceVersion stays (upstream's no-op apply).
        new_entries = entries
    merged["metadata"]["managedFields"] = new_entries
    if not new_entries:
        merged["metadata"].pop("managedFields")
    return merged


def track_update(old: dict | None, new: dict, gvk, manager: str, *, subresource: str = "",
                 reset_fields: tuple[str, ...] | None = None, now: str | None = None) -> dict:
    """Record an Update operation by ``manager`` in new.metadata.managedFields (in place)."""
    gvk = tuple(gvk)
    now = now or meta.now_rfc3339()
    manager = manager or "unknown"
    new_meta = new.setdefault("metadata", {})
    sent = new_meta.get("managedFields")
    old_entries = _entries(old)
    # A client that rewrites managedFields explicitly gets its version as the base.
    entries = copy.deepcopy(sent) if sent and sent != old_entries else old_entries

    if reset_fields is None:
        reset_fields = default_reset_fields(gvk, subresource, new)
    new_set = field_set(new, gvk, with_maps=True, reset=reset_fields)
    old_set = field_set(old, gvk, with_maps=True, reset=reset_fields) if old else set()
    removed = old_set - new_set
    # New paths, plus leaves whose value differs. A map, keyed list or item that
    # merely gained or lost children is not itself "changed" (its children are).
    inner = {p[:n] for p in new_set for n in range(1, len(p))}
    changed = {p for p in new_set
               if p not in old_set or (p not in inner and p[-1][0] not in ("k", "v")
                                       and value_at(old, p) != value_at(new, p))}

    out: list[dict] = []
    mine = None
    for e in entries:
        s = from_fields_v1(e.get("fieldsV1")) - removed
        if _same_entry(e, manager, UPDATE, subresource):
            mine = (e, s)
            continue
        s -= changed
        if s:
            e = dict(e)
            e["fieldsV1"] = to_fields_v1(s)
            out.append(e)
    my_set = (mine[1] if mine else set()) | changed
    if my_set:
        api_version = new.get("apiVersion") or _api_version(gvk)
        if mine and not changed:
            e = dict(mine[0])
            e["fieldsV1"] = to_fields_v1(my_set)
        else:
            e = _entry(manager, UPDATE, api_version, my_set, subresource, now)
        out.append(e)
    if out:
        new_meta["managedFields"] = out
    else:
        new_meta.pop("managedFields", None)
    return new
