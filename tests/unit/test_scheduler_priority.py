"""PriorityClass: the Priority admission plugin and the kind's validation (upstream messages)."""

from __future__ import annotations

import pytest
from test_auth_authn import FakeStore

from bootstrap.agents.apiserver.admission import admit
from bootstrap.agents.apiserver.auth.authn import UserInfo
from bootstrap.api import schema
from bootstrap.api.errors import APIError
from bootstrap.api.resources import by_gvr
from bootstrap.api.validation_kinds import SYSTEM_PRIORITY_CLASSES

PODS = by_gvr("", "v1", "pods")
PCS = by_gvr("scheduling.k8s.io", "v1", "priorityclasses")
GVK = ("scheduling.k8s.io", "v1", "PriorityClass")
ADMIN = UserInfo("admin", groups=["system:masters", "system:authenticated"])


def pc(name, value, default=False, policy=None):
    obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
           "metadata": {"name": name}, "value": value, "globalDefault": default}
    if policy:
        obj["preemptionPolicy"] = policy
    return obj


def store(*classes):
    return FakeStore([("namespaces", {"metadata": {"name": "default"}}),
                      ("serviceaccounts", {"metadata": {"name": "default", "namespace": "default"}}),
                      *[("priorityclasses", c) for c in classes]])


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "automountServiceAccountToken": False, **spec}}


async def test_class_name_resolves_priority_and_policy():
    s = store(pc("high", 1000, policy="Never"))
    out = await admit("CREATE", PODS, pod(priorityClassName="high"), None, ADMIN, s)
    assert (out["spec"]["priority"], out["spec"]["preemptionPolicy"]) == (1000, "Never")


async def test_no_class_uses_the_global_default_or_zero():
    out = await admit("CREATE", PODS, pod(), None, ADMIN, store())
    assert (out["spec"]["priority"], out["spec"]["preemptionPolicy"]) == (0, "PreemptLowerPriority")
    assert "priorityClassName" not in out["spec"]
    out = await admit("CREATE", PODS, pod(), None, ADMIN, store(pc("a", 50, True), pc("b", 10, True)))
    assert (out["spec"]["priority"], out["spec"]["priorityClassName"]) == (10, "b")


async def test_unknown_class_is_forbidden_with_upstreams_message():
    with pytest.raises(APIError) as exc:
        await admit("CREATE", PODS, pod(priorityClassName="nope"), None, ADMIN, store())
    assert exc.value.code == 403
    assert exc.value.message == 'pods "p" is forbidden: no PriorityClass with name nope was found'


async def test_a_priority_that_disagrees_with_the_class_is_forbidden():
    with pytest.raises(APIError) as exc:
        await admit("CREATE", PODS, pod(priorityClassName="high", priority=5), None, ADMIN,
                    store(pc("high", 1000)))
    assert exc.value.code == 403 and "must not be provided in pod spec" in exc.value.message
    ok = await admit("CREATE", PODS, pod(priorityClassName="high", priority=1000), None, ADMIN,
                     store(pc("high", 1000)))
    assert ok["spec"]["priority"] == 1000


async def test_only_one_global_default():
    s = store(pc("first", 10, True))
    with pytest.raises(APIError) as exc:
        await admit("CREATE", PCS, pc("second", 20, True), None, ADMIN, s)
    assert exc.value.message == ('priorityclasses.scheduling.k8s.io "second" is forbidden: '
                                 'PriorityClass first is already marked as default. Only one '
                                 'default can exist')
    await admit("UPDATE", PCS, pc("first", 10, True), pc("first", 10, True), ADMIN, s)
    await admit("CREATE", PCS, pc("third", 30), None, ADMIN, s)


def test_validation_reserved_names_maximum_and_immutability():
    with pytest.raises(APIError) as exc:
        schema.validate(pc("system-mine", 5), GVK)
    assert exc.value.code == 422 and "reserved for system use only" in exc.value.message
    with pytest.raises(APIError) as exc:
        schema.validate(pc("huge", 1000000001), GVK)
    assert "maximum allowed value of a user defined priority is 1000000000" in exc.value.message
    for system in SYSTEM_PRIORITY_CLASSES:
        schema.validate(pc(system["name"], system["value"]), GVK)
    with pytest.raises(APIError) as exc:
        schema.validate_update(pc("x", 2), pc("x", 1), GVK)
    assert "value: Forbidden: may not be changed in an update." in exc.value.message
    with pytest.raises(APIError):
        schema.validate(pc("x", 1, policy="Sometimes"), GVK)


def test_catalogue_and_table():
    from datetime import UTC, datetime

    from bootstrap.api.tables_kinds import COLUMNS

    assert PCS.short_names == ("pc",) and not PCS.namespaced
    cols = COLUMNS["priorityclasses"]()
    row = [c.cell({**pc("x", 7, True, "Never"), "metadata": {
        "name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}}, datetime.now(UTC)) for c in cols]
    assert [c.name for c in cols] == ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    assert row[:3] == ["x", 7, True] and row[4] == "Never"
