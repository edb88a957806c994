"""User impersonation (``kubectl --as``/``--as-group``, Impersonate-* headers).

As upstream's impersonation filter: every requested attribute needs the
``impersonate`` verb on users / groups / serviceaccounts (in the SA's namespace) /
uids / userextras/<key>; the request then runs as the impersonated user, who is
also in system:authenticated (the requester's own groups and extras are dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

from bootstrap.agents.apiserver.auth.authn import (
    ANONYMOUS,
    AUTHENTICATED,
    SERVICE_ACCOUNTS,
    UNAUTHENTICATED,
    UserInfo,
)
from bootstrap.agents.apiserver.auth.authz import Attributes, Authorizer
from bootstrap.api import errors

USER = "Impersonate-User"
GROUP = "Impersonate-Group"
UID = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"
SA_PREFIX = "system:serviceaccount:"


def _header_values(headers, name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name) if isinstance(headers, Mapping) else None
    return [value] if value else []


def requested(headers) -> bool:
    return any(k.lower().startswith("impersonate-") for k in headers.keys())


async def impersonate(user: UserInfo, headers, authorizer: Authorizer) -> UserInfo:
    """The user to run the request as: ``user`` itself without Impersonate-* headers."""
    if not requested(headers):
        return user
    names = _header_values(headers, USER)
    groups = _header_values(headers, GROUP)
    uids = _header_values(headers, UID)
    extra: dict[str, list[str]] = {}
    for key in headers.keys():
        if key.lower().startswith(EXTRA_PREFIX.lower()):
            # Header names are case-insensitive; extra keys are percent-encoded lower case.
            extra_key = unquote(key[len(EXTRA_PREFIX):]).lower()
            extra[extra_key] = _header_values(headers, key)
    if not names:
        raise errors.bad_request(
            "requested " + ", ".join(h for h, v in ((GROUP, groups), (UID, uids),
                                                   ("Impersonate-Extra", extra)) if v)
            + " without impersonating a user")
    if len(names) > 1 or len(uids) > 1:
        raise errors.bad_request("only one user and one uid may be impersonated")
    name = names[0]

    async def check(resource: str, value: str, *, group: str = "", namespace: str = "",
                    subresource: str = "") -> None:
        attrs = Attributes(user=user, verb="impersonate", api_group=group, resource=resource,
                           subresource=subresource, namespace=namespace, name=value)
        decision = await authorizer.authorize(attrs)
        if not decision.allowed:
            raise errors.forbidden(user.name, "impersonate", resource, group, namespace, value,
                                   decision.reason, subresource)

    out_groups = list(groups)
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        _, _, ns, sa = name.split(":")
        await check("serviceaccounts", sa, namespace=ns)
        if not groups:
            out_groups = [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{ns}"]
    else:
        await check("users", name)
    for g in groups:
        await check("groups", g)
    for uid in uids:
        await check("uids", uid, group="authentication.k8s.io")
    for key, values in extra.items():
        for v in values:
            await check("userextras", v, group="authentication.k8s.io", subresource=key)
    if name == ANONYMOUS:
        if UNAUTHENTICATED not in out_groups:
            out_groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in out_groups:
        out_groups.append(AUTHENTICATED)
    return UserInfo(name=name, uid=uids[0] if uids else "", groups=out_groups, extra=extra)
