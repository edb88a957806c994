"""Restore a whole cluster's etcd from one snapshot, with the control plane around it.

The upstream procedure (kubernetes.io "Restoring an etcd cluster", etcd's
disaster-recovery guide) as a plan of steps kept as data, so its order is
unit-tested without hosts:

1. copy the snapshot to every member and check it there: ``snapshot status``
   and a trial restore into a scratch dir (which verifies the checksum etcd
   appends to a snapshot) - a bad file is refused before anything stops;
2. stop the API servers (and the controller managers and schedulers, which
   would act on a half-gone API) on every control-plane host;
3. stop etcd on every member: a mix of old and restored members must never
   form a quorum;
4. restore every member into a new data dir with its own name and peer URL,
   the same ``--initial-cluster`` and a NEW cluster token; the old dir is kept
   as ``<dataDir>.backup-<stamp>``;
5. start every member at once (a fresh member waits for its peers), wait until
   all are healthy;
6. move etcd's revision past the newest revision the old cluster had handed
   out (what ``etcdutl snapshot restore --bump-revision --mark-compacted``
   does in etcd 3.5+, done here with writes because etcd 3.4 has no etcdutl):
   every client still holding a resourceVersion from before the restore - the
   kubelets, kube-proxies and DNS servers keep running - then gets
   "410 Gone" from the API server and lists again, instead of silently waiting
   for a revision that the restored cluster will reach with different data;
7. start the control plane and wait until every API server is ready.

Kubelets are not touched: their Node and Lease objects come back with the
snapshot and their next heartbeat updates them.
"""

from __future__ import annotations

import base64
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bootstrap.errors import UserError
from bootstrap.flows import etcd as ops
from bootstrap.flows.etcd_backup import error_summary
from bootstrap.flows.plan import EtcdNode
from bootstrap.remote import Connection, RemoteCommandError

CONTROL_PLANE_UNITS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
REMOTE_SNAPSHOT = "/var/tmp/bootstrap-etcd-restore.db"
CHECK_DIR = "/var/tmp/bootstrap-etcd-restore-check"
BUMP_KEY = "/bootstrap/etcd-restore-revision-bump"
BUMP_FILE = "/var/tmp/bootstrap-etcd-revision-bump.curl"
# Writes that may land between reading the old revision and stopping the API servers.
BUMP_MARGIN = 1000
# When no member answered before the restore, the old revision is unknown.
BUMP_UNKNOWN = 10000

WAIT_ETCD = "etcd"
WAIT_API = "api"
# Not a wait: with the API servers down nothing writes any more, so the revision
# read here is the newest one any client can hold.
READ_REVISION = "revision"


@dataclass(frozen=True)
class Step:
    name: str
    commands: dict[str, list[str]]  # host -> commands in order; hosts run in parallel
    wait: str | None = None  # what must be healthy before the next step


@dataclass
class Outcome:
    rows: list[ops.MemberStatus]
    snapshot_revision: int | None
    revision: int | None  # after the bump
    api_hosts: list[str] = field(default_factory=list)


def _q(v: str) -> str:
    return shlex.quote(v)


def check_commands(snapshot: str) -> list[str]:
    """A trial restore: etcdctl verifies the snapshot's appended sha256 while restoring."""
    return [
        f"ETCDCTL_API=3 etcdctl --write-out=json snapshot status {_q(snapshot)}",
        f"rm -rf {CHECK_DIR}",
        f"ETCDCTL_API=3 etcdctl snapshot restore {_q(snapshot)} --data-dir={CHECK_DIR}"
        " >/dev/null",
        f"rm -rf {CHECK_DIR}",
    ]


