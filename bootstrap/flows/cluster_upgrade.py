"""``bootstrap cluster upgrade -i INVENTORY --to VERSION`` (kubespray's upgrade-cluster.yml).

A rolling upgrade made of the host-local commands, run over SSH as a person
would (bootstrap.flows.upgrade's contract):

1. the target install is put beside the running one on every host still to
   upgrade, in parallel (roles/agents with ``agents_switch_current: false``:
   nothing running changes);
2. control-plane hosts one at a time: ``upgrade apply VERSION`` on the first
   one, ``upgrade node`` on the others, each followed by a wait until its Node
   is Ready on the new kubelet;
3. workers in batches of ``--serial`` (else the inventory's ``serial``, else 1;
   a number of hosts or a percentage of the workers this run upgrades, as
   Ansible's ``serial``): each cordoned and drained through the Eviction API (PodDisruptionBudgets hold; kubectl's filters, drain timeout
   and ``--force``), upgraded, and uncordoned once its Node is Ready again.

A host is done when ``/opt/bootstrap/current`` names the target (the host
commands move that link last), so a second run, or one with ``--limit``
after a stop, skips it. The first host that fails stops the rollout: the host
command has rolled that host back, every other host is on a version it ran
before, and the error names the host, what happened and how to continue.
The control machine talks to the API through a control-plane host that
answers /readyz and is not the one restarting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.api.client import Client
from bootstrap.config.cluster import load_cluster_config
from bootstrap.config.inventory import load_inventory
from bootstrap.config.kubespray_vars import effective_config
from bootstrap.config.serial import KUBESPRAY_DEFAULT, Serial, parse_serial
from bootstrap.engine import Recap
from bootstrap.errors import UserError
from bootstrap.flows import node_vars, versions
from bootstrap.flows.cluster_pki import artifacts_dir, pki_dir
from bootstrap.flows.cluster_up import UpContext, cluster_vars
from bootstrap.flows.drain import DrainError, DrainOptions, drain_node, uncordon_node
from bootstrap.flows.kubeapi import KubeAPI
from bootstrap.remote.pool import close_all, connect_all, parallel_map
from bootstrap.remote.result import tail

NODES = ("", "v1", "nodes")
HOST_COMMAND_TIMEOUT = 1800.0  # the host command bounds each component's wait itself
DEFAULT_NODE_TIMEOUT = 300.0
DEFAULT_DRAIN_TIMEOUT = 360.0  # kubespray's drain_timeout


class UpgradeStopped(UserError):
    """A host failed; the rollout stopped with every host on a working install."""

    exit_code = 1


@dataclass(frozen=True)
class UpgradeOptions:
    to: str
    # Workers per batch: hosts (2, "2") or a percentage ("20%"); None: the inventory's
    # `serial`, else 1.
    serial: int | str | Serial | None = None
    limit: frozenset[str] | None = None
    dry_run: bool = False
    drain: DrainOptions = DrainOptions(timeout=DEFAULT_DRAIN_TIMEOUT)
    node_timeout: float = DEFAULT_NODE_TIMEOUT
    health_timeout: float | None = None  # passed to the host commands
    # Extra environment for one host's command (tests: the host commands' fault hook).
    host_env: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class HostStep:
    host: str
    kind: str  # "control plane" | "worker"
    current: str | None  # the install /opt/bootstrap/current names, None: none
    command: str  # "apply" | "node"
    batch: int = 0

    def done(self, target: str) -> bool:
        return self.current == target

    def describe(self, target: str) -> str:
        if self.done(target):
            return f"skip: already on {target}"
        what = f"upgrade apply {target}" if self.command == "apply" else "upgrade node"
        if self.kind == "worker":
            return f"cordon, drain, {what}, uncordon when Ready"
        return f"{what}, wait until Ready"


@dataclass
class UpgradeResult:
    target: str
    plan: list[HostStep]
    planned: list[str] = field(default_factory=list)  # what this run upgrades, in order
    upgraded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    host_times: dict[str, float] = field(default_factory=dict)
    install_time: float = 0.0
    total_time: float = 0.0
    batch_size: int = 1  # workers upgraded at once


# --- the plan ------------------------------------------------------------------

def read_current(conn) -> str | None:
    """The install /opt/bootstrap/current points at ("0.2.0"), None without one."""
    res = conn.run(f"readlink {versions.PREFIX}/current", check=False, timeout=30)
    target = res.stdout.strip()
    if not res.ok or not target:
        return None
    return target.rstrip("/").rsplit("/", 1)[-1]


def make_plan(inventory, currents: dict[str, str | None], target: str) -> list[HostStep]:
    """Every Kubernetes host in upgrade order (the skip decision is in HostStep.done;
    the workers' batches are set by batch_workers)."""
    cps = list(inventory.control_plane)
    cp_names = {h.name for h in cps}
    steps: list[HostStep] = []
    for i, h in enumerate(cps):
        # kubeadm's order: `upgrade apply` on the first host records the cluster's new
        # version, the others follow with `upgrade node`.
        steps.append(HostStep(h.name, "control plane", currents.get(h.name),
                              "apply" if i == 0 else "node"))
    workers = [h for h in inventory.workers if h.name not in cp_names]
    for h in workers:
        steps.append(HostStep(h.name, "worker", currents.get(h.name), "node"))
    return steps


def batch_workers(todo: list[HostStep], serial: Serial) -> int:
    """Number the batches of the workers this run upgrades, in order; returns the batch
    size (a percentage is of these workers: rounded down, at least 1, as Ansible)."""
    workers = [s for s in todo if s.kind == "worker"]
    size = serial.batch_size(len(workers))
    for i, step in enumerate(workers):
        step.batch = i // size + 1
    return size


def check_plan(steps: list[HostStep], target: str, limit: frozenset[str] | None,
               where: str) -> list[HostStep]:
    """The steps this run executes; refuses an order upstream's skew policy forbids."""
    chosen = [s for s in steps if limit is None or s.host in limit]
    missing = [s.host for s in chosen if s.current is None]
    if missing:
        raise UserError(f"no bootstrap install on {', '.join(missing)}", where=where,
                        hint="run `bootstrap cluster up` first")
    todo = [s for s in chosen if not s.done(target)]
    cps = [s for s in steps if s.kind == "control plane"]
    first = cps[0] if cps else None
    if first is not None and not first.done(target) and first not in chosen and any(
            s.kind == "control plane" for s in todo):
        raise UserError(f"the first control-plane host {first.host} runs `upgrade apply` "
                        "before the other control-plane hosts", where=where,
                        hint=f"add {first.host} to --limit")
    if any(s.kind == "worker" for s in todo):
        behind = [s.host for s in cps if not s.done(target) and s not in chosen]
        if behind:
            raise UserError(f"the control plane is upgraded before the nodes: "
                            f"{', '.join(behind)} {'is' if len(behind) == 1 else 'are'} "
                            f"not on {target} yet", where=where,
                            hint="add them to --limit, or leave --limit out")
    return chosen


def plan_text(steps: list[HostStep], chosen: list[HostStep], target: str) -> str:
    lines = [f"cluster upgrade to {target}:"]
    width = max((len(s.host) for s in steps), default=4)
    n = 0
    for s in steps:
        kind = s.kind + (" (first)" if s.command == "apply" else "") + \
            (f" (batch {s.batch})" if s.batch else "")
        if s not in chosen:
            lines.append(f"   -  {s.host:<{width}}  {kind:<24} {s.current or '-':>8}"
                         f"            not in --limit")
            continue
        n += 1
        arrow = f"{s.current} -> {target}" if not s.done(target) else f"{s.current}"
        lines.append(f"  {n:>2}. {s.host:<{width}}  {kind:<24} {arrow:<20} "
                     f"{s.describe(target)}")
    return "\n".join(lines)


# --- API access from the control machine ---------------------------------------

class ClusterAPI:
    """The admin credentials against whichever API server is ready and not the host
    being upgraded (in the localhost-balancer topology the control machine has no
    balancer of its own)."""

    def __init__(self, admin: Path, servers: dict[str, str]):
        self.admin = admin
        self.servers = servers  # host -> URL; empty: the kubeconfig's own server

    def _client(self, url: str | None) -> Client:
        client = Client.from_kubeconfig(self.admin, timeout=5)
        if url:
            client.server = url
        return client

    def url(self, avoid: str | None = None) -> str | None:
        if not self.servers:
            return None
        import asyncio

        async def ready(url: str) -> bool:
            client = self._client(url)
            try:
                await client.request("GET", "/readyz")
                return True
            except Exception:  # any failure: try the next server
                return False
            finally:
                await client.close()

        candidates = [u for h, u in self.servers.items() if h != avoid]
        for url in candidates:
            if asyncio.run(ready(url)):
                return url
        return candidates[0] if candidates else None

    def kube(self, avoid: str | None = None) -> KubeAPI:
        url = self.url(avoid)
        return KubeAPI(lambda: self._client(url), str(self.admin))

    def node(self, name: str) -> dict | None:
        return self.kube().get(NODES, name)

    def drain(self, name: str, opts: DrainOptions, log: Callable[[str], None]):
        return drain_node(str(self.admin), name, opts, server=self.url(avoid=name), log=log)

    def uncordon(self, name: str, log: Callable[[str], None]) -> bool:
        return uncordon_node(str(self.admin), name, server=self.url(), log=log)


def _kubelet_on(node: dict, target: str) -> bool:
    """Ready, and the kubelet posting the status is the target's (when it says)."""
    status = node.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    reported = versions.parse_component((status.get("nodeInfo") or {}).get("kubeletVersion")
                                        or "")
    return ready and (reported is None or str(reported) == target)


# --- the run -------------------------------------------------------------------

class _Rollout:
    def __init__(self, inventory, conns, api: ClusterAPI, opts: UpgradeOptions, log,
                 clock: Callable[[], float], sleep: Callable[[float], None]):
        self.inv, self.conns, self.api, self.opts = inventory, conns, api, opts
        self.log, self.clock, self.sleep = log, clock, sleep
        self.target = opts.to
        self.done: list[str] = []
        self.times: dict[str, float] = {}

    def command(self, step: HostStep) -> str:
        bin_ = versions.agents_bin(self.target)
        if step.command == "apply":
            cmd = f"{bin_}/bootstrap upgrade apply {self.target} --yes"
        else:
            cmd = f"{bin_}/bootstrap upgrade node --to {self.target} --yes"
        if self.opts.health_timeout:
            cmd += f" --health-timeout {self.opts.health_timeout:g}"
        return cmd

    def stop(self, step: HostStep, what: str, pending: list[str]) -> UpgradeStopped:
        left = [h for h in pending if h != step.host]
        hint = (f"upgraded in this run: {', '.join(self.done) or 'none'}; "
                f"not upgraded: {', '.join([step.host, *left])}. Fix {step.host}, then run "
                f"the same command again (upgraded hosts are skipped) or add "
                f"--limit {','.join([step.host, *left])}")
        return UpgradeStopped(f"upgrade to {self.target} stopped at {step.host}: {what}",
                              where="cluster upgrade", hint=hint)

    def run_host_command(self, step: HostStep) -> None:
        """The host-local upgrade over SSH; raises with its last error line."""
        conn = self.conns[step.host]
        cmd = self.command(step)
        self.log(f"[{step.host}] {cmd}")
        res = conn.run(cmd, check=False, timeout=HOST_COMMAND_TIMEOUT,
                       env=self.opts.host_env.get(step.host) or None)
        last = tail(res.stdout, lines=1)
        if res.ok:
            self.log(f"[{step.host}] {last}")
            return
        errors = [ln.strip() for ln in res.stderr.splitlines() if ln.strip()]
        detail = next((ln for ln in reversed(errors) if ln.startswith("error:")),
                      errors[-1] if errors else last or "no output")
        raise _HostFailed(f"`bootstrap upgrade {step.command}` exited {res.exit_code}: "
                          f"{detail}")

    def wait_node(self, step: HostStep) -> None:
        timeout = self.opts.node_timeout
        deadline = self.clock() + timeout
        while True:
            try:
                node = self.api.node(step.host)
                if node is not None and _kubelet_on(node, self.target):
                    self.log(f"[{step.host}] node Ready on {self.target}")
                    return
            except (UserError, OSError):
                pass  # an API server restarting: ask again
            if self.clock() >= deadline:
                raise _HostFailed(f"its node is not Ready on {self.target} after "
                                  f"{timeout:g}s (see `journalctl -u kubelet` there)")
            self.sleep(1.0)

    def control_plane(self, step: HostStep) -> None:
        self.run_host_command(step)
        self.wait_node(step)

    def worker(self, step: HostStep) -> None:
        try:
            drained = self.api.drain(step.host, self.opts.drain,
                                     lambda line: self.log(f"[{step.host}] {line}"))
        except DrainError as exc:
            # Nothing changed on the host: give its node back before stopping.
            self._uncordon(step)
            raise _HostFailed(f"drain failed: {exc.line()}") from None
        try:
            self.run_host_command(step)
        except _HostFailed:
            # Rolled back by the host command: the node serves again on its old install.
            if drained.cordoned:
                self._uncordon(step)
            raise
        self.wait_node(step)
        if drained.cordoned:
            self._uncordon(step)

    def _uncordon(self, step: HostStep) -> None:
        try:
            self.api.uncordon(step.host, lambda line: self.log(f"[{step.host}] {line}"))
        except UserError as exc:
            self.log(f"[{step.host}] warning: could not uncordon: {exc.line()}")

    def timed(self, fn, step: HostStep) -> None:
        started = self.clock()
        try:
            fn(step)
        except UserError as exc:  # a lost connection, an API error: this host failed
            raise _HostFailed(exc.line()) from None
        self.times[step.host] = self.clock() - started
        self.done.append(step.host)
        self.log(f"[{step.host}] upgraded to {self.target} in {self.times[step.host]:.1f}s")

    def run(self, todo: list[HostStep]) -> None:
        pending = [s.host for s in todo]
        for step in [s for s in todo if s.kind == "control plane"]:
            try:
                self.timed(self.control_plane, step)
            except _HostFailed as exc:
                raise self.stop(step, str(exc), pending[pending.index(step.host):]) from None
        workers = [s for s in todo if s.kind == "worker"]
        batches: dict[int, list[HostStep]] = {}
        for s in workers:
            batches.setdefault(s.batch, []).append(s)
        for _, batch in sorted(batches.items()):
            outcomes = parallel_map(self._worker_outcome, batch, max_parallel=len(batch))
            failures = {s.host: msg for s, msg in zip(batch, outcomes, strict=True) if msg}
            if failures:
                first = next(s for s in batch if s.host in failures)
                what = "; ".join(f"{h}: {m}" for h, m in failures.items()) \
                    if len(failures) > 1 else failures[first.host]
                rest = [h for h in pending if h not in self.done]
                raise self.stop(first, what, rest)


    def _worker_outcome(self, step: HostStep) -> str | None:
        """None when the worker upgraded, else why not (every worker of a batch runs)."""
        try:
            self.timed(self.worker, step)
        except _HostFailed as exc:
            return str(exc)
        return None


class _HostFailed(Exception):
    pass


def cluster_upgrade(inventory_path: str, opts: UpgradeOptions, *, config_path: str | None = None,
                    console=None, connect: Callable | None = None,
                    api: ClusterAPI | None = None, install: Callable | None = None,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> UpgradeResult:
    started = clock()
    target = _target(opts.to)
    opts = UpgradeOptions(**{**opts.__dict__, "to": target})
    flag = _serial_flag(opts.serial)
    inventory = load_inventory(inventory_path)
    where = str(inventory.path)
    effective = effective_config(inventory, config_path)
    # The API servers' port as cluster up set it (kube_apiserver_port, bindPort).
    bind_port = effective.config.bind_port
    # --serial > the inventory's `serial` > 1.
    serial, serial_from = (flag, "--serial") if flag is not None else (
        effective.upgrade_serial, effective.sources["upgradeSerial"].source)
    if opts.limit:
        unknown = sorted(set(opts.limit) - set(inventory.hosts))
        if unknown:
            raise UserError(f"--limit names unknown host(s): {', '.join(unknown)}", where=where)
    log = _logger(console)
    admin = artifacts_dir(inventory) / "admin.conf"
    if not admin.exists():
        raise UserError(f"no admin kubeconfig at {admin}", where=where,
                        hint="the cluster is made by `bootstrap cluster up` first")
    k8s = [h for h in [*inventory.control_plane, *inventory.workers]]
    hosts = list({h.name: h for h in k8s}.values())
    conns = (connect or connect_all)(hosts)
    try:
        currents = dict(zip([h.name for h in hosts],
                            parallel_map(lambda h: read_current(conns[h.name]), hosts),
                            strict=True))
        steps = make_plan(inventory, currents, target)
        chosen = check_plan(steps, target, opts.limit, where)
        todo = [s for s in chosen if not s.done(target)]
        size = batch_workers(todo, serial)
        result = UpgradeResult(target, steps, planned=[s.host for s in todo],
                               skipped=[s.host for s in chosen if s.done(target)],
                               batch_size=size)
        log(plan_text(steps, chosen, target))
        workers = sum(s.kind == "worker" for s in todo)
        if workers:
            log(f"workers: {size} at a time ({_serial_text(serial, serial_from, workers)})")
        if opts.dry_run or not todo:
            result.total_time = clock() - started
            return result
        install_started = clock()
        (install or _install)(inventory, conns, [s.host for s in todo], target, config_path,
                              console)
        result.install_time = clock() - install_started
        if api is None:
            endpoint = node_vars.api_endpoint(inventory, bind_port)
            servers = {} if endpoint.mode == "external-lb" else {
                h.name: node_vars.Endpoint("single", h.node_ip, bind_port).url
                for h in inventory.control_plane}
            api = ClusterAPI(admin, servers)
        rollout = _Rollout(inventory, conns, api, opts, log, clock, sleep)
        try:
            rollout.run(todo)
        finally:
            result.upgraded = list(rollout.done)
            result.host_times = dict(rollout.times)
        result.total_time = clock() - started
        return result
    finally:
        close_all(conns)


def _target(text: str) -> str:
    v = versions.parse(text or "")
    if v is None or "-bootstrap." in (text or ""):
        raise UserError(f"--to {text!r} is not a version (MAJOR.MINOR.PATCH)",
                        hint="e.g. bootstrap cluster upgrade -i inventory.ini --to 0.2.0")
    return str(v)


def _serial_text(serial: Serial, source: str, workers: int) -> str:
    """Where the batch size came from: "--serial 20% of 10 workers", "serial: 2 (FILE:LINE)",
    "default"."""
    if source == "default":
        return "default"
    of = f" of {workers} worker{'s' if workers > 1 else ''}" if serial.percent else ""
    if source == "--serial":
        return f"--serial {serial}{of}"
    return f"serial: {serial}{of}, {source.removeprefix('serial (').removesuffix(')')}"


def _serial_flag(value: int | str | Serial | None) -> Serial | None:
    if value is None:
        return None
    try:
        return parse_serial(value)
    except ValueError as exc:
        raise UserError(f"--serial {exc}", hint=f"e.g. --serial 2, or --serial "
                        f"{KUBESPRAY_DEFAULT} as kubespray's default") from None


def _install(inventory, conns, hosts: list[str], target: str, config_path, console) -> None:
    """The target's agents beside the running ones, on every host still to upgrade."""
    from bootstrap.flows.wheelhouse_version import version_agents_vars

    config = load_cluster_config(config_path)
    ctx = UpContext(inventory=inventory, config=config, connections=conns,
                    pki_dir=pki_dir(inventory), cluster_vars=cluster_vars(config),
                    console=console, recap=Recap())
    ctx.play(f"install {target} beside the running version", hosts, ["agents"],
             vars=version_agents_vars(target, switch_current=False, console=console))


def _logger(console) -> Callable[[str], None]:
    if console is None:
        return lambda line: None
    return lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)
