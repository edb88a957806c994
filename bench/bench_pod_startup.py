"""Pod startup through our kubelet vs. a plain CRI client; prints numbers, asserts nothing.

    .venv/bin/python bench/bench_pod_startup.py [--pods 60] [--rate 5]

Two sandbox hosts with containerd (the containerd role, images imported), the
API server on loopback (relayed to the sandbox bridge), and our kubelet on each
host. N pods (busybox ``sleep``, image present, half per node via nodeName) are
created at R pods/s; a watch on the machine records when each is first seen
Running and Ready: p50/p99 from create to each. The floor: a plain CRI client
on the machine starts the same pods (the same PodSandboxConfig/ContainerConfig
from translate.py) on the same containerds at the same rate, from RunPodSandbox
to StartContainer returning. Kubelet RSS on a node idle and with N/2 pods.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import yaml
from cri_api.v1 import api_pb2 as cri
from cri_api.v1 import api_pb2_grpc as cri_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootstrap import sandbox  # noqa: E402
from bootstrap.agents.kubelet import translate as T  # noqa: E402
from bootstrap.api.client import Client  # noqa: E402
from bootstrap.sandbox import state as sandbox_state  # noqa: E402
from tests.integration.cluster import running_cluster  # noqa: E402
from tests.integration.kubelet_host import (  # noqa: E402
    Relay,
    converge_containerd,
    gateway,
    host_socket,
    retarget,
    ssh,
)

NAME = "klbench"
IMAGE = "docker.io/library/busybox:1.35"
UNIT = "kl-kubelet"
PYTHON = "/work/main/.venv/bin/python"
PODS = ("", "v1", "pods")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def pod_manifest(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"bench": "startup"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "main", "image": IMAGE,
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}


async def kubelet_run(client: Client, nodes: list[str], count: int, rate: float) -> dict:
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        listing = await client.list(PODS, "default")
        rv = listing["metadata"]["resourceVersion"]
        async for ev in client.watch(PODS, "default", resource_version=rv,
                                     label_selector="bench=startup"):
            obj = ev.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            st = obj.get("status") or {}
            now = time.monotonic()
            if st.get("phase") == "Running":
                running.setdefault(name, now)
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in st.get("conditions") or []):
                ready.setdefault(name, now)
            if len(ready) >= count:
                done.set()
                return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    start = time.monotonic()
    for i in range(count):
        name = f"bench-{i:03d}"
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        created[name] = time.monotonic()
        await client.create(PODS, pod_manifest(name, nodes[i % len(nodes)]), "default")
    try:
        await asyncio.wait_for(done.wait(), 300)
    finally:
        watcher.cancel()
    return {"running": [running[n] - created[n] for n in created if n in running],
            "ready": [ready[n] - created[n] for n in created if n in ready]}


async def cri_floor(sockets: dict[str, str], roots: dict[str, str], count: int,
                    rate: float) -> list[float]:
    """The same pods straight through CRI: RunPodSandbox, CreateContainer, StartContainer."""
    chans = {n: grpc.aio.insecure_channel(f"unix:{s}") for n, s in sockets.items()}
    stubs = {n: cri_grpc.RuntimeServiceStub(c) for n, c in chans.items()}
    nodes = list(sockets)
    times: list[float] = []
    made: list[tuple[str, str]] = []

    async def one(i: int) -> None:
        node = nodes[i % len(nodes)]
        pod = pod_manifest(f"floor-{i:03d}", node)
        pod["metadata"]["uid"] = f"floor-{os.getpid()}-{i}"
        ctx = T.NodeContext(node_name=node)
        sb_cfg = T.sandbox_config(pod, ctx)
        Path(roots[node] + sb_cfg.log_directory, "main").mkdir(parents=True, exist_ok=True)
        c_cfg = T.container_config(pod, pod["spec"]["containers"][0], 0, ctx, T.PodInputs())
        t0 = time.monotonic()
        sb = await stubs[node].RunPodSandbox(cri.RunPodSandboxRequest(config=sb_cfg), timeout=120)
        made.append((node, sb.pod_sandbox_id))
        c = await stubs[node].CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=sb.pod_sandbox_id, config=c_cfg, sandbox_config=sb_cfg), timeout=120)
        await stubs[node].StartContainer(cri.StartContainerRequest(container_id=c.container_id),
                                         timeout=120)
        times.append(time.monotonic() - t0)

    start = time.monotonic()
    jobs = []
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        jobs.append(asyncio.create_task(one(i)))
    await asyncio.gather(*jobs)
    for node, sid in made:
        await stubs[node].StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sid),
                                         timeout=120)
        await stubs[node].RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sid),
                                           timeout=120)
    for c in chans.values():
        await c.close()
    return times


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def kubelet_pids() -> dict[str, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"bootstrap.agents.kubelet" in cmd:
            for arg in cmd:
                if arg.startswith(b"--hostname-override="):
                    out[arg.split(b"=", 1)[1].decode()] = int(d.name)
    return out


def machine_busy() -> float:
    """CPU seconds spent by everything on the machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(f) for i, f in enumerate(fields) if i not in (3, 4))  # minus idle, iowait
    return busy / CLK_TCK


