"""The generic phase workflow: order, skipping, `all`, flags and derived commands/help."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from bootstrap.errors import UserError
from bootstrap.flows.workflow import (
    Flag,
    Phase,
    Workflow,
    build_phase_group,
    build_phase_only_command,
    build_run_command,
    parse_skip,
    phase_list_text,
    phase_paths,
    run_workflow,
)


class Ctx:
    def __init__(self, params: dict, log: list):
        self.params = params
        self.log = log


def _rec(name: str):
    return lambda ctx: ctx.log.append((name, dict(ctx.params)))


def make(log: list) -> Workflow:
    phases = [
        Phase("prep", "Prepare", run=_rec("prep"), flags=("dir",)),
        Phase("certs", "Certificates", run=_rec("certs"), phases=[
            Phase("all", "All certificates", run_all_siblings=True),
            Phase("ca", "The CA", run=_rec("certs/ca")),
            Phase("leaf", "A leaf", run=_rec("certs/leaf"), flags=("dir", "node")),
        ]),
        Phase("group-only", "No run of its own", phases=[
            Phase("x", "X", run=_rec("group-only/x")),
        ]),
    ]
    flags = [Flag("dir", "A directory", default="/d"), Flag("node", "Node name"),
             Flag("verbose", "Chatty", is_flag=True, default=False)]
    return Workflow("demo", "Demo workflow.", phases, flags, lambda p: Ctx(p, log))


def names(log):
    return [n for n, _ in log]


def test_paths_leave_out_all():
    assert phase_paths(make([])) == ["prep", "certs", "certs/ca", "certs/leaf", "group-only",
                                     "group-only/x"]


def test_run_order_parent_before_children():
    log = []
    assert run_workflow(make(log), {}) == phase_paths(make([]))
    assert names(log) == ["prep", "certs", "certs/ca", "certs/leaf", "group-only/x"]
    assert log[0][1] == {"dir": "/d", "node": None, "verbose": False}


def test_skip_subtree_and_single_child():
    log = []
    wf = make(log)
    run_workflow(wf, {}, parse_skip(wf, "certs/ca,group-only"))
    assert names(log) == ["prep", "certs", "certs/leaf"]
    log.clear()
    run_workflow(wf, {}, parse_skip(wf, ("certs", "prep")))
    assert names(log) == ["group-only/x"]


def test_unknown_skip_is_a_user_error():
    with pytest.raises(UserError) as exc:
        parse_skip(make([]), "certs/nope")
    assert "certs/nope" in exc.value.line() and "certs/ca" in exc.value.line()


def test_help_lists_the_tree_in_order():
    text = phase_list_text(make([]))
    lines = text.splitlines()
    assert lines[1] == 'The "demo" workflow runs the following phases:'
    assert [ln.split()[0] for ln in lines[2:]] == ["prep", "certs", "/ca", "/leaf", "group-only", "/x"]
    assert "/all" not in text


def test_phase_commands_are_derived():
    log = []
    group = build_phase_group(make(log))
    runner = CliRunner()
    res = runner.invoke(group, ["certs", "leaf", "--dir", "/x", "--node", "n1"])
    assert res.exit_code == 0, res.output
    assert log == [("certs/leaf", {"dir": "/x", "node": "n1", "verbose": False})]
    # a leaf only offers its declared flags; children inherit the parent's
    assert runner.invoke(group, ["prep", "--node", "n1"]).exit_code == 2
    assert runner.invoke(group, ["certs", "ca", "--verbose"]).exit_code == 0


def test_all_runs_every_sibling_in_order():
    log = []
    res = CliRunner().invoke(build_phase_group(make(log)), ["certs", "all", "--node", "n"])
    assert res.exit_code == 0, res.output
    assert names(log) == ["certs/ca", "certs/leaf"]


def test_group_phase_alone_shows_help_and_runs_nothing():
    log = []
    res = CliRunner().invoke(build_phase_group(make(log)), ["certs"])
    assert res.exit_code == 0 and "Commands:" in res.output and log == []
    # subcommands listed in declaration order, not alphabetically
    listed = [ln.split()[0] for ln in res.output.split("Commands:")[1].strip().splitlines()]
    assert listed == ["all", "ca", "leaf"]


def test_run_command_with_skip_phases():
    log = []
    cmd = build_run_command(make(log))
    runner = CliRunner()
    res = runner.invoke(cmd, ["--skip-phases", "certs", "--dir", "/z"])
    assert res.exit_code == 0, res.output
    assert names(log) == ["prep", "group-only/x"] and log[0][1]["dir"] == "/z"
    log.clear()
    res = runner.invoke(cmd, ["phase", "prep"])
    assert res.exit_code == 0 and names(log) == ["prep"]
    help_text = runner.invoke(cmd, ["--help"]).output
    assert "/leaf" in help_text and "--skip-phases" in help_text


def test_unknown_skip_via_cli_exits_2_with_one_line():
    from bootstrap.cli import _Root

    root = _Root(name="root")
    root.add_command(build_run_command(make([])))
    res = CliRunner().invoke(root, ["demo", "--skip-phases", "bogus"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "bogus" in res.output


def test_phase_only_command_has_no_run_all():
    log = []
    cmd = build_phase_only_command(make(log))
    runner = CliRunner()
    res = runner.invoke(cmd, [])
    assert log == [] and "phase" in res.output
    assert runner.invoke(cmd, ["--skip-phases", "x"]).exit_code == 2


def test_typo_in_declared_flags_fails_loudly():
    wf = make([])
    wf.phases.append(Phase("bad", "Bad", run=_rec("bad"), flags=("no-such-flag",)))
    with pytest.raises(KeyError):
        build_phase_group(wf)


def test_flag_option_shapes():
    opt = Flag("cert-dir", "Where", default="/etc").option()
    assert isinstance(opt, click.Option) and opt.name == "cert_dir" and opt.default == "/etc"


def test_run_tree_records_the_phases_that_changed_something():
    from types import SimpleNamespace

    from bootstrap.flows.workflow import Phase, run_tree

    def bump(ctx):
        ctx.n += 1

    phases = [Phase("a", "", run=bump), Phase("b", "", run=lambda ctx: None),
              Phase("c", "", phases=[Phase("d", "", run=bump)])]
    ctx = SimpleNamespace(n=0)
    changed: list[str] = []
    run_tree(phases, ctx, changes=lambda c: c.n, changed_in=changed)
    assert changed == ["a", "c/d"]
