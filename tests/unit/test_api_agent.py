"""The agent process: flags with upstream names and defaults, Go durations,
health and metrics serving, leader election outcomes, delegated auth."""

import argparse
import asyncio
import logging
import socket
import ssl
from datetime import timedelta

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from multidict import CIMultiDict

from bootstrap.api.agent import (
    agent_parser,
    configure_logging,
    identity,
    parse_bool,
    parse_duration,
    run_agent,
)
from bootstrap.api.agentauth import DelegatedAuth, RequestHeader
from bootstrap.api.fake import FakeClient
from bootstrap.api.resources import by_gvr
from bootstrap.pki import certs, keys


def test_go_durations():
    assert parse_duration("15s") == 15
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1h") == 3600
    assert parse_duration("0") == 0
    assert parse_duration("-1.5s") == -1.5
    for bad in ("", "15", "1x", "s", "1m 2s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_defaults_as_upstream():
    args = agent_parser("x", "", secure_port=10259).parse_args([])
    assert args.leader_elect is True
    assert (args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
            args.leader_elect_retry_period) == (15, 10, 2)
    assert args.leader_elect_resource_namespace == "kube-system"
    assert args.bind_address == "0.0.0.0" and args.secure_port == 10259
    assert args.authorization_always_allow_paths == "/healthz,/readyz,/livez"
    args = agent_parser("x", "", secure_port=1).parse_args(
        ["--leader-elect=false", "--leader-elect-lease-duration=1m", "-v", "4"])
    assert args.leader_elect is False and args.leader_elect_lease_duration == 60
    assert args.v == 4
    for spelling in (["-v=3"], ["--v=3"], ["-v3"], ["--v", "3"]):
        assert agent_parser("x", "", secure_port=1).parse_args(spelling).v == 3


def test_bad_duration_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        agent_parser("x", "", secure_port=1).parse_args(["--leader-elect-retry-period=2"])
    assert exc.value.code == 2
    assert 'invalid duration "2"' in capsys.readouterr().err


LEASES = by_gvr("coordination.k8s.io", "v1", "leases")
FAST = ["--bind-address=127.0.0.1", "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=200ms"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def restore_logging():
    names = ["", "bootstrap", "bootstrap.api.agent", "bootstrap.api.leader", __name__]
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)


class Running:
    """run_agent in this process on a FakeClient, stopped through its stop event."""

    def __init__(self, *flags, main=None, ready=None, client=None):
        self.port = free_port()
        self.args = agent_parser("t", "", secure_port=self.port).parse_args([*FAST, *flags])
        self.client = client or FakeClient()
        self.stop = asyncio.Event()
        self.started = asyncio.Event()
        self.main = main or self._main
        self.ready = ready

    async def _main(self, client, factory, recorder):
        self.started.set()
        await asyncio.Event().wait()

    def start(self):
        self.task = asyncio.create_task(run_agent(self.args, "kube-scheduler", self.main,
                                                  ready=self.ready, client=self.client,
                                                  stop=self.stop))
        return self

    async def get(self, path):
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            async with s.get(f"https://127.0.0.1:{self.port}{path}") as r:
                return r.status, await r.text()

    async def finish(self):
        self.stop.set()
        return await asyncio.wait_for(self.task, 10)


async def until(cond, timeout=10.0):
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def lease(client):
    return client.objects("leases", "kube-system")[0]


@pytest.mark.timeout(30)
async def test_leader_runs_main_serves_health_and_releases_on_stop():
    agent = Running("--authorization-always-allow-paths=/healthz,/healthz/*,/readyz").start()
    await asyncio.wait_for(agent.started.wait(), 10)
    holder = lease(agent.client)["spec"]["holderIdentity"]
    assert holder.startswith(socket.gethostname() + "_")
    assert await agent.get("/healthz") == (200, "ok")
    assert await agent.get("/healthz/leaderElection") == (200, "ok")
    status, body = await agent.get("/healthz/nope")
    assert status == 404
    status, body = await agent.get("/healthz?verbose")
    assert body == "[+]ping ok\n[+]leaderElection ok\nhealthz check passed\n"
    status, body = await agent.get("/livez")  # not in this always-allow list
    assert status == 401 and '"reason":"Unauthorized"' in body.replace(" ", "")
    assert await agent.finish() == 0
    assert lease(agent.client)["spec"]["holderIdentity"] == ""  # handed back


@pytest.mark.timeout(30)
async def test_losing_the_lease_exits_1(caplog):
    agent = Running().start()
    await asyncio.wait_for(agent.started.wait(), 10)
    stolen = lease(agent.client)
    stolen["spec"]["holderIdentity"] = "thief"
    await agent.client.update(LEASES, stolen)
    assert await asyncio.wait_for(agent.task, 10) == 1
    assert "leaderelection lost" in caplog.text
    assert lease(agent.client)["spec"]["holderIdentity"] == "thief"


@pytest.mark.timeout(30)
async def test_main_failing_exits_1_and_readyz_reports_checks(caplog):
    async def broken(client, factory, recorder):
        raise RuntimeError("main broke")
    agent = Running("--leader-elect=false", main=broken).start()
    assert await asyncio.wait_for(agent.task, 10) == 1
    assert "main broke" in caplog.text
    assert agent.client.objects("leases", "kube-system") == []  # no election at all

    agent = Running("--leader-elect=false", ready=lambda: False).start()
    await asyncio.wait_for(agent.started.wait(), 10)
    status, body = await agent.get("/readyz")
    assert status == 500
    assert body == "[+]ping ok\n[-]informer-sync failed: reason withheld\nreadyz check failed\n"
    assert (await agent.get("/metrics"))[0] == 401  # no client CA: nobody is authenticated
    assert await agent.finish() == 0


@pytest.mark.timeout(30)
async def test_setup_errors_are_one_line_exit_2(tmp_path, capsys):
    args = agent_parser("t", "", secure_port=free_port()).parse_args(
        ["--kubeconfig", str(tmp_path / "missing")])
    assert await run_agent(args, "kube-scheduler", None) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read kubeconfig" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = agent_parser("t", "", secure_port=busy.getsockname()[1]).parse_args(
            ["--bind-address=127.0.0.1"])
        assert await run_agent(args, "kube-scheduler", None, client=FakeClient()) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and err.count("\n") == 1


