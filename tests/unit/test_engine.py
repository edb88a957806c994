"""The role runner: vars, when/loop/register, notify/handlers, serial, tags, failures, output."""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field

import pytest
from rich.console import Console

from bootstrap.engine import Play, run_play
from bootstrap.engine.model import PlayFailed
from bootstrap.errors import UserError
from bootstrap.remote import Result
from bootstrap.remote.fake import FakeConnection


@dataclass
class H:
    name: str
    address: str = "10.0.0.1"
    node_ip: str = "10.0.0.1"


@dataclass
class Inv:
    hosts: dict
    groups: dict
    host_vars: dict = field(default_factory=dict)

    def vars_for(self, name):
        return dict(self.host_vars.get(name, {}))


def inventory(n=3, host_vars=None, **groups):
    names = [f"h{i}" for i in range(1, n + 1)]
    return Inv({h: H(h, f"10.0.0.{i}", f"10.0.0.{i}") for i, h in enumerate(names, 1)},
               {"all": names, **groups}, host_vars or {})


def role(tmp_path, name, tasks, defaults="", handlers="", templates=None):
    d = tmp_path / "roles" / name
    for sub in ("tasks", "defaults", "handlers", "templates"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "tasks" / "main.yml").write_text(textwrap.dedent(tasks))
    (d / "defaults" / "main.yml").write_text(textwrap.dedent(defaults))
    (d / "handlers" / "main.yml").write_text(textwrap.dedent(handlers))
    for fname, text in (templates or {}).items():
        (d / "templates" / fname).write_text(text)
    return str(tmp_path / "roles")


class StatefulHost(FakeConnection):
    """A fake host whose stat answers follow what was put and which dirs were made."""

    def __init__(self, name):
        super().__init__(name)
        self.dirs: set[str] = set()
        self.owners: dict[str, str] = {}  # path -> owner set by chown

    def run(self, cmd, **kw):
        import hashlib
        import re
        import shlex

        if cmd.startswith("p=") and "stat -c" in cmd:
            self.commands.append(cmd)
            path = shlex.split(cmd[2:].split(";")[0])[0]
            owner = self.owners.get(path, "root")
            if path in self.dirs:
                return Result(0, f"directory|755|{owner}|root|0|0\n", "")
            if path in self.files:
                mode = f"{self.modes.get(path, 0o644):o}"
                h = hashlib.sha256(self.files[path]).hexdigest()
                return Result(0, f"regular file|{mode}|root|root|0|0\nH {h}\n", "")
            return Result(0, "missing\n", "")
        m = re.match(r"mkdir -p -- (\S+)", cmd)
        if m:
            self.dirs.add(m.group(1))
        m = re.match(r"chown ([^:\s]+)\S* -- (\S+)", cmd)
        if m:
            self.owners[m.group(2)] = m.group(1)
        return super().run(cmd, **kw)


def run(play, inv, conns, **kw):
    buf = io.StringIO()
    recap = run_play(play, inv, conns, extra_vars=kw.pop("extra_vars", {}),
                     console=Console(file=buf, width=200, color_system=None), **kw)
    return recap, buf.getvalue()


def test_converges_then_second_run_changes_nothing(tmp_path):
    path = role(tmp_path, "r", """
        - name: dir
          file: {path: /etc/demo, state: directory}
        - name: conf
          template: {src: c.j2, dest: /etc/demo/c.conf}
          notify: reload demo
        """, defaults="port: 1\n", handlers="""
        - name: reload demo
          command: "echo reload"
        """, templates={"c.j2": "port={{ port }} host={{ inventory_hostname }}\n"})
    inv = inventory(2)
    conns = {h: StatefulHost(h) for h in inv.hosts}
    play = Play("p", ["all"], ["r"], roles_path=[path])
    recap, text = run(play, inv, conns)
    assert not recap.failed and recap.changed == 6  # dir, conf, handler on 2 hosts
    assert conns["h2"].files["/etc/demo/c.conf"] == b"port=1 host=h2\n"
    assert "HANDLER [r : reload demo]" in text and "PLAY RECAP" in text
    recap, text = run(play, inv, conns)
    assert recap.changed == 0 and "HANDLER" not in text
    assert recap.per_host["h1"].ok == 2


