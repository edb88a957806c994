"""The shared control-loop machinery against a real API server on real etcd:
one list+watch per resource for many consumers, slow handlers isolated, a
controller converging through 409 conflicts, aggregated Events, and the agent
process (HTTPS health and metrics with delegated auth, Lease leader election)."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from bootstrap.api.cache import split_key
from bootstrap.api.client import Client
from bootstrap.api.controller import Controller
from bootstrap.api.errors import APIError
from bootstrap.api.events import EventRecorder
from bootstrap.api.informer import SharedInformerFactory
from bootstrap.api.metrics import REGISTRY
from bootstrap.api.resources import by_gvr
from bootstrap.pki import certs, keys

from .cluster import free_port, running_cluster

pytestmark = pytest.mark.timeout(300)

CONFIGMAPS = by_gvr("", "v1", "configmaps")
SECRETS = by_gvr("", "v1", "secrets")
NAMESPACES = by_gvr("", "v1", "namespaces")
EVENTS = by_gvr("", "v1", "events")
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
SERVICEACCOUNTS = by_gvr("", "v1", "serviceaccounts")
CRBS = by_gvr("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
TOY_AGENT = Path(__file__).with_name("toy_agent.py")
KCM = ("system:kube-controller-manager", ())
NS = "machinery"


async def until(cond, timeout=60.0):
    """Wait for a condition; the timeout only guards against a hung test."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def cluster():
    with running_cluster() as c:
        async def namespaces():
            async with Client.from_kubeconfig(c.admin) as admin:
                for ns in (NS, "agents"):
                    await admin.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": ns}})
        asyncio.run(namespaces())
        yield c


@pytest.fixture
async def admin(cluster):
    async with Client.from_kubeconfig(cluster.admin) as client:
        yield client


def cm(name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS}, "data": data}


async def server_counts(admin: Client, plural: str, kind: str) -> tuple[int, int]:
    """(LIST requests served, watchers registered) for a core resource, from the
    API server's own /metrics."""
    text = await admin.request("GET", "/metrics")
    lists = sum(int(float(m.group(1))) for m in re.finditer(
        r'^apiserver_request_total\{[^}]*resource="' + plural + r'"[^}]*verb="LIST"[^}]*\} '
        r'(\S+)$', text, re.M))
    watchers = re.search(r'^apiserver_registered_watchers\{group="",kind="' + kind +
                         r'"\} (\S+)$', text, re.M)
    return lists, int(float(watchers.group(1))) if watchers else 0


# informers ----------------------------------------------------------------------------

async def test_shared_factory_one_list_and_watch_per_resource_slow_handler_isolated(admin):
    for i in range(3):
        await admin.create(CONFIGMAPS, cm(f"early-{i}"))
    before_cm = await server_counts(admin, "configmaps", "ConfigMap")
    before_sec = await server_counts(admin, "secrets", "Secret")
    factory = SharedInformerFactory(admin)
    # Three "controllers" ask for ConfigMaps, two for Secrets: one informer each.
    cms = [factory.informer(CONFIGMAPS, NS) for _ in range(3)]
    secrets = [factory.informer(SECRETS, NS) for _ in range(2)]
    assert cms[0] is cms[1] is cms[2] and secrets[0] is secrets[1]
    fast: list[list[str]] = [[], []]
    slow: list[str] = []
    release = asyncio.Event()

    async def slow_add(obj):
        await release.wait()
        slow.append(obj["metadata"]["name"])

    cms[0].add_handler(on_add=lambda o: fast[0].append(o["metadata"]["name"]))
    cms[1].add_handler(on_add=slow_add)
    cms[2].add_handler(on_add=lambda o: fast[1].append(o["metadata"]["name"]))
    seen_secrets: list[str] = []
    for inf in secrets:
        inf.add_handler(on_add=lambda o: seen_secrets.append(o["metadata"]["name"]))
    factory.start()
    try:
        await until(lambda: len(fast[0]) == 3 and len(fast[1]) == 3)
        for i in range(3):
            await admin.create(CONFIGMAPS, cm(f"late-{i}"))
        await admin.create(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "s1", "namespace": NS}})
        want = [f"early-{i}" for i in range(3)] + [f"late-{i}" for i in range(3)]
        # The blocked handler holds up neither the watch nor its neighbours.
        await until(lambda: fast[0] == want and fast[1] == want)
        await until(lambda: sorted(seen_secrets) == ["s1", "s1"])
        assert slow == [] and not cms[1].has_synced
        release.set()
        await until(lambda: slow == want)
        await factory.wait_synced(30)
        after_cm = await server_counts(admin, "configmaps", "ConfigMap")
        after_sec = await server_counts(admin, "secrets", "Secret")
        assert after_cm[0] - before_cm[0] == 1 and after_cm[1] - before_cm[1] == 1
        assert after_sec[0] - before_sec[0] == 1 and after_sec[1] - before_sec[1] == 1
        assert cms[0].lists == 1 and secrets[0].lists == 1
    finally:
        release.set()
        await factory.stop()


