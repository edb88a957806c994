"""Webhook matching and response handling (bootstrap.agents.apiserver.webhooks), at our
own boundary: rules against request attributes, upstream's denial status, and the
AdmissionReview response checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bootstrap.agents.apiserver import webhooks
from bootstrap.api import resources


def _attrs(plural: str, group: str = "", version: str = "v1", op: str = "CREATE",
           sub: str = "", obj=None, old=None):
    res = resources.by_gvr(group, version, plural)
    return SimpleNamespace(op=op, resource=res, subresource=sub, obj=obj, old=old)


def _rule(resources_, ops=("CREATE",), groups=("",), versions=("v1",), scope=None):
    rule = {"operations": list(ops), "apiGroups": list(groups), "apiVersions": list(versions),
            "resources": list(resources_)}
    if scope:
        rule["scope"] = scope
    return rule


@pytest.mark.parametrize("entry,sub,matches", [
    ("pods", "", True), ("pods", "status", False),
    ("pods/status", "status", True), ("pods/status", "", False),
    ("pods/*", "status", True), ("pods/*", "", False),
    ("*", "", True), ("*", "status", False),
    ("*/status", "status", True), ("*/status", "binding", False),
    ("*/*", "", True), ("*/*", "eviction", True),
    ("services", "", False),
])
def test_resources_and_subresources(entry, sub, matches):
    a = _attrs("pods", sub=sub, op="UPDATE" if sub else "CREATE")
    assert webhooks.rule_matches(_rule([entry], ops=("*",)), a) is matches


def test_operations_groups_versions_and_scope():
    a = _attrs("deployments", group="apps", op="UPDATE")
    assert webhooks.rule_matches(_rule(["deployments"], ops=("UPDATE",), groups=("apps",)), a)
    assert not webhooks.rule_matches(_rule(["deployments"], ops=("CREATE", "DELETE"),
                                           groups=("apps",)), a)
    assert not webhooks.rule_matches(_rule(["deployments"], ops=("*",)), a)  # core group
    assert webhooks.rule_matches(_rule(["*"], ops=("*",), groups=("*",), versions=("*",)), a)
    assert not webhooks.rule_matches(_rule(["deployments"], ops=("*",), groups=("apps",),
                                           versions=("v1beta1",)), a)
    assert not webhooks.rule_matches(_rule(["*"], ops=("*",), groups=("*",), versions=("*",),
                                           scope="Cluster"), a)
    ns = _attrs("namespaces")
    assert webhooks.rule_matches(_rule(["*"], scope="Cluster"), ns)
    assert not webhooks.rule_matches(_rule(["*"], scope="Namespaced"), ns)


def test_object_selector_matches_object_or_old_object():
    hook = webhooks.Hook("c", {"objectSelector": {"matchLabels": {"team": "a"}}}, 0)
    labelled = {"metadata": {"labels": {"team": "a"}}}
    assert webhooks._object_matches(hook, _attrs("pods", obj=labelled))
    assert webhooks._object_matches(hook, _attrs("pods", op="DELETE", old=labelled))
    assert not webhooks._object_matches(hook, _attrs("pods", obj={"metadata": {}}))


@pytest.mark.parametrize("status,code,reason,message", [
    ({"code": 403, "reason": "Forbidden", "message": "no"}, 403, "Forbidden", ": no"),
    ({"code": 200, "message": "odd"}, 400, "", ": odd"),
    ({"reason": "Because"}, 400, "Because", ": Because"),
    (None, 400, "", " without explanation"),
])
def test_denial_is_upstreams_status(status, code, reason, message):
    err = webhooks.denial(webhooks.Hook("c", {"name": "w.example.com"}, 0), status)
    assert (err.code, err.reason) == (code, reason)
    assert err.message == 'admission webhook "w.example.com" denied the request' + message


def _response(**resp) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "response": {"uid": "u1", "allowed": True, **resp}}).encode()


@pytest.mark.parametrize("raw,mutating,message", [
    (b"not json", True, "received invalid webhook response"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
     True, "webhook response was absent"),
    (_response(uid="other"), True, 'expected response.uid="u1", got "other"'),
    (_response(patch="W10="), True, "webhook returned response.patch but not "
                                    "response.patchType"),
    (_response(patch="W10=", patchType="JSONPatch"), False,
     "validating webhooks may not return patches"),
    (_response(patch="W10=", patchType="MergePatch"), True,
     'invalid response.patchType of "MergePatch"'),
    (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                 "response": {"uid": "u1"}}).encode(), True,
     "expected webhook response of admission.k8s.io/v1"),
])
def test_bad_responses_are_call_errors(raw, mutating, message):
    hook = webhooks.Hook("c", {"name": "w"}, 0)
    with pytest.raises(webhooks.CallError) as exc:
        webhooks._verify(hook, raw, "u1", mutating)
    assert str(exc.value).startswith('failed calling webhook "w": ')
    assert message in str(exc.value)


def test_patch_may_not_rename_or_move():
    hook = webhooks.Hook("c", {"name": "w"}, 0)
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "a", "namespace": "ns"}}
    ok = webhooks._apply(hook, None, obj, _b64([{"op": "add", "path": "/data",
                                                  "value": {"k": "v"}}]))
    assert ok["data"] == {"k": "v"} and "data" not in obj  # the input is not modified
    for path, value in (("/metadata/name", "b"), ("/metadata/namespace", "other"),
                        ("/kind", "Secret")):
        with pytest.raises(webhooks.errors.APIError) as exc:
            webhooks._apply(hook, None, obj, _b64([{"op": "replace", "path": path,
                                                     "value": value}]))
        assert exc.value.code == 500
    with pytest.raises(webhooks.errors.APIError) as exc:  # DELETE: no object to patch
        webhooks._apply(hook, None, None, _b64([{"op": "add", "path": "/x", "value": 1}]))
    assert "not supported for this operation" in exc.value.message


def _b64(ops) -> str:
    import base64
    return base64.b64encode(json.dumps(ops).encode()).decode()
