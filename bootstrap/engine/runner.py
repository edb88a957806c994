"""Running a play: batches of hosts, tasks in order, hosts in parallel, handlers last.

Ansible's linear strategy: every host finishes a task before any starts the
next, which keeps output readable and lets a later task rely on all hosts
having done the earlier one. A host that fails stops; the others go on.
With ``serial`` the whole play runs batch by batch and a failed batch stops
the play, so a rolling restart never takes down a second etcd member.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from bootstrap.engine.model import Failure, HostStats, Play, Recap, Task
from bootstrap.engine.ops import CONTROL_OPS, OPS, Command, Diff, HostState, OpContext, Upload
from bootstrap.engine.output import Reporter
from bootstrap.engine.roles import Role, default_roles_path, load_role, shared_templates_dir
from bootstrap.engine.templating import LazyVars, evaluate, render_value, truthy
from bootstrap.engine.variables import VarScope, inventory_groups
from bootstrap.errors import UserError
from bootstrap.remote import Connection, Result
from bootstrap.remote.result import tail

MAX_FORKS = 25


class _CommandFailed(Exception):
    def __init__(self, cmd: str, result: Result):
        self.cmd = cmd
        self.result = result


@dataclass
class Outcome:
    """One task on one host."""

    host: str
    status: str = "ok"  # ok | changed | failed | skipped
    actions: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    failure: Failure | None = None
    ignored: bool = False
    registered: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return self.status == "changed"


def run_play(
    play: Play,
    inventory: Any,
    connections: dict[str, Connection],
    *,
    extra_vars: dict | None = None,
    dry_run: bool = False,
    diff: bool = False,
    console=None,
) -> Recap:
    """Apply ``play`` to its hosts; returns the recap (check ``recap.failed``)."""
    return _PlayRun(play, inventory, connections, extra_vars or {}, dry_run, diff, console).run()


def _resolve_hosts(play: Play, inventory: Any, connections: dict) -> list[str]:
    groups = inventory_groups(inventory)
    names: list[str] = []
    for entry in play.hosts:
        members = groups.get(entry, [entry] if entry in inventory.hosts else None)
        if members is None:
            raise UserError(f"play '{play.name}': no host or group {entry!r} in the inventory")
        names.extend(m for m in members if m not in names)
    missing = [n for n in names if n not in connections]
    if missing:
        raise UserError(f"play '{play.name}': no connection for host(s) {', '.join(missing)}")
    return names


class _PlayRun:
    def __init__(self, play, inventory, connections, extra_vars, dry_run, diff, console):
        self.play = play
        self.inventory = inventory
        self.conns = connections
        self.dry_run = dry_run
        self.diff = diff
        self.report = Reporter(console, dry_run=dry_run, diff=diff)
        roles_path = play.roles_path or default_roles_path()
        self.roles: list[Role] = [load_role(r, roles_path) for r in play.roles]
        self.shared_dirs = shared_templates_dir(roles_path)
        self.hosts = _resolve_hosts(play, inventory, connections)
        defaults: dict[str, Any] = {}
        for role in self.roles:
            defaults.update(role.defaults)
        self.states = {h: HostState() for h in self.hosts}
        self.scope = VarScope(
            inventory, defaults, dict(play.vars), dict(extra_vars),
            {h: s.facts for h, s in self.states.items()}, self.hosts,
        )
        self.recap = Recap(per_host={h: HostStats() for h in self.hosts}, dry_run=dry_run)
        self.failed: set[str] = set()
        self.notified: dict[str, set[str]] = {h: set() for h in self.hosts}
        forks = min(play.throttle or MAX_FORKS, MAX_FORKS)
        self.pool = ThreadPoolExecutor(max_workers=max(1, forks))

    # -- play ---------------------------------------------------------------
    def run(self) -> Recap:
        start = time.monotonic()
        self.report.play(self.play, self.hosts)
        try:
            size = self.play.serial or len(self.hosts) or 1
            for i in range(0, len(self.hosts), size):
                batch = self.hosts[i: i + size]
                self._run_batch(batch)
                if self.play.serial and any(h in self.failed for h in batch):
                    break
        finally:
            self.pool.shutdown(wait=True)
        self.recap.elapsed = time.monotonic() - start
        self.report.recap(self.recap)
        return self.recap

    def _run_batch(self, batch: list[str]) -> None:
        for role in self.roles:
            for task in role.tasks:
                if task.op == "meta":
                    if str(task.args).strip() == "flush_handlers":
                        self._flush_handlers(batch)
                    continue
                if not self._selected(task):
                    continue
                active = [h for h in batch if h not in self.failed]
                if not active:
                    return
                self._run_task(task, active, role)
        self._flush_handlers(batch)

    def _selected(self, task: Task) -> bool:
        tags = set(task.tags) | ({task.role} if task.role else set())
        if self.play.skip_tags and tags & self.play.skip_tags:
            return False
        if not self.play.tags or "always" in task.tags:
            return True
        return bool(tags & self.play.tags)

    def _flush_handlers(self, batch: list[str]) -> None:
        for role in self.roles:
            for handler in role.handlers:
                names = {handler.name, *handler.listen}
                hosts = [
                    h for h in batch
                    if h not in self.failed and self.notified[h] & names
                ]
                if hosts:
                    self._run_task(handler, hosts, role, handler=True)
        for h in batch:
            self.notified[h].clear()

    # -- task ---------------------------------------------------------------
    def _run_task(self, task: Task, hosts: list[str], role: Role, handler: bool = False) -> None:
        self.report.task(task, handler=handler)
        targets = hosts[:1] if task.run_once else hosts
        search = [role.path, *self.shared_dirs]
        futures = [self.pool.submit(self._on_host, task, h, search) for h in targets]
        # Reported as each host finishes; the status line names who is still busy.
        pending = list(targets)
        with self.report.progress(task, pending) as progress:
            for fut in as_completed(futures):
                out = fut.result()
                pending.remove(out.host)
                progress(pending)
                self._record(task, hosts, out)

    def _record(self, task: Task, hosts: list[str], out: Outcome) -> None:
        if task.run_once and task.register and out.registered is not None:
            for h in hosts[1:]:
                self.states[h].facts[task.register] = out.registered
        stats = self.recap.per_host[out.host]
        if out.status == "failed":
            stats.failed += 1
            self.failed.add(out.host)
            if out.failure:
                self.recap.failures.append(out.failure)
        elif out.status == "skipped":
            stats.skipped += 1
        else:
            stats.ok += 1
            if out.changed:
                stats.changed += 1
                for name in task.notify:
                    self.notified[out.host].add(name)
        self.report.host(task, out)

    def _on_host(self, task: Task, host: str, search: list[str]) -> Outcome:
        out = Outcome(host)
        try:
            variables = self.scope.for_host(host, task.vars)
            if task.loop is None:
                results = [self._one(task, host, variables, search, out, label=None)]
            else:
                items = render_value(task.loop, variables)
                if not isinstance(items, list | tuple):
                    raise UserError(f"loop must be a list, got {type(items).__name__}")
                results = [
                    self._one(task, host, variables.child({task.loop_var: item}), search, out,
                              label=item)
                    for item in items
                ]
            statuses = {r["__status"] for r in results}
            if statuses <= {"skipped"}:  # every item skipped, or an empty loop
                out.status = "skipped"
            elif "changed" in statuses:
                out.status = "changed"
            registered = _registered(task, results)
        except _CommandFailed as exc:
            out.status = "failed"
            res = exc.result
            detail = tail(res.stderr) or tail(res.stdout) or "no output"
            out.failure = Failure(host, task.title, f"command exited {res.exit_code}: {detail}",
                                  exc.cmd, res.exit_code, tail(res.stderr, lines=10, chars=2000))
            registered = {"rc": res.exit_code, "stdout": res.stdout, "stderr": res.stderr,
                          "failed": True, "changed": False}
        except UserError as exc:
            out.status = "failed"
            out.failure = Failure(host, task.title, exc.line())
            registered = {"failed": True, "changed": False, "msg": exc.line()}
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the other hosts
            out.status = "failed"
            out.failure = Failure(host, task.title, f"internal error: {type(exc).__name__}: {exc}")
            registered = {"failed": True, "changed": False, "msg": str(exc)}
        if out.status == "failed" and task.ignore_errors:
            out.ignored = True
            out.status = "ok"
        if task.register:
            self.states[host].facts[task.register] = registered
            out.registered = registered
        return out

    def _one(self, task: Task, host: str, variables: LazyVars, search: list[str], out: Outcome,
             label: Any) -> dict[str, Any]:
        for cond in task.when:
            value = cond if isinstance(cond, bool) else evaluate(str(cond), variables)
            if not truthy(value):
                return {"__status": "skipped", "skipped": True, "changed": False}
        if task.op in CONTROL_OPS:
            return self._control(task, host, variables, out)
        args = render_value(_args_for(task), variables)
        ctx = OpContext(
            host=host, conn=self.conns[host], vars=variables, state=self.states[host],
            search_path=search, diff=self.diff, dry_run=self.dry_run,
        )
        forced = task.check_mode is False
        changed = self._execute(task, ctx, args, out, run=not self.dry_run or forced)
        if task.changed_when is False and task.op not in ("command", "shell"):
            changed = False
        if label is not None and changed:
            out.messages.append(f"item {_label(label)} changed")
        registered = dict(ctx.out)
        if self.dry_run and not forced and task.op in ("command", "shell"):
            # Not run: later tasks still find the fields a result has.
            registered.update(rc=0, stdout="", stderr="", stdout_lines=[], skipped=True)
        registered.update(changed=changed, failed=False)
        registered["__status"] = "changed" if changed else "ok"
        return registered

    def _execute(self, task: Task, ctx: OpContext, args: Any, out: Outcome, *, run: bool) -> bool:
        gen = OPS[task.op](ctx, args)
        changed = False
        send: Result | None = None
        while True:
            try:
                action = gen.send(send)
            except StopIteration:
                return changed
            send = None
            if isinstance(action, Diff):
                out.diffs.append(action.text)
                continue
            if action.changes:
                out.actions.append(action.describe())
            if not run:
                changed |= action.changes
                continue
            if isinstance(action, Upload):
                if action.src is not None:
                    ctx.conn.put_file(action.src, action.dest, action.mode)
                else:
                    ctx.conn.put(action.data, action.dest, action.mode)
                changed = True
            elif isinstance(action, Command):
                res = ctx.conn.run(action.cmd, check=False, timeout=action.timeout,
                                   input=action.input, env=action.env)
                failed = action.failed_if(res) if action.failed_if else not res.ok
                if failed:
                    raise _CommandFailed(action.describe(), res)
                changed |= action.changed_if(res) if action.changed_if else action.changes
                send = res

    def _control(self, task: Task, host: str, variables: LazyVars, out: Outcome) -> dict:
        done = {"__status": "ok", "changed": False, "failed": False}
        if task.op == "set_fact":
            values = render_value(task.args, variables)
            self.states[host].facts.update(values)
            return done
        if task.op == "debug":
            args = task.args if isinstance(task.args, dict) else {"msg": task.args}
            if "var" in args:
                out.messages.append(f"{args['var']} = {variables[args['var']]!r}")
            else:
                out.messages.append(str(render_value(args.get("msg", ""), variables)))
            return done
        if task.op == "fail":
            args = task.args if isinstance(task.args, dict) else {"msg": task.args}
            raise UserError(str(render_value(args.get("msg", "failed as requested"), variables)))
        if task.op == "assert":
            args = task.args if isinstance(task.args, dict) else {"that": task.args}
            that = args.get("that")
            for cond in that if isinstance(that, list) else [that]:
                if not truthy(evaluate(str(cond), variables)):
                    msg = args.get("fail_msg") or args.get("msg") or f"assertion failed: {cond}"
                    raise UserError(str(render_value(msg, variables)))
            return done
        raise UserError(f"operation {task.op!r} is not supported here")


def _args_for(task: Task) -> Any:
    """Task-level changed_when/failed_when belong to the command op's arguments;
    they are expressions over the result, so they are not rendered up front."""
    args = task.args
    if task.op in ("command", "shell"):
        args = {"cmd": args} if isinstance(args, str) else dict(args)
        for key in ("changed_when", "failed_when"):
            value = getattr(task, key)
            if value is not None and key not in args:
                args[key] = value
        return _raw_conditions(args)
    return args


def _raw_conditions(args: dict) -> dict:
    """Escape changed_when/failed_when so rendering the args leaves them as
    expressions; the command op evaluates them against its result."""
    out = dict(args)
    for key in ("changed_when", "failed_when"):
        if isinstance(out.get(key), str):
            out[key] = "{% raw %}" + out[key] + "{% endraw %}"
        elif isinstance(out.get(key), list):
            out[key] = ["{% raw %}" + str(v) + "{% endraw %}" for v in out[key]]
    return out


def _label(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("dest", "path", "name", "src"):
            if key in item:
                return str(item[key])
    return repr(item)


def _registered(task: Task, results: list[dict]) -> dict[str, Any]:
    clean = [{k: v for k, v in r.items() if k != "__status"} for r in results]
    if task.loop is None:
        return clean[0] if clean else {}
    return {
        "results": clean,
        "changed": any(r.get("changed") for r in clean),
        "skipped": bool(clean) and all(r.get("skipped") for r in clean),
    }
