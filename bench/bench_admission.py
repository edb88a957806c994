"""Admission benchmark: create latency with webhooks and a ValidatingAdmissionPolicy,
beside the same creates without them, in the same run; asserts nothing.

    .venv/bin/python bench/bench_admission.py [--n 200]

Starts a real etcd and API server on loopback (tests/integration/cluster.py) and the
test webhook server (tests/integration/test_admission_webhooks.py), then creates
ConfigMaps one after another in a namespace no webhook selects (baseline) and in
one selected by: a validating webhook, a mutating webhook, both, and a CEL policy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.cluster import running_cluster  # noqa: E402
from tests.integration.test_admission_webhooks import WebhookServer, _webhook  # noqa: E402

GROUP = "/apis/admissionregistration.k8s.io/v1"


async def _creates(base: str, ctx: ssl.SSLContext, ns: str, n: int, tag: str) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"{tag}-{i}"}, "data": {"k": "v"}}
            start = time.perf_counter()
            async with s.post(f"{base}/api/v1/namespaces/{ns}/configmaps", json=body,
                              ssl=ctx) as resp:
                await resp.read()
                if resp.status != 201:
                    raise SystemExit(f"create answered {resp.status}")
            out.append((time.perf_counter() - start) * 1000)
    return out


async def _post(base: str, ctx, path: str, body: dict) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{base}{path}", json=body,
                                                    ssl=ctx) as resp:
        if resp.status != 201:
            raise SystemExit(f"{path}: {resp.status} {await resp.text()}")


def _row(name: str, ms: list[float], base: list[float] | None) -> None:
    med, p99 = statistics.median(ms), sorted(ms)[int(len(ms) * 0.99) - 1]
    ratio = f"{med / statistics.median(base):5.2f}x" if base else "     "
    print(f"{name:34s} median {med:7.2f} ms  p99 {p99:7.2f} ms  {ratio}")


async def main(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-admission-"))
    hooks = WebhookServer(tmp).start()
    try:
        with running_cluster() as c:
            ctx = c.ssl_context()
            base = c.server.url
            for ns, labels in (("baseline", {}), ("hooked", {"webhooks": "on"}),
                               ("policed", {"policies": "on"})):
                await _post(base, ctx, "/api/v1/namespaces", {
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": labels}})
            await asyncio.sleep(1)  # the watch cache sees the namespaces
            baseline = await _creates(base, ctx, "baseline", n, "b")
            _row("no webhook (baseline)", baseline, None)

            await _post(base, ctx, f"{GROUP}/validatingwebhookconfigurations", {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "v"},
                "webhooks": [_webhook("v.example.com", hooks.url("record"),
                                      hooks.ca_bundle())]})
            await asyncio.sleep(1)
            _row("1 validating webhook", await _creates(base, ctx, "hooked", n, "v"),
                 baseline)
            await _post(base, ctx, f"{GROUP}/mutatingwebhookconfigurations", {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration", "metadata": {"name": "m"},
                "webhooks": [_webhook("m.example.com", hooks.url("mutate"),
                                      hooks.ca_bundle())]})
            await asyncio.sleep(1)
            _row("1 mutating + 1 validating webhook", await _creates(base, ctx, "hooked", n,
                                                                      "mv"), baseline)

            await _post(base, ctx, f"{GROUP}/validatingadmissionpolicies", {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "p"},
                "spec": {"matchConstraints": {"resourceRules": [{
                    "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                    "resources": ["configmaps"]}]},
                    "validations": [{"expression": "size(object.data) < 10"}]}})
            await _post(base, ctx, f"{GROUP}/validatingadmissionpolicybindings", {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "pb"},
                "spec": {"policyName": "p", "validationActions": ["Deny"],
                         "matchResources": {"namespaceSelector": {
                             "matchLabels": {"policies": "on"}}}}})
            await asyncio.sleep(1)
            _row("1 CEL policy (cel-python)", await _creates(base, ctx, "policed", n, "p"),
                 baseline)
            print(json.dumps({"webhook_requests_served": len(hooks.seen)}))
    finally:
        hooks.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="creates per row")
    asyncio.run(main(ap.parse_args().n))
