"""cluster up --dry-run changes nothing on disk; unreachable hosts are reported, the rest planned;
real runs keep their state in kubespray's artifacts_dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_cluster_up_flow import INVENTORY, Connector

from bootstrap.config.inventory import load_inventory
from bootstrap.errors import RemoteError, UserError
from bootstrap.flows import cluster_up as cu
from bootstrap.flows.cluster_pki import ensure_cluster_pki
from bootstrap.remote.ssh import SSHConnection

# prepare reads facts (users, packages) the fake connections do not answer.
SKIP = "prepare"


@pytest.fixture
def world(tmp_path, monkeypatch) -> Path:
    """Every place a run on the control machine could write, under tmp_path."""
    for var, sub in (("HOME", "home"), ("XDG_CACHE_HOME", "cache"), ("TMPDIR", "tmp")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("BOOTSTRAP_WHEELHOUSE", raising=False)
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yaml").write_text(INVENTORY)
    monkeypatch.chdir(inv)
    return tmp_path


def listing(root: Path) -> dict[str, tuple]:
    """Path -> (mode, size, mtime) for everything under root. TMPDIR's own mtime is
    left out: the dry run's scratch copy is made and removed there."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            out[rel] = (st.st_mode, st.st_size, None if rel == "tmp" else st.st_mtime_ns)
    return out


def test_dry_run_of_a_new_cluster_writes_nothing(world):
    before = listing(world)
    connect = Connector()
    result = cu.cluster_up(str(world / "inv" / "hosts.yaml"), dry_run=True, connect=connect,
                           skip_phases=SKIP)
    assert listing(world) == before
    assert before.keys() == {"home", "cache", "tmp", "inv", "inv/hosts.yaml"}
    # It did plan everything: certificates, agents, etcd, the nodes.
    assert result.scratch and result.pki_created > 20
    assert result.state_dir == world / "inv" / "artifacts"
    assert {"agents", "etcd", "control-plane", "nodes"} <= set(result.ran)
    assert result.recap.changed > 0 and not result.recap.failed
    assert all(not c.puts for c in connect.conns.values())


def test_dry_run_reads_the_existing_state_and_leaves_it_as_it_was(world):
    inventory = load_inventory(world / "inv" / "hosts.yaml")
    from bootstrap.config.cluster import default_config
    from bootstrap.flows import node_vars

    cfg = default_config()
    pki_cfg = node_vars.host_config(cfg, inventory, node_vars.api_endpoint(inventory))
    import dataclasses
    ensure_cluster_pki(inventory, dataclasses.replace(pki_cfg, etcd=cfg.etcd))
    ca = (world / "inv" / "artifacts" / "pki" / "ca.crt").read_bytes()
    before = listing(world)
    result = cu.cluster_up(str(world / "inv" / "hosts.yaml"), dry_run=True, connect=Connector(),
                           skip_phases=SKIP)
    assert result.pki_created == 0  # the existing PKI was read, not regenerated
    assert listing(world) == before
    assert (world / "inv" / "artifacts" / "pki" / "ca.crt").read_bytes() == ca


def test_dry_run_with_a_prebuilt_wheelhouse_does_not_touch_it(world, monkeypatch):
    wh = world / "wheels"
    wh.mkdir()
    for name in ("bootstrap-0.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl"):
        (wh / name).write_bytes(b"not really a wheel")
    monkeypatch.setenv("BOOTSTRAP_WHEELHOUSE", str(wh))
    before = listing(world)
    cu.cluster_up(str(world / "inv" / "hosts.yaml"), dry_run=True, connect=Connector(),
                  tags="agents")
    assert listing(world) == before  # no SHA256SUMS written into it


