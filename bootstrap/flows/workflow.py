"""Phase workflows declared once as data, modelled on kubeadm's workflow package.

A ``Workflow`` is a name, a tree of ``Phase`` objects, the flags its phases
may use, and a factory that turns parsed flag values into the context every
phase's ``run`` receives. From that one declaration this module derives:

- the run-everything command (``bootstrap init``) with ``--skip-phases``,
- ``bootstrap init phase <name> [<child>|all]``, one click command per phase,
- the help text of both (the phase list is generated, never hand-written).

Rules, as in kubeadm: phases run depth-first in declaration order, a parent's
``run`` (if any) before its children; a phase with children is a group that
only prints help when invoked alone; a child with ``run_all_siblings`` (the
conventional ``all``) runs every sibling in order; skipping ``a`` skips its
whole subtree, ``a/b`` just that child.

Phases that run roles name them (``Phase.roles``), so ``--tags`` works from
the same declaration: a tag is a phase's name (the phase runs whole) or a
tag of tasks in its roles (the phase runs, and its plays run only those
tasks); a tag that matches neither is an error naming the known tags.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click

from bootstrap.errors import UserError

RunFn = Callable[[Any], None]


@dataclass
class Phase:
    name: str
    short: str
    run: RunFn | None = None
    long: str = ""
    phases: list[Phase] = field(default_factory=list)
    run_all_siblings: bool = False
    # Names of workflow flags the phase command offers; None: those of its parent
    # (top-level phases: all of the workflow's flags).
    flags: tuple[str, ...] | None = None
    hidden: bool = False
    # Roles the phase's plays apply; their task tags select the phase with --tags.
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flag:
    name: str                 # long option name without dashes, e.g. "cert-dir"
    help: str
    default: Any = None
    type: Any = None
    metavar: str | None = None
    is_flag: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def option(self) -> click.Option:
        kwargs: dict[str, Any] = {"help": self.help, "default": self.default}
        if self.is_flag:
            kwargs["is_flag"] = True
        else:
            kwargs["type"] = self.type
            kwargs["metavar"] = self.metavar
            kwargs["show_default"] = self.default is not None
        return click.Option([f"--{self.name}"], **kwargs)


@dataclass
class Workflow:
    name: str
    short: str
    phases: list[Phase]
    flags: list[Flag]
    # Parsed flag values (every flag present, defaults filled in) -> phase context.
    make_context: Callable[[dict[str, Any]], Any]
    # Called with the context after a full run (not after a single phase): a summary.
    finish: Callable[[Any], None] | None = None
    # How many changes the context has counted so far; with it, a full run records
    # in ctx.changed_phases which phases changed something (the summary names them,
    # so a re-run that is not a no-op says where).
    changes: Callable[[Any], int] | None = None

    def flag(self, name: str) -> Flag:
        for f in self.flags:
            if f.name == name:
                return f
        raise KeyError(f"workflow {self.name!r} has no flag {name!r}")

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        out = {f.dest: f.default for f in self.flags}
        out.update({k: v for k, v in given.items() if k in out})
        return out


# --- walking the tree ---------------------------------------------------------

def walk(phases: list[Phase], prefix: str = "") -> Iterator[tuple[str, Phase]]:
    """(path, phase) depth-first in declaration order, ``all``-style phases left out."""
    for p in phases:
        if p.run_all_siblings:
            continue
        path = f"{prefix}{p.name}"
        yield path, p
        yield from walk(p.phases, path + "/")


def phase_paths(workflow: Workflow) -> list[str]:
    return [path for path, _ in walk(workflow.phases)]


def parse_skip(workflow: Workflow, skip: str | list[str] | tuple[str, ...] | None) -> set[str]:
    if not skip:
        return set()
    items = skip.split(",") if isinstance(skip, str) else [s for x in skip for s in x.split(",")]
    names = {s.strip() for s in items if s.strip()}
    known = set(phase_paths(workflow))
    unknown = sorted(names - known)
    if unknown:
        raise UserError(
            f"--skip-phases: unknown phase {unknown[0]!r}",
            hint="phases: " + ", ".join(phase_paths(workflow)),
        )
    return names


def _skipped(path: str, skip: set[str]) -> bool:
    parts = path.split("/")
    return any("/".join(parts[: i + 1]) in skip for i in range(len(parts)))


# --- tags ---------------------------------------------------------------------

def role_tags(role: str, roles_path: list[str] | None = None) -> set[str]:
    """Tags a role's tasks answer to: the role's name plus every task's own tags."""
    from bootstrap.engine.roles import default_roles_path, load_role

    loaded = load_role(role, roles_path or default_roles_path())
    tags = {role}
    for task in [*loaded.tasks, *loaded.handlers]:
        tags |= set(task.tags)
    return tags - {"always"}


