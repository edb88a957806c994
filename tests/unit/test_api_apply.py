"""Server-side apply and managedFields (FieldsV1) bookkeeping."""

import copy

import pytest

from bootstrap.api import managedfields as mf
from bootstrap.api import patch, patch_apply
from bootstrap.api.errors import APIError

DEPLOY = ("apps", "v1", "Deployment")
CM = ("", "v1", "ConfigMap")
NOW = "2026-01-01T00:00:00Z"


def cfg(data, labels=None):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
           "data": data}
    if labels:
        obj["metadata"]["labels"] = labels
    return obj


def deployment(replicas=2, image="nginx:1"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image}]}}}}


def entries(obj):
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def test_fields_v1_roundtrip_and_shape():
    paths = mf.field_set(deployment(), DEPLOY)
    fv1 = mf.to_fields_v1(paths)
    assert fv1 == {
        "f:spec": {
            "f:replicas": {}, "f:selector": {},
            "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                           "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                               ".": {}, "f:image": {}, "f:name": {}}}}},
        }
    }
    assert mf.from_fields_v1(fv1) == paths
    assert mf.path_string((("f", "spec"), ("f", "containers"), ("k", '{"name":"nginx"}'),
                           ("f", "image"))) == '.spec.containers[name="nginx"].image'
    assert mf.path_string((("f", "metadata"), ("f", "finalizers"), ("v", '"a/b"'))) == '.metadata.finalizers[="a/b"]'


def test_apply_create_records_apply_entry():
    out = patch.apply(None, deployment(), DEPLOY, "kubectl", now=NOW)
    e = entries(out)[("kubectl", "Apply")]
    assert e["apiVersion"] == "apps/v1" and e["fieldsType"] == "FieldsV1" and e["time"] == NOW
    assert "f:replicas" in e["fieldsV1"]["f:spec"]
    assert out["spec"]["replicas"] == 2


def test_apply_conflict_with_update_manager_and_force():
    live = patch.track_update(None, deployment(), DEPLOY, "kubectl-client-side-apply", now=NOW)
    with pytest.raises(APIError) as ei:
        patch.apply(live, deployment(replicas=5), DEPLOY, "kubectl", force=False, now=NOW)
    e = ei.value
    assert e.code == 409 and e.reason == "Conflict"
    assert e.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                         f'using apps/v1 at {NOW}: .spec.replicas')
    assert e.details["causes"] == [{"reason": "FieldManagerConflict", "field": ".spec.replicas",
                                    "message": f'conflict with "kubectl-client-side-apply" using apps/v1 at {NOW}'}]
    forced = patch.apply(live, deployment(replicas=5), DEPLOY, "kubectl", force=True, now=NOW)
    assert forced["spec"]["replicas"] == 5
    es = entries(forced)
    assert mf.from_fields_v1(es[("kubectl", "Apply")]["fieldsV1"]) >= {(("f", "spec"), ("f", "replicas"))}
    assert (("f", "spec"), ("f", "replicas")) not in mf.from_fields_v1(
        es[("kubectl-client-side-apply", "Update")]["fieldsV1"])


def test_same_value_is_shared_not_conflict():
    live = patch.track_update(None, deployment(), DEPLOY, "creator", now=NOW)
    out = patch.apply(live, deployment(), DEPLOY, "kubectl", now=NOW)
    es = entries(out)
    rep = (("f", "spec"), ("f", "replicas"))
    assert rep in mf.from_fields_v1(es[("creator", "Update")]["fieldsV1"])
    assert rep in mf.from_fields_v1(es[("kubectl", "Apply")]["fieldsV1"])


def test_apply_conflicts_between_appliers_listed_by_manager():
    live = patch.apply(None, cfg({"a": "1", "b": "2"}), CM, "alice", now=NOW)
    with pytest.raises(APIError) as ei:
        patch.apply(live, cfg({"a": "x", "b": "y"}), CM, "bob", now=NOW)
    assert ei.value.message == ('Apply failed with 2 conflicts: conflicts with "alice":\n'
                                "- .data.a\n- .data.b")


def test_dropping_a_field_removes_it_unless_owned_elsewhere():
    live = patch.apply(None, cfg({"a": "1", "b": "2"}, labels={"x": "1"}), CM, "alice", now=NOW)
    out = patch.apply(live, cfg({"a": "1"}), CM, "alice", now=NOW)
    assert out["data"] == {"a": "1"}
    assert "labels" not in out["metadata"]
    shared = patch.apply(live, cfg({"b": "2"}), CM, "bob", now=NOW)
    out = patch.apply(shared, cfg({"a": "1"}), CM, "alice", now=NOW)
    assert out["data"] == {"a": "1", "b": "2"}  # bob still owns b


