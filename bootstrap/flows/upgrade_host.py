"""What ``bootstrap upgrade`` reads and changes on one host: units, installs, health, state.

Every agent unit runs the executables of one install
(``ExecStart=/opt/bootstrap/<version>/bin/bootstrap-...``); an upgrade moves
one unit at a time to the target install (roles/agent-switch: the unit file
with only its ExecStart path changed, then a restart), waits for that
component's health endpoint, and on a timeout moves it and every unit already
moved back to the install it ran before. Progress is kept in
``/etc/kubernetes/tmp/bootstrap-upgrade.json`` so an interrupted upgrade
resumes where it stopped, and a finished one is not redone.

``COMPONENTS`` is the table (unit, scope, how to probe its health from its
own flags), in the order an upgrade moves them.
"""

from __future__ import annotations

import json
import os
import shlex
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from bootstrap.errors import UserError
from bootstrap.flows import versions

UNIT_DIR = "/etc/systemd/system"
STATE_FILE = "/etc/kubernetes/tmp/bootstrap-upgrade.json"
BACKUP_ROOT = "/etc/kubernetes/tmp"
CURRENT = f"{versions.PREFIX}/current"
# Test hook: components named here (comma-separated) fail their health check on
# the NEW install, so the automatic rollback runs (documented in the command help).
FAIL_HEALTH_ENV = "BOOTSTRAP_UPGRADE_FAIL_HEALTH"

Probe = Callable[[str, str | None], tuple[bool, str]]


@dataclass(frozen=True)
class Component:
    unit: str
    scope: str  # "control-plane" | "node"
    # unit flags -> (health URL, CA file to verify it with; None: the agent's own
    # self-signed serving certificate, not verified)
    health: Callable[[dict[str, str]], tuple[str, str | None]]


def _host(addr: str) -> str:
    return f"[{addr}]" if ":" in addr and not addr.startswith("[") else addr


def _apiserver(f: dict[str, str]) -> tuple[str, str | None]:
    addr = f.get("advertise-address") or "127.0.0.1"
    return (f"https://{_host(addr)}:{f.get('secure-port', '6443')}/readyz",
            f.get("client-ca-file") or "/etc/kubernetes/pki/ca.crt")


def _agent(port: str) -> Callable[[dict[str, str]], tuple[str, str | None]]:
    def health(f: dict[str, str]) -> tuple[str, str | None]:
        return f"https://127.0.0.1:{f.get('secure-port', port)}/healthz", None
    return health


def _dns(f: dict[str, str]) -> tuple[str, str | None]:
    addr = f.get("health-address") or "127.0.0.1:8080"
    return f"http://{addr.replace('0.0.0.0', '127.0.0.1')}/healthz", None


COMPONENTS: tuple[Component, ...] = (
    Component("kube-apiserver", "control-plane", _apiserver),
    Component("kube-controller-manager", "control-plane", _agent("10257")),
    Component("kube-scheduler", "control-plane", _agent("10259")),
    Component("kubelet", "node", lambda f: ("http://127.0.0.1:10248/healthz", None)),
    Component("kube-proxy", "node", lambda f: ("http://127.0.0.1:10256/healthz", None)),
    Component("bootstrap-dns", "node", _dns),
)
BY_UNIT = {c.unit: c for c in COMPONENTS}


def unit_flags(unit_text: str) -> dict[str, str]:
    """--name=value flags of a unit's ExecStart (one per continuation line)."""
    out: dict[str, str] = {}
    in_exec = False
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            in_exec = True
        if not in_exec:
            continue
        for word in line.removeprefix("ExecStart=").rstrip("\\").split():
            if word.startswith("--") and "=" in word:
                k, v = word[2:].split("=", 1)
                out[k] = v
        if not line.endswith("\\"):
            in_exec = False
    return out


def http_probe(url: str, ca_file: str | None, timeout: float = 3) -> tuple[bool, str]:
    """(healthy, what was seen) for one GET."""
    if url.startswith("https://"):
        if ca_file:
            context = ssl.create_default_context(cafile=ca_file)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the agent's own self-signed cert
    else:
        context = None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (OSError, ssl.SSLError) as exc:
        return False, str(getattr(exc, "reason", exc))


# --- state --------------------------------------------------------------------

