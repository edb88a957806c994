"""The ValidatingAdmissionPolicy admission plugin: CEL validations from
admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies, applied through their
ValidatingAdmissionPolicyBindings.

Expressions are evaluated with cel-python (``celpy``), a maintained pure-Python CEL
implementation, with upstream's variables: ``object``, ``oldObject``, ``request``,
``namespaceObject``, ``variables`` (the policy's ``spec.variables``, in order) and
``params`` (always null here). Policies and bindings are read from the watch cache.
Matching (matchConstraints and a binding's matchResources: resourceRules with
resourceNames, excludeResourceRules, namespace and object selectors) uses the same
rules as the admission webhooks. Decisions, messages, reasons, codes, validationActions
(Deny, Warn, Audit) and failurePolicy follow upstream's dispatcher.

Not supported, reported as a configuration error so the policy's failurePolicy
decides: ``paramKind`` / ``paramRef`` and the ``authorizer`` variable; Kubernetes' own
CEL libraries (quantity, url, ip, ...) are not available, so expressions using them
fail to compile, which the failurePolicy also decides. Policies are not type-checked
(their ``status.typeChecking`` stays empty).
"""

from __future__ import annotations

import json
from functools import lru_cache

from bootstrap.api import errors

from . import webhooks

_REASON_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413,
                 "Invalid": 422}
_FAILURE_KEY = "validation.policy.admission.k8s.io/validation_failure"


class ConfigError(Exception):
    pass


class EvalError(Exception):
    pass


def _celpy():
    try:
        import celpy
    except ImportError:
        raise ConfigError("CEL evaluation needs the cel-python package, which is not "
                          "installed") from None
    return celpy


@lru_cache(maxsize=1024)
def _program(expression: str):
    env = _celpy().Environment()
    try:
        return env.program(env.compile(expression))
    except Exception as exc:  # celpy raises its own parse and compile errors
        # celpy's message ends with a caret drawing; a Status message is one line.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"compilation failed: {first}") from None


def _evaluate(expression: str, activation: dict):
    program = _program(expression)
    celpy = _celpy()
    try:
        result = program.evaluate(activation)
    except Exception as exc:
        raise EvalError(f"expression '{expression}' resulted in error: {exc}") from None
    if isinstance(result, celpy.evaluation.CELEvalError):
        raise EvalError(f"expression '{expression}' resulted in error: {result}")
    return result


def _bool(expression: str, activation: dict) -> bool:
    result = _evaluate(expression, activation)
    if not isinstance(result, bool | int) or type(result).__name__ not in ("bool", "BoolType"):
        raise EvalError(f"expression '{expression}' resulted in a non-boolean value")
    return bool(result)


def _request(a) -> dict:
    body = webhooks.review_request(a, "", a.obj)["request"]
    for k in ("object", "oldObject", "options", "uid"):
        body.pop(k, None)
    return body


async def _activation(a, policy: dict) -> dict:
    celpy = _celpy()
    ns_obj = None
    if a.resource.namespaced and a.namespace:
        ns_obj = await a.store.get("namespaces", None, a.namespace)
    base = {"object": a.obj, "oldObject": a.old, "request": _request(a),
            "namespaceObject": ns_obj, "params": None}
    activation = {k: celpy.json_to_cel(v) for k, v in base.items()}
    variables: dict = {}
    activation["variables"] = celpy.json_to_cel(variables)
    for var in policy.get("spec", {}).get("variables") or []:
        variables[var.get("name", "")] = _evaluate(var.get("expression", ""), activation)
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()})
    return activation


async def _matches(constraints: dict | None, a) -> bool:
    """matchConstraints / matchResources: included by a rule and not excluded."""
    if not constraints:
        return True
    rules = constraints.get("resourceRules")
    if rules is not None and not any(_named_rule(r, a) for r in rules):
        return False
    if any(_named_rule(r, a) for r in constraints.get("excludeResourceRules") or []):
        return False
    hook = webhooks.Hook("", {k: constraints[k] for k in ("namespaceSelector", "objectSelector")
                              if k in constraints}, 0)
    return webhooks._object_matches(hook, a) and await webhooks._namespace_matches(hook, a)


def _named_rule(rule: dict, a) -> bool:
    names = rule.get("resourceNames") or []
    return webhooks.rule_matches(rule, a) and (not names or a.name in names)