@pytest.mark.timeout(30)
async def test_secure_port_0_serves_nothing_and_bad_ca_file_is_exit_2(tmp_path, capsys):
    agent = Running("--leader-elect=false")
    agent.args.secure_port = 0
    agent.start()
    await asyncio.wait_for(agent.started.wait(), 10)
    assert await agent.finish() == 0
    (tmp_path / "ca.crt").write_text("not a certificate")
    args = agent_parser("t", "", secure_port=free_port()).parse_args(
        ["--client-ca-file", str(tmp_path / "ca.crt")])
    assert await run_agent(args, "kube-scheduler", None, client=FakeClient()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--client-ca-file" in err


@pytest.mark.parametrize("flags, says", [
    (["--leader-elect-lease-duration=5s"], "must be greater than --leader-elect-renew-deadline"),
    (["--leader-elect-retry-period=9s"], "must be greater than 1.2 x --leader-elect-retry"),
    (["--leader-elect-retry-period=0s"], "must be > 0"),
])
async def test_inconsistent_election_flags_are_exit_2(flags, says, capsys):
    args = agent_parser("t", "", secure_port=free_port()).parse_args(flags)
    assert await run_agent(args, "kube-scheduler", None, client=FakeClient()) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_self_signed_cert_is_kept_under_cert_dir(tmp_path):
    from bootstrap.api.agentserver import serving_context
    serving_context("kube-scheduler", "127.0.0.1", None, None, str(tmp_path), None)
    crt = (tmp_path / "kube-scheduler.crt").read_bytes()
    assert (tmp_path / "kube-scheduler.key").stat().st_mode & 0o777 == 0o600
    serving_context("kube-scheduler", "127.0.0.1", None, None, str(tmp_path), None)
    assert (tmp_path / "kube-scheduler.crt").read_bytes() == crt  # reused, not regenerated


def test_bools_identity_and_verbosity():
    assert parse_bool("true") and parse_bool("1") and not parse_bool("F")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bool("yes")
    host, _, uid = identity().partition("_")
    assert host == socket.gethostname() and len(uid) == 36
    configure_logging(0, "bootstrap.agents.scheduler")
    assert logging.getLogger("bootstrap.agents.scheduler").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("bootstrap.api.informer").getEffectiveLevel() == logging.WARNING
    configure_logging(2, "bootstrap.agents.scheduler")
    assert logging.getLogger("bootstrap.api.informer").getEffectiveLevel() == logging.DEBUG


class Reviews:
    """Stands in for the delegate API server: canned TokenReview and SAR answers."""

    def __init__(self):
        self.calls = []

    async def create(self, resource, body, namespace=None, **kw):
        self.calls.append(body["kind"])
        if body["kind"] == "TokenReview":
            ok = body["spec"]["token"] == "good"
            return {"status": {"authenticated": ok, "user": {
                "username": "system:serviceaccount:ns:scraper", "groups": ["g"]}}}
        allowed = body["spec"]["user"] in ("system:serviceaccount:ns:scraper", "alice")
        assert body["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
        return {"status": {"allowed": allowed}}


def bearer(token):
    return CIMultiDict({"Authorization": f"Bearer {token}"} if token is not None else {})


def issued(ca_name, cn, orgs=()):
    """(CA certificate, DER of a client certificate it signed for cn/orgs)."""
    ca_key, key = keys.generate_key("ECDSA-P256"), keys.generate_key("ECDSA-P256")
    ca = certs.create_ca(certs.CertSpec(ca_name, is_ca=True), ca_key, timedelta(days=1))
    leaf = certs.sign_leaf(certs.CertSpec(cn, tuple(orgs), (certs.CLIENT_AUTH,)),
                           key.public_key(), ca, ca_key, timedelta(days=1))
    return ca, leaf.public_bytes(serialization.Encoding.DER)


async def test_delegated_tokens_reviews_and_caches():
    reviews = Reviews()
    auth = DelegatedAuth(reviews, reviews)
    assert await auth.user(bearer(None), None) is None
    assert await auth.user(bearer("forged"), None) is None
    assert await auth.user(bearer(""), None) is None
    lower = CIMultiDict({"authorization": "bearer good"})  # the scheme is case-insensitive
    user = await auth.user(lower, None)
    assert user["username"] == "system:serviceaccount:ns:scraper" and user["via"] == "token"
    assert await auth.allowed(user, "get", "/metrics")
    assert not await auth.allowed({"username": "other", "via": "x509"}, "get", "/metrics")
    calls = len(reviews.calls)
    await auth.user(bearer("good"), None)
    await auth.allowed(user, "get", "/metrics")
    assert len(reviews.calls) == calls  # answered from the cache
    # Without an authentication delegate tokens cannot be checked.
    assert await DelegatedAuth(None, None).user(bearer("good"), None) is None


async def test_client_certificates_and_request_headers():
    client_ca, alice = issued("client-ca", "alice", ("team",))
    proxy_ca, proxy = issued("front-proxy-ca", "front-proxy-client")
    _, stranger = issued("other-ca", "alice")
    _, wrong_proxy = issued("front-proxy-ca", "front-proxy-client")  # same name, other key
    rh = RequestHeader((proxy_ca,), frozenset({"front-proxy-client"}))
    auth = DelegatedAuth(None, None, client_cas=(client_ca,), request_header=rh)
    assert await auth.user(CIMultiDict(), alice) == {
        "username": "alice", "groups": ["team"], "via": "x509"}
    assert await auth.user(CIMultiDict(), stranger) is None
    headers = CIMultiDict([("X-Remote-User", "bob"), ("X-Remote-Group", "g1"),
                           ("X-Remote-Group", "g2"), ("X-Remote-Extra-Scopes", "a")])
    assert await auth.user(headers, proxy) == {
        "username": "bob", "groups": ["g1", "g2"], "extra": {"scopes": ["a"]},
        "via": "requestheader"}
    assert await auth.user(headers, wrong_proxy) is None
    assert await auth.user(CIMultiDict(), proxy) is None  # no user header: not a user
    # The client CA's users cannot assert other users through headers.
    assert (await auth.user(headers, alice))["username"] == "alice"
    strict = RequestHeader((proxy_ca,), frozenset({"someone-else"}))
    assert await DelegatedAuth(None, None, request_header=strict).user(headers, proxy) is None
    # Without an authorization delegate only client-CA users are allowed.
    assert await auth.allowed({"username": "alice", "via": "x509"}, "get", "/metrics")
    assert not await auth.allowed({"username": "bob", "via": "requestheader"}, "get",
                                  "/metrics")
    reviews = Reviews()
    delegated = DelegatedAuth(None, reviews, request_header=rh)
    bob = await delegated.user(headers, proxy)
    assert not await delegated.allowed(bob, "get", "/metrics")
    assert await delegated.allowed({"username": "alice", "via": "requestheader"}, "get",
                                   "/metrics")