def test_vars_precedence_and_lazy_defaults(tmp_path):
    path = role(tmp_path, "r", """
        - name: show
          copy: {content: "{{ a }} {{ b }} {{ c }} {{ d }} {{ url }} {{ node_ip }}", dest: /out}
        """, defaults="""
        a: default
        b: default
        c: default
        d: default
        url: "https://{{ node_ip }}:{{ port }}"
        port: 2379
        """)
    inv = inventory(1, host_vars={"h1": {"b": "inventory", "c": "inventory", "d": "inventory",
                                         "port": 2380}})
    conns = {"h1": StatefulHost("h1")}
    play = Play("p", ["h1"], ["r"], vars={"c": "play", "d": "play"}, roles_path=[path])
    recap, _ = run(play, inv, conns, extra_vars={"d": "extra"})
    assert not recap.failed, recap.failures
    assert conns["h1"].files["/out"] == b"default inventory play extra https://10.0.0.1:2380 10.0.0.1"


def test_when_loop_register_set_fact_and_groups(tmp_path):
    path = role(tmp_path, "r", """
        - name: probe
          command: {cmd: "cat /etc/id", changed_when: false}
          register: probe
        - name: remember
          set_fact: {ident: "{{ probe.stdout }}-x"}
        - name: only etcd
          command: "touch /etcd-{{ ident }}"
          when: "inventory_hostname in groups['etcd']"
        - name: each
          command: "echo {{ item.n }}"
          loop: "{{ things }}"
          when: item.enabled
          register: each
        - name: after loop
          command: "echo {{ each.results | length }} {{ each.changed }}"
        """, defaults="things: [{n: 1, enabled: true}, {n: 2, enabled: false}]\n")
    inv = inventory(2, etcd=["h1"])
    conns = {h: FakeConnection(h, {r"cat /etc/id": Result(0, f"id-{h}\n", "")}) for h in inv.hosts}
    recap, _ = run(Play("p", ["all"], ["r"], roles_path=[path]), inv, conns)
    assert not recap.failed, recap.failures
    assert "touch /etcd-id-h1-x" in conns["h1"].commands
    assert not any(c.startswith("touch") for c in conns["h2"].commands)
    assert "echo 1" in conns["h1"].commands and "echo 2" not in conns["h1"].commands
    assert "echo 2 True" in conns["h1"].commands
    assert recap.per_host["h2"].skipped == 1


def test_failure_stops_that_host_only_and_reports_command(tmp_path):
    path = role(tmp_path, "r", """
        - name: risky
          command: "do-thing"
        - name: next
          command: "echo next"
        """)
    inv = inventory(2)
    conns = {
        "h1": FakeConnection("h1", {"do-thing": Result(3, "", "line1\nthing broke\n")}),
        "h2": FakeConnection("h2"),
    }
    recap, text = run(Play("p", ["all"], ["r"], roles_path=[path]), inv, conns)
    assert recap.failed and recap.per_host["h1"].failed == 1
    assert "echo next" in conns["h2"].commands and "echo next" not in conns["h1"].commands
    f = recap.failures[0]
    assert (f.host, f.task, f.command, f.exit_code) == ("h1", "r : risky", "do-thing", 3)
    assert "thing broke" in f.stderr
    assert "failed: [h1]" in text and "command: do-thing" in text and "exit code: 3" in text
    with pytest.raises(PlayFailed) as ei:
        recap.raise_on_failure()
    assert "host h1" in ei.value.line() and "r : risky" in ei.value.line()
    assert ei.value.exit_code != 0


def test_ignore_errors_and_failed_when(tmp_path):
    path = role(tmp_path, "r", """
        - name: allowed to fail
          command: "false-ish"
          ignore_errors: true
        - name: rc 1 is fine
          command: {cmd: "grep x /f", failed_when: "rc > 1"}
          register: g
        - name: use it
          command: "echo {{ g.rc }}"
        """)
    conns = {"h1": FakeConnection("h1", {"false-ish": Result(1, "", "no"), "grep": Result(1, "", "")})}
    recap, text = run(Play("p", ["h1"], ["r"], roles_path=[path]), inventory(1), conns)
    assert not recap.failed and "echo 1" in conns["h1"].commands
    assert "failed (ignored)" in text