def test_real_run_keeps_state_in_artifacts_dir(world):
    inv = world / "inv" / "hosts.yaml"
    inv.write_text(INVENTORY.replace("all:\n", "all:\n  vars: {artifacts_dir: "
                                     "'{{ inventory_dir }}/../state'}\n", 1))
    result = cu.cluster_up(str(inv), tags="pki", connect=Connector())
    assert result.state_dir == world / "inv" / ".." / "state"
    assert (world / "state" / "pki" / "ca.key").is_file()
    assert not (world / "inv" / "artifacts").exists()
    assert oct((world / "state").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("value, want", [
    (None, "inv/artifacts"),
    ("state", "inv/state"),
    ("'{{ inventory_dir }}/x'", "inv/x"),
])
def test_artifacts_dir_is_kubesprays_variable(world, value, want):
    inv = world / "inv" / "hosts.yaml"
    if value is not None:
        inv.write_text(INVENTORY.replace("all:\n", f"all:\n  vars: {{artifacts_dir: {value}}}\n",
                                         1))
    assert load_inventory(inv).artifacts_dir == world / want


def test_state_dir_inside_the_package_is_refused(world):
    import bootstrap

    package = Path(bootstrap.__file__).parent
    inv = world / "inv" / "hosts.yaml"
    inv.write_text(INVENTORY.replace("all:\n", f"all:\n  vars: {{artifacts_dir: {package}/x}}\n",
                                     1))
    with pytest.raises(UserError, match="inside the bootstrap package"):
        cu.cluster_up(str(inv), tags="pki", connect=Connector())
    assert not (package / "x").exists()


class PartlyReachable(Connector):
    def __init__(self, down: set[str]):
        super().__init__()
        self.down = down

    def __call__(self, hosts):
        conns = super().__call__([h for h in hosts if h.name not in self.down])
        return {**conns, **{h.name: RemoteError("connection refused", where=f"host {h.name}")
                            for h in hosts if h.name in self.down}}


def test_dry_run_reports_an_unreachable_worker_and_plans_the_rest(world):
    result = cu.cluster_up(str(world / "inv" / "hosts.yaml"), dry_run=True,
                           connect=PartlyReachable({"w1"}), skip_phases=SKIP)
    assert list(result.unreachable) == ["w1"]
    assert "connection refused" in result.unreachable["w1"]
    assert set(result.recap.per_host) == {"cp1", "cp2", "cp3"}
    assert result.recap.changed > 0 and "nodes" in result.ran


def test_dry_run_with_an_unreachable_etcd_member_skips_only_the_etcd_plan(world):
    result = cu.cluster_up(str(world / "inv" / "hosts.yaml"), dry_run=True,
                           connect=PartlyReachable({"cp3"}), tags="pki,etcd,kube-proxy")
    assert list(result.unreachable) == ["cp3"]
    assert set(result.recap.per_host) == {"cp1", "cp2", "w1"}
    # No etcd tasks ran (membership needs every member), the other phases did.
    assert result.ran == ["pki", "etcd", "kube-proxy"]


def test_real_run_with_an_unreachable_host_stops_before_any_play(world):
    connect = PartlyReachable({"w1"})
    with pytest.raises(RemoteError, match="w1"):
        cu.cluster_up(str(world / "inv" / "hosts.yaml"), connect=connect, skip_phases=SKIP)
    assert all(not c.commands for c in connect.conns.values())


def test_cli_dry_run_says_where_the_pki_went_and_fails_on_unreachable(world, monkeypatch):
    from bootstrap.cli import main

    connect = PartlyReachable({"w1"})
    monkeypatch.setattr(cu, "connect_reachable", lambda hosts, **kw: (
        lambda got: ({n: c for n, c in got.items() if not isinstance(c, RemoteError)},
                     {n: c for n, c in got.items() if isinstance(c, RemoteError)}))(
        connect(hosts)))
    before = listing(world)
    out = CliRunner().invoke(main, ["cluster", "up", "-i", str(world / "inv" / "hosts.yaml"),
                                    "--dry-run", "--skip-phases", SKIP])
    assert out.exit_code == 1, out.output
    assert "generated in a temporary directory, now removed" in out.output
    assert "unreachable: host w1: connection refused" in out.output
    assert "change(s) would be made" in out.output
    assert out.output.strip().splitlines()[-1] == \
        "error: cluster up: 1 host(s) unreachable, not checked: w1"
    assert listing(world) == before


def test_dry_run_connections_do_not_record_new_host_keys(tmp_path, monkeypatch):
    import paramiko

    class H:
        name = address = "h1"
        port, user, key_file, vars = 22, "root", None, {}

    seen = []

    def connect(client, *args, **kwargs):
        # Where the connection is made: a host seen first meets this policy.
        policy = client._policy
        policy.missing_host_key(client, "h1", paramiko.RSAKey.generate(1024))
        seen.append(policy.path)
        raise OSError("stop here")

    monkeypatch.setattr(paramiko.SSHClient, "connect", connect)
    known = tmp_path / "known_hosts"
    with pytest.raises(RemoteError):
        SSHConnection(H(), known_hosts=str(known), remember_host_keys=False).open()
    assert seen == [None] and not known.exists()
    with pytest.raises(RemoteError):
        SSHConnection(H(), known_hosts=str(known)).open()
    assert seen[-1] == str(known) and "h1 ssh-rsa" in known.read_text()


def test_inventory_check_names_the_state_dir(world):
    from bootstrap.cli import main

    inv = world / "inv" / "hosts.yaml"
    inv.write_text(INVENTORY.replace("all:\n", "all:\n  vars: {artifacts_dir: /srv/state}\n", 1))
    out = CliRunner().invoke(main, ["inventory", "check", "-i", str(inv)])
    assert out.exit_code == 0, out.output
    assert "state dir: /srv/state (kubespray's artifacts_dir" in out.output
