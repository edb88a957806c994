"""Status bodies and messages match apimachinery's wording (kubectl prints them verbatim)."""

from bootstrap.api import errors


def test_not_found_status_shape():
    st = errors.not_found("deployments", "web", "apps").status()
    assert st == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "web" not found', "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404,
    }


def test_conflict_message_is_upstream():
    e = errors.conflict("configmaps", "c1")
    assert e.code == 409 and e.reason == "Conflict"
    assert e.message == ('Operation cannot be fulfilled on configmaps "c1": the object has been '
                         "modified; please apply your changes to the latest version and try again")


def test_forbidden_namespaced_and_cluster_scope():
    e = errors.forbidden("bob", "list", "pods", namespace="default")
    assert e.message == ('pods is forbidden: User "bob" cannot list resource "pods" in API group "" '
                         'in the namespace "default"')
    e = errors.forbidden("bob", "get", "nodes", name="n1")
    assert e.message == ('nodes "n1" is forbidden: User "bob" cannot get resource "nodes" in API '
                         'group "" at the cluster scope')
    e = errors.forbidden("bob", "get", "pods", namespace="ns", name="p", subresource="log",
                         reason="no RBAC policy matched")
    assert e.message.endswith('cannot get resource "pods/log" in API group "" in the namespace '
                              '"ns": no RBAC policy matched')
    assert e.code == 403 and e.status()["details"]["kind"] == "pods"


def test_forbidden_non_resource():
    e = errors.forbidden("bob", "get", "", path="/metrics", resource_request=False)
    assert e.message == 'forbidden: User "bob" cannot get path "/metrics"'


def test_invalid_one_and_many_causes():
    one = errors.invalid("Pod", "p", [errors.required("spec.containers[0].image")])
    assert one.message == 'Pod "p" is invalid: spec.containers[0].image: Required value'
    assert one.status()["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}]
    many = errors.invalid("Deployment", "d", [errors.required("spec.selector"),
                                              errors.invalid_value("spec.replicas", -1, "must be >= 0")],
                          group="apps")
    assert many.message == ('Deployment.apps "d" is invalid: [spec.selector: Required value, '
                            "spec.replicas: Invalid value: -1: must be >= 0]")
    assert many.code == 422


def test_field_error_bodies():
    assert str(errors.not_supported("spec.type", "X", ["A", "B"])) == \
        'spec.type: Unsupported value: "X": supported values: "A", "B"'
    assert str(errors.duplicate("spec.ports[1].name", "http")) == 'spec.ports[1].name: Duplicate value: "http"'
    assert str(errors.forbidden_field("spec", "nope")) == "spec: Forbidden: nope"


def test_gone_and_media_type():
    g = errors.too_old_resource_version(5, 10)
    assert (g.code, g.reason, g.message) == (410, "Expired", "too old resource version: 5 (10)")
    u = errors.unsupported_media_type()
    assert u.code == 415 and u.reason == "UnsupportedMediaType"
    m = errors.method_not_supported("bindings", "get")
    assert (m.code, m.message) == (405, 'get is not supported on resources of kind "bindings"')
    assert "details" not in errors.unauthorized().status()
