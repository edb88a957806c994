"""user and group: local accounts from getent facts, changed with the shadow tools.

One fact command per task (``getent`` plus ``id`` for memberships); only the
fields that differ become a ``useradd``/``usermod``/``groupadd``/``groupmod``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap.engine.ops.base import (
    Command,
    Diff,
    OpContext,
    OpError,
    OpGen,
    as_bool,
    as_list,
    check_args,
    q,
)

GROUP_ARGS = {"name", "state", "system", "gid"}
USER_ARGS = {
    "name", "state", "system", "uid", "group", "groups", "append", "shell", "home",
    "create_home", "createhome", "comment",
}


def _state(op: str, args: dict) -> str:
    state = args.get("state", "present") or "present"
    if state not in ("present", "absent"):
        raise OpError(f"{op}: unknown state {state!r}", hint="present or absent")
    return state


def _diff(ctx: OpContext, kind: str, name: str, before: dict, after: dict) -> Diff | None:
    if not ctx.diff:
        return None
    lines = [f"--- {kind} {name}\n", f"+++ {kind} {name}\n"]
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is not None:
            lines.append(f"-{key}: {old}\n")
        if new is not None:
            lines.append(f"+{key}: {new}\n")
    return Diff("".join(lines))


def op_group(ctx: OpContext, args: dict) -> OpGen:
    check_args("group", args, GROUP_ARGS, {"name"})
    name = str(args["name"])
    state = _state("group", args)
    res = ctx.fact(f"getent group -- {q(name)}")
    # getent: 0 found, 2 not found; anything else means the lookup itself failed.
    if res.exit_code not in (0, 2):
        raise OpError(f"group {name}: getent failed ({res.exit_code}): {res.stderr.strip()}")
    fields = res.stdout.strip().split(":") if res.exit_code == 0 else None
    gid = None if args.get("gid") in (None, "") else str(int(args["gid"]))
    if state == "absent":
        if fields:
            yield from filter(None, [_diff(ctx, "group", name, {"gid": fields[2]}, {})])
            yield Command(f"groupdel -- {q(name)}")
        return
    if fields is None:
        flags = (["-r"] if as_bool(args.get("system")) else []) + (["-g", gid] if gid else [])
        yield from filter(None, [_diff(ctx, "group", name, {}, {"gid": gid or "(new)"})])
        yield Command(" ".join(["groupadd", *flags, "--", q(name)]))
    elif gid and fields[2] != gid:
        yield from filter(None, [_diff(ctx, "group", name, {"gid": fields[2]}, {"gid": gid})])
        yield Command(f"groupmod -g {gid} -- {q(name)}")


@dataclass
class _Account:
    uid: str
    group: str  # primary group name
    comment: str
    home: str
    shell: str
    groups: list[str]  # supplementary group names


# Prints the passwd entry, then the primary group name, then all group names;
# exit 2 (getent's "not found") when the user does not exist.
_USER_FACT = "getent passwd -- {n} && id -gn -- {n} && id -Gn -- {n}"


def _account(ctx: OpContext, name: str) -> _Account | None:
    res = ctx.fact(_USER_FACT.format(n=q(name)))
    if res.exit_code == 2:
        return None
    lines = res.stdout.splitlines()
    if res.exit_code != 0 or len(lines) < 3:
        raise OpError(f"user {name}: getent/id failed ({res.exit_code}): "
                      f"{res.stderr.strip() or res.stdout.strip()}")
    pw = lines[0].split(":")
    if len(pw) < 7:
        raise OpError(f"user {name}: unexpected passwd entry {lines[0]!r}")
    primary = lines[1].strip()
    return _Account(uid=pw[2], group=primary, comment=pw[4], home=pw[5], shell=pw[6],
                    groups=[g for g in lines[2].split() if g != primary])


def op_user(ctx: OpContext, args: dict) -> OpGen:
    check_args("user", args, USER_ARGS, {"name"})
    name = str(args["name"])
    state = _state("user", args)
    acct = _account(ctx, name)
    if state == "absent":
        if acct:
            yield from filter(None, [_diff(ctx, "user", name, {"uid": acct.uid}, {})])
            yield Command(f"userdel -- {q(name)}")
        return
    want: dict[str, str] = {}
    for key in ("uid", "group", "comment", "home", "shell"):
        if args.get(key) not in (None, ""):
            want[key] = str(int(args[key])) if key == "uid" else str(args[key])
    groups = None if args.get("groups") is None else [str(g) for g in as_list(args["groups"])]
    append = as_bool(args.get("append", False))
    create_home = args.get("create_home", args.get("createhome"))
    flag = {"uid": "-u", "group": "-g", "comment": "-c", "home": "-d", "shell": "-s"}
    if acct is None:
        argv = ["useradd"]
        if as_bool(args.get("system")):
            argv.append("-r")
        if create_home is not None:
            argv.append("-m" if as_bool(create_home) else "-M")
        for key, value in want.items():
            argv += [flag[key], q(value)]
        if groups:
            argv += ["-G", q(",".join(groups))]
        shown = dict(want, **({"groups": ",".join(groups)} if groups else {}))
        yield from filter(None, [_diff(ctx, "user", name, {}, shown or {"uid": "(new)"})])
        yield Command(" ".join([*argv, "--", q(name)]))
        return
    have = {"uid": acct.uid, "group": acct.group, "comment": acct.comment, "home": acct.home,
            "shell": acct.shell}
    changed = {k: v for k, v in want.items() if have[k] != v}
    argv = ["usermod"]
    for key, value in changed.items():
        argv += [flag[key], q(value)]
    before = {k: have[k] for k in changed}
    after = dict(changed)
    if groups is not None:
        # Membership of the primary group is implied; usermod -G lists the others.
        groups = [g for g in groups if g != want.get("group", acct.group)]
        if append:
            missing = [g for g in groups if g not in acct.groups]
            if missing:
                argv += ["-a", "-G", q(",".join(missing))]
                before["groups"], after["groups"] = ",".join(acct.groups), ",".join(
                    acct.groups + missing)
        elif sorted(set(groups)) != sorted(set(acct.groups)):
            argv += ["-G", q(",".join(groups))]
            before["groups"], after["groups"] = ",".join(acct.groups), ",".join(groups)
    if len(argv) > 1:
        yield from filter(None, [_diff(ctx, "user", name, before, after)])
        yield Command(" ".join([*argv, "--", q(name)]))
