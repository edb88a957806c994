"""systemd, package (apt) and command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bootstrap.engine.ops.base import (
    Command,
    OpContext,
    OpError,
    OpGen,
    as_bool,
    as_list,
    check_args,
    q,
)
from bootstrap.engine.templating import evaluate, truthy
from bootstrap.remote import Result

SYSTEMD_ARGS = {"name", "enabled", "state", "daemon_reload", "masked", "timeout"}
_ACTIVE = ("active", "activating", "reloading")
_ENABLED = ("enabled", "enabled-runtime", "static", "indirect", "generated", "alias", "linked")


def _unit_facts(ctx: OpContext, name: str) -> dict[str, str]:
    res = ctx.fact(
        "systemctl show -p LoadState -p UnitFileState -p ActiveState -p NeedDaemonReload -- "
        + q(name)
    )
    if not res.ok:
        raise OpError(f"systemctl show {name} failed: {res.stderr.strip() or res.stdout.strip()}")
    facts = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        facts[key] = value.strip()
    return facts


def op_systemd(ctx: OpContext, args: dict) -> OpGen:
    check_args("systemd", args, SYSTEMD_ARGS, {"name"})
    name = str(args["name"])
    unit = name if "." in name else f"{name}.service"
    timeout = float(args.get("timeout") or 180)
    facts = _unit_facts(ctx, unit)
    if "masked" in args and not as_bool(args["masked"]) and facts.get("UnitFileState") == "masked":
        yield Command(f"systemctl unmask -- {q(unit)}")
        ctx.state.unit_files_changed = True
    if as_bool(args.get("daemon_reload")) and (
        ctx.state.unit_files_changed or facts.get("NeedDaemonReload") == "yes"
    ):
        yield Command("systemctl daemon-reload")
        ctx.state.unit_files_changed = False
        # Unit file state and load state are only right after the reload.
        if not ctx.dry_run:
            facts = _unit_facts(ctx, unit)
    if "masked" in args and as_bool(args["masked"]) and facts.get("UnitFileState") != "masked":
        if facts.get("ActiveState") in _ACTIVE:
            yield Command(f"systemctl stop -- {q(unit)}", timeout=timeout)
        yield Command(f"systemctl mask -- {q(unit)}")
        return
    if "enabled" in args:
        current = facts.get("UnitFileState", "")
        if as_bool(args["enabled"]) and current not in _ENABLED:
            yield Command(f"systemctl enable -- {q(unit)}")
        elif not as_bool(args["enabled"]) and current in ("enabled", "enabled-runtime"):
            yield Command(f"systemctl disable -- {q(unit)}")
    state = args.get("state")
    active = facts.get("ActiveState") in _ACTIVE
    if state in (None, ""):
        return
    if state == "started":
        if not active:
            yield Command(f"systemctl start -- {q(unit)}", timeout=timeout)
    elif state == "stopped":
        if active:
            yield Command(f"systemctl stop -- {q(unit)}", timeout=timeout)
    elif state == "restarted":
        yield Command(f"systemctl restart -- {q(unit)}", timeout=timeout)
    elif state == "reloaded":
        verb = "reload" if active else "start"
        yield Command(f"systemctl {verb} -- {q(unit)}", timeout=timeout)
    else:
        raise OpError(f"systemd: unknown state {state!r}", hint="started, stopped, restarted or reloaded")


PACKAGE_ARGS = {"name", "state", "timeout"}


def op_package(ctx: OpContext, args: dict) -> OpGen:
    """apt install of what is missing; present packages cost one dpkg-query."""
    check_args("package", args, PACKAGE_ARGS, {"name"})
    names = [str(n) for n in as_list(args["name"])]
    if args.get("state", "present") != "present":
        raise OpError("package: only state present is supported")
    if not names:
        return
    res = ctx.fact(
        "dpkg-query -W -f='${Package}\\t${db:Status-Status}\\n' -- "
        + " ".join(q(n) for n in names)
        + " 2>/dev/null || true"
    )
    installed = set()
    for line in res.stdout.splitlines():
        pkg, _, status = line.partition("\t")
        if status.strip() == "installed":
            installed.add(pkg.split(":")[0])
    missing = [n for n in names if n.split("=")[0] not in installed]
    if missing:
        pkgs = " ".join(q(n) for n in missing)
        install = f"apt-get install -y -q --no-install-recommends {pkgs}"
        # Refresh the index only if the install could not find something.
        yield Command(
            f"export DEBIAN_FRONTEND=noninteractive; {install} || (apt-get update -q && {install})",
            timeout=float(args.get("timeout") or 900),
        )


COMMAND_ARGS = {
    "cmd", "creates", "removes", "chdir", "changed_when", "failed_when", "timeout", "stdin", "env",
}


def _condition(expr: Any, ctx: OpContext) -> Callable[[Result], bool]:
    """A changed_when/failed_when value as a predicate over the command result."""
    if isinstance(expr, bool):
        return lambda _res: expr

    def check(res: Result) -> bool:
        result = result_dict(res)
        variables = _Overlay(ctx.vars, {"result": result, **result})
        return all(truthy(evaluate(str(e), variables)) for e in as_list_keep(expr))

    return check


def as_list_keep(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


class _Overlay(Mapping):
    def __init__(self, base: Mapping, top: dict):
        self.base, self.top = base, top

    def __getitem__(self, key):
        return self.top[key] if key in self.top else self.base[key]

    def __contains__(self, key):
        return key in self.top or key in self.base

    def __iter__(self):
        yield from self.top
        yield from (k for k in self.base if k not in self.top)

    def __len__(self):
        return len(set(self.top) | set(self.base))


def result_dict(res: Result) -> dict[str, Any]:
    return {
        "rc": res.exit_code,
        "stdout": res.stdout.rstrip("\n"),
        "stderr": res.stderr.rstrip("\n"),
        "stdout_lines": res.stdout.splitlines(),
    }


def op_command(ctx: OpContext, args: dict | str) -> OpGen:
    if isinstance(args, str):
        args = {"cmd": args}
    check_args("command", args, COMMAND_ARGS, {"cmd"})
    creates, removes = args.get("creates"), args.get("removes")
    if creates or removes:
        probe = " ; ".join(
            f"[ -e {q(p)} ] && echo {tag}=1 || echo {tag}=0"
            for tag, p in (("creates", creates), ("removes", removes))
            if p
        )
        seen = dict(line.split("=") for line in ctx.fact(probe).stdout.split())
        if creates and seen.get("creates") == "1":
            return
        if removes and seen.get("removes") == "0":
            return
    cmd = str(args["cmd"])
    if args.get("chdir"):
        cmd = f"cd {q(args['chdir'])} && {cmd}"
    changed_when = args.get("changed_when")
    failed_when = args.get("failed_when")
    result = yield Command(
        cmd,
        input=args.get("stdin"),
        timeout=float(args.get("timeout") or 300),
        env=args.get("env"),
        changes=changed_when is not False,
        changed_if=None if changed_when is None else _condition(changed_when, ctx),
        failed_if=None if failed_when is None else _condition(failed_when, ctx),
    )
    if result is not None:
        ctx.out.update(result_dict(result))