def plan(nodes: list[EtcdNode], control_plane: dict[str, list[str]] | list[str], *,
         data_dir: str, token: str, stamp: str, snapshot: str = REMOTE_SNAPSHOT) -> list[Step]:
    """``control_plane``: host -> the control-plane units running there (a list of hosts
    means all of them); only those are stopped and started again."""
    if not isinstance(control_plane, dict):
        control_plane = {h: list(CONTROL_PLANE_UNITS) for h in control_plane}
    running = {h: " ".join(u) for h, u in control_plane.items() if u}
    members = {n.host: n for n in nodes}
    return [
        Step("checking the snapshot on every member",
             {h: check_commands(snapshot) for h in members}),
        Step("stopping the API servers, controller managers and schedulers",
             {h: [f"systemctl stop {units}"] for h, units in running.items()},
             wait=READ_REVISION),
        Step("stopping etcd on every member", {h: ["systemctl stop etcd"] for h in members}),
        Step("restoring every member into a new data dir (new cluster token)",
             {h: [*ops.restore_commands(n, nodes, snapshot, data_dir, token, stamp),
                  f"rm -f {_q(snapshot)}"] for h, n in members.items()}),
        # --no-block: Type=notify start returns only once a quorum is up,
        # which needs the other members started too.
        Step("starting etcd on every member",
             {h: ["systemctl start --no-block etcd"] for h in members}, wait=WAIT_ETCD),
        Step("starting the API servers, controller managers and schedulers",
             {h: [f"systemctl start {units}"] for h, units in running.items()}, wait=WAIT_API),
    ]


def running_units(conn: Connection) -> list[str]:
    """The control-plane units active on a host (none where only etcd was installed)."""
    r = conn.run("systemctl is-active " + " ".join(CONTROL_PLANE_UNITS), check=False)
    states = r.stdout.split()
    return [u for u, st in zip(CONTROL_PLANE_UNITS, states, strict=False) if st == "active"]


def max_revision(rows: list[ops.MemberStatus]) -> int | None:
    revs = [r.revision for r in rows if r.revision is not None]
    return max(revs) if revs else None


def bump_target(old_revision: int | None, current: int) -> int:
    if old_revision is None:
        return current + BUMP_UNKNOWN
    return max(old_revision, current) + BUMP_MARGIN


def curl_block(node: EtcdNode, pki_dir: str = ops.PKI_DIR) -> str:
    """One write as a curl config block, for etcd's JSON gateway (/v3/kv/put)."""
    key = base64.b64encode(BUMP_KEY.encode()).decode()
    client = "healthcheck-client"
    return "\n".join([
        f'url = "{node.client_url}/v3/kv/put"',
        f'data = "{{\\"key\\":\\"{key}\\"}}"',
        f'cacert = "{pki_dir}/ca.crt"',
        f'cert = "{pki_dir}/{client}.crt"',
        f'key = "{pki_dir}/{client}.key"',
        'output = "/dev/null"',
        "silent",
    ]) + "\n"


def bump_command(count: int, block_file: str = BUMP_FILE) -> str:
    # One curl process, 32 writes in flight: etcd batches them into few raft rounds.
    awk = ('BEGIN { while ((getline line < f) > 0) b = b line "\\n";'
           ' for (i = 0; i < n; i++) { if (i) printf "next\\n"; printf "%s", b } }')
    return (f"awk -v n={int(count)} -v f={_q(block_file)} {_q(awk)}"
            " | curl -Z --parallel-max 32 -K - >/dev/null 2>&1 || true")


def revision_of(conn: Connection, node: EtcdNode) -> int:
    st = ops.endpoint_status(conn, [node.client_url]).get(node.client_url) or {}
    rev = (st.get("header") or {}).get("revision")
    if rev is None:
        raise UserError(f"member {node.name} reports no revision", where=f"host {conn.host}")
    return int(rev)


def bump_revision(conn: Connection, node: EtcdNode, target: int, *, rounds: int = 5) -> int:
    """Write until the revision reaches ``target``, then compact there; the revision."""
    conn.put(curl_block(node).encode(), BUMP_FILE, 0o600)
    try:
        rev = revision_of(conn, node)
        for _ in range(rounds):
            if rev >= target:
                break
            conn.run(bump_command(target - rev), timeout=3600, check=False)
            rev = revision_of(conn, node)
        if rev < target:
            raise UserError(f"etcd revision stuck at {rev}, wanted {target}",
                            where=f"host {conn.host}", hint="see `journalctl -u etcd` there")
        conn.run(ops.etcdctl(f"del {BUMP_KEY}", [node.client_url]))
        rev = revision_of(conn, node)
        # Marks everything before the restore compacted, as etcdutl's --mark-compacted.
        conn.run(ops.etcdctl(f"compact {rev}", [node.client_url]), timeout=300)
        return rev
    finally:
        conn.run(f"rm -f {BUMP_FILE}", check=False)


