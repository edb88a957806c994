"""etcd_member: add or remove this host's etcd member, only when the member list says so.

The fact is the cluster's member list (plus, before an add, every started
member's health), read with ``etcdctl`` on the host the task runs on, using
its own client pair from the etcd CA against the members named in
``endpoints``. A member is matched by peer URL. Adding while any member is
unhealthy, or while another added member has not started yet, is refused:
the new member raises the quorum before it runs, so one more failure would
lose the cluster. The add itself is one command that retries on the host
while etcd's own reconfiguration check says the cluster just changed.

``register`` gets ``members`` (as listed) and ``initial_cluster`` (the
``--initial-cluster`` value a just-added member starts with, including
itself), also under --dry-run, so a template can be rendered from it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from bootstrap.engine.ops.base import Command, OpContext, OpError, OpGen, as_list, check_args, q

ETCD_MEMBER_ARGS = {"name", "peer_url", "endpoints", "state", "cacert", "cert", "key"}
_PKI = "/etc/kubernetes/pki/etcd"

# etcd's --strict-reconfig-check refuses a change until every member has been
# connected for a few seconds (e.g. right after the previous one joined).
RETRYABLE = ("unhealthy cluster", "not enough started members")


@dataclass(frozen=True)
class EtcdClient:
    endpoints: tuple[str, ...]
    cacert: str
    cert: str
    key: str

    def command(self, args: str, endpoints: tuple[str, ...] | None = None) -> str:
        eps = ",".join(endpoints or self.endpoints)
        return (f"ETCDCTL_API=3 etcdctl --endpoints={q(eps)} --cacert={q(self.cacert)}"
                f" --cert={q(self.cert)} --key={q(self.key)}"
                f" --dial-timeout=3s --command-timeout=15s {args}")


class MemberList:
    """Fact: ``etcdctl member list`` as a list of {ID, name, peerURLs, clientURLs}."""

    @staticmethod
    def command(client: EtcdClient) -> str:
        return client.command("--write-out=json member list")

    @staticmethod
    def parse(stdout: str) -> list[dict]:
        try:
            return list(json.loads(stdout).get("members") or [])
        except (ValueError, AttributeError):
            raise OpError(f"unreadable etcd member list: {stdout.strip()[:200]!r}") from None


class EndpointHealth:
    """Fact: endpoint -> healthy, for the given client URLs."""

    @staticmethod
    def command(client: EtcdClient, endpoints: tuple[str, ...]) -> str:
        return client.command("--write-out=json endpoint health", endpoints)

    @staticmethod
    def parse(stdout: str, endpoints: tuple[str, ...]) -> dict[str, bool]:
        out = dict.fromkeys(endpoints, False)
        text = stdout.strip()
        if text.startswith("["):
            for item in json.loads(text):
                out[item.get("endpoint", "")] = bool(item.get("health"))
        return out


def initial_cluster(members: list[dict], name: str, peer_url: str) -> str:
    """``name=peerURL,...`` for every member; an added, never started one (no name yet) is us."""
    parts = []
    for m in members:
        urls = m.get("peerURLs") or []
        if not urls:
            continue
        member_name = m.get("name") or (name if peer_url in urls else "")
        if member_name:
            parts.append(f"{member_name}={urls[0]}")
    if not any(peer_url in (m.get("peerURLs") or []) for m in members):
        parts.append(f"{name}={peer_url}")
    return ",".join(parts)


def add_command(client: EtcdClient, name: str, peer_url: str, tries: int = 60) -> str:
    add = client.command(f"member add {q(name)} --peer-urls={q(peer_url)}")
    retry = "|".join(RETRYABLE)
    return (f"i=0; while :; do out=$({add} 2>&1) && exit 0; i=$((i+1)); "
            f"if [ $i -ge {tries} ] || ! printf '%s' \"$out\" | grep -qE {shlex.quote(retry)}; "
            "then printf '%s\\n' \"$out\" >&2; exit 1; fi; sleep 1; done")


def _member_id(member: dict) -> str:
    # etcdctl prints IDs in hex; the JSON output has them as decimal integers.
    return format(int(member["ID"]), "x")


def op_etcd_member(ctx: OpContext, args: dict) -> OpGen:
    check_args("etcd_member", args, ETCD_MEMBER_ARGS, {"name", "peer_url", "endpoints"})
    name, peer_url = str(args["name"]), str(args["peer_url"])
    state = args.get("state") or "present"
    if state not in ("present", "absent"):
        raise OpError(f"etcd_member: state must be present or absent, not {state!r}")
    endpoints = tuple(str(e) for e in as_list(args["endpoints"]))
    if not endpoints:
        raise OpError("etcd_member: endpoints is empty", hint="name at least one running member")
    client = EtcdClient(endpoints, str(args.get("cacert") or f"{_PKI}/ca.crt"),
                        str(args.get("cert") or f"{_PKI}/healthcheck-client.crt"),
                        str(args.get("key") or f"{_PKI}/healthcheck-client.key"))
    res = ctx.fact(MemberList.command(client))
    if not res.ok:
        raise OpError(f"etcd member list failed: {(res.stderr or res.stdout).strip()[-300:]}",
                      hint="are the members in endpoints running? see `bootstrap etcd status`")
    members = MemberList.parse(res.stdout)
    mine = [m for m in members if peer_url in (m.get("peerURLs") or [])]
    ctx.out["members"] = members
    if state == "absent":
        for m in mine:
            yield Command(client.command(f"member remove {_member_id(m)}"))
        ctx.out["initial_cluster"] = ""
        return
    if not mine:
        others_unstarted = [m for m in members if not m.get("clientURLs")]
        if others_unstarted:
            urls = ", ".join(u for m in others_unstarted for u in m.get("peerURLs") or [])
            raise OpError(f"not adding etcd member {name}: member {urls} was added but never"
                          " started, so quorum already counts a member that is down",
                          hint="start that member or remove it (`etcdctl member remove`)")
        started = tuple(u for m in members for u in (m.get("clientURLs") or [])[:1])
        health = EndpointHealth.parse(ctx.fact(EndpointHealth.command(client, started),
                                               timeout=60).stdout, started)
        bad = [e for e, ok in health.items() if not ok]
        if bad:
            raise OpError(f"not adding etcd member {name}: {', '.join(bad)} unhealthy, so quorum"
                          " would not tolerate a new member that fails to start",
                          hint="repair the cluster first")
        yield Command(add_command(client, name, peer_url), timeout=120,
                      display=f"etcdctl member add {name} --peer-urls={peer_url}")
    ctx.out["initial_cluster"] = initial_cluster(members, name, peer_url)