# controller -----------------------------------------------------------------------

class Racer(Controller):
    """Copies data.want into data.got; before its first write of each key another
    client changes the object, so that write carries a stale resourceVersion."""
    name = "racer"
    workers = 2

    def __init__(self, client, factory, other: Client):
        super().__init__(client, factory)
        self.other = other
        self.cms = factory.informer(CONFIGMAPS, NS, label_selector="race=yes")
        self.cms.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n))
        self.raced: set[str] = set()
        self.conflicts = 0

    async def reconcile(self, key):
        ns, name = split_key(key)
        cached = self.cms.get(name, ns)
        if cached is None or cached["data"].get("got") == cached["data"].get("want"):
            return None
        if key not in self.raced:
            self.raced.add(key)
            await self.other.patch(CONFIGMAPS, name, {"metadata": {"annotations": {
                "other": "was-here"}}}, ns, patch_type="merge")
        desired = copy.deepcopy(cached)
        desired["data"]["got"] = desired["data"]["want"]
        try:
            await self.client.update(CONFIGMAPS, desired)
        except APIError as exc:
            self.conflicts += exc.code == 409
            raise
        return None


async def test_controller_converges_through_conflicts(cluster, admin):
    async with Client.from_kubeconfig(cluster.admin) as other:
        for i in range(3):
            obj = cm(f"race-{i}", want=f"v{i}")
            obj["metadata"]["labels"] = {"race": "yes"}
            await admin.create(CONFIGMAPS, obj)
        factory = SharedInformerFactory(admin)
        ctl = Racer(admin, factory, other)
        retries_before = REGISTRY.get_sample_value("workqueue_retries_total",
                                                   {"name": "racer"}) or 0
        task = asyncio.create_task(ctl.run())
        try:
            async def converged():
                items = (await admin.list(CONFIGMAPS, NS, label_selector="race=yes"))["items"]
                return len(items) == 3 and all(
                    o["data"].get("got") == o["data"]["want"] and
                    o["metadata"]["annotations"]["other"] == "was-here" for o in items)
            await until(converged)
            assert ctl.conflicts >= 3  # every first write was stale
            retries = REGISTRY.get_sample_value("workqueue_retries_total", {"name": "racer"})
            assert retries - retries_before >= 3
            await until(lambda: all(ctl.queue.num_requeues(f"{NS}/race-{i}") == 0
                                    for i in range(3)))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await factory.stop()


# events ---------------------------------------------------------------------------

