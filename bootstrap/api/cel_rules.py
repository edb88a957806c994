"""CEL validation rules of CRD schemas (``x-kubernetes-validations``) on cel-python.

What upstream's apiextensions CEL validator does that matters to users: each rule is
compiled when the CRD is written (422 on a syntax error) and evaluated with ``self``
bound to the value at its schema node; a rule naming ``oldSelf`` is a transition
rule, evaluated only on update when an old value exists at the same property path.
A false result is ``<path>: Invalid value: "<type>": <message>`` (``message``,
``messageExpression`` or ``failed rule: <rule>``), with ``reason`` choosing
Forbidden/Required/Duplicate as upstream.

Not upstream's: cel-python parses but does not type-check against the schema, so a
rule naming a field the schema lacks is refused only when it runs; Kubernetes' CEL
extension libraries (quantity, url, ip, cidr, isSorted, ...) and cost limits are not
provided.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from typing import Any

from bootstrap.api.errors import FieldError, invalid_value

KEY = "x-kubernetes-validations"
_OLD_SELF = re.compile(r"\boldSelf\b")


def available() -> bool:
    return importlib.util.find_spec("celpy") is not None


@functools.lru_cache(maxsize=4096)
def _program(expr: str):
    import celpy  # local: only CRDs with rules need it
    env = celpy.Environment()
    return env.program(env.compile(expr))


def compile_errors(rules: Any, path: str) -> list[FieldError]:
    """Problems of one node's rule list, for CRD validation."""
    if not isinstance(rules, list):
        return [invalid_value(path, rules, "must be a list of rules")]
    if not available():
        return [FieldError("FieldValueForbidden", path,
                           "Forbidden: CEL validation rules need the cel-python package on "
                           "the API server (see docs/adr/0007-crd-cel.md)")]
    out: list[FieldError] = []
    for i, rule in enumerate(rules):
        rp = f"{path}[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str) \
                or not rule["rule"].strip():
            out.append(FieldError("FieldValueRequired", f"{rp}.rule", "Required value"))
            continue
        for key in ("rule", "messageExpression"):
            expr = rule.get(key)
            if expr is None:
                continue
            try:
                _program(expr)
            except Exception as exc:  # celpy raises its parse error types
                out.append(invalid_value(f"{rp}.{key}", expr,
                                         f"compilation failed: {_one_line(exc)}"))
        reason = rule.get("reason")
        if reason is not None and reason not in _REASONS:
            out.append(FieldError("FieldValueNotSupported", f"{rp}.reason",
                                  f'Unsupported value: "{reason}": supported values: '
                                  + ", ".join(f'"{r}"' for r in _REASONS)))
    return out


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


_REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired",
            "FieldValueDuplicate")


def _cel_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_MISSING = object()


def evaluate(obj: Any, node: dict | None, old: Any = _MISSING, *,
             transitions: bool = False) -> list[FieldError]:
    """Rule failures in ``obj``. Plain rules when ``transitions`` is false; with it,
    only the rules naming oldSelf, where ``old`` has a value at the same path."""
    out: list[FieldError] = []
    _walk(obj, node, "", old, transitions, out)
    return out


def _walk(value: Any, node: dict | None, path: str, old: Any, transitions: bool,
          out: list[FieldError]) -> None:
    if not isinstance(node, dict) or value is None:
        return
    for rule in node.get(KEY) or ():
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            continue
        is_transition = bool(_OLD_SELF.search(rule["rule"]))
        if is_transition != transitions or (is_transition and old is _MISSING):
            continue
        err = _check(rule, value, old, path)
        if err is not None:
            out.append(err)
    if isinstance(value, dict):
        props = node.get("properties") or {}
        ap = node.get("additionalProperties")
        for k, v in value.items():
            child = props.get(k) if isinstance(props.get(k), dict) else (
                ap if isinstance(ap, dict) else None)
            if child is None:
                continue
            o = old.get(k, _MISSING) if isinstance(old, dict) else _MISSING
            _walk(v, child, f"{path}.{k}" if path else k, o, transitions, out)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, v in enumerate(value):
            # Only positions of atomic lists correlate loosely; upstream correlates map
            # lists by key and sets by value: old items are matched the same way here.
            o = _correlate(v, old, node, i)
            _walk(v, node["items"], f"{path}[{i}]", o, transitions, out)


def _correlate(item: Any, old: Any, node: dict, index: int) -> Any:
    if not isinstance(old, list):
        return _MISSING
    if node.get("x-kubernetes-list-type") == "map" and isinstance(item, dict):
        keys = node.get("x-kubernetes-list-map-keys") or []
        for o in old:
            if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys):
                return o
    return _MISSING


def _check(rule: dict, value: Any, old: Any, path: str) -> FieldError | None:
    import celpy
    activation = {"self": celpy.json_to_cel(value)}
    if old is not _MISSING:
        activation["oldSelf"] = celpy.json_to_cel(old)
    field = path
    if rule.get("fieldPath"):
        fp = rule["fieldPath"]
        field = (path + fp) if path else fp.lstrip(".")
    try:
        result = _program(rule["rule"]).evaluate(activation)
    except Exception as exc:  # celpy's evaluation errors: a missing field, a bad overload
        return invalid_value(field, _cel_type(value),
                             f"rule evaluation error: {_one_line(exc)}")
    if bool(result) is True:
        return None
    message = rule.get("message") or f"failed rule: {rule['rule']}"
    if rule.get("messageExpression"):
        try:
            computed = _program(rule["messageExpression"]).evaluate(activation)
            if isinstance(computed, str) and computed.strip():
                message = str(computed)
        except Exception:  # upstream falls back to message on a failing expression
            pass
    reason = rule.get("reason") or "FieldValueInvalid"
    if reason == "FieldValueForbidden":
        return FieldError(reason, field, f"Forbidden: {message}")
    if reason == "FieldValueRequired":
        return FieldError(reason, field, f"Required value: {message}")
    if reason == "FieldValueDuplicate":
        return FieldError(reason, field, f"Duplicate value: {message}")
    return invalid_value(field, _cel_type(value), message)
