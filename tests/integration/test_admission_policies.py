"""ValidatingAdmissionPolicy with CEL (cel-python) against a real API server: Deny,
Warn and Audit actions, messages, reasons, failurePolicy, variables, matchConditions
and the bindings' matchResources."""

from __future__ import annotations

import json

import pytest

from .cluster import running_cluster
from .test_admission_webhooks import _api, _until_code
from .test_kubectl import run

pytest.importorskip("celpy")

GROUP = "/apis/admissionregistration.k8s.io/v1"
NS = "policed"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    audit = tmp_path_factory.mktemp("policies") / "audit.log"
    with running_cluster(extra_args=["--audit-log-path", str(audit)]) as c:
        run(c.admin, "create", "namespace", NS)
        run(c.admin, "label", "namespace", NS, "policies=on")
        run(c.admin, "create", "namespace", "free")
        c.audit_log = audit
        yield c


class _Policy:
    def __init__(self, c, name: str, spec: dict, actions=("Deny",), match_resources=None):
        self.c, self.name = c, name
        self.policy = {"apiVersion": "admissionregistration.k8s.io/v1",
                       "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
                       "spec": {"matchConstraints": {"resourceRules": [{
                           "operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                           "apiVersions": ["v1"], "resources": ["configmaps"]}]}, **spec}}
        bspec = {"policyName": name, "validationActions": list(actions),
                 "matchResources": match_resources or {
                     "namespaceSelector": {"matchLabels": {"policies": "on"}}}}
        self.binding = {"apiVersion": "admissionregistration.k8s.io/v1",
                        "kind": "ValidatingAdmissionPolicyBinding",
                        "metadata": {"name": f"{name}-binding"}, "spec": bspec}

    def __enter__(self):
        for plural, body in (("validatingadmissionpolicies", self.policy),
                             ("validatingadmissionpolicybindings", self.binding)):
            code, out, _ = _api(self.c, "POST", f"{GROUP}/{plural}", body)
            assert code == 201, out
        return self

    def __exit__(self, *exc):
        _api(self.c, "DELETE", f"{GROUP}/validatingadmissionpolicybindings/{self.name}-binding")
        _api(self.c, "DELETE", f"{GROUP}/validatingadmissionpolicies/{self.name}")


def _cm(c, name: str, data: dict, ns: str = NS, labels: dict | None = None):
    md = {"name": name, **({"labels": labels} if labels else {})}
    return _api(c, "POST", f"/api/v1/namespaces/{ns}/configmaps",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": data})


def test_deny_with_message_and_default_reason(env):
    c = env
    spec = {"validations": [{"expression": "size(object.data) <= 2",
                             "message": "at most two keys"},
                            {"expression": "!('secret' in object.data)"}]}
    with _Policy(c, "small", spec):
        code, status, _ = _until_code(
            c, lambda i: _cm(c, f"big-{i}", {"a": "1", "b": "2", "c": "3"}), 422)
        assert status["reason"] == "Invalid"
        assert status["message"].endswith(
            "\" is forbidden: ValidatingAdmissionPolicy 'small' with binding 'small-binding' "
            "denied request: at most two keys")
        assert status["message"].startswith('configmaps "big-')
        # Without a message, upstream's "failed expression: ..." names the expression.
        code, status, _ = _cm(c, "has-secret", {"secret": "x"})
        assert code == 422
        assert status["message"].endswith("denied request: failed expression: "
                                          "!('secret' in object.data)")
        assert _cm(c, "fine", {"a": "1"})[0] == 201
        # The binding's namespaceSelector leaves other namespaces alone.
        assert _cm(c, "big", {"a": "1", "b": "2", "c": "3"}, ns="free")[0] == 201


def test_message_expression_reason_variables_and_match_conditions(env):
    c = env
    spec = {"variables": [{"name": "keys", "expression": "size(object.data)"}],
            "matchConditions": [{"name": "not-exempt",
                                 "expression": "!has(object.metadata.labels) || "
                                               "!('exempt' in object.metadata.labels)"}],
            "validations": [{"expression": "variables.keys < 2", "reason": "Forbidden",
                             "messageExpression": "'has ' + string(variables.keys) + "
                                                  "' keys'"}]}
    with _Policy(c, "vars", spec):
        code, status, _ = _until_code(c, lambda i: _cm(c, f"v-{i}", {"a": "1", "b": "2"}), 403)
        assert status["reason"] == "Forbidden"
        assert status["message"].endswith("denied request: has 2 keys")
        code, _, _ = _cm(c, "exempt", {"a": "1", "b": "2"}, labels={"exempt": "yes"})
        assert code == 201  # matchConditions false: the policy does not apply


def test_warn_and_audit_actions(env):
    c = env
    spec = {"validations": [{"expression": "object.metadata.name.startsWith('ok-')",
                             "message": "names start with ok-"}],
            "auditAnnotations": [{"key": "name", "valueExpression": "object.metadata.name"}]}
    with _Policy(c, "names", spec, actions=("Warn", "Audit")):
        def warned(i):
            got = _cm(c, f"w-{i}", {"a": "1"})
            return got if "names start with ok-" in (got[2].get("Warning") or "") else (
                0, {}, {})
        code, _, headers = _until_code(c, warned, 201)
        assert ("Validation failed for ValidatingAdmissionPolicy 'names' with binding "
                "'names-binding': names start with ok-") in headers["Warning"]
        events = [json.loads(line) for line in c.audit_log.read_text().splitlines()]
        annotated = [e["annotations"] for e in events if "annotations" in e and
                     "validation.policy.admission.k8s.io/validation_failure" in e["annotations"]]
        assert annotated
        failure = json.loads(
            annotated[-1]["validation.policy.admission.k8s.io/validation_failure"])
        assert failure[0]["policy"] == "names" and failure[0]["message"] == \
            "names start with ok-"
        assert annotated[-1]["names/name"].startswith("w-")


def test_failure_policy_on_broken_expressions(env):
    c = env
    broken = {"validations": [{"expression": "object.data.missing == 'x'"}]}
    with _Policy(c, "broken", broken):
        code, status, _ = _until_code(c, lambda i: _cm(c, f"b-{i}", {"a": "1"}), 422)
        assert "ValidatingAdmissionPolicy 'broken' with binding 'broken-binding' denied " \
               "request: expression 'object.data.missing == 'x'' resulted in error" in \
               status["message"]
    unparsable = {"failurePolicy": "Fail", "validations": [{"expression": "object.data =="}]}
    with _Policy(c, "unparsable", unparsable):
        code, status, _ = _until_code(c, lambda i: _cm(c, f"u-{i}", {"a": "1"}), 422)
        assert status["message"].endswith("denied request: compilation failed: object.data ==")
    with_params = {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                   "validations": [{"expression": "true"}]}
    with _Policy(c, "params", with_params):
        code, status, _ = _until_code(c, lambda i: _cm(c, f"p-{i}", {"a": "1"}), 422)
        assert "failed to configure binding: paramKind and paramRef are not supported" in \
            status["message"]
    ignored = {"failurePolicy": "Ignore", "validations": [
        {"expression": "object.data.missing == 'x'"},
        {"expression": "size(object.data) < 1", "message": "no data allowed"}]}
    with _Policy(c, "ignored", ignored):
        # The broken validation is ignored; the working one still denies.
        code, status, _ = _until_code(c, lambda i: _cm(c, f"i-{i}", {"a": "1"}), 422)
        assert status["message"].endswith("denied request: no data allowed")
        assert "resulted in error" not in status["message"]


def test_policies_need_rights_and_do_not_police_themselves(env):
    c = env
    code, status, _ = _api(c, "POST", f"{GROUP}/validatingadmissionpolicies", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "evil"}, "spec": {"validations": [{"expression": "false"}]}},
        user="mallory", groups=())
    assert code == 403 and status["reason"] == "Forbidden"
    # A policy denying everything still lets its binding be deleted.
    spec = {"matchConstraints": {"resourceRules": [{
        "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]},
        "validations": [{"expression": "false", "message": "nothing goes"}]}
    with _Policy(c, "nothing", spec, match_resources={}):
        _until_code(c, lambda i: _cm(c, f"n-{i}", {"a": "1"}), 422)
        code, out, _ = _api(c, "DELETE", f"{GROUP}/validatingadmissionpolicybindings/"
                                         "nothing-binding")
        assert code == 200, out
