"""``bootstrap upgrade plan [VERSION]``: what an upgrade of this host would change.

Per component on this host: the install its unit names, the install its
process runs from, the target and the action; then the API server's
/version, the version kubeadm-config records, etcd health, the installs
present under /opt/bootstrap and the skew verdict. Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bootstrap.errors import UserError
from bootstrap.flows import versions
from bootstrap.flows.upgrade import (
    UpgradeContext,
    apiserver_version,
    etcd_health,
    kubelet_versions,
    recorded_version,
)
from bootstrap.flows.upgrade_host import COMPONENTS


@dataclass
class PlanRow:
    component: str
    unit: str
    current: str
    running: str
    target: str
    action: str


@dataclass
class Plan:
    target: str
    rows: list[PlanRow] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what apply/node would refuse
    warnings: list[str] = field(default_factory=list)  # refused unless --force


_NAMES = {"kube-apiserver": "apiserver", "kube-controller-manager": "controller-manager",
          "kube-scheduler": "scheduler", "kubelet": "kubelet", "kube-proxy": "kube-proxy",
          "bootstrap-dns": "dns"}


def make_plan(ctx: UpgradeContext) -> Plan:
    h, t = ctx.host, ctx.target
    plan = Plan(t)
    on_host = {c.unit for c in h.units()}
    for c in COMPONENTS:
        if c.unit not in on_host:
            plan.rows.append(PlanRow(_NAMES[c.unit], c.unit, "-", "-", t, "not on this host"))
            continue
        cur = h.unit_install(c.unit) or "?"
        run = h.running_install(c.unit) or "not running"
        if cur == t and run == t:
            action = "up to date"
        elif cur == t:
            action = f"restart on {t}"
        else:
            action = f"move {versions.agents_bin(cur)} -> {versions.agents_bin(t)}, restart"
        plan.rows.append(PlanRow(_NAMES[c.unit], c.unit, cur, run, t, action))
    try:
        recorded = recorded_version(ctx)
        api = apiserver_version(ctx)
        kubelets = kubelet_versions(ctx) if ctx.control_plane else {}
    except UserError as exc:
        recorded, api, kubelets = "", "", {}
        plan.problems.append(f"the API server cannot be read: {exc.line()}")
    plan.facts.append(("kubeadm-config version", recorded or "unknown"))
    plan.facts.append(("API server /version", api or "unknown"))
    plan.facts.append(("this toolkit", ctx.toolkit))
    plan.facts.append(("/opt/bootstrap/current", h.current_link() or "missing"))
    plan.facts.append((f"/opt/bootstrap/{t}", "installed" if h.installed(t) else
                       "missing (install it first, or --wheelhouse DIR)"))
    if ctx.control_plane:
        ok, seen = etcd_health(ctx)
        plan.facts.append(("etcd", ("healthy: " if ok else "NOT healthy: ") + seen))
        if not ok:
            plan.warnings.append(f"etcd is not healthy: {seen}")
        verdict = versions.check_apply(recorded or t, t, ctx.toolkit, kubelets)
    else:
        verdict = versions.check_node(t, recorded or "unknown", api or None)
    for name, v in sorted(kubelets.items()):
        plan.facts.append((f"kubelet of {name}", versions.parse(v) and str(versions.parse(v))
                           or v or "unknown"))
    plan.problems += verdict.mandatory
    plan.warnings += verdict.skippable
    if not h.installed(t):
        plan.problems.append(f"{versions.install_dir(t)} is not installed")
    return plan


def render(plan: Plan, command: str) -> str:
    cols = ("COMPONENT", "CURRENT", "RUNNING", "TARGET", "ACTION")
    rows = [(r.component, r.current, r.running, r.target, r.action) for r in plan.rows]
    widths = [max(len(x) for x in col) for col in zip(cols, *rows, strict=True)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)).rstrip()  # noqa: E731
    out = [f"[upgrade/plan] Components on this host, upgrading to {plan.target}:", line(cols)]
    out += [line(r) for r in rows]
    out.append("")
    width = max(len(k) for k, _ in plan.facts) + 2
    out += [f"{k + ':':<{width}}{v}" for k, v in plan.facts]
    out.append("")
    for p in plan.problems:
        out.append(f"[upgrade/plan] BLOCKED: {p}")
    for w in plan.warnings:
        out.append(f"[upgrade/plan] needs --force: {w}")
    todo = [r for r in plan.rows if r.action not in ("up to date", "not on this host")]
    if not plan.problems and not plan.warnings:
        out.append(f"You can now apply the upgrade by executing the following command:\n\n"
                   f"\tbootstrap upgrade {command}" +
                   (f" {plan.target}" if command == "apply" else f" --to {plan.target}") +
                   ("\n" if todo else "\n\n(nothing to do: this host already runs it)"))
    return "\n".join(out)
