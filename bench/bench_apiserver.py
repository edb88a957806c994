"""API server benchmark: prints numbers next to raw etcd in the same run; asserts nothing.

    .venv/bin/python bench/bench_apiserver.py [--quick]

Starts a real etcd and one API server on loopback (tests/integration/cluster.py),
then measures creates/s and GETs/s at concurrency 1 and 64, a LIST of 5,000 pods,
watch fan-out (100 watchers, 1,000 events) and mutating latency at a fixed
200 req/s, each beside raw etcd puts/gets through aetcd's gRPC stubs. Last, creates at
concurrency 1 and 64 for 1 and 2 processes on --event-loop=asyncio and =uvloop, in
interleaved rounds (--loops-only runs just that table; --rounds N, default 3). The
client (this process) always runs on asyncio, on the same cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootstrap.agents.apiserver.storage.etcd import Etcd  # noqa: E402
from tests.integration.cluster import Cluster  # noqa: E402


def _row(name: str, ours: float, raw: float | None, unit: str) -> None:
    ratio = f"{ours / raw:6.2f}x" if raw else "      "
    raw_s = f"{raw:10.1f}" if raw is not None else " " * 10
    print(f"{name:38s} {ours:10.1f} {raw_s} {ratio}  {unit}")


async def _run_concurrent(n: int, concurrency: int, fn) -> float:
    """Run fn(i) for i in range(n) with ``concurrency`` workers; returns ops/s."""
    counter = iter(range(n))

    async def worker():
        for i in counter:
            await fn(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


class API:
    def __init__(self, cluster: Cluster, url: str | None = None):
        p = cluster.pki
        ctx = ssl.create_default_context(cafile=p.path("ca.crt"))
        ctx.load_cert_chain(p.path("apiserver-kubelet-client.crt"),
                            p.path("apiserver-kubelet-client.key"))
        self.base = url or cluster.server.url
        self.admin_ctx = ssl.create_default_context(cafile=p.path("ca.crt"))
        kc = cluster.kubeconfig("bench-admin", ("system:masters",))
        from bootstrap.pki import read_kubeconfig
        parsed = read_kubeconfig(kc)
        cert, key = Path(cluster.base / "bench.crt"), Path(cluster.base / "bench.key")
        from cryptography.hazmat.primitives import serialization
        cert.write_bytes(parsed.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(parsed.key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        self.admin_ctx.load_cert_chain(str(cert), str(key))
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.admin_ctx, limit=128))

    async def req(self, method: str, path: str, body=None, expect=(200, 201)):
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(method, self.base + path, data=data,
                                        headers={"Content-Type": "application/json"}) as r:
            payload = await r.read()
            if r.status not in expect:
                raise RuntimeError(f"{method} {path}: {r.status} {payload[:200]!r}")
            return payload


def _cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v" * 64}}


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"b": "1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


async def bench(cluster: Cluster, quick: bool, loops_only: bool, rounds: int) -> None:
    p = cluster.pki
    etcd = Etcd([cluster.etcd.url], Path(p.path("etcd/ca.crt")).read_bytes(),
                Path(p.path("apiserver-etcd-client.crt")).read_bytes(),
                Path(p.path("apiserver-etcd-client.key")).read_bytes())
    await etcd.connect()
    api = API(cluster)
    n1, n64 = (200, 2000) if not quick else (50, 300)
    loops = ((500, 2000) if not quick else (50, 300)) + (rounds,)
    value = orjson.dumps(_cm("x"))
    try:
        await api.req("POST", "/api/v1/namespaces", {"metadata": {"name": "bench"}})
        await api.req("POST", "/api/v1/namespaces/bench/serviceaccounts",
                      {"metadata": {"name": "default"}})
        if loops_only:
            await _loops(cluster, etcd, *loops)
            return
        print(f"{'metric':38s} {'apiserver':>10s} {'raw etcd':>10s} {'ratio':>7s}  unit")
        for conc, n in ((1, n1), (64, n64)):
            raw = await _run_concurrent(n, conc, lambda i, c=conc: etcd.create(
                f"/bench/raw-{c}-{i}", value))
            ours = await _run_concurrent(n, conc, lambda i, c=conc: api.req(
                "POST", "/api/v1/namespaces/bench/configmaps", _cm(f"c{c}-{i}")))
            _row(f"creates/s (concurrency {conc})", ours, raw, "ops/s")
        for conc, n in ((1, n1), (64, n64)):
            raw = await _run_concurrent(n, conc, lambda i, c=conc: etcd.get(
                f"/bench/raw-{c}-{i}"))
            cached = await _run_concurrent(n, conc, lambda i, c=conc: api.req(
                "GET", f"/api/v1/namespaces/bench/configmaps/c{c}-{i}?resourceVersion=0"))
            quorum = await _run_concurrent(n, conc, lambda i, c=conc: api.req(
                "GET", f"/api/v1/namespaces/bench/configmaps/c{c}-{i}"))
            _row(f"GETs/s from cache, RV=0 (conc {conc})", cached, raw, "ops/s")
            _row(f"GETs/s quorum, RV unset (conc {conc})", quorum, raw, "ops/s")

        pods = 5000 if not quick else 500
        await _run_concurrent(pods, 64, lambda i: api.req(
            "POST", "/api/v1/namespaces/bench/pods", _pod(f"p{i}")))
        for label, q in (("LIST pods, RV unset (etcd)", ""),
                         ("LIST pods, RV=0 (cache)", "?resourceVersion=0")):
            start = time.perf_counter()
            body = await api.req("GET", "/api/v1/namespaces/bench/pods" + q)
            ours = (time.perf_counter() - start) * 1000
            got = len(orjson.loads(body)["items"])
            start = time.perf_counter()
            await etcd.range("/registry/pods/bench/")
            raw = (time.perf_counter() - start) * 1000
            _row(f"{label}: {got}", ours, raw, "ms")

        await _fanout(api, 100 if not quick else 20, 1000 if not quick else 200)
        await _latency(api, etcd, 200, 1000 if not quick else 200)
        await _loops(cluster, etcd, *loops)
    finally:
        await api.session.close()
        await etcd.close()


def _host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def _uvloop_installed() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


async def _loops(cluster: Cluster, etcd: Etcd, n1: int, n64: int, rounds: int) -> None:
    """Creates at concurrency 1 and 64 on --event-loop=asyncio and =uvloop, with 1 and 2
    processes, beside raw etcd puts measured right before each run. One server runs at a
    time (an idle one would still apply every event to its watch caches) and the
    configurations take turns round by round (A, B, A, B), so drift hits all alike.
    Prints the median of the rounds and their range."""
    from tests.integration.cluster import APIServer
    cluster.server.stop()  # its watch caches would follow these creates too
    loops = ["asyncio"] + (["uvloop"] if _uvloop_installed() else [])
    configs = [(procs, loop) for procs in (1, 2) for loop in loops]
    value = orjson.dumps(_cm("x"))
    ours: dict[tuple, list[float]] = {}
    raw: dict[tuple, list[float]] = {}
    # CPU during the apiserver run: this process's (one core = 100%) and all cores' busy
    # share (100% = every core), to tell a saturated host from a server-side limit.
    client: dict[tuple, list[float]] = {}
    hostcpu: dict[tuple, list[float]] = {}
    for r in range(rounds):
        for procs, loop in configs:
            server = APIServer(cluster.base / f"loop-{procs}-{loop}", cluster.pki, cluster.etcd,
                               list(cluster.extra) + [f"--processes={procs}",
                                                      f"--event-loop={loop}"])
            server.start()
            api = API(cluster, server.url)
            try:
                # Ready is not settled: let the workers come up and the OpenAPI documents
                # build (a thread), then warm every process's connections and caches.
                await asyncio.sleep(3)
                await _run_concurrent(256, 64, lambda i, t=f"{procs}{loop}-{r}", a=api: a.req(
                    "POST", "/api/v1/namespaces/bench/configmaps", _cm(f"w{t}-{i}")))
                for conc, n in ((1, n1), (64, n64)):
                    key = (procs, loop, conc)
                    tag = f"{procs}{loop}{conc}-{r}"
                    raw.setdefault(key, []).append(await _run_concurrent(
                        n, conc, lambda i, t=tag: etcd.create(f"/bench/loop-{t}-{i}", value)))
                    cpu, wall, host = time.process_time(), time.perf_counter(), _host_cpu()
                    ours.setdefault(key, []).append(await _run_concurrent(
                        n, conc, lambda i, t=tag, a=api: a.req(
                            "POST", "/api/v1/namespaces/bench/configmaps", _cm(f"l{t}-{i}"))))
                    client.setdefault(key, []).append(
                        (time.process_time() - cpu) / (time.perf_counter() - wall))
                    busy, total = (b - a for a, b in zip(host, _host_cpu(), strict=True))
                    hostcpu.setdefault(key, []).append(busy / max(total, 1))
            finally:
                await api.session.close()
                server.stop()
    print(f"\ncreates/s by processes x event loop x concurrency, median of {rounds} "
          f"interleaved rounds [min-max]; raw etcd puts measured before each run")
    print(f"{'procs':>5s} {'loop':8s} {'conc':>4s} {'apiserver':>10s} {'range':>13s} "
          f"{'raw etcd':>10s} {'ratio':>6s} {'vs asyncio':>10s} {'client cpu':>10s} {'host cpu':>8s}")
    for procs, loop in configs:
        for conc in (1, 64):
            o, w = ours[(procs, loop, conc)], raw[(procs, loop, conc)]
            base = statistics.median(ours[(procs, "asyncio", conc)])
            m = statistics.median(o)
            print(f"{procs:5d} {loop:8s} {conc:4d} {m:10.1f} "
                  f"{f'[{min(o):.0f}-{max(o):.0f}]':>13s} {statistics.median(w):10.1f} "
                  f"{m / statistics.median(w):5.2f}x {m / base:9.2f}x "
                  f"{statistics.median(client[(procs, loop, conc)]):9.0%} "
                  f"{statistics.median(hostcpu[(procs, loop, conc)]):8.0%}")


async def _fanout(api: API, watchers: int, events: int) -> None:
    listed = orjson.loads(await api.req("GET", "/api/v1/namespaces/bench/configmaps?limit=1"))
    rv = listed["metadata"]["resourceVersion"]
    received = [0] * watchers
    all_done = asyncio.Event()
    ready = 0

    async def watch(i: int):
        nonlocal ready
        url = (f"{api.base}/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion={rv}"
               f"&labelSelector=fanout%3D1")
        async with api.session.get(url) as r:
            ready += 1
            async for _line in r.content:
                received[i] += 1
                if received[i] >= events:
                    break
        if all(n >= events for n in received):
            all_done.set()

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    while ready < watchers:
        await asyncio.sleep(0.05)
    start = time.perf_counter()
    await _run_concurrent(events, 16, lambda i: api.req(
        "POST", "/api/v1/namespaces/bench/configmaps",
        {"metadata": {"name": f"f{i}", "labels": {"fanout": "1"}}}))
    await asyncio.wait_for(all_done.wait(), 300)
    elapsed = time.perf_counter() - start
    for t in tasks:
        t.cancel()
    _row(f"watch fan-out: {watchers} watchers x {events}", watchers * events / elapsed, None,
         "events delivered/s")


async def _latency(api: API, etcd: Etcd, rate: int, n: int) -> None:
    async def measure(op) -> list[float]:
        lat: list[float] = []

        async def one(i):
            t = time.perf_counter()
            await op(i)
            lat.append((time.perf_counter() - t) * 1000)

        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        return sorted(lat)

    ours = await measure(lambda i: api.req("POST", "/api/v1/namespaces/bench/configmaps",
                                           _cm(f"lat-{i}")))
    raw = await measure(lambda i: etcd.create(f"/bench/lat-{i}", b"x" * 100))
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        _row(f"mutating {name} @ {rate} req/s", ours[int(q * (len(ours) - 1))],
             raw[int(q * (len(raw) - 1))], "ms")
    print(f"{'mutating mean':38s} {statistics.mean(ours):10.1f} {statistics.mean(raw):10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller counts for a smoke run")
    ap.add_argument("--loops-only", action="store_true",
                    help="only the processes x event loop creates table")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of the processes x event loop table")
    args = ap.parse_args()
    cluster = Cluster()
    cluster.start()
    try:
        asyncio.run(bench(cluster, args.quick, args.loops_only, args.rounds))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
