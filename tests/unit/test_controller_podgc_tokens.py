"""podgc, tokencleaner and bootstrapsigner with injected clocks."""

import base64

import pytest
from cmharness import T0, Clock, caught_up, stamp, synced

from bootstrap.agents.controllers.bootstrapsigner import BootstrapSigner, signed
from bootstrap.agents.controllers.podgc import PodGCController, terminated_to_delete
from bootstrap.agents.controllers.tokencleaner import TokenCleaner
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr
from bootstrap.pki.tokens import detached_jws, detached_jws_valid

pytestmark = pytest.mark.timeout(20)
SECRETS = by_gvr("", "v1", "secrets")


def pod(name, phase="Running", node=None, created=T0, **md):
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                      "creationTimestamp": stamp(created), **md},
         "spec": {"containers": [{"name": "c", "image": "x"}]},
         "status": {"phase": phase}}
    if node:
        p["spec"]["nodeName"] = node
    return p


def node(name):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def test_terminated_over_threshold_oldest_first():
    pods = [pod("new", "Succeeded", created=T0 + 10), pod("old", "Failed", created=T0),
            pod("mid", "Succeeded", created=T0 + 5), pod("run", "Running", created=T0 - 99)]
    assert [p["metadata"]["name"] for p in terminated_to_delete(pods, 1)] == ["old", "mid"]
    assert terminated_to_delete(pods, 3) == [] and terminated_to_delete(pods, 0) == []


async def test_podgc_passes():
    clock = Clock()
    seed = [node("n1"), pod("done1", "Succeeded", "n1", T0), pod("done2", "Succeeded", "n1",
                                                                 T0 + 1),
            pod("ghost", "Running", "gone-node"), pod("healthy", "Running", "n1")]

    def build(c, f, r):
        return PodGCController(c, f, r, threshold=1, quarantine=40, clock=clock)

    async with synced(build, *seed) as (client, ctl, _):
        # an unscheduled pod stuck terminating (a finalizer, then its removal keeps it)
        await client.create(by_gvr("", "v1", "pods"),
                            pod("stuck", finalizers=["x/y"]))
        await client.delete(by_gvr("", "v1", "pods"), "stuck", "default")
        await caught_up(client, ctl.factory)
        assert await ctl.reconcile("podgc") == 20.0
        deleted = [(r.name, r.body.get("gracePeriodSeconds")) for r in
                   client.requests_for("delete") if r.name != "stuck" or r.body]
        assert ("done1", 0) in deleted and ("stuck", 0) in deleted
        assert "ghost" not in [d[0] for d in deleted]  # still in quarantine
        clock.advance(41)
        await caught_up(client, ctl.factory)
        await ctl.reconcile("podgc")
        assert ("get", "nodes", "gone-node") in [(r.verb, r.resource, r.name)
                                                 for r in client.requests_for("get")]
        patch = client.requests_for("patch", "pods", "status")[0]
        assert patch.name == "ghost" and patch.body["status"]["phase"] == "Failed"
        assert patch.body["status"]["conditions"][0]["reason"] == "DeletionByPodGC"
        names = sorted(p["metadata"]["name"] for p in client.objects("pods"))
        assert names == ["done2", "healthy", "stuck"]  # stuck: the finalizer holds it


