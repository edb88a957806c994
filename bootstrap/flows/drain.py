"""Cordon, drain and uncordon a node as ``kubectl drain`` does (k8s.io/kubectl/pkg/drain).

Used by ``cluster upgrade`` before a worker's agents restart: the node is
cordoned (``spec.unschedulable``), its pods are sorted by kubectl's filters
(mirror pods and DaemonSet-managed pods are left alone; pods without a
controller and pods with emptyDir data are refused unless ``force`` /
``delete_emptydir_data``), each remaining pod is evicted through the Eviction
API (policy/v1), so PodDisruptionBudgets hold: a 429 is retried every few
seconds until the drain timeout, and the drain waits until every evicted pod
is gone (or replaced by a new pod of the same name) before it reports success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bootstrap.api.client import Client
from bootstrap.api.errors import APIError
from bootstrap.errors import UserError

NODES = ("", "v1", "nodes")
PODS = ("", "v1", "pods")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

# kubectl's filter messages (pkg/drain/filters.go), so users meet the words they know.
DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "Pods declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"


class DrainError(UserError):
    """The node could not be drained; it stays cordoned, as kubectl leaves it."""


@dataclass(frozen=True)
class DrainOptions:
    force: bool = False
    delete_emptydir_data: bool = False
    ignore_daemonsets: bool = True
    # Seconds for the whole drain (evictions and the wait for the pods to go); 0: no limit.
    timeout: float = 0.0
    # Passed to each eviction's DeleteOptions; negative: the pod's own grace period.
    grace_period: int = -1
    retry_interval: float = 5.0  # kubectl waits 5 s between evictions a budget refused
    poll_interval: float = 1.0


@dataclass
class DrainResult:
    node: str
    # False: the node was cordoned before this drain (whoever did it uncordons it).
    cordoned: bool = False
    evicted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _key(pod: dict) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace')}/{meta['name']}"


def _controller(pod: dict) -> dict | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def classify(pods: list[dict], opts: DrainOptions) -> tuple[list[dict], list[str], list[str]]:
    """kubectl's filters in its order: (pods to evict, warnings, fatal errors).

    A pod the filters skip (mirror pod, DaemonSet pod with ignore_daemonsets) is
    neither evicted nor an error; a fatal filter stops the drain before any eviction."""
    evict: list[dict] = []
    warned: dict[str, list[str]] = {}
    fatal: dict[str, list[str]] = {}
    for pod in pods:
        meta = pod["metadata"]
        ref = _controller(pod)
        if ref is not None and ref.get("kind") == "DaemonSet":
            bucket = warned if opts.ignore_daemonsets else fatal
            bucket.setdefault(DAEMONSET_WARNING if opts.ignore_daemonsets
                              else DAEMONSET_FATAL, []).append(_key(pod))
            continue
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            continue  # the kubelet owns static pods; the API copy cannot be evicted
        problems = False
        if not _terminal(pod) and any("emptyDir" in v for v in
                                      (pod.get("spec") or {}).get("volumes") or []):
            if opts.delete_emptydir_data:
                warned.setdefault(LOCAL_STORAGE_WARNING, []).append(_key(pod))
            else:
                fatal.setdefault(LOCAL_STORAGE_FATAL, []).append(_key(pod))
                problems = True
        if not _terminal(pod) and ref is None:
            if opts.force:
                warned.setdefault(UNMANAGED_WARNING, []).append(_key(pod))
            else:
                fatal.setdefault(UNMANAGED_FATAL, []).append(_key(pod))
                problems = True
        if not problems:
            evict.append(pod)
    warnings = [f"{msg}: {', '.join(keys)}" for msg, keys in warned.items()]
    errors = [f"cannot delete {msg}: {', '.join(keys)}" for msg, keys in fatal.items()]
    return evict, warnings, errors


async def cordon(client: Client, node: str, unschedulable: bool = True) -> bool:
    """Set ``spec.unschedulable``; False when the node already was in that state."""
    try:
        obj = await client.get(NODES, node)
    except APIError as exc:
        raise DrainError(f"node {node!r}: {exc.code} {exc.reason}: {exc}") from None
    if bool((obj.get("spec") or {}).get("unschedulable")) == unschedulable:
        return False
    # A merge patch as kubectl's: null removes the field on uncordon.
    await client.patch(NODES, node, {"spec": {"unschedulable": True if unschedulable else None}},
                       patch_type="merge")
    return True


class _Drainer:
    def __init__(self, client: Client, node: str, opts: DrainOptions,
                 log: Callable[[str], None], clock: Callable[[], float]):
        self.client, self.node, self.opts, self.log, self.clock = client, node, opts, log, clock
        self.deadline = clock() + opts.timeout if opts.timeout > 0 else None

    def _expired(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def _timeout_text(self) -> str:
        return f"global timeout reached: {self.opts.timeout:g}s"

    async def evict(self, pod: dict) -> None:
        meta = pod["metadata"]
        body: dict = {"apiVersion": "policy/v1", "kind": "Eviction",
                      "metadata": {"name": meta["name"], "namespace": meta.get("namespace")}}
        if self.opts.grace_period >= 0:
            body["deleteOptions"] = {"gracePeriodSeconds": self.opts.grace_period}
        while True:
            try:
                await self.client.create(PODS, body, meta.get("namespace"),
                                         subresource="eviction", name=meta["name"])
                self.log(f"pod/{meta['name']} evicted")
                return
            except APIError as exc:
                if exc.code == 404:
                    return  # gone already
                if exc.code != 429:
                    raise DrainError(f"error when evicting pods/{meta['name']!r} -n "
                                     f"{meta.get('namespace')!r}: {exc}") from None
                if self._expired():
                    raise DrainError(f"error when evicting pods/{meta['name']!r} -n "
                                     f"{meta.get('namespace')!r}: {self._timeout_text()}",
                                     hint=_budget_cause(exc)) from None
                self.log(f"error when evicting pods/{meta['name']!r} -n "
                         f"{meta.get('namespace')!r} (will retry after "
                         f"{self.opts.retry_interval:g}s): {exc}")
            await asyncio.sleep(self.opts.retry_interval)

    async def wait_gone(self, pod: dict) -> None:
        """Gone: 404, or a new pod under the same name (a StatefulSet's replacement)."""
        meta = pod["metadata"]
        while True:
            try:
                now = await self.client.get(PODS, meta["name"], meta.get("namespace"))
            except APIError as exc:
                if exc.code == 404:
                    return
                raise DrainError(f"error when waiting for pod {meta['name']!r} in namespace "
                                 f"{meta.get('namespace')!r} to terminate: {exc}") from None
            if now["metadata"].get("uid") != meta.get("uid"):
                return
            if self._expired():
                raise DrainError(f"error when waiting for pod {meta['name']!r} in namespace "
                                 f"{meta.get('namespace')!r} to terminate: "
                                 f"{self._timeout_text()}",
                                 hint=f"see `journalctl -u kubelet` on {self.node}")
            await asyncio.sleep(self.opts.poll_interval)

    async def evict_and_wait(self, pod: dict) -> None:
        await self.evict(pod)
        await self.wait_gone(pod)


def _budget_cause(exc: APIError) -> str | None:
    for cause in (exc.details or {}).get("causes") or []:
        if cause.get("reason") == "DisruptionBudget":
            return cause.get("message")
    return None


async def drain(client: Client, node: str, opts: DrainOptions = DrainOptions(), *,
                log: Callable[[str], None] = lambda line: None,
                clock: Callable[[], float] = time.monotonic) -> DrainResult:
    """Cordon ``node`` and evict its pods; raises DrainError (node left cordoned)."""
    result = DrainResult(node)
    result.cordoned = await cordon(client, node)
    log(f"node/{node} cordoned" if result.cordoned else f"node/{node} already cordoned")
    try:
        listed = await client.list_all(PODS, None, field_selector=f"spec.nodeName={node}")
    except APIError as exc:
        raise DrainError(f"cannot list the pods on node {node!r}: {exc.code} {exc.reason}: "
                         f"{exc}") from None
    pods, result.warnings, errors = classify(listed.get("items") or [], opts)
    for warning in result.warnings:
        log(f"Warning: {warning}")
    if errors:
        raise DrainError(f"unable to drain node {node!r}: {'; '.join(errors)}")
    drainer = _Drainer(client, node, opts, log, clock)
    tasks = [asyncio.create_task(drainer.evict_and_wait(p)) for p in pods]
    try:
        # Every pod at once, as kubectl's goroutines: one budget's wait does not hold
        # up pods no budget covers. The first error cancels the rest.
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    result.evicted = [_key(p) for p in pods]
    log(f"node/{node} drained")
    return result


def _client(kubeconfig: str, server: str | None = None) -> Client:
    from bootstrap.api.client import KubeconfigError
    try:
        client = Client.from_kubeconfig(kubeconfig)
    except KubeconfigError as exc:
        raise UserError(str(exc)) from None
    if server:
        # The kubeconfig's credentials against another API server of the same cluster
        # (cluster upgrade talks to one that is not restarting).
        client.server = server.rstrip("/")
    return client


def _sync(kubeconfig: str, fn, server: str | None = None) -> object:
    async def go():
        client = _client(kubeconfig, server)
        try:
            return await fn(client)
        except APIError as exc:
            raise DrainError(f"API request failed: {exc.code} {exc.reason}: {exc}",
                             where=kubeconfig) from None
        except OSError as exc:
            raise DrainError(f"cannot reach the API server: {exc}", where=kubeconfig) from None
        finally:
            await client.close()
    return asyncio.run(go())


def drain_node(kubeconfig: str, node: str, opts: DrainOptions = DrainOptions(), *,
               log: Callable[[str], None] = lambda line: None,
               server: str | None = None) -> DrainResult:
    """Synchronous ``drain`` for the flows (click commands and plays are synchronous)."""
    return _sync(kubeconfig, lambda c: drain(c, node, opts, log=log),  # type: ignore[return-value]
                 server)


def uncordon_node(kubeconfig: str, node: str, *,
                  log: Callable[[str], None] = lambda line: None,
                  server: str | None = None) -> bool:
    changed = _sync(kubeconfig, lambda c: cordon(c, node, unschedulable=False), server)
    log(f"node/{node} uncordoned" if changed else f"node/{node} already uncordoned")
    return bool(changed)
