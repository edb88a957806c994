"""The review APIs: computed per request, never stored.

- authorization.k8s.io/v1 SelfSubjectAccessReview (what ``kubectl auth can-i`` sends),
  SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview
  (``kubectl auth can-i --list``);
- authentication.k8s.io/v1 TokenReview and SelfSubjectReview (``kubectl auth whoami``).

Each takes the decoded request body and returns the response object: the body
with ``status`` filled in, as upstream echoes spec back.
"""

from __future__ import annotations

import copy

from bootstrap.agents.apiserver.auth.authn import Authenticator, UserInfo
from bootstrap.agents.apiserver.auth.authz import Attributes, Authorizer
from bootstrap.api import errors

AUTHZ_GROUP = "authorization.k8s.io"


def _attributes(user: UserInfo, spec: dict, kind: str) -> Attributes:
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(ra) == bool(nra):
        raise errors.invalid(kind, "", [errors.required(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified")],
            group=AUTHZ_GROUP)
    if ra:
        field_sel = (ra.get("fieldSelector") or {}).get("rawSelector")
        label_sel = (ra.get("labelSelector") or {}).get("rawSelector")
        return Attributes(user=user, verb=ra.get("verb", ""), api_group=ra.get("group", ""),
                          api_version=ra.get("version", ""), resource=ra.get("resource", ""),
                          subresource=ra.get("subresource", ""),
                          namespace=ra.get("namespace", ""), name=ra.get("name", ""),
                          resource_request=True, field_selector=field_sel,
                          label_selector=label_sel)
    return Attributes(user=user, verb=nra.get("verb", ""), path=nra.get("path", ""),
                      resource_request=False)


async def _review(body: dict, user: UserInfo, authorizer: Authorizer, kind: str) -> dict:
    spec = body.get("spec") or {}
    decision = await authorizer.authorize(_attributes(user, spec, kind))
    out = copy.deepcopy(body)
    out.setdefault("apiVersion", f"{AUTHZ_GROUP}/v1")
    out.setdefault("kind", kind)
    out.setdefault("metadata", {})
    status: dict = {"allowed": decision.allowed}
    if decision.denied:
        status["denied"] = True
    if decision.reason:
        status["reason"] = decision.reason
    if decision.evaluation_errors:
        status["evaluationError"] = "; ".join(decision.evaluation_errors)
    out["status"] = status
    return out


async def self_subject_access_review(body: dict, user: UserInfo, authorizer: Authorizer) -> dict:
    return await _review(body, user, authorizer, "SelfSubjectAccessReview")


def _subject(spec: dict, kind: str) -> UserInfo:
    if not spec.get("user") and not spec.get("groups"):
        raise errors.invalid(kind, "", [errors.required(
            "spec.user", "at least one of user or group must be specified")], group=AUTHZ_GROUP)
    return UserInfo(name=spec.get("user", ""), uid=spec.get("uid", ""),
                    groups=list(spec.get("groups") or []),
                    extra={k: list(v) for k, v in (spec.get("extra") or {}).items()})


async def subject_access_review(body: dict, authorizer: Authorizer) -> dict:
    spec = body.get("spec") or {}
    return await _review(body, _subject(spec, "SubjectAccessReview"), authorizer,
                         "SubjectAccessReview")


async def local_subject_access_review(body: dict, namespace: str, authorizer: Authorizer) -> dict:
    """The namespace in the path must equal spec.resourceAttributes.namespace."""
    spec = body.get("spec") or {}
    ra = spec.get("resourceAttributes")
    if not ra or ra.get("namespace", "") != namespace:
        raise errors.bad_request(
            f"spec.resourceAttributes.namespace must match namespace: {namespace}")
    return await _review(body, _subject(spec, "LocalSubjectAccessReview"), authorizer,
                         "LocalSubjectAccessReview")


async def self_subject_rules_review(body: dict, user: UserInfo, authorizer: Authorizer) -> dict:
    namespace = (body.get("spec") or {}).get("namespace", "")
    rules, incomplete = await authorizer.rbac.rules_for(user, namespace)
    resource_rules, non_resource_rules = [], []
    for r in rules:
        if r.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(r.get("verbs") or []),
                                       "nonResourceURLs": list(r["nonResourceURLs"])})
        else:
            rr = {"verbs": list(r.get("verbs") or []),
                  "apiGroups": list(r.get("apiGroups") or []),
                  "resources": list(r.get("resources") or [])}
            if r.get("resourceNames"):
                rr["resourceNames"] = list(r["resourceNames"])
            resource_rules.append(rr)
    out = copy.deepcopy(body)
    out.setdefault("apiVersion", f"{AUTHZ_GROUP}/v1")
    out.setdefault("kind", "SelfSubjectRulesReview")
    out.setdefault("metadata", {})
    out["status"] = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                     "incomplete": incomplete}
    return out


async def token_review(body: dict, authenticator: Authenticator) -> dict:
    spec = body.get("spec") or {}
    token = spec.get("token", "")
    out = copy.deepcopy(body)
    out.setdefault("apiVersion", "authentication.k8s.io/v1")
    out.setdefault("kind", "TokenReview")
    out.setdefault("metadata", {})
    user = await authenticator.authenticate_token(token) if token else None
    wanted = spec.get("audiences") or []
    if user is None:
        out["status"] = {"authenticated": False, "user": {},
                         "error": "[invalid bearer token, token lookup failed]"}
        return out
    # The token was checked against the server's own audiences; a review asking for
    # others succeeds only if they intersect (upstream audience-agnostic check).
    audiences = authenticator.audiences
    if wanted:
        common = [a for a in wanted if a in audiences]
        if not common:
            out["status"] = {"authenticated": False, "user": {},
                             "error": "token audiences are invalid"}
            return out
        audiences = common
    out["status"] = {"authenticated": True, "user": user.to_dict(), "audiences": audiences}
    return out


def self_subject_review(user: UserInfo) -> dict:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": user.to_dict()}}
