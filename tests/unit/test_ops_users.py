"""user and group operations: getent facts in, shadow-utils commands out."""

from __future__ import annotations

import pytest

# Driven exactly like the other ops.
from test_ops import actions, cmds

from bootstrap.engine.ops import OPS, HostState, OpContext, OpError
from bootstrap.engine.ops.base import Diff
from bootstrap.engine.ops.users import op_group, op_user
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

NOT_FOUND = Result(2, "", "")
KUBE = {"name": "kube", "comment": "Kubernetes user", "create_home": False, "system": True,
        "shell": "/sbin/nologin", "group": "kube-cert"}


def ctx_for(conn, diff=False, dry_run=False):
    return OpContext(host=conn.host, conn=conn, vars={}, state=HostState(), search_path=[],
                     diff=diff, dry_run=dry_run)


def passwd(line, primary, groups):
    return Result(0, f"{line}\n{primary}\n{groups}\n", "")


KUBE_PRESENT = passwd("kube:x:999:998:Kubernetes user:/home/kube:/sbin/nologin",
                      "kube-cert", "kube-cert")


def test_ops_are_registered():
    assert OPS["user"] is op_user and OPS["group"] is op_group


# -- group ----------------------------------------------------------------
def test_group_missing_is_added_as_system_group():
    conn = FakeConnection("h", {r"getent group": NOT_FOUND})
    assert cmds(actions(op_group, ctx_for(conn), {"name": "kube-cert", "system": True})) == [
        "groupadd -r -- kube-cert"]
    assert conn.commands[0] == "getent group -- kube-cert"


def test_group_present_yields_nothing_and_wrong_gid_is_fixed():
    conn = FakeConnection("h", {r"getent group": Result(0, "kube-cert:x:998:\n", "")})
    assert actions(op_group, ctx_for(conn), {"name": "kube-cert", "system": True}) == []
    assert actions(op_group, ctx_for(conn), {"name": "kube-cert", "gid": 998}) == []
    assert cmds(actions(op_group, ctx_for(conn), {"name": "kube-cert", "gid": "1500"})) == [
        "groupmod -g 1500 -- kube-cert"]


def test_group_absent():
    present = FakeConnection("h", {r"getent group": Result(0, "old:x:5:\n", "")})
    assert cmds(actions(op_group, ctx_for(present), {"name": "old", "state": "absent"})) == [
        "groupdel -- old"]
    gone = FakeConnection("h", {r"getent group": NOT_FOUND})
    assert actions(op_group, ctx_for(gone), {"name": "old", "state": "absent"}) == []


def test_group_lookup_failure_and_bad_args_are_errors():
    conn = FakeConnection("h", {r"getent group": Result(1, "", "nss broken")})
    with pytest.raises(OpError, match="getent failed"):
        actions(op_group, ctx_for(conn), {"name": "g"})
    with pytest.raises(OpError, match="unknown argument"):
        actions(op_group, ctx_for(conn), {"name": "g", "members": ["x"]})
    with pytest.raises(OpError, match="unknown state"):
        actions(op_group, ctx_for(conn), {"name": "g", "state": "locked"})


# -- user -----------------------------------------------------------------
def test_user_missing_is_added_like_kubespray_kube_user():
    conn = FakeConnection("h", {r"getent passwd": NOT_FOUND})
    got = cmds(actions(op_user, ctx_for(conn), KUBE))
    assert got == ["useradd -r -M -g kube-cert -c 'Kubernetes user' -s /sbin/nologin -- kube"]
    assert len(conn.commands) == 1  # one fact command


def test_user_converged_yields_nothing():
    conn = FakeConnection("h", {r"getent passwd": KUBE_PRESENT})
    assert actions(op_user, ctx_for(conn), KUBE) == []
    assert actions(op_user, ctx_for(conn), {**KUBE, "groups": ["kube-cert"]}) == []


def test_user_differences_become_one_usermod_with_only_those_fields():
    conn = FakeConnection("h", {r"getent passwd": passwd(
        "kube:x:999:100:Kubernetes user:/home/kube:/bin/bash", "users", "users")})
    got = cmds(actions(op_user, ctx_for(conn), KUBE))
    assert got == ["usermod -g kube-cert -s /sbin/nologin -- kube"]


def test_user_supplementary_groups_append_or_replace():
    conn = FakeConnection("h", {r"getent passwd": passwd(
        "u:x:1000:1000::/home/u:/bin/sh", "u", "u adm")})
    assert cmds(actions(op_user, ctx_for(conn), {"name": "u", "groups": ["adm", "kube-cert"],
                                                 "append": True})) == [
        "usermod -a -G kube-cert -- u"]
    assert actions(op_user, ctx_for(conn), {"name": "u", "groups": "adm", "append": True}) == []
    assert cmds(actions(op_user, ctx_for(conn), {"name": "u", "groups": ["kube-cert"]})) == [
        "usermod -G kube-cert -- u"]


def test_user_diff_shows_fields_and_dry_run_changes_nothing_itself():
    conn = FakeConnection("h", {r"getent passwd": passwd(
        "kube:x:999:998:Kubernetes user:/home/kube:/bin/bash", "kube-cert", "kube-cert")})
    acts = actions(op_user, ctx_for(conn, diff=True, dry_run=True), KUBE)
    diff = next(a for a in acts if isinstance(a, Diff)).text
    assert "-shell: /bin/bash" in diff and "+shell: /sbin/nologin" in diff
    assert "group" not in diff.replace("--- user", "").replace("+++ user", "")
    # The op only yields; running (or not, under --dry-run) is the runner's job.
    assert conn.commands == ["getent passwd -- kube && id -gn -- kube && id -Gn -- kube"]


def test_user_absent_and_lookup_failure():
    conn = FakeConnection("h", {r"getent passwd": KUBE_PRESENT})
    assert cmds(actions(op_user, ctx_for(conn), {"name": "kube", "state": "absent"})) == [
        "userdel -- kube"]
    gone = FakeConnection("h", {r"getent passwd": NOT_FOUND})
    assert actions(op_user, ctx_for(gone), {"name": "kube", "state": "absent"}) == []
    broken = FakeConnection("h", {r"getent passwd": Result(1, "", "id: boom")})
    with pytest.raises(OpError, match="boom"):
        actions(op_user, ctx_for(broken), {"name": "kube"})
