"""etcd operations on a running cluster, over host connections.

Everything here runs ``etcdctl`` ON an etcd host (over its ``Connection``) with
that host's healthcheck-client certificate, because the etcd client port
only accepts clients with a certificate from the etcd CA and the control
machine holds no client certificate of its own. Status and snapshot
save/restore live here; membership changes are the engine's ``etcd_member``
operation (bootstrap/engine/ops/etcd.py), run by the etcd role.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.errors import UserError
from bootstrap.flows.plan import EtcdNode, initial_cluster
from bootstrap.remote import Connection
from bootstrap.remote.result import tail

PKI_DIR = "/etc/kubernetes/pki/etcd"
DEFAULT_DATA_DIR = "/var/lib/etcd"


def etcdctl(args: str, endpoints: list[str], *, pki_dir: str = PKI_DIR,
            client: str = "healthcheck-client") -> str:
    """An etcdctl command line using the etcd CA and a client pair on the host."""
    return (
        "ETCDCTL_API=3 etcdctl"
        f" --endpoints={shlex.quote(','.join(endpoints))}"
        f" --cacert={pki_dir}/ca.crt --cert={pki_dir}/{client}.crt --key={pki_dir}/{client}.key"
        " --dial-timeout=3s --command-timeout=15s"
        f" {args}"
    )


def _json(text: str, what: str, host: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"unreadable {what} from etcdctl: {text.strip()[:200]!r}",
                        where=f"host {host}") from exc


# --------------------------------------------------------------------- status

@dataclass
class MemberStatus:
    name: str
    endpoint: str
    healthy: bool
    leader: bool = False
    raft_term: int | None = None
    revision: int | None = None
    raft_index: int | None = None
    db_size: int | None = None
    version: str = ""
    error: str = ""


def member_list(conn: Connection, endpoints: list[str]) -> list[dict]:
    r = conn.run(etcdctl("--write-out=json member list", endpoints), check=False)
    if not r.ok:
        raise UserError(f"etcd member list failed: {tail(r.stderr) or tail(r.stdout)}",
                        where=f"host {conn.host}", hint="check `bootstrap etcd status`")
    return _json(r.stdout, "member list", conn.host).get("members", [])


def endpoint_health(conn: Connection, endpoints: list[str]) -> dict[str, tuple[bool, str]]:
    """endpoint -> (healthy, error); an endpoint etcdctl could not reach is unhealthy."""
    r = conn.run(etcdctl("--write-out=json endpoint health", endpoints), check=False,
                 timeout=60)
    out: dict[str, tuple[bool, str]] = {e: (False, "no answer") for e in endpoints}
    if r.stdout.strip().startswith("["):
        for item in _json(r.stdout, "endpoint health", conn.host):
            out[item.get("endpoint", "")] = (bool(item.get("health")), item.get("error", ""))
    return out


def endpoint_status(conn: Connection, endpoints: list[str]) -> dict[str, dict]:
    r = conn.run(etcdctl("--write-out=json endpoint status", endpoints), check=False,
                 timeout=60)
    if not r.stdout.strip().startswith("["):
        return {}
    return {item["Endpoint"]: item.get("Status", {})
            for item in _json(r.stdout, "endpoint status", conn.host)}


def cluster_status(conn: Connection, nodes: list[EtcdNode]) -> list[MemberStatus]:
    """One row per expected member, whether or not it answers."""
    endpoints = [n.client_url for n in nodes]
    health = endpoint_health(conn, endpoints)
    status = endpoint_status(conn, endpoints)
    rows = []
    for n in nodes:
        healthy, error = health.get(n.client_url, (False, "no answer"))
        st = status.get(n.client_url)
        row = MemberStatus(name=n.name, endpoint=n.client_url, healthy=healthy, error=error)
        if st:
            header = st.get("header", {})
            row.leader = st.get("leader") == header.get("member_id")
            row.raft_term = st.get("raftTerm")
            row.revision = header.get("revision")
            row.raft_index = st.get("raftIndex")
            row.db_size = st.get("dbSize")
            row.version = st.get("version", "")
        rows.append(row)
    return rows


def first_answering(conns: dict[str, Connection], nodes: list[EtcdNode],
                    probe: Callable[[Connection], object]):
    """Run ``probe`` on the first etcd host where it does not raise; (conn, result)."""
    errors = []
    for n in nodes:
        conn = conns.get(n.host)
        if conn is None:
            continue
        try:
            return conn, probe(conn)
        except UserError as exc:
            errors.append(exc.line())
    raise UserError("no etcd host could answer: " + "; ".join(errors or ["no connection"]),
                    hint="check that etcd runs (`bootstrap cluster up`)")


def status_on_any(conns: dict[str, Connection], nodes: list[EtcdNode]) -> list[MemberStatus]:
    def probe(conn: Connection) -> list[MemberStatus]:
        rows = cluster_status(conn, nodes)
        if not any(r.healthy for r in rows):
            raise UserError("no member answered", where=f"host {conn.host}")
        return rows
    _, rows = first_answering(conns, nodes, probe)
    return rows


def wait_healthy(conn: Connection, nodes: list[EtcdNode], timeout: float = 120,
                 interval: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
    deadline = clock() + timeout
    while True:
        health = endpoint_health(conn, [n.client_url for n in nodes])
        bad = [n.name for n in nodes if not health[n.client_url][0]]
        if not bad:
            return
        if clock() >= deadline:
            raise UserError(f"etcd members not healthy after {timeout:g}s: {', '.join(bad)}",
                            where=f"host {conn.host}", hint="see `journalctl -u etcd` there")
        sleep(interval)


# ------------------------------------------------------------------ snapshots

REMOTE_SNAPSHOT = "/var/tmp/bootstrap-etcd-snapshot.db"


def snapshot_status(conn: Connection, path: str) -> dict:
    r = conn.run(f"ETCDCTL_API=3 etcdctl --write-out=json snapshot status {shlex.quote(path)}",
                 check=False)
    if not r.ok:
        raise UserError(f"{path} is not a readable etcd snapshot: {tail(r.stderr)}",
                        where=f"host {conn.host}")
    return _json(r.stdout, "snapshot status", conn.host)


def snapshot_save(conns: dict[str, Connection],
                  nodes: list[EtcdNode]) -> tuple[bytes, dict, EtcdNode]:
    """Take a snapshot from the first healthy member; (bytes, its snapshot status, member)."""

    def take(conn: Connection) -> tuple[bytes, dict, EtcdNode]:
        me = next(n for n in nodes if n.host == conn.host)
        healthy, error = endpoint_health(conn, [me.client_url])[me.client_url]
        if not healthy:
            raise UserError(f"member {me.name} unhealthy: {error}", where=f"host {conn.host}")
        try:
            conn.run(etcdctl(f"snapshot save {REMOTE_SNAPSHOT}", [me.client_url]), timeout=300)
            status = snapshot_status(conn, REMOTE_SNAPSHOT)
            return conn.get(REMOTE_SNAPSHOT), status, me
        finally:
            conn.run(f"rm -f {REMOTE_SNAPSHOT} {REMOTE_SNAPSHOT}.part", check=False)

    _, result = first_answering(conns, nodes, take)
    return result


def restore_commands(node: EtcdNode, nodes: list[EtcdNode], snapshot: str, data_dir: str,
                     token: str, stamp: str) -> list[str]:
    """Commands for one stopped member: restore into a new dir, then swap it in."""
    new_dir = f"{data_dir}.restore"
    backup = f"{data_dir}.backup-{stamp}"
    q = shlex.quote
    restore = "snapshot restore " + " ".join([
        q(snapshot),
        f"--name={q(node.name)}",
        f"--initial-cluster={q(initial_cluster(nodes))}",
        f"--initial-cluster-token={q(token)}",
        f"--initial-advertise-peer-urls={node.peer_url}",
        f"--data-dir={q(new_dir)}",
    ])
    return [
        f"rm -rf {q(new_dir)}",
        # etcdutl where installed (etcd 3.5+ deprecates etcdctl's restore; 3.6 drops it).
        f"if command -v etcdutl >/dev/null 2>&1; then etcdutl {restore};"
        f" else ETCDCTL_API=3 etcdctl {restore}; fi",
        # The old data stays next to the new one until someone deletes it.
        f"if [ -e {q(data_dir)} ]; then mv {q(data_dir)} {q(backup)}; fi",
        f"mv {q(new_dir)} {q(data_dir)}",
        f"chmod 0700 {q(data_dir)}",
    ]
