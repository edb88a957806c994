"""``bootstrap token create/list/delete``: bootstrap tokens as Secrets in kube-system.

The Secret shape is kubeadm's (bootstrap.kubernetes.io/token, token-id,
token-secret, expiration, usage-bootstrap-*, auth-extra-groups); the
TTL/usages/groups rules and error words follow kubeadm's token commands.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bootstrap.errors import UserError
from bootstrap.flows import apiobjects
from bootstrap.pki.tokens import generate_token, parse_token

SECRETS = ("", "v1", "secrets")
USAGES = ("signing", "authentication")
_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_ttl(text: str) -> timedelta | None:
    """Go's duration syntax as kubeadm takes it ("24h", "1h30m", "0" = never expires)."""
    text = str(text).strip()
    if text in ("0", "0s"):
        return None
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise UserError(f"--ttl: invalid duration {text!r}",
                        hint="use a Go duration such as 30m, 24h or 1h30m; 0 never expires")
    return timedelta(seconds=total)


def parse_usages(text: str | None) -> tuple[str, ...]:
    usages = tuple(u.strip() for u in (text or ",".join(USAGES)).split(",") if u.strip())
    bad = [u for u in usages if u not in USAGES]
    if bad:
        raise UserError(f"--usages: invalid bootstrap token usage {bad[0]!r}",
                        hint="valid usages: " + ", ".join(USAGES))
    return usages


def parse_groups(text: str | None, usages: tuple[str, ...]) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in (text or apiobjects.NODE_TOKEN_GROUP).split(",")
                   if g.strip())
    for g in groups:
        if not _GROUP_RE.match(g):
            raise UserError(f"--groups: {g!r} must match {_GROUP_RE.pattern}",
                            hint="extra groups of bootstrap tokens start with "
                                 "system:bootstrappers:")
    if groups and "authentication" not in usages:
        raise UserError("--groups needs the authentication usage",
                        hint="add authentication to --usages or drop --groups")
    return groups


@dataclass(frozen=True)
class TokenRow:
    token: str
    ttl: str
    expires: str
    usages: str
    description: str
    groups: str


def _decode(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def row(secret: dict, now: datetime) -> TokenRow | None:
    data = _decode(secret)
    if "token-id" not in data:
        return None
    exp = data.get("expiration", "")
    ttl = "<forever>"
    if exp:
        left = datetime.strptime(exp, apiobjects.TIME_FORMAT).replace(tzinfo=UTC) - now
        ttl = "<invalid>" if left.total_seconds() < 0 else _human(left)
    usages = ",".join(sorted(k.removeprefix("usage-bootstrap-") for k, v in data.items()
                             if k.startswith("usage-bootstrap-") and v == "true"))
    return TokenRow(f"{data['token-id']}.{data.get('token-secret', '')}", ttl, exp or "<never>",
                    usages or "<none>", data.get("description", "<none>") or "<none>",
                    data.get("auth-extra-groups", "<none>") or "<none>")


def _human(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s >= 86400:
        return f"{s // 86400}d"
    if s >= 3600:
        return f"{s // 3600}h"
    return f"{max(s // 60, 0)}m"


def create(api, token: str | None, *, ttl: timedelta | None, usages: tuple[str, ...],
           groups: tuple[str, ...], description: str = "",
           now: datetime | None = None) -> str:
    token = token or generate_token()
    token_id, secret = parse_token(token)
    name = f"bootstrap-token-{token_id}"
    if api.get(SECRETS, name, apiobjects.KUBE_SYSTEM) is not None:
        raise UserError(f"a token with id {token_id!r} already exists",
                        hint="delete it first (`bootstrap token delete`) or pick another")
    api.create(apiobjects.token_secret(token_id, secret, ttl=ttl, now=now or datetime.now(UTC),
                                       usages=usages, groups=groups, description=description))
    return token


def list_tokens(api, now: datetime | None = None) -> list[TokenRow]:
    items = api.list(SECRETS, apiobjects.KUBE_SYSTEM,
                     field_selector="type=bootstrap.kubernetes.io/token")
    now = now or datetime.now(UTC)
    return [r for r in (row(s, now) for s in items
                        if s.get("type") == "bootstrap.kubernetes.io/token") if r]


def delete(api, token_or_id: str) -> str:
    token_id = token_or_id.split(".")[0]
    if not re.fullmatch(r"[a-z0-9]{6}", token_id):
        raise UserError(f"given token or token id {token_or_id!r} didn't match pattern "
                        "[a-z0-9]{6} or [a-z0-9]{6}.[a-z0-9]{16}")
    if not api.delete(SECRETS, f"bootstrap-token-{token_id}", apiobjects.KUBE_SYSTEM):
        raise UserError(f"bootstrap token {token_id!r} not found",
                        hint="see `bootstrap token list`")
    return token_id


def join_command(kubeconfig_path: str, token: str, api=None) -> str:
    """`bootstrap join <server> --token T --discovery-token-ca-cert-hash sha256:...`,
    from the kubeconfig's server and CA (as kubeadm's --print-join-command). Behind
    the localhost balancer that server is 127.0.0.1, which a new host cannot
    discover from: then a control-plane host's own address (kubeadm-config's
    ClusterStatus) is printed instead."""
    from bootstrap.flows.discovery import ca_hash
    from bootstrap.flows.join import api_endpoints
    from bootstrap.pki.kubeconfig import read_kubeconfig

    parsed = read_kubeconfig(kubeconfig_path)
    server = parsed.server.removeprefix("https://")
    if api is not None and server.split(":")[0] in ("127.0.0.1", "localhost", "[::1]"):
        eps = api_endpoints(api.get(("", "v1", "configmaps"), "kubeadm-config",
                                    apiobjects.KUBE_SYSTEM))
        if eps:
            first = eps[sorted(eps)[0]]
            host = first["advertiseAddress"]
            host = f"[{host}]" if ":" in host else host
            server = f"{host}:{first.get('bindPort', 6443)}"
    return (f"bootstrap join {server} --token {token} "
            f"--discovery-token-ca-cert-hash {ca_hash(parsed.ca_pem)}")