def test_serial_batches_stop_after_a_failed_batch(tmp_path):
    path = role(tmp_path, "r", """
        - name: restart
          command: "restart-member"
        """)
    inv = inventory(3)
    order = []

    def record(host):
        def respond(cmd):
            order.append(host)
            return Result(1 if host == "h2" else 0, "", "quorum lost")
        return respond

    conns = {h: FakeConnection(h, {"restart": record(h)}) for h in inv.hosts}
    recap, _ = run(Play("p", ["all"], ["r"], serial=1, roles_path=[path]), inv, conns)
    assert order == ["h1", "h2"]  # h3 never touched
    assert recap.failed and recap.per_host["h3"].ok == 0


def test_handlers_run_once_per_host_only_where_notified(tmp_path):
    path = role(tmp_path, "r", """
        - name: a
          command: "change-a"
          notify: restart
        - name: b
          command: {cmd: "probe", changed_when: false}
          notify: restart
        - name: c
          command: "change-c"
          notify: restart
          when: inventory_hostname == 'h1'
        """, handlers="""
        - name: restart
          systemd: {name: svc, state: restarted}
        """)
    inv = inventory(2)
    conns = {h: FakeConnection(h, {"systemctl show": Result(0, "ActiveState=active\n", "")})
             for h in inv.hosts}
    recap, _ = run(Play("p", ["all"], ["r"], roles_path=[path]), inv, conns)
    for h in inv.hosts:
        assert conns[h].commands.count("systemctl restart -- svc.service") == 1
    # a no-change task never notifies
    path = role(tmp_path, "r", """
        - name: b
          command: {cmd: "probe", changed_when: false}
          notify: restart
        """, handlers="""
        - name: restart
          systemd: {name: svc, state: restarted}
        """)
    conns = {h: FakeConnection(h) for h in inv.hosts}
    run(Play("p", ["all"], ["r"], roles_path=[path]), inv, conns)
    assert not any("restart" in c for c in conns["h1"].commands)


def test_tags_select_tasks_and_role_name_is_a_tag(tmp_path):
    path = role(tmp_path, "r", """
        - name: t1
          command: "one"
          tags: [etcd]
        - name: t2
          command: "two"
        - name: t3
          command: "three"
          tags: [always]
        """)
    conns = {"h1": FakeConnection("h1")}
    run(Play("p", ["h1"], ["r"], tags={"etcd"}, roles_path=[path]), inventory(1), conns)
    assert conns["h1"].commands == ["one", "three"]
    conns = {"h1": FakeConnection("h1")}
    run(Play("p", ["h1"], ["r"], tags={"r"}, skip_tags={"etcd"}, roles_path=[path]), inventory(1), conns)
    assert conns["h1"].commands == ["two", "three"]


def test_run_once_shares_registered_result(tmp_path):
    path = role(tmp_path, "r", """
        - name: once
          command: "member-list"
          run_once: true
          register: members
        - name: use
          command: "echo {{ members.stdout }}"
        """)
    inv = inventory(2)
    conns = {h: FakeConnection(h, {"member-list": Result(0, "m1,m2", "")}) for h in inv.hosts}
    run(Play("p", ["all"], ["r"], roles_path=[path]), inv, conns)
    assert "member-list" not in conns["h2"].commands and "echo m1,m2" in conns["h2"].commands


def test_dry_run_changes_nothing_and_shows_diff(tmp_path):
    path = role(tmp_path, "r", """
        - name: conf
          copy: {content: "new\\n", dest: /etc/x}
        - name: cmd
          command: "apply-x"
        - name: read-only probe runs anyway
          command: {cmd: "cat /etc/version", changed_when: false}
          check_mode: false
          register: v
        - name: uses it
          command: "echo {{ v.stdout }}"
        """)
    conn = StatefulHost("h1")
    conn.files["/etc/x"] = b"old\n"
    conn.respond("cat /etc/version", Result(0, "v9\n", ""))
    recap, text = run(Play("p", ["h1"], ["r"], roles_path=[path]), inventory(1), {"h1": conn},
                      dry_run=True, diff=True)
    assert conn.files["/etc/x"] == b"old\n" and conn.puts == []
    assert "apply-x" not in conn.commands and "cat /etc/version" in conn.commands
    assert recap.changed == 3 and recap.dry_run
    assert "would change: [h1]" in text and "-old" in text and "+new" in text
    assert "would run: apply-x" in text and "would run: echo v9" in text


