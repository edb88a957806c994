"""The kubelet API: authentication, SubjectAccessReview attributes, logs and pods."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cri_api.v1 import api_pb2 as cri

from bootstrap.agents.kubelet import server as srv
from bootstrap.agents.kubelet.fakeruntime import FakeRuntime


class Reviews:
    """The kubelet's API client, reduced to the two review calls the server makes."""

    def __init__(self, tokens: dict, allowed: set):
        self.tokens = tokens
        self.allowed = allowed
        self.sars: list[dict] = []

    async def create(self, resource, body, namespace=None, **kw):
        if resource == srv.TOKEN_REVIEWS:
            user = self.tokens.get(body["spec"]["token"])
            return {"status": {"authenticated": user is not None, "user": user or {}}}
        self.sars.append(body["spec"])
        attrs = body["spec"]["resourceAttributes"]
        key = (body["spec"]["user"], attrs["verb"], attrs["subresource"])
        return {"status": {"allowed": key in self.allowed}}


@pytest.mark.parametrize("path, sub", [("/stats/summary", "stats"), ("/metrics", "metrics"),
                                       ("/metrics/cadvisor", "metrics"), ("/logs/", "log"),
                                       ("/spec/", "spec"), ("/pods", "proxy"),
                                       ("/containerLogs/a/b/c", "proxy"), ("/exec/a/b/c", "proxy"),
                                       ("/statsfoo", "proxy"), ("/healthz", "proxy")])
def test_subresource_mapping(path, sub):
    assert srv.subresource(path) == sub


async def _world(tmp_path, anonymous=False, mode="Webhook"):
    runtime = FakeRuntime(images={"busybox": "sha256:b"})
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    sb = await runtime.run_pod_sandbox(cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="web", uid="u1", namespace="default"),
        labels={"io.kubernetes.pod.uid": "u1"}))
    log = tmp_path / "0.log"
    log.write_bytes(b"2026-12-02T01:00:00Z stdout F one\n2026-12-02T01:00:01Z stderr F two\n")
    cid = await runtime.create_container(sb, cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name="main"), image=cri.ImageSpec(image="busybox"),
        labels={"io.kubernetes.pod.uid": "u1"}, log_path=str(log)), cri.PodSandboxConfig())
    await runtime.start_container(cid)
    reviews = Reviews({"good-token": {"username": "alice", "groups": ["devs"]}},
                      {("alice", "get", "proxy")})
    auth = srv.Auth(reviews, "node-1", anonymous=anonymous, mode=mode)
    app = srv.build_app(auth, srv.PodSource(lambda: [pod], runtime))
    return TestClient(TestServer(app)), reviews, runtime, cid


async def test_bearer_token_authn_and_sar_authz(tmp_path):
    client, reviews, _, _ = await _world(tmp_path)
    async with client:
        r = await client.get("/containerLogs/default/web/main",
                             headers={"Authorization": "Bearer good-token"})
        assert r.status == 200 and await r.text() == "one\ntwo\n"
        assert reviews.sars[-1] == {"user": "alice", "groups": ["devs"], "resourceAttributes": {
            "verb": "get", "resource": "nodes", "group": "", "version": "v1",
            "subresource": "proxy", "name": "node-1"}}
        r = await client.get("/containerLogs/default/web/main?tailLines=1&timestamps=true",
                             headers={"Authorization": "Bearer good-token"})
        assert await r.text() == "2026-12-02T01:00:01Z two\n"
        r = await client.get("/stats/summary", headers={"Authorization": "Bearer good-token"})
        assert r.status == 403
        assert await r.text() == ("Forbidden (user=alice, verb=get, resource=nodes, "
                                  "subresource(s)=[stats])\n")
        r = await client.post("/pods", headers={"Authorization": "Bearer good-token"})
        assert r.status == 403 and "verb=create" in await r.text()
        r = await client.get("/pods", headers={"Authorization": "Bearer forged"})
        assert r.status == 401
        r = await client.get("/pods")
        assert r.status == 401
        r = await client.get("/pods", headers={"Authorization": "Basic YTpi"})
        assert r.status == 401


async def test_anonymous_when_enabled_is_still_authorized(tmp_path):
    client, reviews, _, _ = await _world(tmp_path, anonymous=True)
    async with client:
        r = await client.get("/pods")
        assert r.status == 403 and "user=system:anonymous" in await r.text()
        assert reviews.sars[-1]["groups"] == ["system:unauthenticated"]


async def test_logs_errors_and_pods(tmp_path):
    client, _, runtime, cid = await _world(tmp_path, mode="AlwaysAllow")
    async with client:
        h = {"Authorization": "Bearer good-token"}
        assert (await client.get("/containerLogs/default/nope/main", headers=h)).status == 404
        assert (await client.get("/containerLogs/default/web/other", headers=h)).status == 404
        r = await client.get("/containerLogs/default/web/main?previous=true", headers=h)
        assert r.status == 400 and "previous terminated container" in await r.text()
        r = await client.get("/containerLogs/default/web/main?limitBytes=0", headers=h)
        assert r.status == 400
        r = await client.get("/pods", headers=h)
        body = await r.json()
        assert body["kind"] == "PodList" and body["items"][0]["metadata"]["name"] == "web"
        # follow streams until the container exits
        runtime.exit(cid, 0)
        r = await client.get("/containerLogs/default/web/main?follow=true", headers=h)
        assert r.status == 200 and await r.text() == "one\ntwo\n"
