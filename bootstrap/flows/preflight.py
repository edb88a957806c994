"""Preflight checks of ``init`` and ``join``, with kubeadm's check names.

Each check is a row: its name (what ``--ignore-preflight-errors`` takes, as
kubeadm spells it), whether a failure is an error or a warning, and a probe
run on the host through a ``Connection`` (one shell command), so the table is
tested with a fake connection. All errors are reported together; an ignored
one is printed as a warning, as kubeadm does.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bootstrap.errors import UserError
from bootstrap.remote import Connection


@dataclass(frozen=True)
class Check:
    name: str
    error: bool  # False: a warning only
    probe: Callable[[Connection], str | None]  # None = passed, else what is wrong
    roles: frozenset[str] = frozenset({"control-plane", "node"})


def _root(conn: Connection) -> str | None:
    r = conn.run("id -u", check=False)
    return None if r.stdout.strip() == "0" else "user is not running as root"


def _port(port: int, unit: str) -> Callable[[Connection], str | None]:
    def probe(conn: Connection) -> str | None:
        # Our own unit listening there is this cluster, not a conflict: init and
        # join are re-run on converged hosts (kubeadm's are not).
        ours = conn.run(f"grep -qs 'Managed by bootstrap' /etc/systemd/system/{unit}.service",
                        check=False)
        if ours.ok:
            return None
        r = conn.run(f"ss -Htln 'sport = :{port}'", check=False)
        if not r.ok:
            return None  # no ss: nothing to say
        return f"Port {port} is in use" if r.stdout.strip() else None
    return probe


def _swap(conn: Connection) -> str | None:
    r = conn.run("tail -n +2 /proc/swaps", check=False)
    return "swap is supported for cgroup v2 only; the kubelet must be configured to allow " \
        "swap (failSwapOn: false)" if r.stdout.strip() else None


def _binary(name: str) -> Callable[[Connection], str | None]:
    def probe(conn: Connection) -> str | None:
        r = conn.run(f"command -v {shlex.quote(name)}", check=False)
        return None if r.ok and r.stdout.strip() else f"{name} not found in system path"
    return probe


def _file_content(path: str, want: str) -> Callable[[Connection], str | None]:
    def probe(conn: Connection) -> str | None:
        r = conn.run(f"cat {shlex.quote(path)}", check=False)
        if not r.ok:
            return f"{path} does not exist"
        return None if r.stdout.strip() == want else f"{path} contents are not set to {want}"
    return probe


def _kernel_modules(modules: tuple[str, ...]) -> Callable[[Connection], str | None]:
    def probe(conn: Connection) -> str | None:
        # Loaded (or built in) shows under /sys/module; a sandbox host cannot load any.
        cmd = " ; ".join(f"[ -d /sys/module/{m} ] || echo {m}" for m in modules)
        missing = conn.run(cmd, check=False).stdout.split()
        return f"kernel module(s) not loaded: {', '.join(missing)}" if missing else None
    return probe


def _clock(ca_cert: str) -> Callable[[Connection], str | None]:
    """The host's clock must not be before the cluster CA's start (certificates would
    look not yet valid) nor far off the control machine's."""
    def probe(conn: Connection) -> str | None:
        r = conn.run("date -u +%s", check=False)
        try:
            host_now = datetime.fromtimestamp(int(r.stdout.strip()), UTC)
        except ValueError:
            return "cannot read the host's clock"
        skew = abs((host_now - datetime.now(UTC)).total_seconds())
        if skew > 300:
            return f"the host's clock is {skew:.0f}s off this machine's; run NTP"
        if Path(ca_cert).exists():
            from bootstrap.pki.certs import read_cert_file

            start = read_cert_file(Path(ca_cert)).not_valid_before_utc
            if host_now < start:
                return f"the host's clock ({host_now:%Y-%m-%d %H:%M}) is before the CA's " \
                       f"start ({start:%Y-%m-%d %H:%M})"
        return None
    return probe


CP = frozenset({"control-plane"})
ALL = frozenset({"control-plane", "node"})


def checks(cert_dir: str = "/etc/kubernetes/pki", local_etcd: bool = True,
           apiserver_port: int = 6443) -> list[Check]:
    rows = [
        Check("IsPrivilegedUser", True, _root, ALL),
        # kubeadm names the check after the API server's bindPort.
        Check(f"Port-{apiserver_port}", True, _port(apiserver_port, "kube-apiserver"), CP),
        Check("Port-10259", True, _port(10259, "kube-scheduler"), CP),
        Check("Port-10257", True, _port(10257, "kube-controller-manager"), CP),
        Check("Port-10250", True, _port(10250, "kubelet"), ALL),
        Check("Swap", False, _swap, ALL),
        Check("FileExisting-containerd", True, _binary("containerd"), ALL),
        Check("FileExisting-runc", True, _binary("runc"), ALL),
        Check("FileExisting-iptables", True, _binary("iptables"), ALL),
        Check("FileExisting-ip", True, _binary("ip"), ALL),
        Check("FileContent--proc-sys-net-ipv4-ip_forward", True,
              _file_content("/proc/sys/net/ipv4/ip_forward", "1"), ALL),
        Check("SystemVerification", True, _kernel_modules(("overlay",)), ALL),
        # A warning here, not kubeadm's error: a sandbox host shares the machine's
        # kernel and cannot load br_netfilter itself (prepare loads it where it can);
        # without it bridged pod traffic skips iptables (Services from a pod on the
        # same node's bridge).
        Check("FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", False,
              _file_content("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"), ALL),
        Check("Clock", True, _clock(f"{cert_dir}/ca.crt"), ALL),
    ]
    if local_etcd:
        rows += [Check("Port-2379", True, _port(2379, "etcd"), CP),
                 Check("FileExisting-etcd", True, _binary("etcd"), CP)]
    return rows


def parse_ignore(value: str | None, known: list[str]) -> set[str]:
    names = {v.strip() for v in (value or "").split(",") if v.strip()}
    if "all" in {n.lower() for n in names}:
        return {"all"}
    unknown = sorted(n for n in names if n not in known)
    if unknown:
        raise UserError(f"--ignore-preflight-errors: unknown check {unknown[0]!r}",
                        hint="checks: all, " + ", ".join(known))
    return names


def run_checks(conn: Connection, role: str, ignore: str | None, echo: Callable[[str], None],
               *, cert_dir: str = "/etc/kubernetes/pki", local_etcd: bool = True,
               skip: set[str] = frozenset(), apiserver_port: int = 6443) -> None:
    """Run the checks for ``role``; raise one UserError listing every failed error check."""
    rows = checks(cert_dir, local_etcd, apiserver_port)
    table = [c for c in rows if role in c.roles and c.name not in skip]
    ignored = parse_ignore(ignore, [c.name for c in rows])
    errors = []
    for check in table:
        problem = check.probe(conn)
        if problem is None:
            continue
        if not check.error or "all" in ignored or check.name in ignored:
            echo(f"\t[WARNING {check.name}]: {problem}")
        else:
            errors.append(f"[ERROR {check.name}]: {problem}")
    if errors:
        raise UserError("[preflight] Some fatal errors occurred: " + "; ".join(errors),
                        hint="fix them, or skip a check with --ignore-preflight-errors=NAME")
