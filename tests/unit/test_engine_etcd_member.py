"""The etcd_member operation: member list in, member add/remove out only when needed."""

from __future__ import annotations

import json
import os
import stat

import pytest

from bootstrap.engine.ops import OPS, Command, HostState, OpContext, OpError
from bootstrap.engine.ops.etcd import EtcdClient, add_command, initial_cluster
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection
from bootstrap.remote.local import LocalConnection

ME = "https://10.0.0.4:2380"
ARGS = {"name": "m4", "peer_url": ME, "endpoints": ["https://10.0.0.1:2379"]}


def member(i, name=None, started=True):
    m = {"ID": 100 + i, "name": f"m{i}" if name is None else name,
         "peerURLs": [f"https://10.0.0.{i}:2380"]}
    if started:
        m["clientURLs"] = [f"https://10.0.0.{i}:2379"]
    return m


def fake(members, down=()):
    conn = FakeConnection("h4")
    conn.respond(r"member list", Result(0, json.dumps({"members": members})))

    def health(cmd):
        eps = cmd.split("--endpoints=")[1].split()[0].strip("'").split(",")
        return Result(0, json.dumps([{"endpoint": e, "health": e not in down} for e in eps]))
    conn.respond(r"endpoint health", health)
    return conn


def run(conn, args, *, dry_run=False):
    """Drive the op like the runner: actions run unless dry-run; (actions, out)."""
    ctx = OpContext(host=conn.host, conn=conn, vars={}, state=HostState(), search_path=[],
                    dry_run=dry_run)
    gen = OPS["etcd_member"](ctx, args)
    actions, send = [], None
    while True:
        try:
            action = gen.send(send)
        except StopIteration:
            return actions, ctx.out
        actions.append(action)
        send = None if dry_run else conn.run(action.cmd, check=False)


def test_adds_a_missing_member_once_and_names_the_initial_cluster():
    conn = fake([member(1), member(2), member(3)])
    actions, out = run(conn, ARGS)
    assert len(actions) == 1 and isinstance(actions[0], Command)
    assert "member add m4 --peer-urls=https://10.0.0.4:2380" in actions[0].cmd
    assert out["initial_cluster"] == ("m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,"
                                      "m3=https://10.0.0.3:2380,m4=https://10.0.0.4:2380")


def test_present_member_yields_nothing():
    conn = fake([member(1), member(4, name="")])  # added earlier, not started yet: it is us
    actions, out = run(conn, ARGS)
    assert actions == []
    assert out["initial_cluster"] == "m1=https://10.0.0.1:2380,m4=https://10.0.0.4:2380"
    assert not any("endpoint health" in c for c in conn.commands)


def test_refused_while_a_member_is_unhealthy():
    conn = fake([member(1), member(2), member(3)], down=("https://10.0.0.3:2379",))
    with pytest.raises(OpError, match="10.0.0.3:2379 unhealthy"):
        run(conn, ARGS)
    assert not any("member add" in c for c in conn.commands)


def test_refused_while_another_added_member_never_started():
    conn = fake([member(1), member(5, name="", started=False)])
    with pytest.raises(OpError, match="10.0.0.5:2380 was added but never started"):
        run(conn, ARGS)


def test_dry_run_reads_the_list_but_adds_nothing():
    conn = fake([member(1)])
    actions, out = run(conn, ARGS, dry_run=True)
    assert len(actions) == 1 and "member add" in actions[0].cmd
    assert not any("member add" in c for c in conn.commands)
    assert out["initial_cluster"].endswith("m4=https://10.0.0.4:2380")


def test_absent_removes_by_hex_id_only_when_present():
    conn = fake([member(1), member(4)])
    actions, _ = run(conn, {**ARGS, "state": "absent"})
    assert [a.cmd.split("--command-timeout=15s ")[1] for a in actions] == ["member remove 68"]
    actions, _ = run(fake([member(1)]), {**ARGS, "state": "absent"})
    assert actions == []


def test_bad_arguments_are_op_errors():
    with pytest.raises(OpError, match="endpoints is empty"):
        run(fake([]), {**ARGS, "endpoints": []})
    with pytest.raises(OpError, match="state must be"):
        run(fake([]), {**ARGS, "state": "gone"})
    conn = FakeConnection("h4", responses={r"member list": Result(1, "", "connection refused")})
    with pytest.raises(OpError, match="connection refused"):
        run(conn, ARGS)


def test_initial_cluster_adds_self_when_not_listed():
    assert initial_cluster([member(1)], "m4", ME) == "m1=https://10.0.0.1:2380,m4=" + ME


@pytest.fixture
def fake_etcdctl(tmp_path):
    """An etcdctl on PATH that answers from a script of exit codes and messages."""
    script = tmp_path / "etcdctl"
    answers = tmp_path / "answers"

    def program(*lines):
        (tmp_path / "calls").unlink(missing_ok=True)
        answers.write_text("\n".join(lines) + "\n")
        script.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
line=$(head -n1 {answers}); sed -i 1d {answers}
code=${{line%% *}}; msg=${{line#* }}
echo "$msg" >&2; exit $code
""")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        return {"PATH": f"{tmp_path}:{os.environ['PATH']}"}, tmp_path / "calls"
    return program


def test_add_command_retries_only_while_etcd_says_the_cluster_just_changed(fake_etcdctl):
    client = EtcdClient(("https://10.0.0.1:2379",), "ca", "c", "k")
    env, calls = fake_etcdctl("1 etcdserver: unhealthy cluster",
                              "1 etcdserver: not enough started members", "0 added")
    cmd = add_command(client, "m4", ME).replace("sleep 1", "true")
    assert LocalConnection().run(cmd, env=env, check=False).ok
    assert len(calls.read_text().splitlines()) == 3

    env, calls = fake_etcdctl("1 etcdserver: Peer URLs already exists", "0 added")
    res = LocalConnection().run(cmd, env=env, check=False)
    assert not res.ok and "Peer URLs already exists" in res.stderr
    assert len(calls.read_text().splitlines()) == 1


def test_add_command_gives_up_after_its_tries(fake_etcdctl):
    client = EtcdClient(("https://10.0.0.1:2379",), "ca", "c", "k")
    env, calls = fake_etcdctl(*["1 unhealthy cluster"] * 5)
    cmd = add_command(client, "m4", ME, tries=3).replace("sleep 1", "true")
    res = LocalConnection().run(cmd, env=env, check=False)
    assert not res.ok and "unhealthy cluster" in res.stderr
    assert len(calls.read_text().splitlines()) == 3