def test_diff_shows_file_text_verbatim(tmp_path):
    # Backslashes (unit-file line continuations) and bracketed text are file
    # content, not rich markup: the diff must show them exactly as on the host.
    path = role(tmp_path, "r", """
        - name: unit
          template: {src: u.j2, dest: /etc/u.service}
        """, templates={"u.j2": "ExecStart=/bin/x \\\n  --b [red]\n"})
    conn = StatefulHost("h1")
    conn.files["/etc/u.service"] = b"ExecStart=/bin/x \\\n  --a [red]\n"
    _, text = run(Play("p", ["h1"], ["r"], roles_path=[path]), inventory(1), {"h1": conn},
                  dry_run=True, diff=True)
    lines = text.splitlines()
    assert "     ExecStart=/bin/x \\" in lines
    assert "    -  --a [red]" in lines and "    +  --b [red]" in lines


def test_errors_in_role_files_name_the_file(tmp_path):
    path = role(tmp_path, "r", """
        - name: two ops
          command: "x"
          file: {path: /x}
        """)
    with pytest.raises(UserError, match=r"tasks/main.yml task 1.*exactly one operation"):
        run(Play("p", ["h1"], ["r"], roles_path=[path]), inventory(1), {"h1": FakeConnection("h1")})
    path = role(tmp_path, "r", "- name: x\n  frobnicate: {}\n")
    with pytest.raises(UserError, match="unknown operation 'frobnicate'"):
        run(Play("p", ["h1"], ["r"], roles_path=[path]), inventory(1), {"h1": FakeConnection("h1")})
    with pytest.raises(UserError, match="role 'nope' not found"):
        run(Play("p", ["h1"], ["nope"], roles_path=[path]), inventory(1), {"h1": FakeConnection("h1")})
    path = role(tmp_path, "r", "- name: x\n  command: x\n")
    with pytest.raises(UserError, match="no host or group 'ghost'"):
        run(Play("p", ["ghost"], ["r"], roles_path=[path]), inventory(1), {"h1": FakeConnection("h1")})


def test_undefined_variable_fails_the_task_with_one_line(tmp_path):
    path = role(tmp_path, "r", """
        - name: bad
          command: "echo {{ missing_var }}"
        - name: bad when
          command: "echo x"
          when: other_missing
        """)
    inv = inventory(1)
    recap, _ = run(Play("p", ["h1"], ["r"], roles_path=[path]), inv, {"h1": FakeConnection("h1")})
    assert recap.failed and "missing_var" in recap.failures[0].message
    path = role(tmp_path, "r", """
        - name: bad when
          command: "echo x"
          when: other_missing
        """)
    recap, _ = run(Play("p", ["h1"], ["r"], roles_path=[path]), inv, {"h1": FakeConnection("h1")})
    assert recap.failed and "other_missing" in recap.failures[0].message


def test_assert_fail_and_debug(tmp_path):
    path = role(tmp_path, "r", """
        - name: say
          debug: {msg: "n={{ n }}"}
        - name: check
          assert: {that: ["n > 1"], fail_msg: "n too small: {{ n }}"}
        """, defaults="n: 1\n")
    recap, text = run(Play("p", ["h1"], ["r"], roles_path=[path]), inventory(1), {"h1": FakeConnection("h1")})
    assert "n=1" in text and recap.failed and recap.failures[0].message == "n too small: 1"


def test_recap_merge_sums_hosts():
    from bootstrap.engine import HostStats, Recap

    a = Recap(per_host={"h1": HostStats(ok=2, changed=1)})
    b = Recap(per_host={"h1": HostStats(ok=1), "h2": HostStats(ok=3, changed=2)})
    m = a.merge(b)
    assert m.changed == 3 and m.per_host["h1"].ok == 3 and not m.failed


def test_throttle_caps_hosts_running_a_task_at_once(tmp_path):
    import threading
    import time as _time

    path = role(tmp_path, "r", """
        - name: slowish
          command: "work"
        """)
    inv = inventory(4)
    lock, running, peak = threading.Lock(), [0], [0]

    def respond(cmd):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        _time.sleep(0.05)  # overlap window only; nothing asserts on time
        with lock:
            running[0] -= 1
        return Result(0, "", "")

    conns = {h: FakeConnection(h, {"work": respond}) for h in inv.hosts}
    recap, _ = run(Play("p", ["all"], ["r"], throttle=2, roles_path=[path]), inv, conns)
    assert recap.changed == 4 and peak[0] <= 2