async def test_identical_events_aggregate_into_count(admin):
    target = await admin.create(CONFIGMAPS, cm("evented"))
    rec = EventRecorder(admin, "machinery-test", "host-a")
    try:
        rec.event(target, "Warning", "FailedSync", "could not sync: boom")
        await rec.flush()
        rec.event(target, "Warning", "FailedSync", "could not sync: boom")
        rec.event(target, "Normal", "Synced", "synced")
        await rec.flush()
    finally:
        await rec.close()
    events = (await admin.list(EVENTS, NS))["items"]
    mine = [e for e in events if e["involvedObject"].get("name") == "evented"]
    by_reason = {e["reason"]: e for e in mine}
    assert sorted(by_reason) == ["FailedSync", "Synced"] and len(mine) == 2
    failed = by_reason["FailedSync"]
    assert failed["count"] == 2 and failed["type"] == "Warning"
    assert failed["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert failed["involvedObject"]["kind"] == "ConfigMap"
    assert failed["source"] == {"component": "machinery-test", "host": "host-a"}
    assert failed["metadata"]["name"].startswith("evented.")
    assert by_reason["Synced"]["count"] == 1


# the agent process -----------------------------------------------------------------

class Agent:
    def __init__(self, cluster, tmp: Path, name: str, *extra: str):
        self.port = free_port()
        self.log = tmp / f"{name}.log"
        self.cmd = [sys.executable, str(TOY_AGENT),
                    f"--kubeconfig={cluster.kubeconfig(*KCM)}",
                    "--bind-address=127.0.0.1", f"--secure-port={self.port}",
                    "--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s",
                    "--leader-elect-retry-period=500ms",
                    f"--client-ca-file={cluster.pki.path('ca.crt')}", *extra]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Agent:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def client_tls(cluster, user=None, groups=()) -> ssl.SSLContext:
    """TLS to the agent's self-signed serving cert, with a client cert as ``user``."""
    if user is None:
        ctx = ssl.create_default_context()
    else:
        ctx = cluster.ssl_context(user, groups)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def forged_tls(tmp: Path, user: str) -> ssl.SSLContext:
    """A client cert for ``user`` from a CA the agent does not trust."""
    ca_key, key = keys.generate_key("ECDSA-P256"), keys.generate_key("ECDSA-P256")
    ca = certs.create_ca(certs.CertSpec("evil-ca", is_ca=True), ca_key, timedelta(days=1))
    leaf = certs.sign_leaf(certs.CertSpec(user, ("system:masters",), (certs.CLIENT_AUTH,)),
                           key.public_key(), ca, ca_key, timedelta(days=1))
    (tmp / "evil.crt").write_bytes(certs.cert_to_pem(leaf))
    (tmp / "evil.key").write_bytes(keys.key_to_pem(key))
    ctx = client_tls(None)
    ctx.load_cert_chain(str(tmp / "evil.crt"), str(tmp / "evil.key"))
    return ctx


async def fetch(url: str, ctx: ssl.SSLContext, token: str | None = None,
                headers: dict | None = None) -> tuple[int, str]:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=20)) as r:
            return r.status, await r.text()


async def refused(url: str, ctx: ssl.SSLContext) -> bool:
    """True when the server hangs up in the TLS handshake (no HTTP answer at all);
    how the client reports that (disconnect, reset, SSL error) varies with timing."""
    try:
        await fetch(url, ctx)
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return True
    return False


async def serving(agent: Agent) -> bool:
    """The agent answers /healthz (it may still be starting)."""
    try:
        return (await fetch(agent.url + "/healthz", client_tls(None)))[0] == 200
    except aiohttp.ClientError:
        assert agent.proc.poll() is None, agent.log.read_text()
        return False


async def sa_token(admin: Client, name: str) -> str:
    await admin.create(SERVICEACCOUNTS, {"apiVersion": "v1", "kind": "ServiceAccount",
                                         "metadata": {"name": name, "namespace": NS}})
    review = await admin.create(SERVICEACCOUNTS, {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 3600}}, NS, subresource="token",
        name=name)
    return review["status"]["token"]


async def main_pids(admin: Client, agents) -> list[int]:
    """The pids among ``agents`` whose main has run."""
    items = (await admin.list(CONFIGMAPS, "agents"))["items"]
    ran = {o["metadata"]["name"] for o in items}
    return sorted(pid for pid in agents if f"main-{pid}" in ran)


