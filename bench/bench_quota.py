"""Quota admission benchmark: ConfigMap create latency in a namespace without quotas
(baseline; ResourceQuota admission only looks at the cache) and in one whose quota
counts configmaps (each create also writes the quota's status), in the same run, with
``--disable-admission-plugins=ResourceQuota`` as a second baseline; asserts nothing.

    .venv/bin/python bench/bench_quota.py [--n 200]

No controller runs: the quota's status is written once through /status, as the
resourcequota controller would.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_admission import _creates, _post, _row  # noqa: E402
from tests.integration.cluster import running_cluster  # noqa: E402


async def _put_status(base: str, ctx, ns: str, name: str, status: dict) -> None:
    async with aiohttp.ClientSession() as s:
        url = f"{base}/api/v1/namespaces/{ns}/resourcequotas/{name}/status"
        async with s.get(url, ssl=ctx) as resp:
            rq = await resp.json()
        rq["status"] = status
        async with s.put(url, json=rq, ssl=ctx) as resp:
            if resp.status != 200:
                raise SystemExit(f"status: {resp.status} {await resp.text()}")


async def run(n: int, extra: list[str], label: str) -> None:
    with running_cluster(extra) as c:
        ctx, base = c.ssl_context(), c.server.url
        for ns in ("plain", "quota"):
            await _post(base, ctx, "/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        hard = {"count/configmaps": "100000", "configmaps": "100000"}
        await _post(base, ctx, "/api/v1/namespaces/quota/resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": hard}})
        await _put_status(base, ctx, "quota", "q", {
            "hard": hard, "used": {k: "0" for k in hard}})
        await asyncio.sleep(1)  # the watch cache sees them
        plain = await _creates(base, ctx, "plain", n, "p")
        _row(f"{label}: no quota in the namespace", plain, None)
        _row(f"{label}: quota counting configmaps", await _creates(base, ctx, "quota", n, "q"),
             plain)


async def main(n: int) -> None:
    await run(n, ["--disable-admission-plugins=ResourceQuota"], "plugin off")
    await run(n, [], "plugin on")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="creates per row")
    asyncio.run(main(ap.parse_args().n))
