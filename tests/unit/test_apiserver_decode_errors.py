"""Body decoding errors worded as upstream's transformDecodeError
(apiserver/pkg/endpoints/handlers/rest.go) and encoding/json's scanner."""

import pytest

from bootstrap.agents.apiserver.handlers import common
from bootstrap.api import gojson, resources
from bootstrap.api.errors import APIError

FIND_KIND = ('struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
             'Kind string "json:\\"kind,omitempty\\"" }')


def _message(raw: bytes, kind="Namespace", yaml_body=False) -> str:
    with pytest.raises(APIError) as ei:
        common.decode_body(raw, kind, yaml_body)
    assert ei.value.code == 400 and ei.value.reason == "BadRequest"
    return ei.value.message


@pytest.mark.parametrize("data,summary", [
    (b"", "<empty>"),
    (b'{"a":', '{"a":'),
    (b"{" + b"x" * 29, "{" + "x" * 29),                       # 30 bytes: whole
    (b"{" + b"x" * 30, "{" + "x" * 29 + " ..."),              # 31: cut at 30
    (b"not json", b"not json".hex()),
    (b"[" + b"1," * 20, (b"[" + b"1," * 20)[:30].hex() + " ..."),
])
def test_summarize_data(data, summary):
    assert common.summarize_data(data) == summary


@pytest.mark.parametrize("raw,err", [
    (b"", "unexpected end of JSON input"),
    (b"not json", "invalid character 'o' in literal null (expecting 'u')"),
    (b'{"metadata": {"name": "a"},}', "invalid character '}' looking for beginning of object "
                                      "key string"),
    (b"{]", "invalid character ']' looking for beginning of object key string"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"{} x", "invalid character 'x' after top-level value"),
    (b"-", "invalid character ' ' in numeric literal"),
    (b'"\\q"', "invalid character 'q' in string escape code"),
    (b'"a\nb"', "invalid character '\\n' in string literal"),
])
def test_unparseable_json_is_unrecognized_with_summary(raw, err):
    assert _message(raw) == ("the object provided is unrecognized (must be of type Namespace): "
                             f"couldn't get version/kind; json parse error: {err} "
                             f"({common.summarize_data(raw)})")
    assert gojson.syntax_error(raw) == err


def test_long_body_summary_is_cut_at_30_bytes():
    raw = b'{"apiVersion": "v1", "kind": "Namespace", oops}'
    assert _message(raw) == (
        "the object provided is unrecognized (must be of type Namespace): couldn't get "
        "version/kind; json parse error: invalid character 'o' looking for beginning of object "
        'key string ({"apiVersion": "v1", "kind": " ...)')


@pytest.mark.parametrize("raw,what", [(b"[1]", "array"), (b'"x"', "string"), (b"7", "number"),
                                      (b"true", "bool")])
def test_json_that_is_not_an_object(raw, what):
    assert _message(raw, "Pod") == (
        "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; "
        f"json parse error: json: cannot unmarshal {what} into Go value of type {FIND_KIND} "
        f"({raw.hex()})")


def test_kind_that_is_not_a_string():
    raw = b'{"kind": 5}'
    assert _message(raw) == (
        "the object provided is unrecognized (must be of type Namespace): couldn't get "
        "version/kind; json parse error: json: cannot unmarshal number into Go struct field "
        '.kind of type string ({"kind": 5})')


def test_yaml_list_and_null():
    raw = b"- a\n- b\n"
    assert _message(raw, yaml_body=True) == (
        "the object provided is unrecognized (must be of type Namespace): couldn't get "
        f"version/kind; json parse error: json: cannot unmarshal array into Go value of type "
        f"{FIND_KIND} ({raw.hex()})")
    assert _message(b"a: [", yaml_body=True).startswith(
        "the object provided is unrecognized (must be of type Namespace): error converting "
        "YAML to JSON: ")
    assert common.decode_body(b"null", "Namespace") == {}
    assert common.decode_body(b"", "Namespace", yaml_body=True) == {}


NS = resources.by_gvk("", "v1", "Namespace")
DEPLOY = resources.by_gvk("apps", "v1", "Deployment")


@pytest.mark.parametrize("body,res,message", [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}, NS,
     'Pod in version "v1" cannot be handled as a Namespace: converting (v1.Pod) to '
     "(core.Namespace): unknown conversion"),
    ({"kind": "Pod"}, NS, 'Pod in version "v1" cannot be handled as a Namespace: converting '
                          "(v1.Pod) to (core.Namespace): unknown conversion"),
    ({"apiVersion": "batch/v1", "kind": "Job"}, DEPLOY,
     'Job in version "v1" cannot be handled as a Deployment: converting (v1.Job) to '
     "(apps.Deployment): unknown conversion"),
    ({"apiVersion": "v1", "kind": "NoSuchKind"}, NS,
     'NoSuchKind in version "v1" cannot be handled as a Namespace: no kind "NoSuchKind" is '
     'registered for version "v1" in scheme "pkg/api/legacyscheme/scheme.go:30"'),
    ({"apiVersion": "v2", "kind": "Namespace"}, NS,
     "the API version in the data (v2) does not match the expected API version (v1)"),
])
def test_kind_mismatch_reads_as_upstream(body, res, message):
    with pytest.raises(APIError) as ei:
        common.check_type(body, res)
    assert ei.value.code == 400 and ei.value.message == message
    common.check_type({"apiVersion": res.gv, "kind": res.kind}, res)
    common.check_type({}, res)
