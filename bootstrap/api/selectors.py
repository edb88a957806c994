"""Label and field selectors with apimachinery's syntax and matching rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.api import errors
from bootstrap.api.validation import label_value, qualified_name

# ------------------------------------------------------------------ labels

_OPS = ("in", "notin", "=", "==", "!=", "exists", "!", "gt", "lt")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!" (does not exist), "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt"):
            if not present:
                return False
            try:
                have = int(labels[self.key])
                want = int(self.values[0])
            except ValueError:
                return False
            return have > want if self.op == "gt" else have < want
        return False

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return "!" + self.key
        if self.op in ("gt", "lt"):
            return f"{self.key}{'>' if self.op == 'gt' else '<'}{self.values[0]}"
        if len(self.values) == 1 and self.op in ("in", "notin"):
            return f"{self.key}{'=' if self.op == 'in' else '!='}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()
    # A nil selector (from a nil LabelSelector) matches nothing; an empty one matches all.
    nothing: bool = False

    def matches(self, labels: dict | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _check_key(key: str) -> None:
    msgs = qualified_name(key)
    if msgs:
        raise errors.bad_request(f"unable to parse requirement: key: Invalid value: \"{key}\": {'; '.join(msgs)}")


def _check_value(value: str) -> None:
    msgs = label_value(value)
    if msgs:
        raise errors.bad_request(f"unable to parse requirement: values[0]: Invalid value: \"{value}\": {'; '.join(msgs)}")


_TOKEN_RE = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _tokens(s: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(s):
        m = _TOKEN_RE.match(s, pos)
        if not m:
            break
        if m.group(1):
            out.append(m.group(1))
        pos = m.end()
        if s[pos:].strip() == "":
            break
    return out


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse ``a=b,c!=d,e in (f,g),!h,i`` (the labelSelector query parameter)."""
    if s is None or not s.strip():
        return LabelSelector()
    toks = _tokens(s)
    reqs: list[Requirement] = []
    i = 0

    def fail(msg: str):
        raise errors.bad_request(f"unable to parse requirement: {msg}")

    def take() -> str | None:
        nonlocal i
        if i >= len(toks):
            return None
        t = toks[i]
        i += 1
        return t

    while i < len(toks):
        t = take()
        if t == "!":
            key = take()
            if key is None or key in _SPECIAL:
                fail("found '', expected: identifier")
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            if t in _SPECIAL or t in ("in", "notin"):
                fail(f"found '{t}', expected: !, identifier, or 'end of string'")
            key = t
            _check_key(key)
            op = toks[i] if i < len(toks) else None
            if op is None or op == ",":
                reqs.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                i += 1
                val = toks[i] if i < len(toks) and toks[i] not in _SPECIAL else ""
                if val:
                    i += 1
                _check_value(val)
                reqs.append(Requirement(key, "notin" if op == "!=" else "in", (val,)))
            elif op in (">", "<"):
                i += 1
                val = take()
                if val is None or not re.fullmatch(r"-?\d+", val):
                    fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {val}")
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (val,)))
            elif op in ("in", "notin"):
                i += 1
                if take() != "(":
                    fail(f"found '{toks[i - 1] if i - 1 < len(toks) else ''}', expected: '('")
                vals: list[str] = []
                while True:
                    v = take()
                    if v is None:
                        fail("found '', expected: ',', or ')'")
                    if v == ")":
                        break
                    if v == ",":
                        if not vals or toks[i - 2] in ("(", ","):
                            vals.append("")
                        continue
                    _check_value(v)
                    vals.append(v)
                if toks[i - 2] == ",":
                    vals.append("")
                if not vals:
                    vals = [""]  # upstream's parser reads "()" as the one empty value
                reqs.append(Requirement(key, op, tuple(sorted(set(vals)))))
            else:
                fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i] != ",":
                fail(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(toks):
                fail("found '', expected: !, identifier, or 'end of string'")
    # Upstream sorts requirements by key so String() is canonical.
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


_SPECIAL = frozenset({"(", ")", ",", "=", "==", "!=", "!", ">", "<"})


def label_selector_from_dict(spec: dict | None) -> LabelSelector:
    """metav1.LabelSelector (matchLabels + matchExpressions) -> selector.

    ``None`` matches nothing, ``{}`` matches everything, as LabelSelectorAsSelector.
    """
    if spec is None:
        return LabelSelector(nothing=True)
    reqs: list[Requirement] = []
    for k, v in (spec.get("matchLabels") or {}).items():
        reqs.append(Requirement(k, "in", (v,)))
    for expr in spec.get("matchExpressions") or []:
        key, op, vals = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            if not vals:
                raise ValueError("for 'in', 'notin' operators, values set can't be empty")
            reqs.append(Requirement(key, "in", tuple(vals)))
        elif op == "NotIn":
            if not vals:
                raise ValueError("for 'in', 'notin' operators, values set can't be empty")
            reqs.append(Requirement(key, "notin", tuple(vals)))
        elif op == "Exists":
            reqs.append(Requirement(key, "exists"))
        elif op == "DoesNotExist":
            reqs.append(Requirement(key, "!"))
        else:
            raise ValueError(f'"{op}" is not a valid label selector operator')
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# ------------------------------------------------------------------ fields

def _s(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _path(*keys: str) -> Callable[[dict], str]:
    def get(obj: dict) -> str:
        cur = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        return _s(cur)
    return get


def _either(*paths: tuple[str, ...]) -> Callable[[dict], str]:
    getters = [_path(*p) for p in paths]

    def get(obj: dict) -> str:
        for g in getters:
            value = g(obj)
            if value:
                return value
        return ""
    return get


_COMMON = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

# Field labels each resource accepts beyond metadata.name/namespace (upstream's
# per-kind GetAttrs / AddFieldLabelConversionFunc).
FIELD_LABELS: dict[str, dict[str, Callable[[dict], str]]] = {
    "pods": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: _s(bool((o.get("spec") or {}).get("hostNetwork", False))),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    # Core and events.k8s.io/v1 Events share the plural; an object may be at either
    # version (watch caches hold core), so each label reads both field names.
    "events": {
        **{f"{prefix}.{k}": _either(("involvedObject", k), ("regarding", k))
           for prefix in ("involvedObject", "regarding")
           for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                     "fieldPath")},
        "reason": _path("reason"),
        "reportingComponent": _either(("reportingComponent",), ("reportingController",)),
        "reportingController": _either(("reportingComponent",), ("reportingController",)),
        "source": _either(("source", "component"), ("deprecatedSource", "component")),
        "type": _path("type"),
    },
    "secrets": {"type": _path("type")},
    "nodes": {"spec.unschedulable": lambda o: _s(bool((o.get("spec") or {}).get("unschedulable", False)))},
    "namespaces": {"status.phase": _path("status", "phase")},
    "replicasets": {"status.replicas": _path("status", "replicas")},
    "replicationcontrollers": {"status.replicas": _path("status", "replicas")},
    "jobs": {"status.successful": _path("status", "succeeded")},
    "certificatesigningrequests": {"spec.signerName": _path("spec", "signerName")},
    "services": {"spec.clusterIP": _path("spec", "clusterIP"), "spec.type": _path("spec", "type")},
}


def field_getters(resource_plural: str) -> dict[str, Callable[[dict], str]]:
    return {**_COMMON, **FIELD_LABELS.get(resource_plural, {})}


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()
    getters: tuple[tuple[str, Callable[[dict], str]], ...] = ()

    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: dict, extra_fields: dict[str, str] | None = None) -> bool:
        getters = dict(self.getters)
        for r in self.requirements:
            if extra_fields and r.field in extra_fields:
                have = extra_fields[r.field]
            else:
                have = getters[r.field](obj) if r.field in getters else ""
            if (have == r.value) != (r.op == "="):
                return False
        return True

    def value_for(self, field: str) -> str | None:
        """The value an equality requirement pins (lets the server narrow a watch)."""
        for r in self.requirements:
            if r.field == field and r.op == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(f"{r.field}{'=' if r.op == '=' else '!='}{_escape(r.value)}" for r in self.requirements)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_unescaped(s: str, sep: str) -> list[str]:
    parts, cur, esc = [], [], False
    for ch in s:
        if esc:
            cur.append("\\" + ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if esc:
        cur.append("\\")
    parts.append("".join(cur))
    return parts


def _unescape(v: str) -> str:
    out, esc = [], False
    for ch in v:
        if esc:
            if ch not in "\\,=":
                raise errors.bad_request(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch in ",=":
            raise errors.bad_request(f"invalid field selector: unescaped {ch} in value")
        else:
            out.append(ch)
    return "".join(out)


def parse_field_selector(s: str | None, resource_plural: str | None = None,
                         allowed: set[str] | None = None) -> FieldSelector:
    """Parse ``spec.nodeName=n1,status.phase!=Failed``; unsupported fields are 400."""
    getters = field_getters(resource_plural or "")
    permitted = set(allowed) if allowed is not None else set(getters)
    if s is None or not s.strip():
        return FieldSelector((), tuple(getters.items()))
    reqs: list[FieldRequirement] = []
    for part in _split_unescaped(s, ","):
        part = part.strip()
        if not part:
            continue
        m = re.match(r"^([^=!]+?)\s*(!=|==|=)\s*(.*)$", part)
        if not m:
            raise errors.bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3)
        if field not in permitted:
            raise errors.bad_request(f'field label not supported: {field}')
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape(value)))
    return FieldSelector(tuple(reqs), tuple(getters.items()))
