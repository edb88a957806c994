"""The async client, informer and leader election against an in-process fake API."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fakeapi import FakeAPI

from bootstrap.api.client import Client, KubeconfigError
from bootstrap.api.errors import APIError
from bootstrap.api.informer import Informer
from bootstrap.api.leader import LeaderElector
from bootstrap.api.resources import by_gvr

CONFIGMAPS = by_gvr("", "v1", "configmaps")
LEASES = by_gvr("coordination.k8s.io", "v1", "leases")


async def until(cond, timeout=15.0):
    """Wait for a condition; the timeout only guards against a hung test."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture
async def api():
    fake = FakeAPI(token="s3cret")
    server = await fake.start()
    client = Client(server, token="s3cret")
    try:
        yield fake, client
    finally:
        await client.close()
        await fake.stop()


def cm(name, ns="default", **data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": data}


async def test_crud_and_status_errors(api):
    fake, client = api
    created = await client.create(CONFIGMAPS, cm("a", x="1"))
    assert created["metadata"]["resourceVersion"]
    got = await client.get(("", "v1", "configmaps"), "a", "default")
    assert got["data"] == {"x": "1"}
    with pytest.raises(APIError) as exc:
        await client.create(CONFIGMAPS, cm("a"))
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    stale = {**got, "data": {"x": "2"}}
    await client.update(CONFIGMAPS, stale)
    with pytest.raises(APIError) as exc:
        await client.update(CONFIGMAPS, stale)  # same resourceVersion again
    assert exc.value.reason == "Conflict" and "has been modified" in exc.value.message
    patched = await client.patch(CONFIGMAPS, "a", {"data": {"y": "3"}}, "default",
                                 patch_type="merge")
    assert patched["data"] == {"x": "2", "y": "3"}
    assert fake.requests[-1][0] == "PATCH"
    await client.delete(CONFIGMAPS, "a", "default", propagation_policy="Foreground")
    with pytest.raises(APIError) as exc:
        await client.get(CONFIGMAPS, "a", "default")
    assert (exc.value.code, exc.value.reason, exc.value.message) == (
        404, "NotFound", 'configmaps "a" not found')
    with pytest.raises(ValueError):
        await client.patch(CONFIGMAPS, "a", {}, patch_type="yaml")
    async with Client(f"http://127.0.0.1:{fake.port}", token="wrong") as bad:
        with pytest.raises(APIError) as exc:
            await bad.list(CONFIGMAPS)
        assert exc.value.code == 401


async def test_reads_retry_on_connection_errors_and_writes_do_not(api):
    fake, client = api
    await client.create(CONFIGMAPS, cm("a"))
    fake.drop_next = 2
    assert (await client.get(CONFIGMAPS, "a", "default"))["metadata"]["name"] == "a"
    fake.drop_next = 1
    with pytest.raises(aiohttp.ClientError):
        await client.create(CONFIGMAPS, cm("b"))
    assert ("default", "b") not in fake.objects["configmaps"]
    fake.fail_next = [500]  # an answered error is the server's word: no retry
    with pytest.raises(APIError) as exc:
        await client.get(CONFIGMAPS, "a", "default")
    assert exc.value.code == 500


async def test_list_all_pages_and_watch_stream(api):
    fake, client = api
    for i in range(7):
        await fake.put("configmaps", cm(f"c{i}"))
    page = await client.list(CONFIGMAPS, "default", limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    everything = await client.list_all(CONFIGMAPS, page_size=3)
    assert [o["metadata"]["name"] for o in everything["items"]] == [f"c{i}" for i in range(7)]
    start = everything["metadata"]["resourceVersion"]
    big = "x" * 300_000  # one event line far beyond aiohttp's default readline limit
    await fake.put("configmaps", cm("big", blob=big))
    await fake.remove("configmaps", "default", "c0")
    await fake.end_watches()  # the stream below ends after replaying the log
    events = []
    stream = client.watch(CONFIGMAPS, "default", resource_version=start, timeout_seconds=30)
    async for event in stream:
        events.append(event)
        if event["type"] == "DELETED":
            await fake.end_watches()
    assert [e["type"] for e in events] == ["ADDED", "DELETED", "BOOKMARK"]
    assert events[0]["object"]["data"]["blob"] == big
    await fake.compact()
    with pytest.raises(APIError) as exc:
        async for _ in client.watch(CONFIGMAPS, "default", resource_version=start):
            pass
    assert exc.value.code == 410 and exc.value.reason == "Expired"


def _cert(subject_cn, issuer_key, issuer_name, key, *, ca=False, san_ip=None, eku=None,
          orgs=()):
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
                     + [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san_ip:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


async def test_kubeconfig_mtls_embedded_and_file_references(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("kubernetes", ca_key, None, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("kube-apiserver", ca_key, ca.subject, srv_key, san_ip="127.0.0.1",
                eku=ExtendedKeyUsageOID.SERVER_AUTH)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("system:kube-scheduler", ca_key, ca.subject, cli_key,
                eku=ExtendedKeyUsageOID.CLIENT_AUTH)
    for name, obj in (("ca.crt", ca), ("apiserver.crt", srv), ("apiserver.key", srv_key),
                      ("sched.crt", cli), ("sched.key", cli_key)):
        (tmp_path / name).write_bytes(_pem(obj))
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sctx.load_cert_chain(tmp_path / "apiserver.crt", tmp_path / "apiserver.key")
    sctx.load_verify_locations(tmp_path / "ca.crt")
    sctx.verify_mode = ssl.CERT_REQUIRED
    fake = FakeAPI()
    server = await fake.start(ssl_context=sctx)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    embedded = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sched",
        "clusters": [{"name": "k", "cluster": {"server": server,
                                              "certificate-authority-data": b64(_pem(ca))}}],
        "users": [{"name": "s", "user": {"client-certificate-data": b64(_pem(cli)),
                                         "client-key-data": b64(_pem(cli_key))}}],
        "contexts": [{"name": "sched", "context": {"cluster": "k", "user": "s",
                                                   "namespace": "kube-system"}}]}
    files = {**embedded,
             "clusters": [{"name": "k", "cluster": {"server": server,
                                                   "certificate-authority": "ca.crt"}}],
             "users": [{"name": "s", "user": {"client-certificate": "sched.crt",
                                              "client-key": "sched.key"}}]}
    try:
        for i, config in enumerate((embedded, files)):
            path = tmp_path / f"kubeconfig{i}"
            path.write_text(yaml.safe_dump(config))
            async with Client.from_kubeconfig(path) as client:
                assert client.namespace == "kube-system"
                await client.create(CONFIGMAPS, cm(f"m{i}", ns="kube-system"))
                assert (await client.get(CONFIGMAPS, f"m{i}", "kube-system"))["metadata"]
        # Without a client certificate the TLS handshake itself fails.
        async with Client(server, ca_file=str(tmp_path / "ca.crt")) as anon:
            with pytest.raises(aiohttp.ClientError):
                await anon.list(CONFIGMAPS)
    finally:
        await fake.stop()
    with pytest.raises(KubeconfigError):
        Client.from_kubeconfig(tmp_path / "missing")
    (tmp_path / "noctx").write_text(yaml.safe_dump({**embedded, "current-context": "nope"}))
    with pytest.raises(KubeconfigError):
        Client.from_kubeconfig(tmp_path / "noctx")


# informer -------------------------------------------------------------------------

class Recorder:
    def __init__(self, informer: Informer):
        self.events: list[tuple[str, str]] = []
        informer.add_handler(
            on_add=lambda o: self.events.append(("add", o["metadata"]["name"])),
            on_update=lambda old, new: self.events.append(("update", new["metadata"]["name"])),
            on_delete=self._deleted)

    async def _deleted(self, obj):  # async handlers are awaited too
        self.events.append(("delete", obj["metadata"]["name"]))


@pytest.fixture
async def informer_env(api):
    fake, client = api
    for i in range(5):
        await fake.put("configmaps", cm(f"c{i}"))
    inf = Informer(client, CONFIGMAPS, "default", page_size=2)
    rec = Recorder(inf)
    inf.start()
    try:
        await inf.wait_synced(15)
        yield fake, inf, rec
    finally:
        await inf.stop()


async def test_informer_lists_in_pages_then_watches(informer_env):
    fake, inf, rec = informer_env
    assert inf.has_synced and inf.lists == 1
    assert sorted(n for _, n in rec.events) == [f"c{i}" for i in range(5)]
    assert len(inf.list("default")) == 5 and inf.list("other") == []
    assert sum(1 for m, _, q in fake.requests if q.get("limit") == "2") == 3
    rec.events.clear()
    await fake.put("configmaps", cm("new"))
    await fake.put("configmaps", cm("c1", x="changed"), "MODIFIED")
    await fake.remove("configmaps", "default", "c2")
    await until(lambda: len(rec.events) == 3)
    assert rec.events == [("add", "new"), ("update", "c1"), ("delete", "c2")]
    assert inf.get("c1", "default")["data"] == {"x": "changed"}
    assert inf.get("c2", "default") is None
    assert inf.resource_version == str(fake.rev)


async def test_informer_resumes_from_last_rv_after_end_and_drop(informer_env):
    fake, inf, rec = informer_env
    await until(lambda: len(fake.watch_rvs) == 1)
    rec.events.clear()
    await fake.put("configmaps", cm("x1"))
    await until(lambda: inf.get("x1", "default") is not None)
    await fake.end_watches()  # server-side timeout: a bookmark, then a clean end
    await until(lambda: len(fake.watch_rvs) == 2)
    assert fake.watch_rvs[1] == str(fake.rev)
    # Network failure: watches are cut and refused for a while; changes made meanwhile
    # arrive once the informer reconnects from the last revision it saw.
    fake.refuse_watches = True
    fake.cut_watches()
    seen = inf.resource_version
    await fake.put("configmaps", cm("x2"))
    await fake.remove("configmaps", "default", "c0")
    await until(lambda: len(fake.watch_rvs) >= 2 and fake.requests[-1][2].get("watch"))
    fake.refuse_watches = False
    await until(lambda: inf.get("x2", "default") is not None and
                inf.get("c0", "default") is None)
    assert seen in fake.watch_rvs[2:]
    assert inf.lists == 1  # resumed, never re-listed
    assert rec.events == [("add", "x1"), ("add", "x2"), ("delete", "c0")]


async def test_informer_relists_on_410_and_reconciles(informer_env):
    fake, inf, rec = informer_env
    await until(lambda: len(fake.watch_rvs) == 1)
    rec.events.clear()
    fake.refuse_watches = True
    fake.cut_watches()
    await fake.put("configmaps", cm("born"))
    await fake.put("configmaps", cm("c3", x="y"), "MODIFIED")
    await fake.remove("configmaps", "default", "c4")
    await fake.compact()
    fake.refuse_watches = False
    await until(lambda: inf.lists == 2 and len(rec.events) == 3)
    assert sorted(rec.events) == [("add", "born"), ("delete", "c4"), ("update", "c3")]
    assert sorted(inf.keys()) == sorted(f"default/{n}" for n in
                                        ("c0", "c1", "c2", "c3", "born"))


# leader election ------------------------------------------------------------------

def elector(client, identity, log, **kw):
    return LeaderElector(client, "kube-system", "sched", identity, lease_duration=1.0,
                         renew_deadline=0.6, retry_period=0.1,
                         on_started_leading=lambda: log.append(("start", identity)),
                         on_stopped_leading=lambda: log.append(("stop", identity)), **kw)


async def test_leader_election_one_leads_other_takes_over_on_release(api):
    fake, client = api
    log: list = []
    a, b = elector(client, "a", log), elector(client, "b", log)
    ta = asyncio.create_task(a.run())
    await until(lambda: a.is_leader)
    tb = asyncio.create_task(b.run())
    try:
        await until(lambda: b.leader == "a")
        lease = fake.objects["leases"][("kube-system", "sched")]
        assert lease["spec"]["holderIdentity"] == "a"
        assert lease["spec"]["leaseTransitions"] == 0
        assert lease["spec"]["leaseDurationSeconds"] == 1
        assert lease["spec"]["renewTime"].endswith("Z")
        assert not b.is_leader
        renew = lease["spec"]["renewTime"]
        await until(lambda: fake.objects["leases"][("kube-system", "sched")]["spec"][
            "renewTime"] != renew)
        assert not b.is_leader  # a renews, so b keeps waiting
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)
        await until(lambda: b.is_leader)
        lease = fake.objects["leases"][("kube-system", "sched")]
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1
        assert log == [("start", "a"), ("stop", "a"), ("start", "b")]
    finally:
        for t in (ta, tb):
            t.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)


async def test_leader_that_stops_renewing_is_replaced_after_lease_duration(api):
    fake, client = api
    log: list = []
    a = elector(client, "a", log, release_on_cancel=False)
    b = elector(client, "b", log)
    ta = asyncio.create_task(a.run())
    await until(lambda: a.is_leader)
    tb = asyncio.create_task(b.run())
    try:
        await until(lambda: b.leader == "a")
        ta.cancel()  # a crash: no release, the lease just goes stale
        await asyncio.gather(ta, return_exceptions=True)
        assert fake.objects["leases"][("kube-system", "sched")]["spec"]["holderIdentity"] == "a"
        await until(lambda: b.is_leader)
        spec = fake.objects["leases"][("kube-system", "sched")]["spec"]
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    finally:
        for t in (ta, tb):
            t.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)


async def test_leader_steps_down_when_it_cannot_renew(api):
    fake, client = api
    log: list = []
    a = elector(client, "a", log)
    ta = asyncio.create_task(a.run())
    try:
        await until(lambda: a.is_leader)
        fake.refuse_all = True
        await asyncio.wait_for(ta, 15)  # run() returns once leadership is lost
        assert not a.is_leader and log == [("start", "a"), ("stop", "a")]
    finally:
        ta.cancel()
        await asyncio.gather(ta, return_exceptions=True)


def test_leader_config_validation():
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "n", "id", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "n", "id", renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "n", "")


async def test_in_cluster_reads_rotating_token_file(tmp_path, monkeypatch):
    fake = FakeAPI(token="first")
    server = await fake.start()
    (tmp_path / "token").write_text("first\n")
    (tmp_path / "namespace").write_text("apps")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ca.crt").write_bytes(_pem(_cert("kubernetes", ca_key, None, ca_key, ca=True)))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
    client = Client.in_cluster(tmp_path)
    try:
        assert client.server == f"https://127.0.0.1:{fake.port}" and client.namespace == "apps"
        # The fake serves plain HTTP; point the same client settings at it.
        plain = Client(server, token_file=str(tmp_path / "token"))
        await plain.list(CONFIGMAPS)
        fake.token = "second"
        (tmp_path / "token").write_text("second")
        await plain.list(CONFIGMAPS)
        await plain.close()
    finally:
        await client.close()
        await fake.stop()
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(KubeconfigError):
        Client.in_cluster(tmp_path)
