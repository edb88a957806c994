"""Probe workers (I/O): one task per container probe, results for the pod worker.

The decisions live in probes.py; this module runs exec (CRI ExecSync), httpGet
and tcpSocket probes on each worker's period and tells the pod worker (through
``on_change(uid)``) when a published result changes. A worker wakes early when
its container is replaced, so a new container is probed without waiting a period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bootstrap.agents.kubelet import probes as P

log = logging.getLogger(__name__)


@dataclass
class Target:
    """The container instance a probe looks at."""
    container_id: str
    started_at: float
    running: bool
    pod_ip: str


def _port(value, container: dict) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    raise ValueError(f"unknown port name {value!r}")


async def run_probe(runtime, session: aiohttp.ClientSession, spec: P.ProbeSpec,
                    container: dict, target: Target) -> str:
    h = spec.handler
    try:
        if "exec" in h:
            resp = await runtime.exec_sync(target.container_id, list(h["exec"].get("command")
                                                                     or []),
                                           max(1, int(spec.timeout)))
            return P.SUCCESS if resp.exit_code == 0 else P.FAILURE
        if "httpGet" in h:
            g = h["httpGet"]
            host = g.get("host") or target.pod_ip
            scheme = (g.get("scheme") or "HTTP").lower()
            path = g.get("path") or "/"
            if not path.startswith("/"):
                path = "/" + path
            url = f"{scheme}://{host}:{_port(g.get('port'), container)}{path}"
            headers = {"User-Agent": "kube-probe/1.32"}
            headers.update({x["name"]: x.get("value", "") for x in g.get("httpHeaders") or []})
            async with session.get(url, headers=headers, ssl=False,
                                   timeout=aiohttp.ClientTimeout(total=spec.timeout)) as resp:
                return P.SUCCESS if 200 <= resp.status < 400 else P.FAILURE
        if "tcpSocket" in h:
            t = h["tcpSocket"]
            host = t.get("host") or target.pod_ip
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, _port(t.get("port"), container)), spec.timeout)
            writer.close()
            return P.SUCCESS
    except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as exc:
        log.debug("probe %s of %s failed: %s", spec.kind, container.get("name"), exc)
        return P.FAILURE
    except Exception as exc:  # an RPC error from ExecSync counts as a failed probe
        log.debug("probe %s of %s errored: %s", spec.kind, container.get("name"), exc)
        return P.FAILURE
    log.warning("probe %s of %s: unsupported handler %s", spec.kind, container.get("name"),
                sorted(h))
    return P.FAILURE


class _Worker:
    def __init__(self, manager: ProbeManager, uid: str, container: dict, spec: P.ProbeSpec):
        self.manager = manager
        self.uid = uid
        self.container = container
        self.spec = spec
        self.state = P.ProbeState(spec)
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self.run(), name=f"probe-{spec.kind}-{container['name']}")

    async def run(self) -> None:
        m = self.manager
        name = self.container["name"]
        while True:
            target = m.targets.get((self.uid, name))
            if target is not None and target.running:
                started = m.started(self.uid, name)
                now = m.clock()
                if self.state.due(target.container_id, target.started_at, now, started):
                    outcome = await run_probe(m.runtime, m.session(), self.spec, self.container,
                                              target)
                    if self.state.container_id == target.container_id and \
                            self.state.observe(outcome):
                        m.publish(self.uid, name, self.spec.kind, self.state.result)
                elif now - target.started_at < self.spec.initial_delay:
                    # Wake right when the initial delay ends, not a period later.
                    delay = self.spec.initial_delay - (now - target.started_at)
                    await self._sleep(min(delay, self.spec.period))
                    continue
            elif target is not None and self.state.container_stopped():
                m.publish(self.uid, name, self.spec.kind, self.state.result)
            await self._sleep(self.spec.period)

    async def _sleep(self, seconds: float) -> None:
        # A timer that sets the same event, rather than wait_for: wait_for can swallow
        # a cancellation that races its timeout, and the worker would never stop.
        timer = asyncio.get_running_loop().call_later(seconds, self.wake.set)
        try:
            await self.wake.wait()
        finally:
            timer.cancel()
        self.wake.clear()


class ProbeManager:
    def __init__(self, runtime, on_change: Callable[[str], None],
                 clock: Callable[[], float] = time.time):
        self.runtime = runtime
        self.on_change = on_change
        self.clock = clock
        self.targets: dict[tuple[str, str], Target] = {}
        self.results: dict[tuple[str, str, str], str] = {}
        self._workers: dict[tuple[str, str, str], _Worker] = {}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Probes must not reuse connections (upstream disables keep-alive).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True))
        return self._session

    def publish(self, uid: str, name: str, kind: str, result: str) -> None:
        self.results[(uid, name, kind)] = result
        self.on_change(uid)

    def result(self, uid: str, name: str, kind: str) -> str | None:
        if (uid, name, kind) not in self.results and (uid, name, kind) not in self._workers:
            return None  # no such probe
        return self.results.get((uid, name, kind), P.INITIAL[kind])

    def started(self, uid: str, name: str) -> bool:
        r = self.result(uid, name, P.STARTUP)
        return r is None or r == P.SUCCESS

    def ready(self, uid: str, name: str) -> bool:
        r = self.result(uid, name, P.READINESS)
        return r is None or r == P.SUCCESS

    def liveness_failed(self, uid: str, name: str, container_id: str) -> bool:
        worker = self._workers.get((uid, name, P.LIVENESS))
        startup = self._workers.get((uid, name, P.STARTUP))
        for w in (worker, startup):
            if w is not None and w.state.container_id == container_id and \
                    w.state.result == P.FAILURE and w.state.on_hold:
                return True
        return False

    def update(self, pod: dict, targets: dict[str, Target]) -> None:
        """Make sure every probe of the pod has a worker and sees the current container."""
        uid = pod["metadata"]["uid"]
        for c in (pod.get("spec") or {}).get("containers") or []:
            name = c["name"]
            target = targets.get(name)
            old = self.targets.get((uid, name))
            if target is not None:
                self.targets[(uid, name)] = target
            for kind in P.KINDS:
                spec = P.ProbeSpec.from_container(c, kind)
                if spec is None:
                    continue
                key = (uid, name, kind)
                worker = self._workers.get(key)
                if worker is None:
                    self._workers[key] = _Worker(self, uid, c, spec)
                elif target is not None and (old is None or old.container_id !=
                                             target.container_id or old.running !=
                                             target.running):
                    if kind == P.READINESS and old is not None and \
                            old.container_id != target.container_id:
                        self.results.pop(key, None)  # a new container starts unready
                    worker.wake.set()

    async def remove_pod(self, uid: str) -> None:
        keys = [k for k in self._workers if k[0] == uid]
        tasks = []
        for key in keys:
            w = self._workers.pop(key)
            w.task.cancel()
            tasks.append(w.task)
            self.results.pop(key, None)
        for key in [k for k in self.targets if k[0] == uid]:
            del self.targets[key]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        for uid in {k[0] for k in self._workers}:
            await self.remove_pod(uid)
        if self._session is not None:
            await self._session.close()
