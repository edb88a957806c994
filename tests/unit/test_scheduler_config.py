"""KubeSchedulerConfiguration: defaults, merge rules, and one-line errors."""

from __future__ import annotations

import pytest
import yaml

from bootstrap.agents.scheduler import config

V1 = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}


def parse(**fields) -> config.SchedulerConfig:
    return config.parse({**V1, **fields}, "sched.yaml")


def error(**fields) -> str:
    with pytest.raises(config.ConfigError) as exc:
        parse(**fields)
    assert exc.value.exit_code == 2
    line = exc.value.line()
    assert "\n" not in line and line.startswith("sched.yaml: ")
    return line


def test_defaults_are_upstreams_default_profile():
    p = config.default_config().profiles[0]
    assert p.scheduler_name == "default-scheduler"
    assert p.filters == ["NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity",
                         "NodePorts", "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity"]
    assert p.scores == [("TaintToleration", 3), ("NodeAffinity", 2), ("NodeResourcesFit", 1),
                        ("PodTopologySpread", 2), ("InterPodAffinity", 2),
                        ("NodeResourcesBalancedAllocation", 1), ("ImageLocality", 1)]
    assert p.preemption is True


def test_disable_enable_and_weights():
    cfg = parse(profiles=[{"schedulerName": "custom", "plugins": {
        "score": {"disabled": [{"name": "ImageLocality"}],
                  "enabled": [{"name": "NodeResourcesFit", "weight": 5}]},
        "filter": {"disabled": [{"name": "*"}], "enabled": [{"name": "NodeResourcesFit"}]},
        "postFilter": {"disabled": [{"name": "DefaultPreemption"}]}},
        "pluginConfig": [{"name": "NodeResourcesFit", "args": {
            "scoringStrategy": {"type": "MostAllocated"}}}]}])
    p = cfg.profiles[0]
    assert p.filters == ["NodeResourcesFit"]
    assert ("NodeResourcesFit", 5) in p.scores and "ImageLocality" not in dict(p.scores)
    assert list(dict(p.scores)).index("NodeResourcesFit") == 2   # replaced in place
    assert p.preemption is False
    fw = config.frameworks(cfg)["custom"]
    fit = next(pl for pl, _ in fw.scorers if pl.name == "NodeResourcesFit")
    assert fit.strategy == "MostAllocated" and fw.filters[0] is fit


def test_multipoint_disable_removes_everywhere():
    p = parse(profiles=[{"plugins": {"multiPoint": {"disabled": [{"name": "TaintToleration"}]}}}]).profiles[0]
    assert "TaintToleration" not in p.filters and "TaintToleration" not in dict(p.scores)


def test_several_profiles_and_percentage():
    cfg = parse(percentageOfNodesToScore=30, profiles=[
        {"schedulerName": "a"}, {"schedulerName": "b", "percentageOfNodesToScore": 70}])
    assert [(p.scheduler_name, p.percentage) for p in cfg.profiles] == [("a", 30), ("b", 70)]


def test_leader_election_and_client_connection():
    cfg = parse(leaderElection={"leaderElect": False, "leaseDuration": "30s",
                                "resourceName": "sched"},
                clientConnection={"kubeconfig": "/etc/kubernetes/scheduler.conf"})
    le = cfg.leader_election
    assert (le.leader_elect, le.lease_duration, le.resource_name) == (False, 30.0, "sched")
    assert cfg.kubeconfig == "/etc/kubernetes/scheduler.conf"


@pytest.mark.parametrize("fields,needle", [
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]},
     'plugin "Nope" does not exist'),
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "ImageLocality"}]}}}]},
     'plugin "ImageLocality" does not extend filter plugin'),
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "VolumeBinding"}]}}}]},
     'plugin "VolumeBinding" is not supported'),
    ({"profiles": [{"schedulerName": "x"}, {"schedulerName": "x"}]}, 'Duplicate value: "x"'),
    ({"profiles": [{"schedulerName": "x"}, {}]}, "profiles[1].schedulerName: Required value"),
    ({"percentageOfNodesToScore": 101}, "not in valid range [0-100]"),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {
        "scoringStrategy": {"type": "Random"}}}]}]}, 'Unsupported value: "Random"'),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodeAffinity", "weight": -1}]}}}]},
     "weight: Invalid value: -1"),
    ({"leaderElection": {"leaseDuration": "soon"}}, 'time: invalid duration "soon"'),
    ({"profile": []}, 'unknown field "profile"'),
    ({"profiles": [{"plugins": {"filters": {}}}]}, 'unknown field "profiles[0].plugins.filters"'),
    ({"podInitialBackoffSeconds": 20}, "podMaxBackoffSeconds"),
    ({"parallelism": 0}, "parallelism: Invalid value: 0"),
    ({"profiles": [{"pluginConfig": [{"name": "PodTopologySpread", "args": {
        "defaultingType": "List", "defaultConstraints": [{
            "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {}}]}}]}]}, "must not define a selector"),
    ({"profiles": [{"pluginConfig": [{"name": "PodTopologySpread", "args": {
        "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                "whenUnsatisfiable": "DoNotSchedule"}]}}]}]},
     'when .defaultingType is "System"'),
])
def test_bad_configs_are_one_clear_line(fields, needle):
    assert needle in error(**fields)


def test_wrong_api_version_and_bad_files(tmp_path):
    with pytest.raises(config.ConfigError, match="only the v1 API"):
        config.parse({"apiVersion": "kubescheduler.config.k8s.io/v1beta3",
                      "kind": "KubeSchedulerConfiguration"}, "x")
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**V1, "profiles": [{"schedulerName": "mine"}]}))
    assert config.load(str(good)).profiles[0].scheduler_name == "mine"


@pytest.mark.parametrize("argv,needle", [
    (["--leader-elect=maybe"], 'parsing "maybe": invalid syntax'),
    (["--leader-elect-retry-period=soon"], 'time: invalid duration "soon"'),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_flags_are_one_line_and_exit_2(argv, needle, capsys):
    from bootstrap.agents.scheduler import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and err.count("\n") == 1


def test_bad_config_file_exits_2_before_connecting(tmp_path, capsys):
    from bootstrap.agents.scheduler import main

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({**V1, "percentageOfNodesToScore": 500}))
    assert main([f"--config={cfg}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kube-scheduler: {cfg}: percentageOfNodesToScore") and err.count("\n") == 1


def test_flags_win_over_the_config_file_which_wins_over_defaults(tmp_path):
    from bootstrap.agents.scheduler import app

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({**V1, "leaderElection": {"leaseDuration": "30s",
                                                            "resourceName": "mine"},
                                   "clientConnection": {"kubeconfig": "/from/config"}}))
    args = app.parser().parse_args([f"--config={cfg}", "--leader-elect-resource-name=flag"])
    app.resolve(args)
    assert args.leader_elect_lease_duration == 30.0          # config over default
    assert args.leader_elect_resource_name == "flag"          # flag over config
    assert args.leader_elect_renew_deadline == 10.0           # default
    assert args.leader_elect is True and args.kubeconfig == "/from/config"
    args = app.parser().parse_args([f"--config={cfg}", "--kubeconfig=/from/flag"])
    app.resolve(args)
    assert args.kubeconfig == "/from/flag"