@dataclass
class UpgradeState:
    target: str
    command: str                                # "apply" | "node"
    previous: dict[str, str] = field(default_factory=dict)  # unit -> install it ran before
    switched: list[str] = field(default_factory=list)       # units moved and healthy
    backup: str = ""
    status: str = "in-progress"                 # in-progress | done | rolled-back
    started: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> UpgradeState | None:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None


def now_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d-%H-%M-%S")


# --- the host -----------------------------------------------------------------

class Host:
    """Facts of this host read through its connection (cached per run)."""

    def __init__(self, conn, *, probe: Probe = http_probe,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, env: dict | None = None):
        self.conn = conn
        self.probe = probe
        self.clock = clock
        self.sleep = sleep
        self.env = os.environ if env is None else env
        self._units: dict[str, str | None] = {}

    def _out(self, cmd: str) -> tuple[bool, str]:
        r = self.conn.run(cmd, check=False)
        return r.ok, r.stdout

    def current_link(self) -> str:
        ok, out = self._out(f"readlink {CURRENT}")
        return os.path.basename(out.strip().rstrip("/")) if ok and out.strip() else ""

    def unit_text(self, unit: str, *, fresh: bool = False) -> str | None:
        if fresh or unit not in self._units:
            ok, out = self._out(f"cat {UNIT_DIR}/{unit}.service")
            self._units[unit] = out if ok and out.strip() else None
        return self._units[unit]

    def forget(self, unit: str) -> None:
        self._units.pop(unit, None)

    def units(self, scope: str | None = None) -> list[Component]:
        """Our components that have a unit on this host (in upgrade order)."""
        out = []
        for c in COMPONENTS:
            if scope is not None and c.scope != scope:
                continue
            text = self.unit_text(c.unit)
            if text is not None and versions.unit_install(text, "x") is not None:
                out.append(c)
        return out

    def unit_install(self, unit: str) -> str | None:
        text = self.unit_text(unit)
        return versions.unit_install(text, self.current_link()) if text else None

    def running_install(self, unit: str) -> str | None:
        """The install the unit's running process was started from (None: not running)."""
        ok, out = self._out(f"systemctl show -p MainPID --value {shlex.quote(unit)}")
        pid = out.strip()
        if not ok or not pid.isdigit() or pid == "0":
            return None
        ok, cmdline = self._out(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
        if not ok:
            return None
        return versions.unit_install("ExecStart=" + cmdline, self.current_link())

    def installed(self, version: str) -> bool:
        return self.conn.run(f"test -x {versions.agents_bin(version)}/bootstrap",
                             check=False).ok

    def read_state(self) -> UpgradeState | None:
        ok, out = self._out(f"cat {STATE_FILE}")
        return UpgradeState.from_json(out) if ok and out.strip() else None

    def write_state(self, state: UpgradeState) -> None:
        self.conn.run(f"mkdir -p {BACKUP_ROOT}")
        self.conn.put(state.to_json().encode(), STATE_FILE, 0o600)

    # -- health ------------------------------------------------------------------
    def injected_failure(self, unit: str) -> bool:
        names = {n.strip() for n in (self.env.get(FAIL_HEALTH_ENV) or "").split(",")}
        return unit in names

    def healthy(self, comp: Component, version: str) -> tuple[bool, str]:
        """One check: the unit's process runs from ``version`` and answers its health URL."""
        running = self.running_install(comp.unit)
        if running != version:
            return False, f"not running from {version} (running: {running or 'nothing'})"
        text = self.unit_text(comp.unit) or ""
        url, ca = comp.health(unit_flags(text))
        ok, seen = self.probe(url, ca)
        return ok, f"{url}: {seen}"

    def wait_healthy(self, comp: Component, version: str, timeout: float, *,
                     inject: bool = False) -> tuple[bool, str]:
        if inject and self.injected_failure(comp.unit):
            return False, f"failed on purpose ({FAIL_HEALTH_ENV}={comp.unit})"
        deadline = self.clock() + timeout
        while True:
            ok, seen = self.healthy(comp, version)
            if ok:
                return True, seen
            if self.clock() >= deadline:
                return False, seen
            self.sleep(1.0)


def describe_failure(unit: str, timeout: float, seen: str) -> str:
    return f"{unit} did not become healthy within {timeout:g}s ({seen})"


def require(cond: bool, message: str, **kw) -> None:
    if not cond:
        raise UserError(message, **kw)
