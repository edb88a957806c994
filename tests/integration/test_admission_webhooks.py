"""Admission webhooks end to end: a real API server on etcd calls a small HTTPS
webhook server (aiohttp, certificate from a CA made here) with AdmissionReview v1.
Covers mutation (JSONPatch, warnings, audit annotations), order (mutating before
validating), denial, failurePolicy Fail/Ignore on TLS failure and timeout, dry run
and sideEffects, reinvocation, selectors, service references via EndpointSlices,
and a webhook trying to rename the object."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import ssl
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from aiohttp import web
from cryptography.x509.oid import ExtendedKeyUsageOID

from bootstrap.pki.certs import CertSpec, cert_to_pem, create_ca, sign_leaf
from bootstrap.pki.keys import generate_key, key_to_pem

from .cluster import eventually, free_port, running_cluster
from .test_kubectl import run

NS = "hooked"
SERVICE_NAME = "hooks.hook-system.svc"


def _ca(tmp, name: str):
    key = generate_key("ECDSA-P256")
    return create_ca(CertSpec(name, is_ca=True), key, timedelta(days=1)), key


class WebhookServer:
    """HTTPS AdmissionReview server in its own thread; records what it was sent."""

    def __init__(self, tmp):
        self.ca, ca_key = _ca(tmp, "webhook-ca")
        self.other_ca, _ = _ca(tmp, "unrelated-ca")
        key = generate_key("ECDSA-P256")
        cert = sign_leaf(CertSpec("webhook", usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
                                  dns_names=(SERVICE_NAME,),
                                  ips=(ipaddress.ip_address("127.0.0.1"),)),
                         key.public_key(), self.ca, ca_key, timedelta(days=1))
        (tmp / "hook.crt").write_bytes(cert_to_pem(cert))
        (tmp / "hook.key").write_bytes(key_to_pem(key))
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.load_cert_chain(str(tmp / "hook.crt"), str(tmp / "hook.key"))
        self.port = free_port()
        self.seen: list[tuple[str, dict]] = []
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def ca_bundle(self, other: bool = False) -> str:
        return base64.b64encode(cert_to_pem(self.other_ca if other else self.ca)).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/{path}"

    def requests(self, path: str) -> list[dict]:
        return [r for p, r in self.seen if p == path]

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        review = await request.json()
        req = review["request"]
        self.seen.append((path, req))
        resp: dict = {"uid": req["uid"], "allowed": True}
        obj = req.get("object") or {}
        name = (obj.get("metadata") or {}).get("name", "") or req.get("name", "")
        if path == "mutate":
            ops = [{"op": "add", "path": "/metadata/labels", "value": {}}] \
                if not obj["metadata"].get("labels") else []
            ops.append({"op": "add", "path": "/metadata/labels/mutated", "value": "yes"})
            resp.update(patchType="JSONPatch",
                        patch=base64.b64encode(json.dumps(ops).encode()).decode(),
                        warnings=["mutated by the test webhook"],
                        auditAnnotations={"seen": name})
        elif path == "second":  # changes the object again, after "mutate" ran
            count = int((obj["metadata"].get("annotations") or {}).get("count", "0")) + 1
            ops = [{"op": "add", "path": "/metadata/annotations",
                    "value": {"count": str(count)}}]
            resp.update(patchType="JSONPatch",
                        patch=base64.b64encode(json.dumps(ops).encode()).decode())
        elif path == "deny" and name.startswith("bad"):
            resp.update(allowed=False, status={"code": 403, "reason": "Forbidden",
                                               "message": f"no objects named {name}"})
        elif path == "deny-plain" and name.startswith("bad"):
            resp.update(allowed=False, status={"message": "plain denial"})
        elif path == "slow":
            await asyncio.sleep(5)
        elif path == "rename":
            ops = [{"op": "replace", "path": "/metadata/name", "value": "elsewhere"}]
            resp.update(patchType="JSONPatch",
                        patch=base64.b64encode(json.dumps(ops).encode()).decode())
        elif path == "invalid":  # a label value validation refuses
            ops = [{"op": "add", "path": "/metadata/labels", "value": {"bad": "not valid!"}}]
            resp.update(patchType="JSONPatch",
                        patch=base64.b64encode(json.dumps(ops).encode()).decode())
        elif path == "wronguid":
            resp["uid"] = "not-the-request"
        return web.json_response({"apiVersion": "admission.k8s.io/v1",
                                  "kind": "AdmissionReview", "response": resp})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ssl).start()
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> WebhookServer:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webhooks")
    hooks = WebhookServer(tmp).start()
    audit = tmp / "audit.log"
    try:
        with running_cluster(extra_args=["--audit-log-path", str(audit)]) as c:
            run(c.admin, "create", "namespace", NS)
            run(c.admin, "label", "namespace", NS, "webhooks=on")
            run(c.admin, "create", "namespace", "plain")
            c.hooks, c.audit_log = hooks, audit
            yield c
    finally:
        hooks.stop()


def _api(c, method: str, path: str, body: dict | None = None, user: str = "kubernetes-admin",
         groups: tuple[str, ...] = ("system:masters",)):
    """(status code, decoded body, response headers) of a raw request."""
    req = urllib.request.Request(f"{c.server.url}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=c.ssl_context(user, groups),
                                    timeout=30) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def _webhook(name: str, url: str, ca: str, **extra) -> dict:
    hook = {"name": name, "clientConfig": {"url": url, "caBundle": ca},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                       "apiVersions": ["v1"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"webhooks": "on"}},
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "timeoutSeconds": 2}
    hook.update(extra)
    return hook


class _Config:
    """A webhook configuration for the length of a ``with`` block."""

    def __init__(self, c, kind: str, name: str, webhooks: list[dict]):
        self.c, self.plural, self.name = c, kind.lower() + "s", name
        self.body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                     "metadata": {"name": name}, "webhooks": webhooks}

    def __enter__(self):
        code, body, _ = _api(self.c, "POST", f"/apis/admissionregistration.k8s.io/v1/"
                                             f"{self.plural}", self.body)
        assert code == 201, body
        return self

    def __exit__(self, *exc):
        _api(self.c, "DELETE", f"/apis/admissionregistration.k8s.io/v1/{self.plural}/"
                               f"{self.name}")


def _cm(name: str, labels: dict | None = None) -> dict:
    md: dict = {"name": name}
    if labels:
        md["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"k": "v"}}


def _create_cm(c, name: str, ns: str = NS, query: str = "", **kw):
    return _api(c, "POST", f"/api/v1/namespaces/{ns}/configmaps{query}", _cm(name, **kw))


def _until_code(c, make, code: int, timeout: float = 20):
    """Create objects with fresh names until the answer has ``code`` (the webhook
    configuration reaches the watch cache a moment after it is written)."""
    attempt = [0]

    def once():
        attempt[0] += 1
        got = make(attempt[0])
        return got if got[0] == code else None
    result = eventually(once, timeout)
    assert result is not None, f"never answered {code}"
    return result


def test_mutating_then_validating_with_warnings_and_audit(env):
    c, hooks = env, env.hooks
    mutating = [_webhook("mutate.example.com", hooks.url("mutate"), hooks.ca_bundle())]
    validating = [_webhook("record.example.com", hooks.url("record"), hooks.ca_bundle())]
    with _Config(c, "MutatingWebhookConfiguration", "m1", mutating), \
            _Config(c, "ValidatingWebhookConfiguration", "v1", validating):
        def ready(i):
            got = _create_cm(c, f"m-{i}")
            labelled = got[0] == 201 and got[1]["metadata"].get("labels")
            recorded = any(r["name"] == f"m-{i}" for r in hooks.requests("record"))
            return got if labelled and recorded else (0, {}, {})
        code, obj, headers = _until_code(c, ready, 201)
        assert obj["metadata"]["labels"] == {"mutated": "yes"}
        assert 'mutated by the test webhook' in headers.get("Warning", "")
        # The validating webhook saw the mutated object: mutating ones run first.
        seen = hooks.requests("record")[-1]
        assert seen["object"]["metadata"]["labels"] == {"mutated": "yes"}
        assert seen["operation"] == "CREATE" and seen["namespace"] == NS
        assert seen["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
        assert seen["userInfo"]["username"] == "kubernetes-admin"
        assert seen["dryRun"] is False

        # A namespace the selector does not pick is not sent to the webhooks.
        before = len(hooks.requests("mutate"))
        code, obj, _ = _create_cm(c, "untouched", ns="plain")
        assert code == 201 and "labels" not in obj["metadata"]
        assert len(hooks.requests("mutate")) == before

        events = [json.loads(line) for line in c.audit_log.read_text().splitlines()]
        annotated = [e for e in events if e.get("annotations", {}).get(
            "mutate.example.com/seen")]
        assert annotated, "no audit event carries the webhook's audit annotation"
        ann = annotated[-1]["annotations"]
        assert json.loads(ann["mutation.webhook.admission.k8s.io/round_0_index_0"]) == {
            "configuration": "m1", "webhook": "mutate.example.com", "mutated": True}

    # kubectl prints the webhook's warning.
    with _Config(c, "MutatingWebhookConfiguration", "m1", mutating):
        def kubectl_create(i):
            p = run(c.admin, "create", "configmap", f"k-{i}", "-n", NS, check=False)
            return (201, p, {}) if "mutated by the test webhook" in p.stderr else (0, p, {})
        _, proc, _ = _until_code(c, kubectl_create, 201)
        assert "Warning: mutated by the test webhook" in proc.stderr


def test_denial_uses_the_webhooks_status(env):
    c, hooks = env, env.hooks
    hook = [_webhook("deny.example.com", hooks.url("deny"), hooks.ca_bundle()),
            _webhook("plain.example.com", hooks.url("deny-plain"), hooks.ca_bundle())]
    with _Config(c, "ValidatingWebhookConfiguration", "deny", hook):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"bad-{i}"), 403)
        assert status["reason"] == "Forbidden"
        assert status["message"].startswith('admission webhook "deny.example.com" denied the '
                                            'request: no objects named bad-')
        assert _create_cm(c, "good")[0] == 201
        # kubectl shows the message as the server wrote it.
        p = run(c.admin, "create", "configmap", "bad-kubectl", "-n", NS, check=False)
        assert p.returncode != 0
        assert 'admission webhook "deny.example.com" denied the request: no objects named ' \
               'bad-kubectl' in p.stderr
    with _Config(c, "ValidatingWebhookConfiguration", "plain",
                 [_webhook("plain.example.com", hooks.url("deny-plain"), hooks.ca_bundle())]):
        # A denial without a code is a 400.
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"bad-p{i}"), 400)
        assert status["message"] == ('admission webhook "plain.example.com" denied the '
                                     'request: plain denial')


def test_failure_policy_on_tls_failure_timeout_and_bad_response(env):
    c, hooks = env, env.hooks
    wrong_ca = [_webhook("wrongca.example.com", hooks.url("record"),
                         hooks.ca_bundle(other=True))]
    with _Config(c, "ValidatingWebhookConfiguration", "wrongca", wrong_ca):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"tls-{i}"), 500)
        assert status["reason"] == "InternalError"
        assert status["message"].startswith(
            'Internal error occurred: failed calling webhook "wrongca.example.com": '
            'failed to call webhook: Post "https://127.0.0.1:')
        assert "certificate verify failed" in status["message"]
        # Nothing was stored.
        assert _api(c, "GET", f"/api/v1/namespaces/{NS}/configmaps/tls-1")[0] == 404

    slow = [_webhook("slow.example.com", hooks.url("slow"), hooks.ca_bundle(),
                     timeoutSeconds=1)]
    with _Config(c, "ValidatingWebhookConfiguration", "slow", slow):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"slow-{i}"), 500)
        assert 'failed calling webhook "slow.example.com"' in status["message"]
        assert "context deadline exceeded" in status["message"]

    wrong_uid = [_webhook("uid.example.com", hooks.url("wronguid"), hooks.ca_bundle())]
    with _Config(c, "ValidatingWebhookConfiguration", "uid", wrong_uid):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"uid-{i}"), 500)
        assert "received invalid webhook response: expected response.uid=" in \
            status["message"]

    # failurePolicy Ignore: the broken webhooks are skipped and the write goes through;
    # the working mutating webhook in the same configuration proves it was consulted.
    ignore = [_webhook("wrongca.example.com", hooks.url("record"),
                       hooks.ca_bundle(other=True), failurePolicy="Ignore"),
              _webhook("slow.example.com", hooks.url("slow"), hooks.ca_bundle(),
                       timeoutSeconds=1, failurePolicy="Ignore"),
              _webhook("mutate.example.com", hooks.url("mutate"), hooks.ca_bundle())]
    with _Config(c, "MutatingWebhookConfiguration", "ignore", ignore):
        def mutated(i):
            got = _create_cm(c, f"ign-{i}")
            ok = got[0] == 201 and got[1]["metadata"].get("labels") == {"mutated": "yes"}
            return (201, got[1], got[2]) if ok else (got[0] if got[0] != 201 else 0, {}, {})
        code, obj, _ = _until_code(c, mutated, 201)
        assert obj["metadata"]["labels"] == {"mutated": "yes"}


def test_dry_run_side_effects_and_rename(env):
    c, hooks = env, env.hooks
    unknown = [_webhook("effects.example.com", hooks.url("record"), hooks.ca_bundle(),
                        sideEffects="Some")]
    with _Config(c, "ValidatingWebhookConfiguration", "effects", unknown):
        code, status, _ = _until_code(
            c, lambda i: _create_cm(c, f"dry-{i}", query="?dryRun=All"), 400)
        assert status["message"] == ('admission webhook "effects.example.com" does not '
                                     'support dry run')
    on_dry = [_webhook("dry.example.com", hooks.url("record"), hooks.ca_bundle(),
                       sideEffects="NoneOnDryRun", objectSelector={
                           "matchLabels": {"dry": "yes"}})]
    with _Config(c, "ValidatingWebhookConfiguration", "dry", on_dry):
        def dry(i):
            got = _create_cm(c, f"dryok-{i}", query="?dryRun=All", labels={"dry": "yes"})
            sent = [r for r in hooks.requests("record") if r["name"] == f"dryok-{i}"]
            return got if got[0] == 201 and sent else (0, {}, {})
        _until_code(c, dry, 201)
        sent = [r for r in hooks.requests("record") if r["dryRun"]]
        assert sent and sent[-1]["options"]["dryRun"] == ["All"]
        # The objectSelector keeps unlabelled objects away from the webhook.
        assert _create_cm(c, "nolabel")[0] == 201
        assert not [r for r in hooks.requests("record") if r["name"] == "nolabel"]

    rename = [_webhook("rename.example.com", hooks.url("rename"), hooks.ca_bundle())]
    with _Config(c, "MutatingWebhookConfiguration", "rename", rename):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"ren-{i}"), 500)
        assert "attempted to change the object's name" in status["message"]
        assert _api(c, "GET", f"/api/v1/namespaces/{NS}/configmaps/elsewhere")[0] == 404


def test_reinvocation_if_needed(env):
    c, hooks = env, env.hooks
    # "mutate" runs first with IfNeeded; "second" changes the object afterwards, so
    # "mutate" is called once more (and only once).
    webhooks = [_webhook("mutate.example.com", hooks.url("mutate"), hooks.ca_bundle(),
                         reinvocationPolicy="IfNeeded"),
                _webhook("second.example.com", hooks.url("second"), hooks.ca_bundle())]
    with _Config(c, "MutatingWebhookConfiguration", "reinvoke", webhooks):
        def created(i):
            got = _create_cm(c, f"re-{i}")
            return got if got[0] == 201 and got[1]["metadata"].get("annotations") else (
                0, {}, {})
        _, obj, _ = _until_code(c, created, 201)
        name = obj["metadata"]["name"]
        calls = [r for r in hooks.requests("mutate") if r["name"] == name]
        assert len(calls) == 2
        assert obj["metadata"]["annotations"] == {"count": "1"}


def test_service_reference_through_endpointslice(env):
    c, hooks = env, env.hooks
    run(c.admin, "create", "namespace", "hook-system")
    run(c.admin, "create", "service", "clusterip", "hooks", "-n", "hook-system",
        "--tcp=443:8443")
    code, body, _ = _api(c, "POST", "/apis/discovery.k8s.io/v1/namespaces/hook-system/"
                                    "endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "hooks-1", "labels": {"kubernetes.io/service-name": "hooks"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "443-8443", "port": hooks.port, "protocol": "TCP"}]})
    assert code == 201, body
    hook = _webhook("svc.example.com", hooks.url("deny"), hooks.ca_bundle())
    hook["clientConfig"] = {"service": {"namespace": "hook-system", "name": "hooks",
                                        "path": "/deny", "port": 443},
                            "caBundle": hooks.ca_bundle()}
    with _Config(c, "ValidatingWebhookConfiguration", "svc", [hook]):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"bad-svc-{i}"), 403)
        assert 'admission webhook "svc.example.com" denied the request' in status["message"]


def test_webhook_configurations_are_exempt_and_admin_only(env):
    c, hooks = env, env.hooks
    # A webhook that fails closed on everything cannot block fixing itself.
    everything = _webhook("all.example.com", hooks.url("record"),
                          hooks.ca_bundle(other=True))
    everything["rules"] = [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
                            "resources": ["*/*"]}]
    everything.pop("namespaceSelector")
    with _Config(c, "ValidatingWebhookConfiguration", "all", [everything]) as cfg:
        _until_code(c, lambda i: _create_cm(c, f"all-{i}"), 500)
        code, body, _ = _api(c, "DELETE", "/apis/admissionregistration.k8s.io/v1/"
                                          f"validatingwebhookconfigurations/{cfg.name}")
        assert code == 200, body
    eventually(lambda: _create_cm(c, f"after-{len(hooks.seen)}")[0] == 201)
    # Registering webhooks needs rights on the configurations: a plain user has none.
    code, status, _ = _api(c, "POST", "/apis/admissionregistration.k8s.io/v1/"
                                      "mutatingwebhookconfigurations",
                           {"apiVersion": "admissionregistration.k8s.io/v1",
                            "kind": "MutatingWebhookConfiguration",
                            "metadata": {"name": "evil"}, "webhooks": []},
                           user="mallory", groups=())
    assert code == 403 and status["reason"] == "Forbidden"


def test_delete_and_invalid_mutation(env):
    c, hooks = env, env.hooks
    assert eventually(lambda: _create_cm(c, "bad-delete")[0] in (201, 409))
    deny_delete = _webhook("nodelete.example.com", hooks.url("deny"), hooks.ca_bundle())
    deny_delete["rules"][0]["operations"] = ["DELETE"]
    with _Config(c, "ValidatingWebhookConfiguration", "nodelete", [deny_delete]):
        code, status, _ = _until_code(c, lambda i: _api(
            c, "DELETE", f"/api/v1/namespaces/{NS}/configmaps/bad-delete"), 403)
        assert 'denied the request: no objects named bad-delete' in status["message"]
        sent = [r for r in hooks.requests("deny") if r["operation"] == "DELETE"][-1]
        assert sent["object"] is None and sent["oldObject"]["metadata"]["name"] == "bad-delete"
        assert sent["options"]["kind"] == "DeleteOptions"
        assert _api(c, "GET", f"/api/v1/namespaces/{NS}/configmaps/bad-delete")[0] == 200

    # A mutation that makes the object invalid is refused by validation afterwards.
    invalid = [_webhook("invalid.example.com", hooks.url("invalid"), hooks.ca_bundle())]
    with _Config(c, "MutatingWebhookConfiguration", "invalid", invalid):
        code, status, _ = _until_code(c, lambda i: _create_cm(c, f"inv-{i}"), 422)
        assert status["reason"] == "Invalid"
        assert "metadata.labels" in status["message"]


def test_update_sends_old_object(env):
    c, hooks = env, env.hooks
    # (the previous test's configuration may linger in the watch cache for a moment)
    assert eventually(lambda: _create_cm(c, "upd")[0] in (201, 409))
    mutating = [_webhook("mutate.example.com", hooks.url("mutate"), hooks.ca_bundle())]
    mutating[0]["rules"][0]["operations"] = ["UPDATE"]
    with _Config(c, "MutatingWebhookConfiguration", "upd", mutating):
        def updated(i):
            code, cur, _ = _api(c, "GET", f"/api/v1/namespaces/{NS}/configmaps/upd")
            cur["data"] = {"k": f"v{i}"}
            got = _api(c, "PUT", f"/api/v1/namespaces/{NS}/configmaps/upd", cur)
            return got if got[0] == 200 and got[1]["metadata"].get("labels") else (0, {}, {})
        _, obj, _ = _until_code(c, updated, 200)
        assert obj["metadata"]["labels"] == {"mutated": "yes"}
        sent = [r for r in hooks.requests("mutate") if r["operation"] == "UPDATE"][-1]
        assert sent["oldObject"]["metadata"]["name"] == "upd"
        assert "labels" not in sent["oldObject"]["metadata"]
        assert sent["options"]["kind"] == "UpdateOptions"