def known_tags(workflow: Workflow, roles_path: list[str] | None = None) -> list[str]:
    out: set[str] = set()
    for path, p in walk(workflow.phases):
        out |= set(path.split("/"))
        for role in p.roles:
            out |= role_tags(role, roles_path)
    return sorted(out)


# What a selected phase runs: None = every task of its roles, else only tasks with these tags.
Selection = dict[str, set[str] | None]


def select_by_tags(workflow: Workflow, tags: set[str] | None,
                   roles_path: list[str] | None = None) -> Selection:
    """path -> task filter for every phase the tags select (all phases without tags)."""
    paths = list(walk(workflow.phases))
    if not tags:
        return {path: None for path, _ in paths}
    known = set(known_tags(workflow, roles_path))
    unknown = sorted(tags - known)
    if unknown:
        raise UserError(f"--tags: no phase or task is tagged {unknown[0]!r}",
                        hint="known tags: " + ", ".join(sorted(known)))
    out: Selection = {}
    for path, p in paths:
        if tags & set(path.split("/")):
            out[path] = None
            continue
        matching = {t for role in p.roles for t in role_tags(role, roles_path)} & tags
        if matching:
            out[path] = set(tags)
    # A selected child needs its group to run too (the group's own run, if any).
    for path in list(out):
        parts = path.split("/")
        for i in range(1, len(parts)):
            out.setdefault("/".join(parts[:i]), set(tags))
    return out


def run_tree(phases: list[Phase], ctx: Any, skip: set[str] = frozenset(), prefix: str = "",
             selection: Selection | None = None, times: dict[str, float] | None = None,
             clock: Callable[[], float] = time.monotonic,
             changes: Callable[[Any], int] | None = None,
             changed_in: list[str] | None = None) -> list[str]:
    """Run ``phases`` and their children in order; returns the paths that ran.

    With ``selection`` (from ``select_by_tags``) only the selected phases run,
    and ``ctx.task_tags`` holds the task filter of the phase running. ``times``
    gets each phase's own run time (benchmarks print them).
    """
    ran = []
    for path, p in walk(phases, prefix):
        if _skipped(path, skip) or (selection is not None and path not in selection):
            continue
        if selection is not None:
            ctx.task_tags = selection[path]
        if p.run is not None:
            start = clock()
            before = changes(ctx) if changes is not None else 0
            p.run(ctx)
            if times is not None:
                times[path] = clock() - start
            if changes is not None and changed_in is not None and changes(ctx) > before:
                changed_in.append(path)
        ran.append(path)
    return ran


def run_workflow(workflow: Workflow, params: dict[str, Any], skip: set[str] = frozenset()) -> list[str]:
    ctx = workflow.make_context(workflow.params(params))
    ran = run_tree(workflow.phases, ctx, skip, changes=workflow.changes,
                   changed_in=getattr(ctx, "changed_phases", None))
    if workflow.finish is not None:
        workflow.finish(ctx)
    return ran


# --- help text ----------------------------------------------------------------

