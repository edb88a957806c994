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
    assert set(path) - {"parameters"} == {"post"}


def test_v2_document():
    d = orjson.loads(openapi.openapi_v2_document())
    assert d["swagger"] == "2.0"
    assert d["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    # Swagger 2.0 keeps description beside the $ref, as upstream (no allOf)
    spec = d["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]
    assert spec["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert spec["description"].startswith("Specification of the desired behavior")
    patch_op = d["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch_op["parameters"])
    assert patch_op["parameters"][0]["in"] == "body"
    assert patch_op["operationId"] == "patchCoreV1NamespacedConfigMap"
    assert patch_op["description"] == "partially update the specified ConfigMap"


def test_v2_operations_have_upstreams_parameters_and_descriptions():
    d = orjson.loads(openapi.openapi_v2_document())
    coll = d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert [p["name"] for p in coll["parameters"]] == ["namespace", "pretty"]
    listing = coll["get"]
    assert listing["operationId"] == "listAppsV1NamespacedDeployment"
    assert listing["description"] == "list or watch objects of kind Deployment"
    assert [p["name"] for p in listing["parameters"]] == [
        "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
        "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
        "watch"]
    assert {p["name"]: p["type"] for p in listing["parameters"]}["limit"] == "integer"
    assert coll["post"]["description"] == "create a Deployment"
    assert set(coll["post"]["responses"]) == {"200", "201", "202", "401"}
    item = d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert item["delete"]["description"] == "delete a Deployment"
    assert [p["name"] for p in item["delete"]["parameters"]] == [
        "body", "dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"]
    assert d["paths"]["/apis/apps/v1/deployments"]["get"]["operationId"] == \
        "listAppsV1DeploymentForAllNamespaces"
    ids = [op["operationId"] for path in d["paths"].values() for k, op in path.items()
           if k != "parameters"]
    assert len(ids) == len(set(ids))  # unique across versions (HPA v1 and v2)
    rbac = d["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]
    assert rbac["operationId"] == "listRbacAuthorizationV1ClusterRole"
    assert rbac["tags"] == ["rbac_authorization_v1"]


def test_v2_protobuf_is_gnostics_document():
    from bootstrap.api import openapi_pb
    doc = openapi_pb.parse(openapi.openapi_v2_protobuf())
    assert doc.swagger == "2.0"
    defs = {n.name: n.value for n in doc.definitions.additional_properties}
    dep = defs["io.k8s.api.apps.v1.Deployment"]
    assert list(dep.type.value) == ["object"]
    ext = {e.name: orjson.loads(e.value.yaml) for e in dep.vendor_extension}
    assert ext["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    props = {p.name: p.value for p in dep.properties.additional_properties}
    assert props["spec"]._ref == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    labels = {p.name: p.value for p in defs[
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].properties.additional_properties}
    assert labels["labels"].additional_properties.schema.type.value == ["string"]
    paths = {p.name: p.value for p in doc.paths.path}
    post = paths["/api/v1/namespaces/{namespace}/pods"].post
    assert post.operation_id == "createCoreV1NamespacedPod"
    kinds = [p.parameter.WhichOneof("oneof") for p in post.parameters]
    assert kinds[0] == "body_parameter" and set(kinds[1:]) == {"non_body_parameter"}
    query = post.parameters[1].parameter.non_body_parameter.query_parameter_sub_schema
    assert (query.name, getattr(query, "in")) == ("dryRun", "query")
    codes = {r.name for r in post.responses.response_code}
    assert codes == {"200", "201", "202", "401"}


def test_warm_builds_every_served_document():
    openapi._v3_document.cache_clear()
    openapi._v3_hash.cache_clear()
    openapi._v2_document.cache_clear()
    openapi.warm()
    n = len(openapi.gv_paths())
    assert openapi._v3_document.cache_info().currsize == n
    assert openapi._v3_hash.cache_info().currsize == n
    assert openapi._v2_document.cache_info().currsize == 1
