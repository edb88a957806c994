"""Label and field selectors: apimachinery syntax, matching, and errors."""

import pytest

from bootstrap.api.errors import APIError
from bootstrap.api.selectors import (
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
)


@pytest.mark.parametrize("sel,labels,want", [
    ("", {"a": "b"}, True),
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),  # != matches objects without the key
    ("a!=b", {"a": "b"}, False),
    ("a in (b, c)", {"a": "c"}, True),
    ("a in (b,c)", {}, False),
    ("a notin (b,c)", {}, True),
    ("a notin (b,c)", {"a": "b"}, False),
    ("a", {"a": ""}, True),
    ("!a", {"a": "x"}, False),
    ("!a", {"b": "x"}, True),
    ("a=b,c", {"a": "b"}, False),
    ("a=b, c", {"a": "b", "c": "1"}, True),
    ("x>5", {"x": "7"}, True),
    ("x<5", {"x": "7"}, False),
    ("a=", {"a": ""}, True),
    ("example.com/tier=web", {"example.com/tier": "web"}, True),
])
def test_label_selector_matching(sel, labels, want):
    assert parse_label_selector(sel).matches(labels) is want


@pytest.mark.parametrize("bad", ["a b", "a=b,", "a in b", "a in (b", "=b", "a=b c", "Bad Key=1", "k=-x-",
                                 "x>abc", "in", "notin (a)"])
def test_label_selector_errors_are_400(bad):
    with pytest.raises(APIError) as ei:
        parse_label_selector(bad)
    assert ei.value.code == 400 and ei.value.reason == "BadRequest"


def test_label_selector_string_is_canonical():
    assert str(parse_label_selector("z=1, a in (c,b),!q")) == "a in (b,c),!q,z=1"  # sorted by key, as upstream


def test_label_selector_from_dict():
    sel = label_selector_from_dict({"matchLabels": {"app": "web"},
                                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]},
                                                         {"key": "canary", "operator": "DoesNotExist"}]})
    assert sel.matches({"app": "web", "tier": "fe"})
    assert not sel.matches({"app": "web", "tier": "fe", "canary": "1"})
    assert label_selector_from_dict({}).matches({"any": "x"})
    assert not label_selector_from_dict(None).matches({})
    with pytest.raises(ValueError):
        label_selector_from_dict({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]})


POD = {"metadata": {"name": "p1", "namespace": "ns"},
       "spec": {"nodeName": "n1", "restartPolicy": "Always"}, "status": {"phase": "Running"}}


def test_field_selector_pods():
    assert parse_field_selector("spec.nodeName=n1", "pods").matches(POD)
    assert parse_field_selector("spec.nodeName==n1,status.phase!=Failed", "pods").matches(POD)
    assert not parse_field_selector("spec.nodeName=", "pods").matches(POD)
    assert parse_field_selector("metadata.name=p1,metadata.namespace=ns", "pods").matches(POD)
    assert parse_field_selector("spec.nodeName=n1", "pods").value_for("spec.nodeName") == "n1"


def test_field_selector_unsupported_field_is_400():
    with pytest.raises(APIError) as ei:
        parse_field_selector("spec.nodeName=n1", "configmaps")
    assert ei.value.code == 400 and ei.value.message == "field label not supported: spec.nodeName"
    with pytest.raises(APIError):
        parse_field_selector("garbage", "pods")


def test_field_selector_events_and_escapes():
    ev = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "a,b", "namespace": "ns"},
          "reason": "Started", "type": "Normal", "source": {"component": "kubelet"}}
    assert parse_field_selector(r"involvedObject.name=a\,b,involvedObject.kind=Pod", "events").matches(ev)
    assert parse_field_selector("source=kubelet,type=Normal,reason=Started", "events").matches(ev)


def test_field_selector_extra_fields_and_bools():
    node = {"metadata": {"name": "n"}, "spec": {}}
    assert parse_field_selector("spec.unschedulable=false", "nodes").matches(node)
    sel = parse_field_selector("metadata.name=x", "pods")
    assert sel.matches({"metadata": {"name": "y"}}, extra_fields={"metadata.name": "x"})
