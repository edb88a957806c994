"""JSON patch, merge patch and strategic merge patch (apimachinery strategicpatch semantics)."""

import copy

import pytest

from bootstrap.api import patch
from bootstrap.api.errors import APIError

POD = ("", "v1", "Pod")
DEPLOY = ("apps", "v1", "Deployment")


def pod_with(containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": containers, **spec}}


def names(obj):
    return [c["name"] for c in obj["spec"]["containers"]]


# ----------------------------------------------------------------- JSON patch

def test_json_patch_ops_and_errors():
    obj = {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}}
    out = patch.json_patch(obj, [{"op": "replace", "path": "/spec/replicas", "value": 3},
                                 {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                                 {"op": "remove", "path": "/metadata/labels/a"}])
    assert out == {"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 3}}
    assert obj["spec"]["replicas"] == 1  # input untouched
    with pytest.raises(APIError) as ei:
        patch.json_patch(obj, [{"op": "remove", "path": "/spec/missing"}])
    assert ei.value.code == 422
    with pytest.raises(APIError) as ei:
        patch.json_patch(obj, [{"op": "test", "path": "/spec/replicas", "value": 2}])
    assert ei.value.code == 422
    with pytest.raises(APIError) as ei:
        patch.json_patch(obj, {"op": "add"})
    assert ei.value.code == 400


# ---------------------------------------------------------------- merge patch

def test_merge_patch_rfc7386():
    obj = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert patch.merge_patch(obj, {"a": "z", "c": {"f": None}, "l": [3]}) == \
        {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert patch.merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert patch.merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert patch.merge_patch({"a": "b"}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


# ----------------------------------------------------------- strategic merge

def test_containers_merge_by_name():
    live = pod_with([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])
    out = patch.strategic_merge_patch(live, {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}, POD)
    assert out["spec"]["containers"] == [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]


def test_new_list_item_goes_first_without_order_directive():
    # Upstream's normalizeElementOrder puts patch items not in the live list before
    # server-only items when no $setElementOrder is given.
    live = pod_with([{"name": "a", "image": "a"}])
    out = patch.strategic_merge_patch(live, {"spec": {"containers": [{"name": "z", "image": "z"}]}}, POD)
    assert names(out) == ["z", "a"]


def test_delete_item_with_patch_directive():
    live = pod_with([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])
    out = patch.strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}, POD)
    assert names(out) == ["b"]


def test_replace_list_with_patch_directive():
    live = pod_with([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])
    out = patch.strategic_merge_patch(
        live, {"spec": {"containers": [{"name": "c", "image": "c"}, {"$patch": "replace"}]}}, POD)
    assert out["spec"]["containers"] == [{"name": "c", "image": "c"}]


def test_replace_and_delete_map_directives():
    live = pod_with([{"name": "a", "image": "a"}], nodeSelector={"x": "1", "y": "2"})
    out = patch.strategic_merge_patch(live, {"spec": {"nodeSelector": {"z": "3", "$patch": "replace"}}}, POD)
    assert out["spec"]["nodeSelector"] == {"z": "3"}
    out = patch.strategic_merge_patch(live, {"spec": {"nodeSelector": {"$patch": "delete"}}}, POD)
    assert out["spec"]["nodeSelector"] == {}


def test_set_element_order_as_kubectl_apply_sends():
    live = pod_with([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}, {"name": "srv", "image": "s"}])
    p = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "new"}, {"name": "a"}],
                  "containers": [{"name": "new", "image": "n"}, {"name": "a", "image": "a2"}]}}
    out = patch.strategic_merge_patch(live, p, POD)
    # Ordered items follow $setElementOrder; the server-only item keeps its live position.
    assert names(out) == ["b", "new", "a", "srv"]
    assert out["spec"]["containers"][2]["image"] == "a2"
    assert not any(k.startswith("$") for k in out["spec"])


def test_set_element_order_rejects_items_missing_from_it():
    live = pod_with([{"name": "a", "image": "a"}])
    with pytest.raises(APIError) as ei:
        patch.strategic_merge_patch(live, {"spec": {"$setElementOrder/containers": [{"name": "a"}],
                                                    "containers": [{"name": "x", "image": "x"}]}}, POD)
    assert ei.value.code == 400


def test_delete_from_primitive_list_finalizers():
    live = {"metadata": {"name": "p", "finalizers": ["a/x", "b/y", "c/z"]}, "spec": {"containers": []}}
    out = patch.strategic_merge_patch(
        live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b/y"],
                            "$setElementOrder/finalizers": ["a/x", "c/z"]}}, POD)
    assert out["metadata"]["finalizers"] == ["a/x", "c/z"]


