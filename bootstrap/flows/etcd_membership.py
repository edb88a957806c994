"""Removing an etcd member safely: exact matching and the quorum rule.

Used by ``bootstrap reset`` (this host's own member) and ``bootstrap cluster
remove-node`` (a member removed from another host). A member is matched
exactly: by its ID, or by its name together with its peer URL; never by a
prefix, so removing ``cp1`` can never hit ``cp10``. A removal is refused
when the members left could not form a quorum: after it, the healthy members
that remain must be a majority of the members that remain.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bootstrap.errors import UserError
from bootstrap.flows.etcd import etcdctl
from bootstrap.remote.result import tail


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]

    @property
    def hex_id(self) -> str:
        # etcdctl prints and takes IDs in hex; its JSON output has them as integers.
        return format(self.id, "x")

    @property
    def started(self) -> bool:
        return bool(self.client_urls)

    def label(self) -> str:
        return f"{self.name or '(unstarted)'} ({self.hex_id})"


def parse_members(stdout: str) -> list[Member]:
    try:
        raw = json.loads(stdout).get("members") or []
    except (ValueError, AttributeError):
        raise UserError(f"unreadable etcd member list: {stdout.strip()[:200]!r}") from None
    return [Member(int(m["ID"]), m.get("name") or "", tuple(m.get("peerURLs") or ()),
                   tuple(m.get("clientURLs") or ())) for m in raw]


def parse_id(text: str) -> int:
    """A member ID as etcdctl prints it (hex), or as the JSON gives it (decimal)."""
    t = text.strip().lower()
    try:
        return int(t.removeprefix("0x"), 16)
    except ValueError:
        raise UserError(f"not an etcd member ID: {text!r}",
                        hint="IDs are hex, as `etcdctl member list` prints them") from None


def find(members: list[Member], *, name: str | None = None, peer_url: str | None = None,
         member_id: int | None = None) -> Member | None:
    """The one member matching exactly; None if there is none."""
    if member_id is not None:
        hits = [m for m in members if m.id == member_id]
    else:
        hits = [m for m in members if (name is None or m.name == name)
                and (peer_url is None or peer_url in m.peer_urls)]
    if len(hits) > 1:
        raise UserError(f"{len(hits)} etcd members match "
                        f"{name or ''} {peer_url or ''}".rstrip(),
                        hint="remove the right one by ID")
    return hits[0] if hits else None


def quorum(size: int) -> int:
    return size // 2 + 1


def removal_refusal(members: list[Member], healthy: set[int], target: Member) -> str | None:
    """Why removing ``target`` would break the cluster, or None when it is safe.

    ``healthy`` holds the IDs of members that answered a health check.
    """
    left = [m for m in members if m.id != target.id]
    if not left:
        return f"{target.label()} is the only etcd member"
    alive = sum(1 for m in left if m.id in healthy)
    need = quorum(len(left))
    if alive < need:
        down = ", ".join(m.label() for m in left if m.id not in healthy)
        return (f"removing {target.label()} leaves {len(left)} member(s) of which {alive} "
                f"healthy, and a quorum of {len(left)} needs {need} (unhealthy: {down})")
    return None


# etcd's own health interval is 5 s; a member back from a restart counts after it.
# 15 tries 2 s apart give it half a minute.
RECONFIG_ATTEMPTS = 15


class EtcdAdmin:
    """etcdctl on one host (its own client pair), against the given endpoints."""

    def __init__(self, conn, endpoints: list[str], pki_dir: str = "/etc/kubernetes/pki/etcd"):
        self.conn = conn
        self.endpoints = endpoints
        self.pki_dir = pki_dir

    def _cmd(self, args: str, endpoints: list[str] | None = None) -> str:
        return etcdctl(args, endpoints or self.endpoints, pki_dir=self.pki_dir)

    def members(self) -> list[Member]:
        r = self.conn.run(self._cmd("--write-out=json member list"), check=False, timeout=60)
        if not r.ok:
            raise UserError(f"etcd member list failed: {tail(r.stderr) or tail(r.stdout)}",
                            where=f"host {self.conn.host}",
                            hint="is etcd running there? `systemctl status etcd`")
        return parse_members(r.stdout)

    def healthy(self, members: list[Member]) -> set[int]:
        urls = {m.client_urls[0]: m.id for m in members if m.started}
        if not urls:
            return set()
        r = self.conn.run(self._cmd("--write-out=json endpoint health", list(urls)),
                          check=False, timeout=60)
        ok: set[str] = set()
        if r.stdout.strip().startswith("["):
            try:
                ok = {i.get("endpoint", "") for i in json.loads(r.stdout) if i.get("health")}
            except ValueError:
                ok = set()
        return {mid for url, mid in urls.items() if url in ok}

    def remove(self, member: Member, via: list[Member]) -> None:
        """``member remove`` sent to the other members (never the one leaving)."""
        endpoints = [m.client_urls[0] for m in via if m.started and m.id != member.id]
        for attempt in range(RECONFIG_ATTEMPTS):
            if attempt:
                time.sleep(2)
            r = self.conn.run(self._cmd(f"member remove {member.hex_id}", endpoints or None),
                              check=False, timeout=60)
            # etcd's strict reconfiguration check answers "unhealthy cluster" until every
            # member that would remain has been connected to the leader for a few seconds
            # (after a restart or a leader change): wait that out rather than fail.
            if r.ok or "unhealthy cluster" not in (r.stderr + r.stdout):
                break
        if not r.ok and "member not found" not in (r.stderr + r.stdout):
            raise UserError(f"etcd member remove {member.label()} failed: "
                            f"{tail(r.stderr) or tail(r.stdout)}", where=f"host {self.conn.host}")

    def check_removal(self, target: Member, members: list[Member], force: bool,
                      echo) -> set[int]:
        """Refuse (UserError) unless removing ``target`` keeps quorum; --force only warns."""
        healthy = self.healthy(members)
        why = removal_refusal(members, healthy, target)
        if why and not force:
            raise UserError(f"refusing to remove etcd member: {why}",
                            hint="bring the unhealthy members back first; --force removes "
                                 "anyway and the cluster loses quorum")
        if why:
            echo(f"[etcd] WARNING: {why}; removing anyway (--force)")
        return healthy
