"""Served OpenAPI: what kubectl 1.32 reads for explain, field validation and apply."""

import orjson
import pytest

from bootstrap.api import openapi, resources


def doc(gv):
    return orjson.loads(openapi.openapi_v3_document(gv))


def test_index_lists_every_group_version_with_hash():
    idx = openapi.openapi_v3_index()["paths"]
    assert set(idx) == set(openapi.gv_paths())
    assert "api/v1" in idx and "apis/apps/v1" in idx
    url = idx["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={openapi.openapi_v3_hash('apis/apps/v1')}"
    assert len(openapi.openapi_v3_hash("api/v1")) == 128


def test_unknown_group_version_raises_keyerror():
    with pytest.raises(KeyError):
        openapi.openapi_v3_document("apis/nope/v1")


def _supports_field_validation(d, gvk):
    """The check kubectl's queryParamVerifierV3 performs."""
    for item in d["paths"].values():
        op = item.get("patch")
        if not op or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op.get("parameters", []))
    return False


@pytest.mark.parametrize("r", [r for r in resources.CATALOGUE if r.stored and "patch" in r.verbs],
                         ids=lambda r: r.plural)
def test_every_patchable_kind_advertises_field_validation(r):
    gv = f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
    d = doc(gv)
    assert _supports_field_validation(d, {"group": r.group, "kind": r.kind, "version": r.version})


def test_schemas_for_explain_and_patch_metadata():
    d = doc("api/v1")
    schemas = d["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["type"] == "object"
    spec = pod["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert "additionalProperties" not in schemas["io.k8s.api.core.v1.Container"]
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string" and "type" not in ios
    assert ios["oneOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"][0] == {"type": "string"}
    assert "enum" not in pod["properties"]["kind"]
    # every $ref resolves inside the document
    refs = set()

    def walk(n):
        if isinstance(n, dict):
            if "$ref" in n:
                refs.add(n["$ref"].rsplit("/", 1)[-1])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)
    walk(d)
    assert refs <= set(schemas)


def test_paths_shape_for_namespaced_and_subresources():
    d = doc("apis/apps/v1")
    p = d["paths"]
    assert set(p["/apis/apps/v1/namespaces/{namespace}/deployments"]) >= {"get", "post", "delete", "parameters"}
    assert p["/apis/apps/v1/deployments"]["get"]["x-kubernetes-action"] == "list"
    item = p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert set(item) >= {"get", "put", "patch", "delete"}
    assert set(item["patch"]["requestBody"]["content"]) == {
        "application/apply-patch+yaml", "application/json-patch+json",
        "application/merge-patch+json", "application/strategic-merge-patch+json"}
    scale = p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert "io.k8s.api.autoscaling.v1.Scale" in d["components"]["schemas"]


def test_review_kinds_are_create_only():
    d = doc("apis/authorization.k8s.io/v1")
    path = d["paths"]["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
    assert set(path) == {"post"}


def test_v2_document():
    d = orjson.loads(openapi.openapi_v2_document())
    assert d["swagger"] == "2.0"
    assert d["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    assert d["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]["allOf"][0]["$ref"] == \
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    patch_op = d["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch_op["parameters"])
    assert patch_op["parameters"][0]["in"] == "body"


def test_warm_builds_every_served_document():
    openapi._v3_document.cache_clear()
    openapi._v3_hash.cache_clear()
    openapi._v2_document.cache_clear()
    openapi.warm()
    n = len(openapi.gv_paths())
    assert openapi._v3_document.cache_info().currsize == n
    assert openapi._v3_hash.cache_info().currsize == n
    assert openapi._v2_document.cache_info().currsize == 1
