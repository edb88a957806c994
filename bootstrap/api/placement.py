"""How pods are matched to nodes, shared by the scheduler, the DaemonSet controller
and taint-based eviction: tolerations against taints (core/v1 ToleratesTaint) and
spec.nodeSelector plus required node affinity (component-helpers nodeaffinity)."""

from __future__ import annotations

from collections.abc import Iterable


def tolerates(toleration: dict, taint: dict) -> bool:
    """Toleration.ToleratesTaint: effect and key must match when set; Exists matches any
    value, Equal (or no operator) the exact value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Iterable[dict], taint: dict) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def _int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _expr_matches(expr: dict, labels: dict) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    values = expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _int(labels[key]), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _field_matches(expr: dict, node_name: str) -> bool:
    # Only metadata.name is a valid node field; anything else never matches.
    if expr.get("key") != "metadata.name":
        return False
    values = expr.get("values") or []
    if expr.get("operator") == "In":
        return len(values) == 1 and node_name == values[0]
    if expr.get("operator") == "NotIn":
        return len(values) == 1 and node_name != values[0]
    return False


def term_matches(term: dict, labels: dict, node_name: str) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    return all(_expr_matches(e, labels) for e in exprs) and \
        all(_field_matches(f, node_name) for f in fields)


def node_selector_matches(selector: dict, labels: dict, node_name: str) -> bool:
    """A NodeSelector: its terms are ORed; no terms matches nothing."""
    return any(term_matches(t, labels, node_name)
               for t in selector.get("nodeSelectorTerms") or [])


def required_node_affinity(spec: dict, labels: dict, node_name: str) -> bool:
    """spec.nodeSelector and the required node affinity, as upstream's
    GetRequiredNodeAffinity(pod).Match(node)."""
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        return node_selector_matches(required, labels, node_name)
    return True
