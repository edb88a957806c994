"""The role engine over real SSH on sandbox hosts: converge, re-run, dry-run, unreachable."""

from __future__ import annotations

import ipaddress
import textwrap
from types import SimpleNamespace

import pytest
from e2e_names import sandbox_name

from bootstrap.config.inventory import load_inventory
from bootstrap.engine import Play, run_play
from bootstrap.errors import RemoteError
from bootstrap.flows.wheelhouse import agents_vars
from bootstrap.remote.pool import close_all, connect_all
from bootstrap.remote.ssh import SSHConnection

pytestmark = [pytest.mark.slow, pytest.mark.root]

SANDBOX = sandbox_name("engrun")

TASKS = """
- name: app dir
  file: {path: /srv/demo, state: directory, mode: "0750"}
- name: page
  copy: {content: "hello from {{ inventory_hostname }}\\n", dest: /srv/demo/index.html}
- name: unit
  template: {src: demo.service.j2, dest: /etc/systemd/system/demo-http.service}
  notify: restart demo
- name: service
  systemd: {name: demo-http, enabled: true, state: started, daemon_reload: true}
- name: restart now if needed
  meta: flush_handlers
- name: port open
  wait_for: {port: "{{ demo_port }}", host: "{{ node_ip }}", timeout: 30}
- name: page served
  wait_for: {url: "http://{{ node_ip }}:{{ demo_port }}/index.html", timeout: 30}
"""
UNIT = """[Unit]
Description=demo http server on {{ demo_port }}
[Service]
ExecStart=/usr/bin/python3 -m http.server {{ demo_port }} --bind {{ node_ip }} --directory /srv/demo
[Install]
WantedBy=multi-user.target
"""


@pytest.fixture(scope="module")
def sandbox(sandbox_factory):
    try:
        inv = load_inventory(sandbox_factory(SANDBOX, 2))
        conns = connect_all(list(inv.hosts.values()))
        try:
            yield SimpleNamespace(inv=inv, conns=conns)
        finally:
            close_all(conns)
    finally:
        sandbox_factory.down(SANDBOX)  # free the hosts now, not at session end


@pytest.fixture(scope="module")
def roles_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("roles") / "demo"
    for sub in ("tasks", "handlers", "defaults", "templates"):
        (d / sub).mkdir(parents=True)
    (d / "tasks" / "main.yml").write_text(textwrap.dedent(TASKS))
    (d / "handlers" / "main.yml").write_text(
        "- name: restart demo\n  systemd: {name: demo-http, state: restarted}\n")
    (d / "defaults" / "main.yml").write_text("demo_port: 8080\n")
    (d / "templates" / "demo.service.j2").write_text(UNIT)
    return str(d.parent)


def _play(roles_path, **kw):
    return Play("demo", ["all"], ["demo"], roles_path=[roles_path], **kw)


def test_dry_run_then_converge_then_nothing_to_change(sandbox, roles_path):
    dry = run_play(_play(roles_path), sandbox.inv, sandbox.conns, extra_vars={}, dry_run=True)
    assert not dry.failed, dry.failures
    first_host = next(iter(sandbox.conns.values()))
    assert first_host.run("test -e /srv/demo", check=False).exit_code == 1  # dry run touched nothing

    first = run_play(_play(roles_path), sandbox.inv, sandbox.conns, extra_vars={})
    assert not first.failed, first.failures
    assert first.changed > 0
    for conn in sandbox.conns.values():
        assert conn.run("systemctl is-active demo-http").stdout.strip() == "active"
        assert conn.run("stat -c %a /srv/demo").stdout.strip() == "750"

    second = run_play(_play(roles_path), sandbox.inv, sandbox.conns, extra_vars={})
    assert not second.failed, second.failures
    assert second.changed == 0


def test_changed_template_restarts_service_through_handler(sandbox, roles_path):
    conn = next(iter(sandbox.conns.values()))
    run_play(_play(roles_path), sandbox.inv, sandbox.conns, extra_vars={})
    pid_before = conn.run("systemctl show -p MainPID --value demo-http").stdout.strip()
    recap = run_play(_play(roles_path), sandbox.inv, sandbox.conns, extra_vars={"demo_port": 8081})
    assert not recap.failed, recap.failures
    pid_after = conn.run("systemctl show -p MainPID --value demo-http").stdout.strip()
    assert pid_before != pid_after
    # unit, daemon-reload and the handler's restart on each host
    assert recap.changed == 3 * len(sandbox.conns)


def test_failure_names_host_task_command_and_exit_code(sandbox, tmp_path):
    d = tmp_path / "bad"
    (d / "tasks").mkdir(parents=True)
    (d / "tasks" / "main.yml").write_text('- name: explode\n  command: "echo kaput >&2; exit 42"\n')
    recap = run_play(Play("bad", ["all"], ["bad"], roles_path=[str(tmp_path)]), sandbox.inv,
                     sandbox.conns, extra_vars={})
    assert recap.failed and len(recap.failures) == len(sandbox.conns)
    f = recap.failures[0]
    assert f.exit_code == 42 and "kaput" in f.stderr and f.task == "bad : explode"


def test_prepare_and_agents_roles_install_once(sandbox):
    av = agents_vars(sandbox.inv)
    play = Play("prepare", ["all"], ["prepare", "agents"], vars=av)
    first = run_play(play, sandbox.inv, sandbox.conns, extra_vars={})
    assert not first.failed, first.failures
    for conn in sandbox.conns.values():
        out = conn.run("/opt/bootstrap/current/bin/python -c 'import bootstrap; print(bootstrap.__version__)'")
        assert out.stdout.strip() == av["agents_version"]
        assert "net.ipv4.ip_forward = 1" in conn.get("/etc/sysctl.d/99-bootstrap.conf").decode()
        assert conn.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "1"
    again = run_play(play, sandbox.inv, sandbox.conns, extra_vars={})
    assert not again.failed and again.changed == 0


def test_unreachable_host_on_the_sandbox_bridge_is_one_line(sandbox):
    some = next(iter(sandbox.inv.hosts.values()))
    net = ipaddress.ip_interface(f"{some.node_ip}/24").network
    free = str(net.network_address + 200)  # nothing lives there
    ghost = SimpleNamespace(name="ghost-1", address=free, port=22, user="root",
                            key_file=some.key_file, vars={})
    with pytest.raises(RemoteError) as ei:
        SSHConnection(ghost, known_hosts_policy="ignore", connect_timeout=3).open()
    line = ei.value.line()
    assert line.startswith("host ghost-1") and "\n" not in line