def test_primitive_merge_list_vs_atomic_list():
    live = {"metadata": {"name": "p", "finalizers": ["a/x"]},
            "spec": {"containers": [{"name": "c", "image": "i", "args": ["1", "2"]}]}}
    out = patch.strategic_merge_patch(
        live, {"metadata": {"finalizers": ["b/y", "a/x"]},
               "spec": {"containers": [{"name": "c", "args": ["3"]}]}}, POD)
    # finalizers: patch strategy merge -> union; args: atomic -> replaced.
    assert sorted(out["metadata"]["finalizers"]) == ["a/x", "b/y"]
    assert out["spec"]["containers"][0]["args"] == ["3"]


def test_retain_keys_deployment_strategy():
    live = {"spec": {"strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}
    p = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
    out = patch.strategic_merge_patch(live, p, DEPLOY)
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_volume_source_switch():
    live = pod_with([{"name": "c", "image": "i"}], volumes=[{"name": "v", "emptyDir": {}}])
    p = {"spec": {"volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"},
                               "name": "v"}]}}
    out = patch.strategic_merge_patch(live, p, POD)
    assert out["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cfg"}}]


def test_retain_keys_rejects_keys_not_listed():
    live = {"spec": {"strategy": {"type": "RollingUpdate"}}}
    with pytest.raises(APIError):
        patch.strategic_merge_patch(live, {"spec": {"strategy": {"$retainKeys": ["type"],
                                                                 "rollingUpdate": {"maxSurge": 1}}}}, DEPLOY)


def test_nulls_delete_and_unmatched_nulls_are_ignored():
    live = {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"containers": []}}
    out = patch.strategic_merge_patch(live, {"metadata": {"labels": {"a": None, "zz": None}}}, POD)
    assert out["metadata"]["labels"] == {"b": "2"}


def test_missing_merge_key_is_bad_request():
    live = pod_with([{"name": "a", "image": "a"}])
    with pytest.raises(APIError) as ei:
        patch.strategic_merge_patch(live, {"spec": {"containers": [{"image": "x"}]}}, POD)
    assert ei.value.code == 400


def test_kubectl_three_way_apply_patch_on_deployment():
    """The body kubectl 1.32 sends on a second `kubectl apply` after editing the manifest:
    image change, a label removed, a container added, the replicas field dropped."""
    live = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", "old": "x"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                     "deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                                       "imagePullPolicy": "IfNotPresent",
                                                       "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
    }
    body = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}"},
                     "labels": {"old": None}},
        "spec": {"replicas": None, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx"},
                           {"image": "busybox", "name": "sidecar"}]}}},
    }
    before = copy.deepcopy(live)
    out = patch.strategic_merge_patch(live, body, DEPLOY)
    assert live == before
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert "replicas" not in out["spec"]
    cs = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["nginx", "sidecar"]
    assert cs[0] == {"name": "nginx", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent",
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}


def test_new_field_with_nested_directives_is_cleaned():
    live = {"metadata": {"name": "p"}, "spec": {}}
    out = patch.strategic_merge_patch(
        live, {"spec": {"$setElementOrder/containers": [{"name": "a"}],
                        "containers": [{"name": "a", "image": "a"}, {"name": "gone", "$patch": "delete"}]}}, POD)
    assert out["spec"]["containers"] == [{"name": "a", "image": "a"}]


def test_service_ports_merge_on_port():
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}
    out = patch.strategic_merge_patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
                                      ("", "v1", "Service"))
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "protocol": "TCP"}]


def test_set_element_order_must_match_patch_order():
    live = pod_with([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}])
    with pytest.raises(APIError) as ei:
        patch.strategic_merge_patch(live, {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "b2"}, {"name": "a", "image": "a2"}]}}, POD)
    assert "doesn't match $setElementOrder/ list" in ei.value.message
    out = patch.strategic_merge_patch(live, {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "b", "image": "b2"}, {"name": "gone", "$patch": "delete"}]}}, POD)
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [("b", "b2"), ("a", "a")]


def test_set_element_order_on_primitive_list_reorders():
    live = {"metadata": {"name": "p", "finalizers": ["a/x", "b/y"]}, "spec": {"containers": []}}
    out = patch.strategic_merge_patch(
        live, {"metadata": {"$setElementOrder/finalizers": ["b/y", "c/z", "a/x"], "finalizers": ["c/z"]}}, POD)
    assert out["metadata"]["finalizers"] == ["b/y", "c/z", "a/x"]


def test_pod_status_conditions_merge_on_type():
    """The kubelet's status patches merge conditions by type and keep the others."""
    live = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}}
    p = {"status": {"$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Initialized"},
                                                    {"type": "Ready"}],
                    "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                    "phase": "Running", "podIP": "10.244.0.5"}}
    out = patch.strategic_merge_patch(live, p, POD)
    assert out["status"]["conditions"] == [{"type": "PodScheduled", "status": "True"},
                                           {"type": "Initialized", "status": "True"},
                                           {"type": "Ready", "status": "True"}]
    assert out["status"]["phase"] == "Running" and out["status"]["podIP"] == "10.244.0.5"
