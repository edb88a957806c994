"""Running workload controllers on the FakeClient for unit tests: seed objects,
run the controller with real informers, wait for a condition, play kubelet."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from datetime import UTC, datetime

from bootstrap.api.fake import FakeClient
from bootstrap.api.informer import SharedInformerFactory

PODS = ("", "v1", "pods")


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, start: float | None = None):
        self.now = start if start is not None else datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """EventRecorder surface that keeps events in memory."""

    def __init__(self):
        self.events: list[tuple[str, str, str, str]] = []   # (kind/name, type, reason, msg)

    def event(self, obj, type_, reason, message):
        self.events.append((f"{obj.get('kind')}/{obj['metadata']['name']}", type_, reason,
                            message))

    def reasons(self) -> list[str]:
        return [e[2] for e in self.events]


async def until(cond, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        while True:
            if cond():
                return
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(cls, *seed, clock=None, prepare=None, **kwargs):
    """Yield (client, controller, recorder) with the controller running;
    ``prepare(client)`` runs before the controller starts (to inject failures)."""
    client = FakeClient()
    client.seed(*seed)
    if prepare is not None:
        prepare(client)
    factory = SharedInformerFactory(client)
    recorder = Recorder()
    if clock is not None:
        kwargs["clock"] = clock
    classes = cls if isinstance(cls, (list, tuple)) else [cls]
    ctls = [c(client, factory, recorder, **kwargs) for c in classes]
    tasks = [asyncio.create_task(c.run()) for c in ctls]
    try:
        await factory.wait_synced(timeout=5)
        yield client, (ctls if len(ctls) > 1 else ctls[0]), recorder
    finally:
        for task in tasks:
            task.cancel()
        # Bounded: a stuck shutdown must not hide the test's own failure.
        await asyncio.wait([asyncio.ensure_future(asyncio.gather(*tasks,
                                                                 return_exceptions=True)),
                            asyncio.ensure_future(factory.stop())], timeout=2)


@contextlib.asynccontextmanager
async def kubelet(client, ready: bool = True, at=None):
    """A background task that binds every new pod and marks it Running (and Ready)."""
    done: set[str] = set()

    async def loop():
        while True:
            for pod in client.objects("pods"):
                uid = pod["metadata"]["uid"]
                if pod["metadata"].get("deletionTimestamp"):
                    # The container stopped: finish the graceful deletion.
                    try:
                        await client.delete(PODS, pod["metadata"]["name"],
                                            pod["metadata"]["namespace"],
                                            grace_period_seconds=0)
                    except Exception:  # noqa: BLE001 - gone already
                        pass
                    continue
                if uid in done:
                    continue
                done.add(uid)
                try:
                    await set_pod_status(client, pod, ready=ready,
                                         at=at() if at is not None else None)
                except Exception:  # noqa: BLE001 - deleted meanwhile
                    done.discard(uid)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(loop())
    try:
        yield done
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def set_pod_status(client, pod: dict, phase: str = "Running", ready: bool = True,
                         at: float | None = None, node: str | None = "node-1",
                         exit_code: int | None = None) -> dict:
    """Play kubelet: bind (spec.nodeName; a DaemonSet pod goes to the node its
    affinity names) and write a pod status."""
    current = await client.get(PODS, pod["metadata"]["name"], pod["metadata"]["namespace"])
    pinned = (((current["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if node and pinned and pinned[0].get("matchFields"):
        node = pinned[0]["matchFields"][0]["values"][0]
    if node and not current["spec"].get("nodeName"):
        upd = copy.deepcopy(current)
        upd["spec"]["nodeName"] = node
        current = await client.update(PODS, upd)
    when = stamp(at) if at is not None else stamp(datetime.now(UTC).timestamp())
    status = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": when}]}
    if exit_code is not None:
        status["containerStatuses"] = [{
            "name": current["spec"]["containers"][0]["name"], "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "finishedAt": when}}}]
    upd = copy.deepcopy(current)
    upd["status"] = status
    return await client.update(PODS, upd, subresource="status")


def template(labels: dict, image: str = "x") -> dict:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "c", "image": image}],
                     "restartPolicy": "Always"}}
