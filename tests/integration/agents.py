"""Control-plane agents as real processes next to a ``cluster.Cluster`` (the scheduler,
the controller manager), and the node Lease loop a kubelet would run. Shared by the
modules that start them; each ``stop`` ends its process (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .cluster import ROOT, eventually, free_port


def _stop(proc: subprocess.Popen | None, sig=signal.SIGTERM) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Scheduler:
    proc: subprocess.Popen
    log: Path
    port: int

    def readyz(self) -> int:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # its self-signed cert
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/readyz", context=ctx,
                                        timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def stop(self, sig=signal.SIGTERM) -> None:
        _stop(self.proc, sig)


def start_scheduler(cluster, kubeconfig, *extra: str) -> Scheduler:
    """``python -m bootstrap.agents.scheduler`` with ``kubeconfig``; not waited for."""
    port = free_port()
    log = cluster.base / f"scheduler-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.agents.scheduler",
                             f"--kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
                             f"--secure-port={port}", *extra],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Scheduler(proc, log, port)


class ControllerManager:
    """``python -m bootstrap.agents.controllers`` running ``controllers`` as
    system:kube-controller-manager, each controller writing as its own service
    account, unelected; ``start`` waits for "starting controllers"."""

    def __init__(self, cluster, controllers: str, name: str = "cm", *extra: str):
        self.cluster, self.controllers, self.extra = cluster, controllers, extra
        self.log = cluster.base / f"{name}.log"
        self.proc = None

    def start(self):
        kc = self.cluster.kubeconfig("system:kube-controller-manager")
        out = open(self.log, "wb")
        self.proc = subprocess.Popen([
            sys.executable, "-m", "bootstrap.agents.controllers", f"--kubeconfig={kc}",
            f"--controllers={self.controllers}", "--use-service-account-credentials=true",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            "--leader-elect=false", *self.extra], stdout=out, stderr=subprocess.STDOUT,
            cwd=ROOT)
        ok = eventually(lambda: "starting controllers" in self.text() or
                        self.proc.poll() is not None, 60)
        assert ok and self.proc.poll() is None, self.text()[-4000:]
        return self

    def text(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        _stop(self.proc)


class LeaseRenewer:
    """Plays the kubelet's node lease loop until stopped (the Lease must exist)."""

    def __init__(self, cluster, node):
        self.url = (f"{cluster.server.url}/apis/coordination.k8s.io/v1/namespaces/"
                    f"kube-node-lease/leases/{node}")
        self.ctx = cluster.ssl_context()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.wait(0.5):
            renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            body = json.dumps({"spec": {"renewTime": renew}}).encode()
            req = urllib.request.Request(self.url, data=body, method="PATCH", headers={
                "Content-Type": "application/merge-patch+json"})
            try:
                urllib.request.urlopen(req, context=self.ctx, timeout=5).close()
            except OSError:
                pass

    def stop(self):
        self.done.set()
        self.thread.join(10)