async def test_agent_serves_health_anonymously_and_metrics_by_delegated_auth(
        cluster, admin, tmp_path):
    kcm = str(cluster.kubeconfig(*KCM))
    agent = Agent(cluster, tmp_path, "delegated", "--leader-elect=false",
                  f"--authentication-kubeconfig={kcm}", f"--authorization-kubeconfig={kcm}",
                  f"--requestheader-client-ca-file={cluster.pki.path('front-proxy-ca.crt')}",
                  "--requestheader-allowed-names=front-proxy-client")
    agent.start()
    try:
        scraper = await sa_token(admin, "scraper")
        stranger = await sa_token(admin, "stranger")
        await admin.create(CRBS, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "machinery-scraper"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:monitoring"},
            "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": NS}]})
        anonymous = client_tls(None)
        await until(lambda: serving(agent))

        async def ready():  # main runs at once (no election); its informers sync
            return (await fetch(agent.url + "/readyz", anonymous))[0] == 200
        await until(ready)
        for path in ("/healthz", "/livez", "/readyz"):
            assert await fetch(agent.url + path, anonymous) == (200, "ok")
        status, body = await fetch(agent.url + "/readyz?verbose", anonymous)
        assert status == 200 and "[+]informer-sync ok" in body

        # /metrics: anonymous 401, wrong users 403, a monitoring user 200.
        assert (await fetch(agent.url + "/metrics", anonymous))[0] == 401
        assert (await fetch(agent.url + "/metrics", anonymous, "forged.token"))[0] == 401
        assert (await fetch(agent.url + "/metrics", anonymous, stranger))[0] == 403
        nobody = client_tls(cluster, "nobody")
        assert (await fetch(agent.url + "/metrics", nobody))[0] == 403
        # A certificate from another CA fails the TLS handshake (the server hangs up).
        assert await refused(agent.url + "/metrics", forged_tls(tmp_path, "admin"))
        # A certificate from the right CA without the clientAuth usage is no client cert.
        server_only = client_tls(None)
        server_only.load_cert_chain(cluster.pki.path("apiserver.crt"),
                                    cluster.pki.path("apiserver.key"))
        assert await refused(agent.url + "/metrics", server_only)
        status, body = await fetch(agent.url + "/metrics", anonymous, scraper)
        assert status == 200 and "workqueue_adds_total" in body
        prom = client_tls(cluster, "prom", ("system:monitoring",))
        status, body = await fetch(agent.url + "/metrics", prom)
        assert status == 200
        assert re.search(r'^workqueue_depth\{name="toy"\} ', body, re.M)
        assert re.search(r'^workqueue_work_duration_seconds_count\{name="toy"\} ', body, re.M)
        # The front proxy asserts users in headers; SubjectAccessReview decides for them.
        proxy = client_tls(None)
        proxy.load_cert_chain(cluster.pki.path("front-proxy-client.crt"),
                              cluster.pki.path("front-proxy-client.key"))
        monitoring = {"X-Remote-User": "grafana", "X-Remote-Group": "system:monitoring"}
        assert (await fetch(agent.url + "/metrics", proxy, headers=monitoring))[0] == 200
        assert (await fetch(agent.url + "/metrics", proxy,
                            headers={"X-Remote-User": "grafana"}))[0] == 403
        assert (await fetch(agent.url + "/metrics", proxy))[0] == 401
        # A client-CA user cannot claim to be someone else through the headers.
        assert (await fetch(agent.url + "/metrics", nobody, headers=monitoring))[0] == 403
        # Bad input on the probe paths is still not an error.
        assert (await fetch(agent.url + "/healthz?verbose=%zz", anonymous))[0] == 200
        # Authorization comes before routing, as upstream: 403 for prom, 404 for admin.
        assert (await fetch(agent.url + "/nope", prom))[0] == 403
        masters = client_tls(cluster, "kubernetes-admin", ("system:masters",))
        assert (await fetch(agent.url + "/nope", masters))[0] == 404
    finally:
        agent.stop()
    assert agent.proc.returncode == 0, agent.log.read_text()


