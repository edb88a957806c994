"""Structural schemas of CRDs: schema checks, validation messages, defaulting, pruning,
CEL rules, printer-column paths and CRD validation."""

from __future__ import annotations

import pytest

from bootstrap.api import cel_rules, crd, structural, validation_crd

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                "name": {"type": "string", "minLength": 2, "maxLength": 4,
                         "pattern": "^[a-z]+$"},
                "when": {"type": "string", "format": "date-time"},
                "port": {"x-kubernetes-int-or-string": True},
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object",
                                    "properties": {"name": {"type": "string"},
                                                   "n": {"type": "integer", "default": 80}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object"}}},
            }},
    },
}


def _msgs(obj):
    return [str(e) for e in structural.validate(obj, SCHEMA)]


def test_messages_follow_kube_openapi():
    assert _msgs({"spec": {"size": 9}}) == [
        "spec.size: Invalid value: 9: spec.size in body should be less than or equal to 5"]
    assert _msgs({"spec": {"size": "x"}}) == [
        'spec.size: Invalid value: "string": spec.size in body must be of type integer: '
        '"string"']
    assert _msgs({"spec": {}}) == ["spec.size: Required value"]
    assert _msgs({"spec": {"size": 1, "name": "A"}}) == [
        'spec.name: Invalid value: "A": spec.name in body should be at least 2 chars long',
        "spec.name: Invalid value: \"A\": spec.name in body should match '^[a-z]+$'"]
    assert _msgs({"spec": {"size": 1, "name": "abcde"}}) == [
        "spec.name: Too long: may not be more than 4 bytes"]
    assert _msgs({"spec": {"size": 1, "when": "yesterday"}}) == [
        'spec.when: Invalid value: "yesterday": spec.when in body must be of type '
        'date-time: "yesterday"']
    assert _msgs({"spec": {"size": 1, "port": True}}) == [
        'spec.port: Invalid value: "boolean": spec.port in body must be of type '
        'integer-or-string: "boolean"']
    assert _msgs({"spec": {"size": 1, "ports": [{"name": "a"}, {"name": "a"}]}}) == [
        'spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a"}']
    assert _msgs({"spec": {"size": 1, "labels": {"a": 1}}}) == [
        'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type '
        'string: "integer"']
    assert _msgs({"spec": {"size": 1, "template": {"spec": {}}}}) == [
        "spec.template.apiVersion: Required value: must not be empty",
        "spec.template.kind: Required value: must not be empty"]
    assert _msgs({"spec": {"size": 3, "port": "http", "when": "2024-01-02T03:04:05Z"}}) == []


def test_defaults_and_pruning():
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
           "junk": 1,
           "spec": {"ports": [{"name": "a", "extra": 1}], "free": {"any": {"thing": 1}},
                    "labels": {"k": "v"},
                    "template": {"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": "p", "bogus": 1}, "other": 2}}}
    removed: list[str] = []
    structural.prune(obj, SCHEMA, removed=removed)
    structural.apply_defaults(obj, SCHEMA)
    assert sorted(removed) == ["junk", "spec.ports[0].extra", "spec.template.other"]
    assert obj["spec"]["size"] == 1 and obj["spec"]["ports"] == [{"name": "a", "n": 80}]
    assert obj["spec"]["free"] == {"any": {"thing": 1}}
    assert obj["spec"]["labels"] == {"k": "v"}
    assert obj["spec"]["template"]["metadata"] == {"name": "p"}
    assert obj["metadata"] == {"name": "a"}


@pytest.mark.parametrize("schema,message", [
    ({"type": "object", "properties": {"a": {"properties": {}}}},
     "properties[a].type: Required value: must not be empty for specified object fields"),
    ({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}},
     "properties[a].$ref: Forbidden"),
    ({"type": "object", "properties": {"a": {"type": "array"}}},
     "properties[a].items: Required value"),
    ({"type": "object", "properties": {"a": {"type": "list"}}},
     'properties[a].type: Unsupported value: "list"'),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}},
     "must be a valid regular expression"),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "labels": {"type": "object"}}}}}, "properties[metadata].properties[labels]: Forbidden"),
    ({"type": "string"}, "must be object at the root"),
])
def test_schema_checks(schema, message):
    errs = [str(e) for e in structural.check_schema(schema, "s")]
    assert any(message in e for e in errs), errs


def test_cel_rules_refused_without_the_library(monkeypatch):
    monkeypatch.setattr(cel_rules, "available", lambda: False)
    (err,) = cel_rules.compile_errors([{"rule": "self.a > 0"}], "x")
    assert err.type == "FieldValueForbidden" and "cel-python" in str(err)


