"""ValidatingAdmissionPolicy evaluation (bootstrap.agents.apiserver.policies) against an
in-memory store: decisions, and a clear configuration error without cel-python."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from bootstrap.agents.apiserver import policies
from bootstrap.agents.apiserver.auth.authn import UserInfo
from bootstrap.api import resources
from bootstrap.api.errors import APIError


class _Store:
    def __init__(self, **lists):
        self.lists = lists

    async def list(self, plural, namespace=None):
        return self.lists.get(plural, [])

    async def get(self, plural, namespace, name):
        return None


def _attrs(obj: dict, store) -> SimpleNamespace:
    return SimpleNamespace(op="CREATE", resource=resources.by_gvr("", "v1", "configmaps"),
                           subresource="", obj=obj, old=None, store=store, namespace="ns",
                           name=obj["metadata"]["name"], user=UserInfo("alice"),
                           dry_run=False, warnings=[], annotations={})


def _store(spec: dict, actions=("Deny",)) -> _Store:
    policy = {"metadata": {"name": "p"}, "spec": {"matchConstraints": {"resourceRules": [{
        "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
        "resources": ["configmaps"]}]}, **spec}}
    binding = {"metadata": {"name": "b"},
               "spec": {"policyName": "p", "validationActions": list(actions)}}
    return _Store(validatingadmissionpolicies=[policy],
                  validatingadmissionpolicybindings=[binding])


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
      "data": {"a": "1", "b": "2"}}


async def test_deny_warn_and_request_variables():
    pytest.importorskip("celpy")
    store = _store({"validations": [{"expression": "request.userInfo.username != 'alice'",
                                     "message": "not alice"}]})
    with pytest.raises(APIError) as exc:
        await policies.validate(_attrs(CM, store))
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    assert exc.value.message == ('configmaps "cm" is forbidden: ValidatingAdmissionPolicy '
                                 "'p' with binding 'b' denied request: not alice")
    warn = _attrs(CM, _store({"validations": [{"expression": "size(object.data) < 2"}]},
                             actions=("Warn",)))
    await policies.validate(warn)
    assert warn.warnings == ["Validation failed for ValidatingAdmissionPolicy 'p' with "
                             "binding 'b': failed expression: size(object.data) < 2"]


async def test_non_boolean_result_is_an_error_under_fail_and_skipped_under_ignore():
    pytest.importorskip("celpy")
    spec = {"validations": [{"expression": "size(object.data)"}]}
    with pytest.raises(APIError) as exc:
        await policies.validate(_attrs(CM, _store(spec)))
    assert "resulted in a non-boolean value" in exc.value.message
    await policies.validate(_attrs(CM, _store({**spec, "failurePolicy": "Ignore"})))


async def test_without_cel_python_bindings_fail_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "celpy", None)  # import celpy raises ImportError
    policies._program.cache_clear()
    try:
        with pytest.raises(APIError) as exc:
            await policies.validate(_attrs(CM, _store(
                {"validations": [{"expression": "true"}]})))
        assert "CEL evaluation needs the cel-python package" in exc.value.message
    finally:
        policies._program.cache_clear()
