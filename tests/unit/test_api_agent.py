"""Agent flags: upstream names and defaults, Go durations and booleans."""

import pytest

from bootstrap.api.agent import agent_parser, parse_duration


def test_go_durations():
    assert parse_duration("15s") == 15
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1h") == 3600
    assert parse_duration("0") == 0
    assert parse_duration("-1.5s") == -1.5
    for bad in ("", "15", "1x", "s", "1m 2s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_defaults_as_upstream():
    args = agent_parser("x", "", secure_port=10259).parse_args([])
    assert args.leader_elect is True
    assert (args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
            args.leader_elect_retry_period) == (15, 10, 2)
    assert args.leader_elect_resource_namespace == "kube-system"
    assert args.bind_address == "0.0.0.0" and args.secure_port == 10259
    assert args.authorization_always_allow_paths == "/healthz,/readyz,/livez"
    args = agent_parser("x", "", secure_port=1).parse_args(
        ["--leader-elect=false", "--leader-elect-lease-duration=1m", "-v", "4"])
    assert args.leader_elect is False and args.leader_elect_lease_duration == 60
    assert args.v == 4


def test_bad_duration_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        agent_parser("x", "", secure_port=1).parse_args(["--leader-elect-retry-period=2"])
    assert exc.value.code == 2
    assert 'invalid duration "2"' in capsys.readouterr().err
