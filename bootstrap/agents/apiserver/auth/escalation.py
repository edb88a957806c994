"""RBAC escalation prevention, as upstream's pkg/registry/rbac.

Writing a Role or ClusterRole requires holding every permission it grants, or the
``escalate`` verb on it; writing a RoleBinding or ClusterRoleBinding requires
holding every permission of the referenced role, or the ``bind`` verb on it.
Without this, anyone allowed to create bindings could bind cluster-admin to
themselves. Members of system:masters are exempt (EscalationAllowed).

"Holding" means RBAC alone: the rules the user's own bindings grant in the
object's namespace (upstream's rule resolver ignores the Node authorizer).
"""

from __future__ import annotations

from bootstrap.agents.apiserver.auth.authn import MASTERS, UserInfo
from bootstrap.agents.apiserver.auth.authz import Attributes, Authorizer
from bootstrap.agents.apiserver.auth.rbac import RBAC_GROUP
from bootstrap.api import errors

_ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}
_BINDING_KINDS = ("rolebindings", "clusterrolebindings")
# The aggregationRule gathers arbitrary rules, so setting it needs full authority.
_FULL_AUTHORITY = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]


async def check(op: str, plural: str, group: str, obj: dict | None, user: UserInfo,
                authorizer: Authorizer) -> None:
    """Raise 403 Forbidden when ``user`` would grant permissions it does not hold."""
    if group != RBAC_GROUP or op not in ("CREATE", "UPDATE") or obj is None:
        return
    if plural not in _ROLE_KINDS and plural not in _BINDING_KINDS:
        return
    if MASTERS in user.groups:
        return
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "") or ""
    if plural in _ROLE_KINDS:
        if await _allowed(authorizer, user, "escalate", plural, name, namespace):
            return
        await _confirm_no_escalation(authorizer, user, namespace, list(obj.get("rules") or []),
                                     plural, name)
        if plural == "clusterroles" and obj.get("aggregationRule"):
            try:
                await _confirm_no_escalation(authorizer, user, namespace, _FULL_AUTHORITY,
                                             plural, name)
            except errors.APIError:
                raise errors.forbidden_message(
                    plural, name, "must have cluster-admin privileges to use the "
                    "aggregationRule", RBAC_GROUP) from None
        return
    ref = obj.get("roleRef") or {}
    ref_plural = {"Role": "roles", "ClusterRole": "clusterroles"}.get(ref.get("kind", ""))
    if ref_plural is None or ref.get("apiGroup", RBAC_GROUP) != RBAC_GROUP:
        return  # validation rejects an unknown roleRef with upstream's message
    # A RoleBinding may reference a ClusterRole; bind is checked in the binding's namespace.
    if await _allowed(authorizer, user, "bind", ref_plural, ref.get("name", ""), namespace):
        return
    rules = await authorizer.rbac.role_ref_rules(ref, namespace)
    if rules is None:
        raise errors.not_found(ref_plural, ref.get("name", ""), RBAC_GROUP)
    await _confirm_no_escalation(authorizer, user, namespace, rules, plural, name)


async def _allowed(authorizer: Authorizer, user: UserInfo, verb: str, plural: str, name: str,
                   namespace: str) -> bool:
    attrs = Attributes(user=user, verb=verb, api_group=RBAC_GROUP, resource=plural, name=name,
                       namespace=namespace, api_version="v1")
    return (await authorizer.authorize(attrs)).allowed


async def _confirm_no_escalation(authorizer: Authorizer, user: UserInfo, namespace: str,
                                 rules: list[dict], plural: str, name: str) -> None:
    owner, incomplete = await authorizer.rbac.rules_for(user, namespace)
    missing = [r for rule in rules for r in breakdown(rule) if not any(
        rule_covers(o, r) for o in owner)]
    if not missing:
        return
    held = "\n".join(sorted({compact_string(r) for r in missing}))
    msg = (f'user "{user.name}" (groups={_go_quote_list(user.groups)}) is attempting to grant '
           f"RBAC permissions not currently held:\n{held}")
    if incomplete:
        msg += "; resolution errors: [a role bound to the user was not found]"
    raise errors.forbidden_message(plural, name, msg, RBAC_GROUP)


def breakdown(rule: dict) -> list[dict]:
    """One rule per (group, resource, verb[, name]) and per (nonResourceURL, verb)."""
    out = []
    names = rule.get("resourceNames") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                if names:
                    out.extend({**base, "resourceNames": [n]} for n in names)
                else:
                    out.append(base)
    for url in rule.get("nonResourceURLs") or []:
        for verb in rule.get("verbs") or []:
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
    return out


def _has(values: list, wanted: str) -> bool:
    return wanted in values


def _has_all(values: list, wanted: list) -> bool:
    return all(w in values for w in wanted)


def _resources_cover(owner: list, wanted: list) -> bool:
    if "*" in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def rule_covers(owner: dict, sub: dict) -> bool:
    """upstream's ruleCovers: does one of the user's rules include this atomic rule?"""
    o_verbs, o_groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    o_names = owner.get("resourceNames") or []
    s_names = sub.get("resourceNames") or []
    verbs = "*" in o_verbs or _has_all(o_verbs, sub.get("verbs") or [])
    groups = "*" in o_groups or _has_all(o_groups, sub.get("apiGroups") or [])
    resources = _resources_cover(owner.get("resources") or [], sub.get("resources") or [])
    urls = all(any(_url_covers(o, p) for o in owner.get("nonResourceURLs") or [])
               for p in sub.get("nonResourceURLs") or [])
    names = not o_names if not s_names else (not o_names or _has_all(o_names, s_names))
    return verbs and groups and resources and urls and names


def compact_string(rule: dict) -> str:
    """rbacv1helpers.CompactString: the non-empty fields in upstream's order."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("resourceNames", "ResourceNames"), ("nonResourceURLs",
                                                           "NonResourceURLs"),
                       ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:{_go_quote_list(rule[key])}")
    return "{" + ", ".join(parts) + "}"


def _go_quote_list(values: list) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"