def cpu_snapshot(cluster, nodes: list[str]) -> dict[str, float]:
    snap = {"machine (all processes)": machine_busy(),
            "API server": proc_cpu(cluster.server.proc.pid),
            "etcd": proc_cpu(cluster.etcd.proc.pid)}
    for n, pid in kubelet_pids().items():
        snap[f"kubelet {n}"] = proc_cpu(pid)
    for n in nodes:
        usage = Path(f"/sys/fs/cgroup/cpuacct/bootstrap-sandbox/{NAME}/{n}/cpuacct.usage")
        if usage.exists():
            snap[f"host {n} (all its processes)"] = int(usage.read_text()) / 1e9
    return snap


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if k in before}


def rss_kib(env, ip: str) -> int:
    out = env["sh"](ip, f"cat /proc/$(systemctl show -p MainPID --value {UNIT})/status").stdout
    for line in out.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


async def wait_nodes_ready(client: Client, nodes: list[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = 0
        for n in nodes:
            try:
                node = await client.get(("", "v1", "nodes"), n)
            except Exception:
                continue
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", [])):
                ready += 1
        if ready == len(nodes):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("nodes did not become Ready")


async def wait_pods_gone(client: Client, prefix: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = (await client.list(PODS, "default"))["items"]
        if not [p for p in items if p["metadata"]["name"].startswith(prefix)]:
            return
        await asyncio.sleep(0.5)


async def measure(cluster, env, nodes: list[str], args) -> None:
    client = Client.from_kubeconfig(cluster.admin)
    try:
        await wait_nodes_ready(client, nodes)
        # What the controller manager would make: the namespace's default ServiceAccount.
        try:
            await client.create(("", "v1", "serviceaccounts"), {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "default", "namespace": "default"}}, "default")
        except Exception:
            pass
        await asyncio.sleep(5)
        idle = {n: rss_kib(env, env["ips"][n]) for n in nodes}
        cpu0, t0 = cpu_snapshot(cluster, nodes), time.monotonic()
        kub = await kubelet_run(client, nodes, args.pods, args.rate)
        kub_cpu, kub_wall = cpu_delta(cpu0, cpu_snapshot(cluster, nodes)), time.monotonic() - t0
        await asyncio.sleep(3)
        loaded = {n: rss_kib(env, env["ips"][n]) for n in nodes}
        for i in range(args.pods):
            await client.delete(PODS, f"bench-{i:03d}", "default")
        await wait_pods_gone(client, "bench-")
        if args.keep_logs:
            Path(args.keep_logs).write_text(env["sh"](
                env["ips"][nodes[0]], f"journalctl -u {UNIT} --no-pager").stdout)
        # The floor runs without kubelets: a kubelet removes sandboxes of pods it does
        # not know (that is its orphan cleanup), which the floor's pods are.
        for n in nodes:
            env["sh"](env["ips"][n], f"systemctl stop {UNIT}")
        roots = {n: f"/proc/{sandbox_state.load(NAME).hosts[n].init_pid}/root" for n in nodes}
        cpu0, t0 = cpu_snapshot(cluster, nodes), time.monotonic()
        floor = await cri_floor({n: host_socket(NAME, n) for n in nodes}, roots, args.pods,
                                args.rate)
        floor_cpu, floor_wall = cpu_delta(cpu0, cpu_snapshot(cluster, nodes)), \
            time.monotonic() - t0
    finally:
        await client.close()
    print(f"\npod startup, {args.pods} pods over {len(nodes)} nodes at {args.rate} pods/s, "
          "image present")
    print(f"{'':34}{'p50':>8}{'p99':>8}{'max':>8}   n")
    rows = [("kubelet: create -> Running", kub["running"]),
            ("kubelet: create -> Ready", kub["ready"]),
            ("plain CRI: RunPodSandbox -> started", floor)]
    for label, values in rows:
        print(f"{label:34}{pct(values, 50):8.3f}{pct(values, 99):8.3f}"
              f"{max(values or [float('nan')]):8.3f}   {len(values)}")
    if floor and kub["ready"]:
        print(f"kubelet overhead (p50 Ready / p50 floor): "
              f"{statistics.median(kub['ready']) / statistics.median(floor):.2f}x")
    print(f"\nCPU seconds used (cores on this machine: {os.cpu_count()})")
    print(f"{'':36}{'kubelet run':>14}{'CRI floor':>12}")
    print(f"{'wall time':36}{kub_wall:14.1f}{floor_wall:12.1f}")
    for key in kub_cpu:
        print(f"{key:36}{kub_cpu[key]:14.1f}{floor_cpu.get(key, float('nan')):12.1f}")
    for n in nodes:
        print(f"kubelet RSS on {n}: idle {idle[n] / 1024:.1f} MiB, with "
              f"{args.pods // len(nodes)} pods {loaded[n] / 1024:.1f} MiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=60)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--kubelet-v", type=int, default=0, help="the kubelets' -v")
    ap.add_argument("--keep-logs", help="copy node 1's kubelet journal here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (sandbox hosts)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kl-bench-", dir="/var/tmp"))
    relay = None
    with running_cluster() as cluster:
        try:
            inventory = sandbox.up(NAME, 2)
            st = sandbox_state.load(NAME)
            paths = sandbox.paths(NAME)
            nodes = sorted(st.hosts)
            ips = {n: st.hosts[n].ip for n in nodes}
            env = {"ips": ips, "sh": lambda ip, script: ssh(paths["key"], paths["known_hosts"],
                                                          ip, script)}
            converge_containerd(inventory, work / "images")
            relay = Relay(gateway(NAME), cluster.server.port)
            shutil.copy(cluster.pki.path("ca.crt"), work / "ca.crt")
            for i, n in enumerate(nodes):
                kc = retarget(cluster.kubeconfig(f"system:node:{n}", ("system:nodes",)),
                              relay.address, work / f"{n}.conf")
                cfg = work / f"{n}-config.yaml"
                cfg.write_text(yaml.safe_dump({
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration", "podCIDR": f"10.244.{i + 1}.0/24",
                    "authentication": {"x509": {"clientCAFile": str(work / "ca.crt")}}}))
                env["sh"](ips[n], f"systemd-run --unit {UNIT} --collect -p KillMode=process "
                                  f"{PYTHON} -m bootstrap.agents.kubelet --kubeconfig={kc} "
                                  f"--config={cfg} --node-ip={ips[n]} --hostname-override={n} "
                                  f"-v={args.kubelet_v}")
            asyncio.run(measure(cluster, env, nodes, args))
        finally:
            if relay is not None:
                relay.close()
            sandbox.down(NAME)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