def wait_api_ready(conn: Connection, port: int, *, timeout: float = 240, interval: float = 2.0,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> None:
    # /readyz is public (system:public-info-viewer), as upstream's.
    cmd = f"curl -sk --max-time 5 https://127.0.0.1:{int(port)}/readyz"
    deadline = clock() + timeout
    while True:
        r = conn.run(cmd, check=False)
        if r.ok and r.stdout.strip() == "ok":
            return
        if clock() >= deadline:
            raise UserError(f"API server not ready after {timeout:g}s: {r.stdout.strip()[:200]}",
                            where=f"host {conn.host}",
                            hint="see `journalctl -u kube-apiserver` there")
        sleep(interval)


def run(conns: dict[str, Connection], nodes: list[EtcdNode], control_plane: list[str],
        snapshot: bytes, *, data_dir: str, token: str, stamp: str, api_port: int,
        parallel: Callable | None = None, etcd_timeout: float = 180, api_timeout: float = 240,
        progress: Callable[[str], None] = lambda _m: None) -> Outcome:
    parallel = parallel or (lambda fn, items: [fn(x) for x in items])
    needed = [*(n.host for n in nodes), *control_plane]
    missing = sorted({h for h in needed if h not in conns})
    if missing:
        raise UserError(f"restore needs every etcd and control-plane host; not connected: "
                        f"{', '.join(missing)}")
    first = nodes[0]
    def newest_revision() -> int | None:
        try:
            return max_revision(ops.status_on_any(conns, nodes))
        except UserError:
            return None  # disaster recovery: no member answers any more
    old = newest_revision()
    units = dict(zip(control_plane, parallel(lambda h: running_units(conns[h]), control_plane),
                     strict=True))
    api_hosts = [h for h in control_plane if "kube-apiserver" in units[h]]
    progress("copying the snapshot to every member")
    parallel(lambda n: conns[n.host].put(snapshot, REMOTE_SNAPSHOT, 0o600), nodes)

    snap_rev = new_rev = None
    steps = plan(nodes, units, data_dir=data_dir, token=token, stamp=stamp)
    for i, step in enumerate(steps):
        progress(step.name)

        def do(host: str, step: Step = step) -> None:
            for cmd in step.commands[host]:
                conns[host].run(cmd, timeout=300)
        try:
            parallel(do, list(step.commands))
        except UserError as exc:
            if i == 0:  # the check: nothing has stopped yet
                parallel(lambda n: conns[n.host].run(f"rm -rf {REMOTE_SNAPSHOT} {CHECK_DIR}",
                                                     check=False), nodes)
                # etcd's own words (its Error: or panic: line), not a stack trace's tail.
                why = (f"host {exc.host}: {error_summary(exc.result.stderr or exc.result.stdout)}"
                       if isinstance(exc, RemoteCommandError) else exc.line())
                raise UserError("snapshot fails its integrity check: " + why,
                                hint="nothing was stopped; restore another snapshot") from exc
            raise
        if step.wait == READ_REVISION:
            later = newest_revision()
            old = max(r for r in (old, later) if r is not None) if (old or later) else None
        elif step.wait == WAIT_ETCD:
            ops.wait_healthy(conns[first.host], nodes, timeout=etcd_timeout)
            snap_rev = revision_of(conns[first.host], first)
            target = bump_target(old, snap_rev)
            progress(f"moving the revision from {snap_rev} past {old or 'unknown'} to {target}"
                     ", compacted there (clients holding older resourceVersions list again)")
            new_rev = bump_revision(conns[first.host], first, target)
        elif step.wait == WAIT_API:
            for host in api_hosts:
                wait_api_ready(conns[host], api_port, timeout=api_timeout)
    rows = ops.cluster_status(conns[first.host], nodes)
    return Outcome(rows=rows, snapshot_revision=snap_rev, revision=new_rev,
                   api_hosts=api_hosts)