def test_cel_rules():
    pytest.importorskip("celpy")  # a runtime dependency of the API server (ADR 0007)
    node = {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.a < self.b", "message": "a<b"},
                                         {"rule": "self.b == oldSelf.b", "reason":
                                          "FieldValueForbidden", "message": "b is fixed"}],
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    root = {"type": "object", "properties": {"spec": node}}
    assert cel_rules.evaluate({"spec": {"a": 1, "b": 2}}, root) == []
    assert [str(e) for e in cel_rules.evaluate({"spec": {"a": 3, "b": 2}}, root)] == [
        'spec: Invalid value: "object": a<b']
    assert [str(e) for e in cel_rules.evaluate({"spec": {"a": 1, "b": 3}}, root,
                                               {"spec": {"a": 1, "b": 2}},
                                               transitions=True)] == [
        "spec: Forbidden: b is fixed"]
    # No old value at the path: a transition rule does not run.
    assert cel_rules.evaluate({"spec": {"a": 1, "b": 3}}, root, {}, transitions=True) == []
    errs = cel_rules.compile_errors([{"rule": "self.a <"}, {"rule": ""}], "x")
    assert [e.field for e in errs] == ["x[0].rule", "x[1].rule"]
    assert "compilation failed" in str(errs[0])


def test_json_path_and_columns():
    obj = {"spec": {"a": [{"b": "x"}], "c.d": 1}, "metadata": {"name": "n"}}
    assert crd.json_path(obj, ".spec.a[0].b") == "x"
    assert crd.json_path(obj, "{.spec['c.d']}") == 1
    assert crd.json_path(obj, ".spec.missing.x") is None
    assert crd.json_path(obj, ".spec.a[3]") is None


def _crd(**spec_over):
    spec = {"group": "x.example.com", "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    spec.update(spec_over)
    return {"metadata": {"name": "things.x.example.com"}, "spec": spec}


def test_crd_validation():
    assert validation_crd.validate_crd(_crd()) == []
    two = [{"name": v, "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object"}}} for v in ("v1", "v2")]
    assert "exactly one version marked as storage version" in str(
        validation_crd.validate_crd(_crd(versions=two))[0])
    assert [e.field for e in validation_crd.validate_crd(_crd(group="nodots"))] == [
        "metadata.name", "spec.group"]
    bad_cols = _crd(versions=[{**_crd()["spec"]["versions"][0],
                               "additionalPrinterColumns": [{"name": "A", "type": "list",
                                                             "jsonPath": ".a"}]}])
    assert [e.field for e in validation_crd.validate_crd(bad_cols)] == [
        "spec.versions[0].additionalPrinterColumns[0].type"]
    upd = validation_crd.validate_crd_update(_crd(scope="Cluster"), _crd())
    assert [str(e) for e in upd] == ['spec.scope: Invalid value: "Cluster": field is immutable']


def test_resources_for_served_versions():
    c = _crd(versions=[
        {"name": "v1", "served": True, "storage": True,
         "subresources": {"status": {}}, "schema": {"openAPIV3Schema": {"type": "object"}}},
        {"name": "v2", "served": False, "storage": False,
         "schema": {"openAPIV3Schema": {"type": "object"}}}])
    c["metadata"]["uid"] = "u"
    (r,) = crd.resources_for(c)
    assert (r.gv, r.plural, r.singular, r.list_kind) == ("x.example.com/v1", "things",
                                                          "thing", "ThingList")
    assert r.subresources == ("status",) and r.namespaced
    assert r.key("ns", "a") == "/registry/x.example.com/things/ns/a"
    defs = crd.definitions(r)
    assert set(defs) == {"com.example.x.v1.Thing", "com.example.x.v1.ThingList"}


def test_catalogue_grows_and_shrinks():
    from bootstrap.api import openapi, resources
    (r,) = crd.resources_for(_crd())
    gen = resources.generation()
    resources.register(r)
    try:
        assert resources.by_gvr("x.example.com", "v1", "things") is r
        assert resources.by_gvk("x.example.com", "v1", "Thing") is r
        assert resources.groups()["x.example.com"] == ["v1"]
        assert "apis/x.example.com/v1" in openapi.gv_paths()
        assert resources.generation() > gen
    finally:
        assert resources.unregister("x.example.com", "v1", "things") is r
    assert resources.by_gvr("x.example.com", "v1", "things") is None
    assert "x.example.com" not in resources.groups()
    assert "apis/x.example.com/v1" not in openapi.gv_paths()
    # Built-ins cannot be replaced or removed.
    pods = resources.by_gvr("", "v1", "pods")
    with pytest.raises(ValueError):
        resources.register(pods)
    assert resources.unregister("", "v1", "pods") is None


def test_selectable_fields_validation():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "color": {"type": "string"}, "parts": {"type": "array",
                                               "items": {"type": "string"}}}}}}
    version = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": schema},
               "selectableFields": [{"jsonPath": ".spec.color"}, {"jsonPath": ".spec.parts"},
                                    {"jsonPath": ".spec.nope"}, {"jsonPath": "spec.color"}]}
    errs = validation_crd.validate_crd(_crd(versions=[version]))
    assert [(e.field, e.body.split(": ", 2)[-1][:20]) for e in errs] == [
        ("spec.versions[0].selectableFields[1].jsonPath", "must point to a fiel"),
        ("spec.versions[0].selectableFields[2].jsonPath", "is an invalid path: "),
        ("spec.versions[0].selectableFields[3].jsonPath", "must be a simple jso")]
    (r,) = crd.resources_for(_crd(versions=[{**version, "selectableFields": [
        {"jsonPath": ".spec.color"}]}]))
    getters = r.custom.field_getters()
    assert getters["spec.color"]({"spec": {"color": "red"}}) == "red"
    assert getters["spec.color"]({}) == ""