async def test_podgc_out_of_service_node():
    down = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "down"},
            "spec": {"taints": [{"key": "node.kubernetes.io/out-of-service",
                                 "value": "nodeshutdown", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    up = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "up"},
          "spec": {"taints": down["spec"]["taints"]},
          "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    async with synced(lambda c, f, r: PodGCController(c, f, r, clock=Clock()), down, up,
                      pod("dying", node="down"), pod("running", node="down"),
                      pod("fine", node="up")) as (client, ctl, _):
        for name in ("dying", "fine"):
            await client.delete(by_gvr("", "v1", "pods"), name, "default")
        await caught_up(client, ctl.factory)
        await ctl.reconcile("podgc")
        names = sorted(p["metadata"]["name"] for p in client.objects("pods"))
        # only the terminating pod of the not-ready out-of-service node is forced out
        assert names == ["fine", "running"]
        (patch,) = client.requests_for("patch", "pods", "status")
        assert patch.body["status"]["conditions"][0]["message"] == \
            "PodGC: node is out-of-service"


def token_secret(token_id, secret, expires=None, signing=True, name=None):
    data = {"token-id": token_id, "token-secret": secret,
            "usage-bootstrap-authentication": "true"}
    if signing:
        data["usage-bootstrap-signing"] = "true"
    if expires is not None:
        data["expiration"] = expires
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": name or f"bootstrap-token-{token_id}",
                         "namespace": "kube-system", "uid": f"uid-{token_id}"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


async def test_tokencleaner_deletes_expired_and_waits_for_the_rest():
    clock = Clock()
    other = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "bootstrap-token-zzzzzz", "namespace": "kube-system"},
             "data": {"expiration": base64.b64encode(b"2000-01-01T00:00:00Z").decode()}}
    async with synced(lambda c, f, r: TokenCleaner(c, f, r, clock=clock),
                      token_secret("aaaaaa", "0123456789abcdef", stamp(T0 - 1)),
                      token_secret("bbbbbb", "0123456789abcdef", stamp(T0 + 600)),
                      token_secret("cccccc", "0123456789abcdef"),
                      token_secret("dddddd", "0123456789abcdef", "garbage"),
                      other) as (client, ctl, _):
        results = {k: await ctl.reconcile(f"kube-system/bootstrap-token-{k}")
                   for k in ("aaaaaa", "bbbbbb", "cccccc", "dddddd", "zzzzzz")}
        assert results["bbbbbb"] == 600 and results["cccccc"] is None
        deleted = [(r.name, r.body["preconditions"]) for r in client.requests_for("delete")]
        assert deleted == [("bootstrap-token-aaaaaa", {"uid": "uid-aaaaaa"}),
                           ("bootstrap-token-dddddd", {"uid": "uid-dddddd"})]


def cluster_info(**extra):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": "apiVersion: v1\nkind: Config\n", **extra}}


def test_signed_adds_replaces_and_drops_signatures():
    cm = cluster_info(**{"jws-kubeconfig-oldtok": "stale..sig"})
    out = signed(cm, {"abcdef": "0123456789abcdef"})
    assert set(out["data"]) == {"kubeconfig", "jws-kubeconfig-abcdef"}
    sig = out["data"]["jws-kubeconfig-abcdef"]
    assert detached_jws_valid(sig, cm["data"]["kubeconfig"], "abcdef", "0123456789abcdef")
    assert not detached_jws_valid(sig, cm["data"]["kubeconfig"], "abcdef", "0123456789abcdeX")
    assert signed(out, {"abcdef": "0123456789abcdef"}) is None
    assert signed({"metadata": {}, "data": {}}, {"abcdef": "x"}) is None


async def test_bootstrapsigner_uses_only_valid_signing_tokens():
    clock = Clock()
    seed = [cluster_info(), token_secret("aaaaaa", "0123456789abcdef"),
            token_secret("bbbbbb", "0123456789abcdef", stamp(T0 - 5)),
            token_secret("cccccc", "0123456789abcdef", signing=False),
            token_secret("dddddd", "0123456789abcdef", name="bootstrap-token-eeeeee"),
            token_secret("ffffff", "0123456789abcdef", stamp(T0 + 90))]
    async with synced(lambda c, f, r: BootstrapSigner(c, f, r, clock=clock), *seed) as (
            client, ctl, _):
        assert await ctl.reconcile("kube-public/cluster-info") == 90
        clock.advance(91)
        await caught_up(client, ctl.factory)
        assert await ctl.reconcile("kube-public/cluster-info") is None
        cm = next(c for c in client.objects("configmaps"))
        assert sorted(cm["data"]) == ["jws-kubeconfig-aaaaaa", "kubeconfig"]
        assert cm["data"]["jws-kubeconfig-aaaaaa"] == detached_jws(
            cm["data"]["kubeconfig"], "aaaaaa", "0123456789abcdef")
        # a stale cache is a 409 (resourceVersion from the cache), never a blind write
        await client.update(by_gvr("", "v1", "configmaps"), {**cm, "data": {
            **cm["data"], "kubeconfig": "changed"}})
        with pytest.raises(APIError) as exc:
            await ctl.reconcile("kube-public/cluster-info")
        assert exc.value.code == 409
        await caught_up(client, ctl.factory)
        await ctl.reconcile("kube-public/cluster-info")
        cm = next(c for c in client.objects("configmaps"))
        assert detached_jws_valid(cm["data"]["jws-kubeconfig-aaaaaa"], "changed", "aaaaaa",
                                  "0123456789abcdef")


def test_detached_jws_matches_upstream_vectors():
    # k8s.io/cluster-bootstrap/token/jws/jws_test.go
    content = "Hello from the other side. I must have called a thousand times."
    assert detached_jws(content, "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
    assert detached_jws("", "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"
    assert detached_jws(content, "joshua", "") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"
