"""Object metadata helpers shared by the API server and agents."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

# Upstream's generateName alphabet (apimachinery/pkg/util/rand): no vowels, no
# look-alike digits, so generated names never spell words or confuse readers.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX_LEN = 5
MAX_GENERATED_NAME_LEN = 63

# Top-level keys that are not "spec": changing them never bumps generation.
_NON_SPEC_KEYS = frozenset({"apiVersion", "kind", "metadata", "status"})


def new_uid() -> str:
    return str(uuid.uuid4())


def now_rfc3339() -> str:
    """Second-precision RFC 3339 UTC, as metav1.Time serialises."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_micro() -> str:
    """Microsecond precision, as metav1.MicroTime (Lease renewTime, Event eventTime)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """Parse metav1.Time / MicroTime strings into aware datetimes."""
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    return datetime.fromisoformat(v)


def generate_name(prefix: str) -> str:
    """generateName: truncate the base so the result fits 63 chars, add 5 random chars."""
    max_prefix = MAX_GENERATED_NAME_LEN - GENERATED_SUFFIX_LEN
    if len(prefix) > max_prefix:
        prefix = prefix[:max_prefix]
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(GENERATED_SUFFIX_LEN))
    return prefix + suffix


def spec_changed(old: dict, new: dict) -> bool:
    """True when anything outside metadata/status/TypeMeta differs (generation rule)."""
    keys = (set(old) | set(new)) - _NON_SPEC_KEYS
    return any(old.get(k) != new.get(k) for k in keys)


# Kinds whose registry strategies maintain metadata.generation upstream (1.32);
# other kinds carry no generation at all.
GENERATION_KINDS = frozenset({
    "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob",
    "PodDisruptionBudget", "ReplicationController", "NetworkPolicy", "Ingress",
    "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
})


def tracks_generation(kind: str | None) -> bool:
    return kind in GENERATION_KINDS


def bump_generation(old: dict | None, new: dict) -> None:
    """Set metadata.generation on create (1) or increment it when the spec changed,
    for kinds that track it (``new["kind"]``); other kinds keep none."""
    meta = new.setdefault("metadata", {})
    kind = new.get("kind") or (old or {}).get("kind")
    if kind and not tracks_generation(kind):
        meta.pop("generation", None)
        return
    if old is None:
        meta["generation"] = 1
        return
    current = old.get("metadata", {}).get("generation", 1)
    meta["generation"] = current + 1 if spec_changed(old, new) else current


def get_path(obj: Any, path: str, default: Any = None) -> Any:
    """Dotted lookup (``status.phase``) on nested dicts."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def owner_references(obj: dict) -> list[dict]:
    return obj.get("metadata", {}).get("ownerReferences") or []


def controller_ref(obj: dict) -> dict | None:
    for ref in owner_references(obj):
        if ref.get("controller"):
            return ref
    return None


def has_finalizer(obj: dict, name: str) -> bool:
    return name in (obj.get("metadata", {}).get("finalizers") or [])
