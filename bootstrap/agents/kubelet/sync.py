"""The pod worker: one pod's wanted state made real through the CRI.

``sync(pod)`` is upstream's SyncPod (kuberuntime_manager.go computePodActions +
SyncPod): volumes, the sandbox (a new one when it is gone or not ready), init
containers one at a time in order, then every app container by restartPolicy
with CrashLoopBackOff, liveness restarts and postStart hooks. ``terminate``
is killPod: preStop hooks and StopContainer inside the grace period, then
StopPodSandbox (CNI DEL, netns gone). ``cleanup`` removes everything the runtime
still holds for a pod that no longer exists. All of it is level-triggered: it
reads the runtime each time and does only what differs.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.agents.kubelet import status as S
from bootstrap.agents.kubelet import translate as T
from bootstrap.agents.kubelet.backoff import Backoff, format_duration
from bootstrap.agents.kubelet.cri import not_found
from bootstrap.agents.kubelet.images import ImageManager
from bootstrap.agents.kubelet.prober import ProbeManager, Target, run_probe
from bootstrap.agents.kubelet.probes import ProbeSpec
from bootstrap.agents.kubelet.runtime_state import (
    ContainerRecord,
    PodRuntime,
    container_record,
    read_pod,
)
from bootstrap.agents.kubelet.volumes import VolumeError, VolumeManager

log = logging.getLogger(__name__)

MIN_GRACE = 2            # minimumGracePeriodInSeconds
RETRY = 2.0              # a failed step (sandbox, mount, config) is retried after this
KEEP_DEAD = 1            # exited instances kept per container besides the current one

# Event reasons (pkg/kubelet/events), kept next to the code that emits them.
CREATED, STARTED, KILLING, FAILED = "Created", "Started", "Killing", "Failed"
BACKOFF = "BackOff"
FAILED_SANDBOX = "FailedCreatePodSandBox"
FAILED_MOUNT = "FailedMount"
FAILED_POST_START = "FailedPostStartHook"
FAILED_PRE_STOP = "FailedPreStopHook"
UNHEALTHY = "Unhealthy"

Event = Callable[[dict, str, str, str], None]
Inputs = Callable[[dict], Awaitable[T.PodInputs]]


def pod_ref(pod: dict, container: str | None = None, init: bool = False) -> dict:
    meta = pod["metadata"]
    ref = {"kind": "Pod", "apiVersion": "v1", "namespace": meta.get("namespace", "default"),
           "name": meta["name"], "uid": meta["uid"]}
    if container:
        ref["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
    return ref


def should_restart(policy: str, rec: ContainerRecord) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return rec.exit_code != 0
    return False


def grace_period(pod: dict) -> int:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    grace = int(grace)
    return grace if grace <= 0 else max(grace, MIN_GRACE)


@dataclass
class Outcome:
    runtime: PodRuntime
    view: S.View
    requeue: float | None = None


@dataclass
class PodSyncer:
    runtime: object
    node: T.NodeContext
    volumes: VolumeManager
    images: ImageManager
    prober: ProbeManager
    event: Event
    inputs: Inputs
    clock: Callable[[], float] = time.time
    crash_backoff: Backoff = field(default_factory=Backoff)
    views: dict[str, S.View] = field(default_factory=dict)

    # --- sync ------------------------------------------------------------------------

    async def sync(self, pod: dict) -> Outcome:
        uid = pod["metadata"]["uid"]
        view = self.views.setdefault(uid, S.View())
        view.waiting = {}
        rt = await read_pod(self.runtime, uid)
        out = Outcome(rt, view)
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            await self._stop_all(pod, rt, 0)
            await self._stop_sandboxes(rt)
            return await self._finish(pod, out)
        inputs = await self.inputs(pod)
        try:
            await self.volumes.setup(pod, inputs)
        except (VolumeError, OSError) as exc:
            self.event(pod_ref(pod), "Warning", FAILED_MOUNT, f"MountVolume.SetUp failed: {exc}")
            out.requeue = RETRY
            return await self._finish(pod, out)
        sandbox = rt.sandbox
        if sandbox is None or not sandbox.ready:
            if sandbox is not None and self._no_new_sandbox(pod, rt):
                await self._stop_all(pod, rt, 0)
                return await self._finish(pod, out)
            created = await self._new_sandbox(pod, rt)
            if not created:
                out.requeue = RETRY
                return await self._finish(pod, out)
            rt = out.runtime = await read_pod(self.runtime, uid)
            sandbox = rt.sandbox
        assert sandbox is not None
        inputs.pod_ip = sandbox.ips[0] if sandbox.ips else (
            self.node.node_ip if sandbox.host_network else "")
        inputs.pod_ips = sandbox.ips or ((inputs.pod_ip,) if inputs.pod_ip else ())
        inputs.etc_hosts = self._write_etc_hosts(pod, inputs.pod_ips)
        sb_config = T.sandbox_config(pod, self.node, sandbox.attempt)
        delays: list[float] = []
        if await self._init_containers(pod, rt, sandbox.id, sb_config, inputs, delays):
            await self._containers(pod, rt, sandbox.id, sb_config, inputs, delays)
        rt = out.runtime = await read_pod(self.runtime, uid)
        await self._gc(rt)
        refresh = self.volumes.next_token_refresh(uid)
        if refresh is not None:
            delays.append(refresh)
        out.requeue = min(delays) if delays else None
        return await self._finish(pod, out)

    async def _finish(self, pod: dict, out: Outcome) -> Outcome:
        uid = pod["metadata"]["uid"]
        sandbox = out.runtime.sandbox
        ip = sandbox.ips[0] if sandbox and sandbox.ips else ""
        targets = {}
        for c in (pod.get("spec") or {}).get("containers") or []:
            cur = out.runtime.current(c["name"])
            if cur is not None:
                targets[c["name"]] = Target(cur.id, cur.started_at, cur.running, ip)
        self.prober.update(pod, targets)
        for c in (pod.get("spec") or {}).get("containers") or []:
            out.view.ready[c["name"]] = self.prober.ready(uid, c["name"])
            out.view.started[c["name"]] = self.prober.started(uid, c["name"])
        return out

    def _no_new_sandbox(self, pod: dict, rt: PodRuntime) -> bool:
        """restartPolicy Never: a pod whose sandbox died after its containers ran is done."""
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        if policy != "Never":
            return False
        return any(rt.current(c["name"]) is not None
                   for c in (pod.get("spec") or {}).get("containers") or [])

    async def _new_sandbox(self, pod: dict, rt: PodRuntime) -> bool:
        old = rt.sandbox
        # Everything in a dead sandbox goes down with it; the containers start over
        # (init containers included) in the new one, as upstream.
        await self._stop_all(pod, rt, 0)
        await self._stop_sandboxes(rt)
        attempt = old.attempt + 1 if old is not None else 0
        config = T.sandbox_config(pod, self.node, attempt)
        try:
            Path(config.log_directory).mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            await self.runtime.run_pod_sandbox(config)
            log.debug("RunPodSandbox %s took %.3fs", pod["metadata"]["name"],
                      time.monotonic() - started)
        except Exception as exc:
            self.event(pod_ref(pod), "Warning", FAILED_SANDBOX,
                       f"Failed to create pod sandbox: {_err(exc)}")
            return False
        return True

    def _write_etc_hosts(self, pod: dict, ips: tuple[str, ...]) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return ""
        path = self.volumes.pod_dir(pod["metadata"]["uid"]) / "etc-hosts"
        content = T.etc_hosts(pod, self.node, ips)
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(content)
            tmp.replace(path)
        return str(path)

    async def _init_containers(self, pod, rt: PodRuntime, sandbox_id: str, sb_config,
                               inputs, delays: list[float]) -> bool:
        """True when every init container has succeeded in this sandbox."""
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        for c in (pod.get("spec") or {}).get("initContainers") or []:
            cur = rt.current(c["name"])
            if cur is not None and cur.sandbox_id == sandbox_id:
                if cur.running:
                    return False
                if cur.exited and cur.exit_code == 0:
                    continue
                if cur.exited and policy == "Never":
                    return False
            await self._start_or_backoff(pod, c, cur, sandbox_id, sb_config, inputs, delays,
                                         init=True)
            return False
        return True

    async def _containers(self, pod, rt: PodRuntime, sandbox_id: str, sb_config, inputs,
                          delays: list[float]) -> None:
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        uid = pod["metadata"]["uid"]
        jobs = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            cur = rt.current(c["name"])
            if cur is not None and cur.running and cur.sandbox_id == sandbox_id:
                reason = None
                if cur.hash and cur.hash != T.container_hash(c):
                    reason = f"Container {c['name']} definition changed, will be restarted"
                elif self.prober.liveness_failed(uid, c["name"], cur.id):
                    reason = f"Container {c['name']} failed liveness probe, will be restarted"
                if reason is None:
                    continue
                self.event(pod_ref(pod, c["name"]), "Normal", KILLING, reason)
                await self._kill_container(pod, c, cur, grace_period(pod))
                cur = await self._refresh(cur)
                if cur is None:
                    continue
            elif cur is not None and cur.sandbox_id == sandbox_id and cur.exited and \
                    not should_restart(policy, cur):
                continue
            elif cur is not None and cur.state == "created" and cur.sandbox_id == sandbox_id:
                continue
            jobs.append(self._start_or_backoff(pod, c, cur, sandbox_id, sb_config, inputs,
                                               delays, init=False))
        # Containers of one pod start concurrently; upstream starts them in order but
        # without waiting for one to be running before the next.
        await asyncio.gather(*jobs)

    async def _refresh(self, rec: ContainerRecord) -> ContainerRecord | None:
        try:
            return container_record(await self.runtime.container_status(rec.id), rec.sandbox_id)
        except Exception as exc:
            if not_found(exc):
                return None
            raise

    def _backoff_key(self, pod: dict, c: dict) -> str:
        meta = pod["metadata"]
        return f"{meta['name']}_{meta.get('namespace', 'default')}_{meta['uid']}_{c['name']}"

    async def _start_or_backoff(self, pod, c: dict, prev: ContainerRecord | None,
                                sandbox_id: str, sb_config, inputs, delays: list[float], *,
                                init: bool) -> None:
        name = c["name"]
        view = self.views[pod["metadata"]["uid"]]
        attempt = prev.attempt + 1 if prev is not None else 0
        if prev is not None and prev.exited:
            key = self._backoff_key(pod, c)
            event_time = prev.finished_at or self.clock()
            if self.crash_backoff.in_backoff_since(key, event_time):
                window = self.crash_backoff.get(key)
                meta = pod["metadata"]
                msg = (f"back-off {format_duration(window)} restarting failed container={name} "
                       f"pod={meta['name']}_{meta.get('namespace', 'default')}({meta['uid']})")
                view.waiting[name] = (S.CRASH_LOOP, msg)
                self.event(pod_ref(pod, name, init), "Warning", BACKOFF,
                           "Back-off restarting failed container " + name +
                           f" in pod {meta['name']}_{meta.get('namespace', 'default')}"
                           f"({meta['uid']})")
                delays.append(self.crash_backoff.remaining(key, event_time) + 0.05)
                return
            self.crash_backoff.next(key, event_time)
        image_ref, waiting = await self.images.ensure(pod_ref(pod, name, init), c, sb_config)
        if waiting is not None:
            view.waiting[name] = waiting
            delays.append(max(RETRY, self.images.backoff.get(
                self.images.backoff_key(pod["metadata"]["uid"], c["image"]))))
            return
        try:
            config = T.container_config(pod, c, attempt, self.node, inputs, image_ref or "")
        except T.ConfigError as exc:
            view.waiting[name] = (S.CREATE_CONFIG_ERROR, str(exc))
            self.event(pod_ref(pod, name, init), "Warning", FAILED, f"Error: {exc}")
            delays.append(RETRY)
            return
        log_dir = Path(sb_config.log_directory) / name
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            cid = await self.runtime.create_container(sandbox_id, config, sb_config)
        except Exception as exc:
            view.waiting[name] = ("CreateContainerError", _err(exc))
            self.event(pod_ref(pod, name, init), "Warning", FAILED, f"Error: {_err(exc)}")
            delays.append(RETRY)
            return
        self.event(pod_ref(pod, name, init), "Normal", CREATED, f"Created container {name}")
        try:
            await self.runtime.start_container(cid)
        except Exception as exc:
            self.event(pod_ref(pod, name, init), "Warning", FAILED, f"Error: {_err(exc)}")
            delays.append(RETRY)
            return
        self.event(pod_ref(pod, name, init), "Normal", STARTED, f"Started container {name}")
        hook = ((c.get("lifecycle") or {}).get("postStart"))
        if hook and not init:
            err = await self._run_hook(hook, cid, inputs.pod_ip, c,
                                       grace_period(pod) or MIN_GRACE)
            if err is not None:
                self.event(pod_ref(pod, name), "Warning", FAILED_POST_START, err)
                await self.runtime.stop_container(cid, grace_period(pod))

    async def _run_hook(self, hook: dict, cid: str, pod_ip: str, container: dict,
                        timeout: float) -> str | None:
        """Run a lifecycle handler; returns an error message or None."""
        if hook.get("sleep"):
            await asyncio.sleep(min(float(hook["sleep"].get("seconds") or 0), timeout))
            return None
        handler = {k: hook[k] for k in ("exec", "httpGet", "tcpSocket") if hook.get(k)}
        spec = ProbeSpec("hook", handler, timeout=timeout)
        result = await run_probe(self.runtime, self.prober.session(), spec, container,
                                 Target(cid, 0, True, pod_ip))
        if result != "success":
            kind = next(iter(handler), "hook")
            return f"{kind} hook for container {container['name']!r} failed"
        return None

    # --- termination -----------------------------------------------------------------------

    async def _kill_container(self, pod: dict, c: dict | None, rec: ContainerRecord,
                              grace: int) -> None:
        start = self.clock()
        hook = ((c or {}).get("lifecycle") or {}).get("preStop")
        if hook and rec.running and grace > 0:
            try:
                err = await asyncio.wait_for(
                    self._run_hook(hook, rec.id, "", c or {}, grace), grace)
            except TimeoutError:
                err = f"PreStopHook for container {rec.name!r} did not finish in {grace}s"
            if err:
                self.event(pod_ref(pod, rec.name), "Warning", FAILED_PRE_STOP, err)
        remaining = max(MIN_GRACE if grace > 0 else 0, int(grace - (self.clock() - start)))
        try:
            await self.runtime.stop_container(rec.id, remaining)
        except Exception as exc:
            if not not_found(exc):
                raise

    async def _stop_all(self, pod: dict, rt: PodRuntime, grace: int) -> None:
        specs = {c["name"]: c for c in ((pod.get("spec") or {}).get("containers") or []) +
                 ((pod.get("spec") or {}).get("initContainers") or [])}
        jobs = []
        for rec in rt.all_containers():
            if rec.running or rec.state == "created":
                if rec.running:
                    self.event(pod_ref(pod, rec.name), "Normal", KILLING,
                               f"Stopping container {rec.name}")
                jobs.append(self._kill_container(pod, specs.get(rec.name), rec, grace))
        await asyncio.gather(*jobs)

    async def _stop_sandboxes(self, rt: PodRuntime) -> None:
        # StopPodSandbox is idempotent and also releases the network of a sandbox
        # that is already NOTREADY (its IP and veth), so every one gets it.
        for sb in rt.sandboxes:
            await _ignore_missing(self.runtime.stop_pod_sandbox(sb.id))

    async def terminate(self, pod: dict, grace: int | None = None) -> PodRuntime:
        """killPod: containers (preStop, grace), then the sandbox."""
        uid = pod["metadata"]["uid"]
        rt = await read_pod(self.runtime, uid)
        await self._stop_all(pod, rt, grace_period(pod) if grace is None else grace)
        await self._stop_sandboxes(rt)
        return await read_pod(self.runtime, uid)

    async def cleanup(self, uid: str, pod: dict | None = None) -> None:
        """Remove every container, sandbox, volume and log dir of a pod that is gone."""
        rt = await read_pod(self.runtime, uid)
        if pod is not None:
            await self._stop_all(pod, rt, 0)
        for rec in rt.all_containers():
            if rec.running:
                await self.runtime.stop_container(rec.id, 0)
            await _ignore_missing(self.runtime.remove_container(rec.id))
        for sb in rt.sandboxes:
            await _ignore_missing(self.runtime.stop_pod_sandbox(sb.id))
            await _ignore_missing(self.runtime.remove_pod_sandbox(sb.id))
        await self.prober.remove_pod(uid)
        self.volumes.teardown(uid)
        self.views.pop(uid, None)
        if pod is not None:
            shutil.rmtree(T.pod_log_dir(pod, self.node.pod_log_root), ignore_errors=True)

    async def _gc(self, rt: PodRuntime) -> None:
        """Keep the current and one dead instance per container; drop dead sandboxes
        that no longer hold containers."""
        current = rt.sandbox
        for items in rt.containers.values():
            for rec in items[1 + KEEP_DEAD:]:
                if not rec.running:
                    await _ignore_missing(self.runtime.remove_container(rec.id))
        in_use = {c.sandbox_id for c in rt.all_containers()}
        for sb in rt.sandboxes:
            if current is not None and sb.id != current.id and not sb.ready and \
                    sb.id not in in_use:
                await _ignore_missing(self.runtime.remove_pod_sandbox(sb.id))


async def _ignore_missing(coro) -> None:
    try:
        await coro
    except Exception as exc:
        if not not_found(exc):
            raise


def _err(exc: BaseException) -> str:
    detail = getattr(exc, "details", None)
    return (detail() if callable(detail) else None) or str(exc) or type(exc).__name__