def phase_list_text(workflow: Workflow) -> str:
    rows = []
    for path, p in walk(workflow.phases):
        if p.hidden:
            continue
        depth = path.count("/")
        label = ("  " * depth + "/" + p.name) if depth else p.name
        rows.append((label, p.short))
    width = max(len(label) for label, _ in rows) + 2
    # "\b" keeps click from re-wrapping the table.
    lines = ["\b", f'The "{workflow.name}" workflow runs the following phases:']
    lines += [f"{label.ljust(width)}{short}" for label, short in rows]
    return "\n".join(lines)


# --- click commands -----------------------------------------------------------

class _OrderedGroup(click.Group):
    """Lists subcommands in declaration order (click sorts them by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def _print_help_if_alone() -> None:
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _help_group(name: str, help: str, **kwargs: Any) -> click.Group:
    """A group that, invoked alone, prints its help and succeeds (as kubeadm does)."""
    return _OrderedGroup(name=name, help=help, callback=_print_help_if_alone,
                         invoke_without_command=True, **kwargs)


def _flags_for(workflow: Workflow, phase: Phase, inherited: tuple[str, ...]) -> tuple[str, ...]:
    names = phase.flags if phase.flags is not None else inherited
    for n in names:
        workflow.flag(n)  # fail loudly on a typo in the declaration
    return names


def _phase_command(workflow: Workflow, phase: Phase, siblings: list[Phase], path: str,
                   inherited: tuple[str, ...]) -> click.Command:
    flag_names = _flags_for(workflow, phase, inherited)
    help_text = phase.long or phase.short

    if phase.phases:
        # Flags live on the leaf commands only, as in kubeadm: `phase certs all --cert-dir D`.
        group = _help_group(phase.name, help_text, short_help=phase.short, hidden=phase.hidden)
        for child in phase.phases:
            group.add_command(_phase_command(workflow, child, phase.phases,
                                             f"{path}/{child.name}", flag_names))
        return group

    options = [workflow.flag(n).option() for n in flag_names]

    def callback(**given: Any) -> None:
        phase_ctx = workflow.make_context(workflow.params(given))
        if phase.run_all_siblings:
            run_tree([s for s in siblings if s is not phase], phase_ctx)
        elif phase.run is not None:
            phase.run(phase_ctx)

    return click.Command(name=phase.name, callback=callback, params=options, help=help_text,
                         short_help=phase.short, hidden=phase.hidden)


def build_phase_group(workflow: Workflow) -> click.Group:
    """``<workflow> phase ...``: one subcommand per phase, derived from the tree."""
    group = _help_group(
        "phase", f"Use this command to invoke a single phase of the {workflow.name} workflow.")
    all_flags = tuple(f.name for f in workflow.flags)
    for p in workflow.phases:
        group.add_command(_phase_command(workflow, p, workflow.phases, p.name, all_flags))
    return group


def build_run_command(workflow: Workflow, *, with_phase_group: bool = True) -> click.Group:
    """``<workflow>``: runs every phase (minus ``--skip-phases``) when invoked alone."""
    options = [f.option() for f in workflow.flags]
    options.append(click.Option(
        ["--skip-phases"], multiple=True, metavar="PHASE[,PHASE...]",
        help="Phases to skip, e.g. certs/etcd-ca,kubeconfig (see the list above).",
    ))

    def callback(skip_phases: tuple[str, ...], **given: Any) -> None:
        if click.get_current_context().invoked_subcommand:
            return
        skip = parse_skip(workflow, skip_phases)
        run_workflow(workflow, given, skip)

    group = _OrderedGroup(name=workflow.name, callback=callback, params=options,
                        help=f"{workflow.short}\n\n{phase_list_text(workflow)}",
                        short_help=workflow.short, invoke_without_command=True)
    if with_phase_group:
        group.add_command(build_phase_group(workflow))
    return group


def build_phase_only_command(workflow: Workflow) -> click.Group:
    """``<workflow> phase ...`` without the run-everything entry point.

    For workflows whose full run is not complete yet: only the phases are
    offered, and ``<workflow>`` alone just shows help.
    """
    group = _help_group(workflow.name, f"{workflow.short}\n\n{phase_list_text(workflow)}",
                        short_help=workflow.short)
    group.add_command(build_phase_group(workflow))
    return group