def test_apply_merges_keyed_lists_and_keeps_other_managers_items():
    live = patch.apply(None, deployment(), DEPLOY, "alice", now=NOW)
    mine = deployment()
    mine["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "busybox"}]
    del mine["spec"]["replicas"]
    out = patch.apply(live, mine, DEPLOY, "bob", now=NOW)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx", "sidecar"]
    assert out["spec"]["replicas"] == 2


def test_track_update_transfers_ownership_and_records_maps():
    created = patch.track_update(None, cfg({"a": "1"}, labels={"app": "x"}), CM, "kubectl-create", now=NOW)
    e = entries(created)[("kubectl-create", "Update")]
    assert e["fieldsV1"] == {"f:data": {".": {}, "f:a": {}},
                             "f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
    edited = copy.deepcopy(created)
    edited["data"]["a"] = "2"
    edited["data"]["b"] = "3"
    out = patch.track_update(created, edited, CM, "kubectl-edit", now=NOW)
    es = entries(out)
    edit_set = mf.from_fields_v1(es[("kubectl-edit", "Update")]["fieldsV1"])
    create_set = mf.from_fields_v1(es[("kubectl-create", "Update")]["fieldsV1"])
    assert (("f", "data"), ("f", "a")) in edit_set and (("f", "data"), ("f", "b")) in edit_set
    assert (("f", "data"), ("f", "a")) not in create_set
    assert (("f", "metadata"), ("f", "labels"), ("f", "app")) in create_set


def test_update_then_apply_then_update_removed_field():
    live = patch.track_update(None, cfg({"a": "1"}), CM, "writer", now=NOW)
    live = patch.apply(live, cfg({"b": "2"}), CM, "applier", now=NOW)
    assert live["data"] == {"a": "1", "b": "2"}
    gone = copy.deepcopy(live)
    del gone["data"]["b"]
    out = patch.track_update(live, gone, CM, "writer", now=NOW)
    assert ("applier", "Apply") not in entries(out)


def test_apply_requires_field_manager():
    with pytest.raises(APIError) as ei:
        patch.apply(None, cfg({"a": "1"}), CM, "")
    assert ei.value.code == 400


def test_status_reset_fields_not_tracked():
    d = deployment()
    d["status"] = {"replicas": 9}
    out = patch.apply(None, d, DEPLOY, "kubectl", reset_fields=("status",), now=NOW)
    assert "status" not in out
    assert "f:status" not in entries(out)[("kubectl", "Apply")]["fieldsV1"]


def test_track_update_takes_client_rewritten_managed_fields():
    """kubectl's client-side -> server-side apply migration is a JSON patch of
    managedFields alone: the rewritten entries stand and no Update is booked."""
    live = patch.track_update(None, deployment(), DEPLOY, "kubectl-client-side-apply", now=NOW)
    migrated = copy.deepcopy(live)
    for e in migrated["metadata"]["managedFields"]:
        e["manager"], e["operation"] = "kubectl", "Apply"
    out = patch.track_update(live, copy.deepcopy(migrated), DEPLOY, "kubectl", now=NOW)
    assert out["metadata"]["managedFields"] == migrated["metadata"]["managedFields"]


def test_reapply_after_migration_keeps_maps_and_removes_whole_items():
    """kubectl's client-side -> server-side apply migration leaves the applier owning map
    members ('.' entries) and list items; a later apply without them must remove items
    cleanly and never the maps whose keys it still applies."""
    full = deployment()
    full["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}},
                                                   {"name": "extra", "emptyDir": {}}]
    live = patch.track_update(None, full, DEPLOY, "kubectl", now=NOW)
    for e in live["metadata"]["managedFields"]:
        e["operation"] = "Apply"  # what the migration's JSON patch does
    smaller = deployment()
    smaller["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    out = patch.apply(live, smaller, DEPLOY, "kubectl", now=NOW)
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "web"}


def test_apply_checks_type_meta_and_managed_fields():
    bad = cfg({"a": "1"})
    bad["apiVersion"] = "v2"
    with pytest.raises(APIError) as ei:
        patch.apply(None, bad, CM, "m")
    assert ei.value.message == ("Incorrect version specified in apply patch. Specified patch version: v2, "
                                "expected: v1")
    bad = cfg({"a": "1"})
    bad["metadata"]["managedFields"] = [{"manager": "x"}]
    with pytest.raises(APIError) as ei:
        patch.apply(None, bad, CM, "m")
    assert ei.value.message == "metadata.managedFields must be nil"


def test_status_is_not_tracked_on_main_resource_and_only_status_on_subresource():
    d = deployment()
    d["status"] = {"replicas": 0}
    created = patch.track_update(None, copy.deepcopy(d), DEPLOY, "kubectl-create", now=NOW)
    assert "f:status" not in entries(created)[("kubectl-create", "Update")]["fieldsV1"]
    updated = copy.deepcopy(created)
    updated["status"] = {"replicas": 2, "readyReplicas": 2}
    out = patch.track_update(created, updated, DEPLOY, "kube-controller-manager", subresource="status", now=NOW)
    e = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "kube-controller-manager")
    assert e["subresource"] == "status"
    assert set(e["fieldsV1"]) == {"f:status"}
    # ConfigMaps have no status subresource: nothing is reset.
    assert patch_apply.default_reset_fields(CM, "", cfg({"a": "1"})) == ()


@pytest.mark.parametrize("lhs,rhs,want", [
    (["a", "b"], ["b", "a"], ["b", "a"]),
    (["x", "a"], ["a"], ["x", "a"]),
    (["a", "b"], ["b", "c", "a"], ["b", "c", "a"]),
    (["a", "b", "c"], ["z"], ["a", "b", "c", "z"]),
    ([], ["a", "b"], ["a", "b"]),
    (["a", "s", "b"], ["b", "n", "a"], ["s", "b", "n", "a"]),
])
def test_merged_list_order_follows_smd(lhs, rhs, want):
    assert patch_apply._merged_order(lhs, rhs) == want


def test_apply_set_list_union():
    live = patch.apply(None, cfg({"a": "1"}), CM, "alice", now=NOW)
    live["metadata"]["finalizers"] = ["x.io/a"]
    mine = cfg({"a": "1"})
    mine["metadata"]["finalizers"] = ["x.io/b"]
    out = patch.apply(live, mine, CM, "bob", now=NOW)
    assert out["metadata"]["finalizers"] == ["x.io/a", "x.io/b"]
    assert '"x.io/b"' in str(entries(out)[("bob", "Apply")]["fieldsV1"])


def test_update_owns_new_lists_but_not_lists_whose_items_changed():
    base = cfg({"a": "1"})
    base["metadata"]["finalizers"] = ["x.io/a"]
    created = patch.track_update(None, base, CM, "creator", now=NOW)
    fin = (("f", "metadata"), ("f", "finalizers"))
    assert fin in mf.from_fields_v1(entries(created)[("creator", "Update")]["fieldsV1"])
    more = copy.deepcopy(created)
    more["metadata"]["finalizers"].append("x.io/b")
    out = patch.track_update(created, more, CM, "other", now=NOW)
    es = entries(out)
    assert fin in mf.from_fields_v1(es[("creator", "Update")]["fieldsV1"])
    assert mf.from_fields_v1(es[("other", "Update")]["fieldsV1"]) == {fin + (("v", '"x.io/b"'),)}


# -- taking over from client-side apply, and no-op applies -------------------------

def _client_side_applied(data: dict) -> dict:
    """A ConfigMap as `kubectl apply` (client-side) leaves it."""
    applied = cfg(data)
    live = copy.deepcopy(applied)
    live["metadata"]["annotations"] = {patch_apply.LAST_APPLIED: patch_apply.go_json(applied)}
    return patch_apply.track_update(None, live, CM, "kubectl-client-side-apply", now=NOW)


def test_go_json_matches_encoding_json():
    assert patch_apply.go_json({"b": [1, "<&>"], "a": {"é": None}}) == \
        '{"a":{"é":null},"b":[1,"\\u003c\\u0026\\u003e"]}\n'


def test_kubectl_takes_over_unchanged_client_side_fields():
    live = _client_side_applied({"mode": "one"})
    out = patch_apply.apply(live, cfg({"mode": "two"}), CM, "kubectl", now=NOW)
    assert out["data"] == {"mode": "two"}
    assert ("kubectl", "Apply") in entries(out)
    # The annotation follows kubectl's server-side apply, without itself inside.
    last = patch_apply.orjson.loads(out["metadata"]["annotations"][patch_apply.LAST_APPLIED])
    assert last == cfg({"mode": "two"})
    # Any other manager still conflicts with the client-side owner.
    with pytest.raises(APIError) as err:
        patch_apply.apply(live, cfg({"mode": "two"}), CM, "other", now=NOW)
    assert err.value.code == 409
    assert patch_apply.LAST_APPLIED in out["metadata"]["annotations"]
    other = patch_apply.apply(live, cfg({"mode": "two"}), CM, "other", force=True, now=NOW)
    assert other["metadata"]["annotations"] == live["metadata"]["annotations"]


def test_fields_changed_since_the_client_side_apply_still_conflict():
    live = _client_side_applied({"mode": "one"})
    edited = copy.deepcopy(live)
    edited["data"]["mode"] = "edited"
    edited = patch_apply.track_update(live, edited, CM, "kubectl-edit", now=NOW)
    with pytest.raises(APIError) as err:
        patch_apply.apply(edited, cfg({"mode": "two"}), CM, "kubectl", now=NOW)
    assert err.value.code == 409 and "kubectl-edit" in err.value.message


def test_an_apply_that_changes_nothing_returns_the_live_object():
    first = patch_apply.apply(None, cfg({"a": "1"}), CM, "m", now=NOW)
    first["metadata"]["resourceVersion"] = "7"
    again = patch_apply.apply(first, cfg({"a": "1"}), CM, "m", now="2027-01-01T00:00:00Z")
    assert again == first
    changed = patch_apply.apply(first, cfg({"a": "2"}), CM, "m", now="2027-01-01T00:00:00Z")
    assert entries(changed)[("m", "Apply")]["time"] == "2027-01-01T00:00:00Z"
    # A second manager applying the same value becomes a co-owner: a change.
    shared = patch_apply.apply(first, cfg({"a": "1"}), CM, "n", now="2027-01-01T00:00:00Z")
    assert ("n", "Apply") in entries(shared) and shared != first