async def test_agents_elect_one_leader_fail_over_and_exit_on_lost_lease(
        cluster, admin, tmp_path):
    a = Agent(cluster, tmp_path, "a").start()
    b = Agent(cluster, tmp_path, "b").start()
    agents = {a.proc.pid: a, b.proc.pid: b}
    try:
        pids = await until(lambda: main_pids(admin, agents))
        leader = agents[pids[0]]
        follower = b if leader is a else a
        lease = await admin.get(LEASES, "kube-controller-manager", "kube-system")
        holder = lease["spec"]["holderIdentity"]
        assert re.fullmatch(r"[^_]+_[0-9a-f-]{36}", holder)
        assert lease["spec"]["leaseDurationSeconds"] == 3
        # The follower keeps waiting while the leader renews: only one main runs.
        renewed = lease["spec"]["renewTime"]
        await until(lambda: _renewed(admin, renewed))
        assert await main_pids(admin, agents) == [leader.proc.pid]
        # The leader's controller acts.
        await admin.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "work", "namespace": "agents"}})
        await until(lambda: _seen_by(admin, "work", leader.proc.pid))
        # Certificate users may read /metrics when no delegate kubeconfig is given.
        await until(lambda: serving(follower))
        status, body = await fetch(leader.url + "/metrics", client_tls(cluster, "nobody"))
        assert status == 200
        assert 'leader_election_master_status{name="kube-controller-manager"} 1.0' in body
        status, body = await fetch(follower.url + "/metrics", client_tls(cluster, "nobody"))
        assert 'leader_election_master_status{name="kube-controller-manager"} 0.0' in body
        assert (await fetch(leader.url + "/metrics", client_tls(None)))[0] == 401

        # Kill the leader outright: the follower takes over once the lease expires.
        killed_at = time.monotonic()
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        await until(lambda: _has_pid(admin, agents, follower.proc.pid), timeout=3 + 20)
        takeover = time.monotonic() - killed_at
        lease = await admin.get(LEASES, "kube-controller-manager", "kube-system")
        assert lease["spec"]["holderIdentity"] != holder
        assert lease["spec"]["leaseTransitions"] >= 1
        print(f"takeover after SIGKILL: {takeover:.1f}s (lease duration 3s)")

        # Someone else takes the Lease: the leader cannot renew and exits 1.
        async def steal() -> bool:
            lease = await admin.get(LEASES, "kube-controller-manager", "kube-system")
            lease["spec"]["holderIdentity"] = "thief"
            try:
                await admin.update(LEASES, lease)
            except APIError as exc:  # the leader renewed in between: read again
                assert exc.code == 409
                return False
            return True
        await until(steal)
        await until(lambda: follower.proc.poll() is not None, timeout=30)
        assert follower.proc.returncode == 1
        assert "leaderelection lost" in follower.log.read_text()
    finally:
        for agent in (a, b):
            agent.stop()


async def _renewed(admin: Client, before: str) -> bool:
    lease = await admin.get(LEASES, "kube-controller-manager", "kube-system")
    return lease["spec"]["renewTime"] != before


async def _seen_by(admin: Client, name: str, pid: int) -> bool:
    obj = await admin.get(CONFIGMAPS, name, "agents")
    return (obj.get("data") or {}).get("seen") == str(pid)


async def _has_pid(admin: Client, agents, pid: int) -> bool:
    return pid in await main_pids(admin, agents)


def test_toy_agent_bad_flag_is_one_line_exit_2():
    r = subprocess.run([sys.executable, str(TOY_AGENT), "--leader-elect-lease-duration=15"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert 'invalid duration "15"' in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(TOY_AGENT), "--kubeconfig=/nonexistent"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "KUBERNETES_SERVICE_HOST": ""})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