def _denial(a, policy: str, binding: str, message: str, reason: str) -> errors.APIError:
    text = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: " \
           f"{message}"
    err = errors.forbidden_message(a.resource.plural, a.name, text, a.resource.group)
    reason = reason or "Invalid"
    details = dict(err.details or {})
    details["causes"] = [*details.get("causes", []), {"message": text}]
    return errors.APIError(_REASON_CODES.get(reason, 422), reason, err.message, details)


def _decide(validation: dict, activation: dict) -> tuple[str, str] | None:
    """None when the validation admits, else (message, reason)."""
    expression = validation.get("expression", "")
    if _bool(expression, activation):
        return None
    message = ""
    if validation.get("messageExpression"):
        try:
            value = _evaluate(validation["messageExpression"], activation)
            if isinstance(value, str) and "\n" not in value.strip():
                message = value.strip()
        except (ConfigError, EvalError):
            message = ""
    message = message or (validation.get("message") or "").strip() or \
        f"failed expression: {expression.strip()}"
    return message, validation.get("reason") or "Invalid"


async def validate(a) -> None:
    if (a.resource.group, a.resource.plural) in webhooks._EXEMPT:
        return
    policies = {p["metadata"]["name"]: p for p in
                await a.store.list("validatingadmissionpolicies")}
    if not policies:
        return
    bindings = sorted(await a.store.list("validatingadmissionpolicybindings"),
                      key=lambda b: b["metadata"]["name"])
    denied: list[errors.APIError] = []
    for binding in bindings:
        bspec = binding.get("spec") or {}
        policy = policies.get(bspec.get("policyName", ""))
        if policy is None:
            continue
        pspec = policy.get("spec") or {}
        pname, bname = policy["metadata"]["name"], binding["metadata"]["name"]
        fail = pspec.get("failurePolicy", "Fail") != "Ignore"
        try:
            if not await _matches(pspec.get("matchConstraints"), a) or \
                    not await _matches(bspec.get("matchResources"), a):
                continue
        except ValueError as exc:
            if fail:
                denied.append(_denial(a, pname, bname, f"failed to configure binding: {exc}", ""))
            continue
        actions = bspec.get("validationActions") or ["Deny"]
        try:
            if pspec.get("paramKind") or bspec.get("paramRef"):
                raise ConfigError("paramKind and paramRef are not supported by "
                                  "bootstrap-apiserver")
            activation = await _activation(a, policy)
            if not all(_bool(c.get("expression", ""), activation)
                       for c in pspec.get("matchConditions") or []):
                continue
        except ConfigError as exc:
            if fail:
                denied.append(_denial(a, pname, bname, f"failed to configure binding: {exc}", ""))
            continue
        except EvalError as exc:
            if fail:
                denied.append(_denial(a, pname, bname, str(exc), ""))
            continue
        for i, validation in enumerate(pspec.get("validations") or []):
            try:
                decision = _decide(validation, activation)
            except (ConfigError, EvalError) as exc:
                decision = (str(exc), "") if fail else None
            if decision is None:
                continue
            message, reason = decision
            if "Deny" in actions:
                denied.append(_denial(a, pname, bname, message, reason))
            if "Warn" in actions and a.warnings is not None:
                a.warnings.append(f"Validation failed for ValidatingAdmissionPolicy "
                                  f"'{pname}' with binding '{bname}': {message}")
            if "Audit" in actions and a.annotations is not None:
                a.annotations[_FAILURE_KEY] = json.dumps([{
                    "expressionIndex": i, "message": message, "validationActions": actions,
                    "binding": bname, "policy": pname}], separators=(",", ":"))
        _audit_annotations(a, pname, pspec, activation, fail, denied, bname)
    if denied:
        raise denied[0]


def _audit_annotations(a, pname: str, pspec: dict, activation: dict, fail: bool,
                       denied: list, bname: str) -> None:
    for ann in pspec.get("auditAnnotations") or []:
        try:
            value = _evaluate(ann.get("valueExpression", ""), activation)
        except (ConfigError, EvalError) as exc:
            if fail:
                denied.append(_denial(a, pname, bname, str(exc), ""))
            continue
        if value is None or type(value).__name__ == "NullType" or a.annotations is None:
            continue
        a.annotations[f"{pname}/{ann.get('key', '')}"] = str(value)[:10 * 1024]
