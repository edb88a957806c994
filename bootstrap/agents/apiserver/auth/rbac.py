"""RBAC evaluation with upstream's rules (plugin/pkg/auth/authorizer/rbac).

ClusterRoleBindings are visited first, then the RoleBindings of the request's
namespace; the first rule that covers the request allows it. RBAC never denies:
without a matching rule it has no opinion and the chain ends in a deny.
Aggregated ClusterRoles (aggregationRule) are resolved at evaluation time from
the roles their selectors match, so no controller has to write them back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from bootstrap.agents.apiserver.auth.authn import Store, UserInfo

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Request:
    """The subset of authorization attributes RBAC looks at."""

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""
    resource_request: bool = True


def _has(values: list | None, wanted: str) -> bool:
    return bool(values) and ("*" in values or wanted in values)


def verb_matches(rule: dict, verb: str) -> bool:
    return _has(rule.get("verbs"), verb)


def resource_matches(rule: dict, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.get("resources") or []:
        if r == "*" or r == combined:
            return True
        # "*/scale" covers the scale subresource of every resource.
        if subresource and r == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule: dict, req: Request) -> bool:
    if req.resource_request:
        return (verb_matches(rule, req.verb)
                and _has(rule.get("apiGroups"), req.api_group)
                and resource_matches(rule, req.resource, req.subresource)
                and resource_name_matches(rule, req.name))
    return verb_matches(rule, req.verb) and non_resource_url_matches(rule, req.path)


def subject_matches(subject: dict, user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name", "")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        # A RoleBinding's ServiceAccount subject without namespace means the binding's.
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def _describe(subject: dict) -> str:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name", "")}/{subject.get("namespace", "")}"'
    return f'{kind} "{subject.get("name", "")}"'


def label_selector_matches(selector: dict, labels: dict) -> bool:
    """metav1.LabelSelector semantics (matchLabels AND matchExpressions)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class RBACAuthorizer:
    def __init__(self, store: Store):
        self._store = store

    async def _cluster_role_rules(self, name: str, seen: frozenset = frozenset()) -> list[dict] | None:
        role = await self._store.get("clusterroles", None, name)
        if role is None:
            return None
        rules = list(role.get("rules") or [])
        agg = role.get("aggregationRule")
        if agg and name not in seen:
            selectors = agg.get("clusterRoleSelectors") or []
            for other in await self._store.list("clusterroles"):
                other_name = other["metadata"]["name"]
                if other_name == name or other_name in seen:
                    continue
                labels = other["metadata"].get("labels") or {}
                if any(label_selector_matches(s, labels) for s in selectors):
                    # Aggregation nests (view -> edit -> admin) as upstream's controller
                    # writes aggregated rules back before the next level reads them.
                    more = await self._cluster_role_rules(other_name, seen | {name})
                    rules.extend(r for r in more or [] if r not in rules)
        return rules

    async def role_ref_rules(self, ref: dict, namespace: str) -> list[dict] | None:
        """The rules a roleRef grants in ``namespace``; None when the role is missing."""
        return await self._role_rules(ref, namespace)

    async def _role_rules(self, ref: dict, namespace: str) -> list[dict] | None:
        if ref.get("apiGroup", RBAC_GROUP) != RBAC_GROUP:
            return None
        if ref.get("kind") == "ClusterRole":
            return await self._cluster_role_rules(ref.get("name", ""))
        if ref.get("kind") == "Role" and namespace:
            role = await self._store.get("roles", namespace, ref.get("name", ""))
            return None if role is None else list(role.get("rules") or [])
        return None

    async def _bindings(self, user: UserInfo, namespace: str) -> AsyncIterator[tuple]:
        """(description, rules or None, roleRef) for each binding naming the user, lazily,
        so evaluation stops resolving roles at the first rule that allows."""
        for crb in await self._store.list("clusterrolebindings"):
            for subject in crb.get("subjects") or []:
                if subject_matches(subject, user, ""):
                    ref = crb.get("roleRef") or {}
                    desc = (f'ClusterRoleBinding "{crb["metadata"]["name"]}" of '
                            f'{ref.get("kind")} "{ref.get("name")}" to {_describe(subject)}')
                    yield desc, await self._role_rules(ref, ""), ref
                    break
        if namespace:
            for rb in await self._store.list("rolebindings", namespace):
                for subject in rb.get("subjects") or []:
                    if subject_matches(subject, user, namespace):
                        ref = rb.get("roleRef") or {}
                        desc = (f'RoleBinding "{rb["metadata"]["name"]}/{namespace}" of '
                                f'{ref.get("kind")} "{ref.get("name")}" to {_describe(subject)}')
                        yield desc, await self._role_rules(ref, namespace), ref
                        break

    async def authorize(self, user: UserInfo, req: Request) -> tuple[bool, str]:
        """(allowed, reason). A denial's reason lists roles that were bound but missing,
        as upstream's "RBAC: clusterrole ... not found" does."""
        missing = []
        async for desc, rules, ref in self._bindings(user, req.namespace):
            if rules is None:
                kind = (ref.get("kind") or "").lower()
                missing.append(f'{kind}.{RBAC_GROUP} "{ref.get("name", "")}" not found')
                continue
            if any(rule_allows(r, req) for r in rules):
                return True, f"RBAC: allowed by {desc}"
        return False, ("RBAC: " + ", ".join(missing)) if missing else ""

    async def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], bool]:
        """All rules that apply to the user in the namespace, and whether the list is
        incomplete (a bound role is missing): SelfSubjectRulesReview's answer."""
        rules: list[dict] = []
        incomplete = False
        async for _desc, role_rules, _ref in self._bindings(user, namespace):
            if role_rules is None:
                incomplete = True
                continue
            rules.extend(role_rules)
        return rules, incomplete
