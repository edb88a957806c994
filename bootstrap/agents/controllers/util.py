"""Small helpers several controllers share: times from an injected clock, conditions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bootstrap.api import meta

Clock = Callable[[], float]


def rfc3339(t: float) -> str:
    """metav1.Time as serialised: second precision, UTC."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(value: str | None, default: float | None = None) -> float | None:
    """Seconds since the epoch of a metav1.Time / MicroTime string (None when absent or
    unparseable)."""
    if not value:
        return default
    try:
        return meta.parse_time(value).timestamp()
    except ValueError:
        return default


def find_condition(conditions: list[dict] | None, type_: str) -> dict | None:
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def object_ref(obj: dict, kind: str, api_version: str = "v1") -> dict:
    """An ObjectReference for events: list items may come without kind/apiVersion."""
    md = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind") or kind, "apiVersion": obj.get("apiVersion") or api_version,
           "name": md.get("name", ""), "namespace": md.get("namespace", ""),
           "uid": md.get("uid", "")}
    return {k: v for k, v in ref.items() if v}
