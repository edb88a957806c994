"""The version-skew policy and the unit rewriting of bootstrap.flows.versions (pure)."""

from __future__ import annotations

import pytest

from bootstrap import component_version
from bootstrap.flows import versions as V


def test_parse_own_and_component_versions():
    assert str(V.parse("0.2.0")) == "0.2.0"
    assert str(V.parse("v0.2.0")) == "0.2.0"
    assert str(V.parse("v1.32.0-bootstrap.0.2.0")) == "0.2.0"
    assert str(V.parse(component_version("1.4.7"))) == "1.4.7"
    assert str(V.parse("0.0.0+src")) == "0.0.0+src"
    for bad in ("", "0.2", "latest", "v1", "0.2.0.1", "0.2.x"):
        assert V.parse(bad) is None, bad


def test_ordering_is_semver():
    p = V.parse
    assert p("0.1.0") < p("0.1.1") < p("0.2.0") < p("1.0.0")
    assert p("0.2.0-rc.1") < p("0.2.0-rc.2") < p("0.2.0")
    assert p("0.2.0-rc.9") < p("0.2.0-rc.10")   # numeric identifiers compare as numbers
    assert p("0.2.0+a") == p("0.2.0+b")          # build metadata has no precedence


def test_one_minor_step_passes():
    v = V.check_apply("0.1.0", "0.2.0", "0.2.0")
    assert v.blocking(force=False) == []


def test_patch_upgrade_and_same_minor_pass():
    assert V.check_apply("0.1.0", "0.1.5", "0.1.5").blocking(False) == []


def test_skipping_a_minor_needs_force():
    v = V.check_apply("0.1.0", "0.3.0", "0.3.0")
    assert v.mandatory == []
    assert "skips a minor version" in v.skippable[0]
    assert v.blocking(force=True) == []


def test_major_change_and_big_downgrade_need_force():
    assert "crosses a major" in V.check_apply("0.9.0", "1.0.0", "1.0.0").skippable[0]
    assert "downgrades" in V.check_apply("0.5.0", "0.3.0", "0.5.0").skippable[0]
    assert V.check_apply("0.5.0", "0.4.0", "0.5.0").blocking(False) == []  # one back is fine


def test_an_older_toolkit_cannot_upgrade_to_a_newer_minor_even_with_force():
    v = V.check_apply("0.1.0", "0.2.0", "0.1.0")
    assert v.mandatory and "can only upgrade to 0.1.x" in v.mandatory[0]
    assert v.blocking(force=True) == v.mandatory


def test_an_older_toolkit_patch_needs_force():
    v = V.check_apply("0.2.0", "0.2.3", "0.2.1")
    assert v.mandatory == [] and "older than the upgrade version" in v.skippable[0]


def test_kubelets_too_far_behind_need_force():
    kubelets = {"w1": "v1.32.0-bootstrap.0.1.0", "w2": "v1.32.0-bootstrap.0.4.0",
                "foreign": "v1.29.3"}
    v = V.check_apply("0.4.0", "0.5.0", "0.5.0", kubelets)
    assert len(v.skippable) == 1 and "w1" in v.skippable[0]


def test_node_waits_for_the_control_plane():
    v = V.check_node("0.2.0", recorded="0.1.0")
    assert "run `bootstrap upgrade apply 0.2.0`" in v.skippable[0]
    assert V.check_node("0.2.0", recorded="0.2.0").blocking(False) == []


def test_no_node_newer_than_the_api_server():
    v = V.check_node("0.2.0", recorded="0.2.0", apiserver="v1.32.0-bootstrap.0.1.0")
    assert "no node may be newer than the API server" in v.skippable[0]
    assert V.check_node("0.2.0", "0.2.0", "v1.32.0-bootstrap.0.2.0", "0.1.0").blocking(False) == []


def test_node_minor_skip_needs_force():
    v = V.check_node("0.3.0", "0.3.0", current="0.1.0")
    assert "skips a minor" in v.skippable[0]


@pytest.mark.parametrize("bad", ["latest", "", "1.2"])
def test_bad_versions_are_mandatory_problems(bad):
    v = V.check_apply("0.1.0", bad, "0.1.0")
    assert v.mandatory and "is not a version" in v.mandatory[0]
    assert V.check_node(bad, "0.1.0").mandatory


UNIT = """# Managed by bootstrap.
[Service]
ExecStart=/opt/bootstrap/current/bin/bootstrap-apiserver \\
  --advertise-address=10.0.0.1 \\
  --etcd-servers=https://127.0.0.1:2379
Restart=always
"""


def test_unit_install_and_switch_touch_only_execstart():
    assert V.unit_install(UNIT, "0.1.0") == "0.1.0"
    assert V.unit_install(UNIT) is None  # current, and nobody said where it points
    moved = V.switch_unit(UNIT, "0.2.0")
    assert V.unit_install(moved) == "0.2.0"
    assert moved.replace("/opt/bootstrap/0.2.0/bin/", "/opt/bootstrap/current/bin/") == UNIT
    assert V.switch_unit(moved, "0.1.0").count("/opt/bootstrap/0.1.0/bin/bootstrap-apiserver") == 1
    assert V.unit_install("[Service]\nExecStart=/usr/bin/etcd --name x\n") is None


def test_every_agent_reports_its_install_with_version(capsys):
    from bootstrap.agents.apiserver.flags import _parser as apiserver
    from bootstrap.agents.dns.app import parser as dns
    from bootstrap.agents.kubelet.config import parser as kubelet
    from bootstrap.agents.proxy.config import parser as proxy
    from bootstrap.api.agent import agent_parser

    parsers = [apiserver(), dns(), kubelet(), proxy(),
               agent_parser("bootstrap-scheduler", "x", secure_port=10259)]
    for p in parsers:
        with pytest.raises(SystemExit) as done:
            p.parse_args(["--version"])
        assert done.value.code == 0
        assert capsys.readouterr().out.strip() == f"Kubernetes {component_version()}"


def test_version_endpoints_name_the_install():
    from bootstrap import __version__
    from bootstrap.agents.apiserver.handlers.health import VERSION
    from bootstrap.agents.kubelet.node import KUBELET_VERSION

    assert VERSION["gitVersion"] == KUBELET_VERSION == component_version()
    assert str(V.parse(VERSION["gitVersion"])) == str(V.parse(__version__))
    assert (VERSION["major"], VERSION["minor"]) == ("1", "32")


def test_units_name_the_install_the_toolkit_runs_from(tmp_path, monkeypatch):
    from bootstrap.flows import node_vars

    assert node_vars.running_agents_bin("/work/main/.venv") == "/opt/bootstrap/current/bin"
    assert node_vars.running_agents_bin("/opt/bootstrap/0.3.1") == "/opt/bootstrap/0.3.1/bin"
    # Through the link, the install it points at.
    link = tmp_path / "current"
    link.symlink_to("/opt/bootstrap/0.3.1")
    monkeypatch.setattr(node_vars.os.path, "realpath", lambda p: "/opt/bootstrap/0.3.1"
                        if p == str(link) else p)
    assert node_vars.running_agents_bin(str(link)) == "/opt/bootstrap/0.3.1/bin"
