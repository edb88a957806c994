"""Upstream's escalation arithmetic (pkg/registry/rbac/validation): rule breakdown and
coverage, as data."""

from __future__ import annotations

import pytest

from bootstrap.agents.apiserver.auth.escalation import breakdown, compact_string, rule_covers


def covered(owner: list[dict], servant: dict) -> bool:
    return all(any(rule_covers(o, r) for o in owner) for r in breakdown(servant))


def test_breakdown_is_one_rule_per_group_resource_verb_and_name():
    rules = breakdown({"apiGroups": ["", "apps"], "resources": ["pods"], "verbs": ["get", "list"],
                       "resourceNames": ["a", "b"]})
    assert len(rules) == 8
    assert {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["list"],
            "resourceNames": ["b"]} in rules
    assert breakdown({"nonResourceURLs": ["/healthz", "/metrics"], "verbs": ["get"]}) == [
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]


STAR = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
PODS_GET = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}


@pytest.mark.parametrize("owner,servant,expected", [
    ([STAR], {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]}, True),
    ([PODS_GET], PODS_GET, True),
    ([PODS_GET], {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}, False),
    ([PODS_GET], {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, False),
    ([{"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]}],
     {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, True),
    # A name-restricted owner rule does not cover an unrestricted one, only its names.
    ([{**PODS_GET, "resourceNames": ["a"]}], PODS_GET, False),
    ([{**PODS_GET, "resourceNames": ["a"]}], {**PODS_GET, "resourceNames": ["a"]}, True),
    ([PODS_GET], {**PODS_GET, "resourceNames": ["z"]}, True),
    # Resource rules never cover non-resource URLs, even with "*".
    ([STAR], {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, False),
    ([{"nonResourceURLs": ["/api/*"], "verbs": ["get"]}],
     {"nonResourceURLs": ["/api/v1"], "verbs": ["get"]}, True),
    ([], PODS_GET, False),
])
def test_rule_coverage(owner, servant, expected):
    assert covered(owner, servant) is expected


def test_compact_string_matches_upstream_message_form():
    assert compact_string(STAR) == '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}'
    assert compact_string({"nonResourceURLs": ["/x"], "verbs": ["get"]}) == \
        '{NonResourceURLs:["/x"], Verbs:["get"]}'
