"""Authorization chain for --authorization-mode.

As kube-apiserver: members of system:masters are always allowed (the privileged
group authorizer in front of the chain); then each mode in the order given
(Node, RBAC, AlwaysAllow, AlwaysDeny) either decides or has no opinion; with no
decision the request is denied, and the reasons collected along the way go into
the Forbidden message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bootstrap.agents.apiserver.auth.authn import MASTERS, Store, UserInfo
from bootstrap.agents.apiserver.auth.node import NodeAuthorizer
from bootstrap.agents.apiserver.auth.rbac import RBACAuthorizer, Request

MODES = ("Node", "RBAC", "AlwaysAllow", "AlwaysDeny")


@dataclass(frozen=True, kw_only=True)
class Attributes(Request):
    """RBAC's request attributes plus who asks and what only other modes read."""

    user: UserInfo
    api_version: str = ""
    # Raw selectors of list/watch requests: the Node authorizer requires kubelets
    # to pin pods to their node (authorize-with-selectors).
    field_selector: str | None = None
    label_selector: str | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    # True only for an explicit deny (AlwaysDeny); a plain "nobody allowed it" is
    # allowed=False, denied=False, which SubjectAccessReview reports as such.
    denied: bool = False
    evaluation_errors: list[str] = field(default_factory=list)


class Authorizer:
    def __init__(self, modes: list[str] | str, store: Store):
        if isinstance(modes, str):
            modes = [m.strip() for m in modes.split(",") if m.strip()]
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown authorization mode {unknown[0]!r}; "
                             f"supported: {', '.join(MODES)}")
        self.modes = list(modes)
        self.rbac = RBACAuthorizer(store)
        self.node = NodeAuthorizer(store)

    async def authorize(self, attrs: Attributes) -> Decision:
        if MASTERS in attrs.user.groups:
            return Decision(True, "")
        reasons: list[str] = []
        for mode in self.modes:
            if mode == "AlwaysAllow":
                return Decision(True, "")
            if mode == "AlwaysDeny":
                return Decision(False, "", denied=True)
            if mode == "Node":
                verdict, reason = await self.node.authorize(
                    attrs.user, attrs, field_selector=attrs.field_selector)
                if verdict:
                    return Decision(True, reason)
            else:  # RBAC
                ok, reason = await self.rbac.authorize(attrs.user, attrs)
                if ok:
                    return Decision(True, reason)
            if reason:
                reasons.append(reason)
        # Upstream's union authorizer joins the members' reasons with newlines.
        return Decision(False, "\n".join(reasons))
