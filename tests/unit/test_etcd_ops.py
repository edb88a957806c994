"""etcd status and snapshot logic against fake host connections (membership: test_engine_etcd_member.py)."""

from __future__ import annotations

import json

import pytest

from bootstrap.errors import UserError
from bootstrap.flows import etcd
from bootstrap.flows.plan import EtcdNode
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection

NODES = [EtcdNode(f"h{i}", f"m{i}", f"10.0.0.{i}") for i in (1, 2, 3)]
IDS = {"m1": 11, "m2": 22, "m3": 33}


def status_json(leader="m1", down=()):
    return json.dumps([
        {"Endpoint": n.client_url,
         "Status": {"header": {"cluster_id": 1, "member_id": IDS[n.name], "revision": 7,
                               "raft_term": 3},
                    "version": "3.4.23", "dbSize": 20480, "leader": IDS[leader],
                    "raftIndex": 42, "raftTerm": 3}}
        for n in NODES if n.name not in down])


def health_json(down=()):
    return json.dumps([
        {"endpoint": n.client_url, "health": n.name not in down,
         **({"error": "context deadline exceeded"} if n.name in down else {})}
        for n in NODES])


def members_json(nodes):
    return json.dumps({"members": [
        {"ID": IDS.get(n.name, 99), "name": n.name, "peerURLs": [n.peer_url],
         "clientURLs": [n.client_url]} for n in nodes]})


def fake(host="h1", down=()):
    rc = 1 if down else 0
    return FakeConnection(host, responses={
        r"endpoint health": Result(rc, health_json(down), ""),
        r"endpoint status": Result(rc, status_json(down=down), ""),
        r"member list": Result(0, members_json(NODES), ""),
    })


def test_etcdctl_uses_ca_and_client_pair():
    cmd = etcd.etcdctl("endpoint health", ["https://10.0.0.1:2379", "https://10.0.0.2:2379"])
    assert "--cacert=/etc/kubernetes/pki/etcd/ca.crt" in cmd
    assert "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt" in cmd
    assert "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key" in cmd
    assert "--endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379" in cmd


def test_cluster_status_rows():
    rows = etcd.cluster_status(fake(), NODES)
    assert [r.name for r in rows] == ["m1", "m2", "m3"]
    assert [r.leader for r in rows] == [True, False, False]
    assert all(r.healthy for r in rows)
    assert rows[1].raft_term == 3 and rows[1].revision == 7 and rows[1].db_size == 20480
    assert rows[1].raft_index == 42


def test_cluster_status_with_a_member_down():
    rows = etcd.cluster_status(fake(down=("m2",)), NODES)
    assert [r.healthy for r in rows] == [True, False, True]
    assert rows[1].error == "context deadline exceeded"
    assert rows[1].raft_term is None


def test_status_on_any_skips_an_unreachable_host():
    dead = FakeConnection("h1", responses={r"etcdctl": Result(1, "", "connection refused")})
    rows = etcd.status_on_any({"h1": dead, "h2": fake("h2")}, NODES)
    assert len(rows) == 3


def test_status_on_any_all_dead_is_one_user_error():
    dead = {n.host: FakeConnection(n.host, responses={r"etcdctl": Result(1, "", "refused")})
            for n in NODES}
    with pytest.raises(UserError, match="no etcd host could answer"):
        etcd.status_on_any(dead, NODES)


def test_wait_healthy_times_out_with_names():
    ticks = iter(range(1000))
    with pytest.raises(UserError, match="not healthy after 5s: m2"):
        etcd.wait_healthy(fake(down=("m2",)), NODES, timeout=5, sleep=lambda _s: None,
                          clock=lambda: next(ticks))


def test_restore_commands_restore_into_new_dir_then_swap():
    cmds = etcd.restore_commands(NODES[1], NODES, "/tmp/s.db", "/var/lib/etcd", "tok-2", "20260101")
    restore = next(c for c in cmds if "snapshot restore" in c)
    assert "--name=m2" in restore
    assert "--initial-advertise-peer-urls=https://10.0.0.2:2380" in restore
    assert "--initial-cluster-token=tok-2" in restore
    assert "--data-dir=/var/lib/etcd.restore" in restore
    assert "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380" in restore
    swap = cmds[cmds.index(restore) + 1:]
    assert swap == [
        "if [ -e /var/lib/etcd ]; then mv /var/lib/etcd /var/lib/etcd.backup-20260101; fi",
        "mv /var/lib/etcd.restore /var/lib/etcd",
        "chmod 0700 /var/lib/etcd",
    ]


def test_snapshot_save_uses_first_healthy_member():
    sick = fake("h1", down=("m1",))
    good = fake("h2")
    good.respond(r"snapshot status", Result(0, '{"hash":5,"revision":9,"totalKey":4}', ""))
    good.files[etcd.REMOTE_SNAPSHOT] = b"DATA"
    data, status, member = etcd.snapshot_save({"h1": sick, "h2": good}, NODES)
    assert data == b"DATA" and status["revision"] == 9 and member.name == "m2"
    assert not any("snapshot save" in c for c in sick.commands)
    assert any("snapshot save /var/tmp/bootstrap-etcd-snapshot.db" in c for c in good.commands)
