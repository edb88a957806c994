"""CustomResourceDefinitions with the real kubectl and the official Python client:
served dynamically, validated, defaulted and pruned by their structural schema,
printed with their columns, watched, patched, scaled, and deleted with the CRD."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
import yaml
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from bootstrap.api import cel_rules

from .cluster import eventually
from .test_kubectl import get_json, run

GROUP = "stable.example.com"

CRONTAB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"crontabs.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                  "shortNames": ["ct"], "categories": ["all"]},
        "versions": [
            {"name": "v1", "served": True, "storage": True,
             "selectableFields": [{"jsonPath": ".spec.mode"}],
             "subresources": {"status": {},
                              "scale": {"specReplicasPath": ".spec.replicas",
                                        "statusReplicasPath": ".status.replicas"}},
             "additionalPrinterColumns": [
                 {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                 {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                 {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
             "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "properties": {
                     "spec": {
                         "type": "object",
                         "required": ["cronSpec"],
                         "properties": {
                             "cronSpec": {"type": "string",
                                          "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                             "image": {"type": "string", "default": "busybox"},
                             "replicas": {"type": "integer", "minimum": 1, "maximum": 10,
                                          "default": 1},
                             "mode": {"type": "string", "enum": ["Fast", "Slow"]},
                             "port": {"x-kubernetes-int-or-string": True},
                             "tags": {"type": "array", "maxItems": 3,
                                      "x-kubernetes-list-type": "set",
                                      "items": {"type": "string", "maxLength": 8}},
                             "extra": {"type": "object",
                                       "x-kubernetes-preserve-unknown-fields": True},
                         }},
                     "status": {"type": "object",
                                "properties": {"replicas": {"type": "integer"},
                                               "phase": {"type": "string"}}},
                 }}}},
            {"name": "v1beta1", "served": True, "storage": False,
             "schema": {"openAPIV3Schema": {
                 "type": "object",
                 "x-kubernetes-preserve-unknown-fields": True}}},
        ],
    },
}

CLUSTER_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Cluster",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {
                          "type": "object",
                          "properties": {"size": {"type": "integer", "default": 3}}}}}],
    },
}


def _apply(kc, obj, *args, check=True):
    return run(kc, "apply", "-f", "-", *args, stdin=yaml.safe_dump(obj), check=check)


def _established(kc, name) -> bool:
    out = run(kc, "get", "crd", name, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conds = {c["type"]: c["status"] for c in json.loads(out.stdout)["status"].get(
        "conditions") or []}
    return conds.get("Established") == "True" and conds.get("NamesAccepted") == "True"


@pytest.fixture(scope="module")
def crds(cluster):
    kc = cluster.admin
    run(kc, "create", "namespace", "crd-work")
    _apply(kc, CRONTAB_CRD)
    _apply(kc, CLUSTER_CRD)
    assert eventually(lambda: _established(kc, f"crontabs.{GROUP}"))
    assert eventually(lambda: _established(kc, f"widgets.{GROUP}"))
    # Discovery follows: kubectl finds the new kinds by plural, short name and category.
    assert eventually(lambda: run(kc, "get", "ct", "-n", "crd-work",
                                  check=False).returncode == 0)
    return kc


@pytest.fixture(scope="module")
def api(cluster):
    api_client = config.new_client_from_config(config_file=str(cluster.admin))
    try:
        yield api_client
    finally:
        api_client.close()


def _crontab(name, **spec):
    return {"apiVersion": f"{GROUP}/v1", "kind": "CronTab",
            "metadata": {"name": name, "namespace": "crd-work"},
            "spec": {"cronSpec": "*/5 * * * *", **spec}}


def test_crd_status_and_discovery(crds):
    crd = get_json(crds, "crd", f"crontabs.{GROUP}")
    assert crd["status"]["acceptedNames"]["kind"] == "CronTab"
    assert crd["status"]["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    out = run(crds, "api-resources", "--api-group", GROUP).stdout
    assert "crontabs" in out and "ct" in out and "widgets" in out
    raw = json.loads(run(crds, "get", "--raw", f"/apis/{GROUP}/v1").stdout)
    names = {r["name"]: r for r in raw["resources"]}
    assert names["crontabs"]["namespaced"] is True and names["widgets"]["namespaced"] is False
    assert {"crontabs/status", "crontabs/scale"} <= set(names)
    group = json.loads(run(crds, "get", "--raw", f"/apis/{GROUP}").stdout)
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]


def test_explain_reads_the_crd_schema(crds):
    out = run(crds, "explain", "crontabs.spec").stdout
    assert "cronSpec" in out and "replicas" in out


def test_validation_messages(crds):
    bad = _apply(crds, _crontab("bad", cronSpec="nope", replicas=11, mode="Quick",
                                tags=["a", "a"]), check=False)
    assert bad.returncode != 0
    err = bad.stderr
    assert 'The CronTab "bad" is invalid' in err
    assert ('spec.cronSpec: Invalid value: "nope": spec.cronSpec in body should match '
            in err)
    assert "spec.replicas: Invalid value: 11: spec.replicas in body should be less than " \
           "or equal to 10" in err
    assert 'spec.mode: Unsupported value: "Quick": supported values: "Fast", "Slow"' in err
    assert 'spec.tags[1]: Duplicate value: "a"' in err
    typed = _apply(crds, _crontab("typed", replicas="three"), check=False)
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type ' \
           'integer: "string"' in typed.stderr
    missing = _apply(crds, {**_crontab("missing"), "spec": {"image": "x"}}, check=False)
    assert "spec.cronSpec: Required value" in missing.stderr


def test_defaulting_pruning_and_int_or_string(crds, api):
    objs = client.CustomObjectsApi(api)
    body = _crontab("pruned", port="http", extra={"anything": {"goes": 1}})
    body["spec"]["unknownField"] = 1
    body["topLevelJunk"] = True
    created = objs.create_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs", body)
    assert created["spec"]["image"] == "busybox" and created["spec"]["replicas"] == 1
    assert "unknownField" not in created["spec"] and "topLevelJunk" not in created
    assert created["spec"]["extra"] == {"anything": {"goes": 1}}
    assert created["spec"]["port"] == "http"
    assert created["metadata"]["generation"] == 1
    # kubectl's strict field validation refuses the unknown field instead of pruning it.
    strict = _apply(crds, {**_crontab("strict"), "spec": {"cronSpec": "* * * * *",
                                                          "bogus": 1}}, check=False)
    assert strict.returncode != 0 and 'unknown field "spec.bogus"' in strict.stderr


def test_printer_columns_and_selectors(crds):
    _apply(crds, {**_crontab("printed", replicas=3), "metadata": {
        "name": "printed", "namespace": "crd-work", "labels": {"tier": "web"}}})
    out = run(crds, "get", "crontabs", "-n", "crd-work", "-l", "tier=web").stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert row.split()[:7] == ["printed", "*/5", "*", "*", "*", "*", "3"]
    # The category "all" brings them into `kubectl get all`.
    assert "crontab.stable.example.com/printed" in run(crds, "get", "all", "-n",
                                                       "crd-work").stdout
    names = run(crds, "get", "ct", "-n", "crd-work", "--field-selector",
                "metadata.name=printed", "-o", "name").stdout.split()
    assert names == ["crontab.stable.example.com/printed"]


def test_patches_status_and_scale(cluster, crds, api):
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs",
                                         _crontab("patched"))
    run(crds, "patch", "crontab", "patched", "-n", "crd-work", "--type=merge",
        "-p", '{"spec":{"image":"nginx"}}')
    run(crds, "patch", "crontab", "patched", "-n", "crd-work", "--type=json",
        "-p", '[{"op":"replace","path":"/spec/replicas","value":2}]')
    got = get_json(crds, "crontab", "patched", "-n", "crd-work")
    assert got["spec"]["image"] == "nginx" and got["spec"]["replicas"] == 2
    assert got["metadata"]["generation"] == 3
    smp = run(crds, "patch", "crontab", "patched", "-n", "crd-work", "--type=strategic",
              "-p", '{"spec":{"image":"x"}}', check=False)
    assert smp.returncode != 0
    assert "the body of the request was in an unknown format - accepted media types " \
           "include: application/json-patch+json, application/merge-patch+json, " \
           "application/apply-patch+yaml" in smp.stderr
    req = urllib.request.Request(
        f"{cluster.server.url}/apis/{GROUP}/v1/namespaces/crd-work/crontabs/patched",
        method="PATCH", data=b'{"spec":{"image":"x"}}',
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, context=cluster.ssl_context(), timeout=30)
    assert exc.value.code == 415
    assert json.loads(exc.value.read())["reason"] == "UnsupportedMediaType"
    # Status is separate: the main resource ignores it, /status ignores the rest.
    run(crds, "patch", "crontab", "patched", "-n", "crd-work", "--type=merge",
        "-p", '{"status":{"phase":"Ignored"}}')
    assert "status" not in get_json(crds, "crontab", "patched", "-n", "crd-work")
    objs.patch_namespaced_custom_object_status(
        GROUP, "v1", "crd-work", "crontabs", "patched",
        {"status": {"phase": "Running", "replicas": 2}, "spec": {"image": "ignored"}})
    got = get_json(crds, "crontab", "patched", "-n", "crd-work")
    assert got["status"]["phase"] == "Running" and got["spec"]["image"] == "nginx"
    # Scale reads and writes the declared paths.
    run(crds, "scale", "crontab", "patched", "-n", "crd-work", "--replicas=5")
    scale = objs.get_namespaced_custom_object_scale(GROUP, "v1", "crd-work", "crontabs",
                                                    "patched")
    assert scale["spec"]["replicas"] == 5 and scale["status"]["replicas"] == 2
    bad_scale = run(crds, "scale", "crontab", "patched", "-n", "crd-work", "--replicas=50",
                    check=False)
    assert "spec.replicas in body should be less than or equal to 10" in bad_scale.stderr


def test_server_side_apply(crds):
    obj = _crontab("applied", image="a")
    out = _apply(crds, obj, "--server-side", "--field-manager=alice").stdout
    assert "serverside-applied" in out
    obj["spec"]["image"] = "b"
    conflict = _apply(crds, obj, "--server-side", "--field-manager=bob", check=False)
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()
    _apply(crds, obj, "--server-side", "--field-manager=bob", "--force-conflicts")
    got = get_json(crds, "crontab", "applied", "-n", "crd-work", "--show-managed-fields")
    assert got["spec"]["image"] == "b"
    assert {m["manager"] for m in got["metadata"]["managedFields"]} >= {"bob"}


def test_versions_share_storage(crds, api):
    objs = client.CustomObjectsApi(api)
    objs.create_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs",
                                         _crontab("versioned"))
    old = objs.get_namespaced_custom_object(GROUP, "v1beta1", "crd-work", "crontabs",
                                            "versioned")
    assert old["apiVersion"] == f"{GROUP}/v1beta1" and old["spec"]["cronSpec"]
    listed = objs.list_namespaced_custom_object(GROUP, "v1beta1", "crd-work", "crontabs")
    assert {i["apiVersion"] for i in listed["items"]} == {f"{GROUP}/v1beta1"}


def test_watch_custom_objects(crds, api):
    objs = client.CustomObjectsApi(api)
    listed = objs.list_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs")
    rv = listed["metadata"]["resourceVersion"]
    objs.create_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs",
                                         _crontab("watched"))
    objs.patch_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs", "watched",
                                        {"spec": {"image": "changed"}})
    objs.delete_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs", "watched")
    seen = []
    w = watch.Watch()
    for ev in w.stream(objs.list_namespaced_custom_object, GROUP, "v1", "crd-work",
                       "crontabs", resource_version=rv, timeout_seconds=10):
        if ev["object"]["metadata"]["name"] == "watched":
            seen.append((ev["type"], ev["object"]["spec"]["image"]))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "busybox"), ("MODIFIED", "changed"), ("DELETED", "changed")]


def test_cluster_scoped_and_dynamic_client(crds, api):
    dyn = dynamic.DynamicClient(api)
    widgets = dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")
    made = widgets.create(body={"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                                "metadata": {"name": "w1"}})
    assert made.size == 3 and made.metadata.namespace is None
    assert [i.metadata.name for i in widgets.get().items] == ["w1"]


def test_rbac_for_crds_and_custom_objects(cluster, crds):
    eve = cluster.kubeconfig("eve")
    denied = run(eve, "create", "-f", "-", check=False, stdin=yaml.safe_dump(
        {**CLUSTER_CRD, "metadata": {"name": f"gadgets.{GROUP}"}}))
    assert denied.returncode != 0
    assert ('User "eve" cannot create resource "customresourcedefinitions" in API group '
            '"apiextensions.k8s.io"') in denied.stderr
    no_objects = run(eve, "get", "crontabs", "-n", "crd-work", check=False)
    assert ('User "eve" cannot list resource "crontabs" in API group "stable.example.com"'
            in no_objects.stderr)
    run(crds, "create", "role", "ct-reader", "-n", "crd-work", "--verb=get,list",
        f"--resource=crontabs.{GROUP}")
    run(crds, "create", "rolebinding", "eve-ct", "-n", "crd-work", "--role=ct-reader",
        "--user=eve")
    assert run(eve, "get", "crontabs", "-n", "crd-work").returncode == 0
    write = run(eve, "create", "-f", "-", check=False, stdin=yaml.safe_dump(_crontab("by-eve")))
    assert write.returncode != 0
    assert ('User "eve" cannot create resource "crontabs" in API group "stable.example.com" '
            'in the namespace "crd-work"') in write.stderr


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["metadata"].update(name="wrong.stable.example.com"),
     'metadata.name: Invalid value: "wrong.stable.example.com": must be '
     'spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"]["versions"][0].update(storage=False),
     "must have exactly one version marked as storage version"),
    (lambda c: c["spec"].update(scope="Galaxy"),
     'spec.scope: Unsupported value: "Galaxy": supported values: "Cluster", "Namespaced"'),
    (lambda c: c["spec"]["names"].update(kind="bad kind"), "spec.names.kind: Invalid value"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"].update(
        size={"properties": {"a": {"type": "string"}}}),
     "properties[size].type: Required value: must not be empty for specified object fields"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].update({
        "x-kubernetes-validations": [{"rule": "self.size >"}]}),
     "x-kubernetes-validations[0].rule: Invalid value: \"self.size >\": compilation failed"
     if cel_rules.available() else "CEL validation rules need the cel-python package"),
])
def test_bad_crds_are_422(crds, mutate, message):
    bad = json.loads(json.dumps(CLUSTER_CRD))
    bad["metadata"]["name"] = f"gizmos.{GROUP}"
    bad["spec"]["names"] = {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"}
    mutate(bad)
    out = _apply(crds, bad, check=False)
    assert out.returncode != 0
    assert "is invalid" in out.stderr and message in out.stderr, out.stderr


def test_name_conflict_is_not_accepted(crds):
    clash = json.loads(json.dumps(CLUSTER_CRD))
    clash["metadata"]["name"] = f"gears.{GROUP}"
    clash["spec"]["names"] = {"plural": "gears", "singular": "gear", "kind": "Widget"}
    _apply(crds, clash)

    def condition():
        conds = {c["type"]: c for c in get_json(crds, "crd", f"gears.{GROUP}")["status"][
            "conditions"]}
        return conds.get("NamesAccepted", {}).get("status") == "False" and conds
    conds = eventually(condition)
    assert conds["NamesAccepted"]["reason"] == "KindConflict"
    assert conds["Established"]["status"] == "False"
    assert run(crds, "get", "gears", check=False).returncode != 0
    run(crds, "delete", "crd", f"gears.{GROUP}", "--timeout=30s")


def test_deleting_the_crd_removes_objects_and_serving(cluster, crds, api):
    objs = client.CustomObjectsApi(api)
    objs.create_cluster_custom_object(GROUP, "v1", "widgets",
                                      {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                                       "metadata": {"name": "doomed"}})
    ended = threading.Event()

    def watch_until_end():
        w = watch.Watch()
        try:
            for _ in w.stream(objs.list_cluster_custom_object, GROUP, "v1", "widgets",
                              timeout_seconds=30):
                pass
        except ApiException:
            pass
        ended.set()
    t = threading.Thread(target=watch_until_end, daemon=True)
    t.start()
    run(crds, "delete", "crd", f"widgets.{GROUP}", "--timeout=30s")
    assert run(crds, "get", "crd", f"widgets.{GROUP}", check=False).returncode != 0
    assert eventually(lambda: run(crds, "get", "--raw", f"/apis/{GROUP}/v1/widgets",
                                  check=False).returncode != 0)
    assert ended.wait(30)
    # Recreating the CRD does not bring the old objects back: they were deleted.
    _apply(crds, CLUSTER_CRD)
    assert eventually(lambda: _established(crds, f"widgets.{GROUP}"))
    assert eventually(lambda: run(crds, "get", "widgets", "-o", "name",
                                  check=False).returncode == 0)
    assert run(crds, "get", "widgets", "-o", "name").stdout.strip() == ""


CEL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"pools.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
            "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.min <= self.max",
                     "message": "min must not exceed max"},
                    {"rule": "self.max < 100", "reason": "FieldValueForbidden",
                     "messageExpression": "'max ' + string(self.max) + ' is too big'"}],
                "properties": {
                    "min": {"type": "integer"}, "max": {"type": "integer"},
                    "zone": {"type": "string",
                             "x-kubernetes-validations": [
                                 {"rule": "self == oldSelf",
                                  "message": "zone is immutable"}]}}}}}}}],
    },
}


def test_cel_validation_rules(crds):
    if not cel_rules.available():
        # Without cel-python the server refuses rules it cannot enforce (ADR 0007).
        refused = _apply(crds, CEL_CRD, check=False)
        assert "CEL validation rules need the cel-python package" in refused.stderr
        return
    _apply(crds, CEL_CRD)
    assert eventually(lambda: _established(crds, f"pools.{GROUP}"))
    assert eventually(lambda: run(crds, "get", "pools", "-n", "crd-work",
                                  check=False).returncode == 0)

    def pool(**spec):
        return {"apiVersion": f"{GROUP}/v1", "kind": "Pool",
                "metadata": {"name": "p", "namespace": "crd-work"}, "spec": spec}
    bad = _apply(crds, pool(min=5, max=2), check=False)
    assert 'The Pool "p" is invalid: spec: Invalid value: "object": min must not exceed ' \
           'max' in bad.stderr
    big = _apply(crds, pool(min=1, max=500), check=False)
    assert "spec: Forbidden: max 500 is too big" in big.stderr
    _apply(crds, pool(min=1, max=5, zone="a"))
    moved = _apply(crds, pool(min=1, max=5, zone="b"), check=False)
    assert "spec.zone: Invalid value: \"string\": zone is immutable" in moved.stderr
    _apply(crds, pool(min=2, max=5, zone="a"))  # other changes still pass
    assert get_json(crds, "pool", "p", "-n", "crd-work")["spec"]["min"] == 2


def test_selectable_fields(crds, api):
    objs = client.CustomObjectsApi(api)
    for name, mode in (("fast", "Fast"), ("slow", "Slow")):
        objs.create_namespaced_custom_object(GROUP, "v1", "crd-work", "crontabs",
                                             _crontab(f"sel-{name}", mode=mode))
    names = run(crds, "get", "ct", "-n", "crd-work", "--field-selector", "spec.mode=Fast",
                "-o", "name").stdout.split()
    assert names == ["crontab.stable.example.com/sel-fast"]
    bad = run(crds, "get", "ct", "-n", "crd-work", "--field-selector", "spec.image=x",
              check=False)
    assert "field label not supported: spec.image" in bad.stderr
    # v1beta1 declares none: only metadata fields select there.
    with pytest.raises(ApiException) as exc:
        objs.list_namespaced_custom_object(GROUP, "v1beta1", "crd-work", "crontabs",
                                           field_selector="spec.mode=Fast")
    assert exc.value.status == 400


def test_crd_updates_apply_live(crds, api):
    objs = client.CustomObjectsApi(api)
    _apply(crds, CLUSTER_CRD)
    assert eventually(lambda: _established(crds, f"widgets.{GROUP}"))
    made = objs.create_cluster_custom_object(GROUP, "v1", "widgets", {
        "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "live"},
        "color": "red"})
    assert "color" not in made  # not in the schema yet: pruned
    wider = json.loads(json.dumps(CLUSTER_CRD))
    props = wider["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    props["color"] = {"type": "string"}
    wider["spec"]["versions"].append({"name": "v2", "served": True, "storage": False,
                                      "schema": wider["spec"]["versions"][0]["schema"]})
    _apply(crds, wider)

    def kept():
        try:
            got = objs.patch_cluster_custom_object(GROUP, "v1", "widgets", "live",
                                                   {"color": "blue"})
        except ApiException:
            return False
        return got.get("color") == "blue"
    assert eventually(kept)
    assert eventually(lambda: run(crds, "get", "--raw", f"/apis/{GROUP}/v2/widgets",
                                  check=False).returncode == 0)
    # served: false takes the version out of discovery and routing.
    wider["spec"]["versions"][1]["served"] = False
    _apply(crds, wider)
    assert eventually(lambda: run(crds, "get", "--raw", f"/apis/{GROUP}/v2/widgets",
                                  check=False).returncode != 0)
    assert [v["version"] for v in json.loads(run(
        crds, "get", "--raw", f"/apis/{GROUP}").stdout)["versions"]] == ["v1", "v1beta1"]
    objs.delete_cluster_custom_object(GROUP, "v1", "widgets", "live")


def test_terminating_crd_waits_for_object_finalizers(crds, api):
    objs = client.CustomObjectsApi(api)
    held = json.loads(json.dumps(CLUSTER_CRD))
    held["metadata"]["name"] = f"holds.{GROUP}"
    held["spec"]["names"] = {"plural": "holds", "singular": "hold", "kind": "Hold"}
    _apply(crds, held)
    assert eventually(lambda: _established(crds, f"holds.{GROUP}"))
    assert eventually(lambda: run(crds, "get", "holds", check=False).returncode == 0)
    objs.create_cluster_custom_object(GROUP, "v1", "holds", {
        "apiVersion": f"{GROUP}/v1", "kind": "Hold",
        "metadata": {"name": "kept", "finalizers": ["example.com/hold"]}})
    run(crds, "delete", "crd", f"holds.{GROUP}", "--wait=false")

    def terminating():
        conds = {c["type"]: c for c in get_json(crds, "crd", f"holds.{GROUP}")["status"][
            "conditions"]}
        return conds.get("Terminating", {}).get("status") == "True"
    assert eventually(terminating)
    # The object waits for its finalizer; new objects are refused meanwhile.
    assert objs.get_cluster_custom_object(GROUP, "v1", "holds", "kept")["metadata"][
        "deletionTimestamp"]

    def refused():
        try:
            objs.create_cluster_custom_object(GROUP, "v1", "holds", {
                "apiVersion": f"{GROUP}/v1", "kind": "Hold", "metadata": {"name": "new"}})
        except ApiException as exc:
            return exc
        objs.delete_cluster_custom_object(GROUP, "v1", "holds", "new")
        return None
    exc = eventually(refused)
    assert exc.status == 405
    assert "create not allowed while custom resource definition is terminating" in exc.body
    objs.patch_cluster_custom_object(GROUP, "v1", "holds", "kept",
                                     {"metadata": {"finalizers": None}})
    assert eventually(lambda: run(crds, "get", "crd", f"holds.{GROUP}",
                                  check=False).returncode != 0)


def test_another_server_serves_the_crds(cluster, crds):
    _apply(crds, _crontab("seen-by-all"))
    late = cluster.add_server()
    kc = cluster.kubeconfig("kubernetes-admin", ("system:masters",), server=late)
    # Established CRDs are served before the new server takes requests.
    got = get_json(kc, "crontab", "seen-by-all", "-n", "crd-work")
    assert got["spec"]["cronSpec"] == "*/5 * * * *"
    assert "crontabs" in run(kc, "api-resources", "--api-group", GROUP).stdout


def _post(cluster, path, body) -> int:
    req = urllib.request.Request(cluster.server.url + path, method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=cluster.ssl_context(), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _zap(mutate):
    c = json.loads(json.dumps(CRONTAB_CRD))
    c["metadata"]["name"] = f"zaps.{GROUP}"
    c["spec"]["names"] = {"plural": "zaps", "kind": "Zap"}
    mutate(c)
    return c


def _root(c):
    return c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("mutate,code", [
    (lambda c: _root(c).update(properties="x"), 400),
    (lambda c: _root(c)["properties"].update(spec=[1]), 400),
    (lambda c: c["spec"].update(versions=["x"]), 400),
    (lambda c: c["spec"]["names"].update(shortNames=[1]), 400),
    (lambda c: _root(c).update({"x-kubernetes-validations": ["x"]}), 400),
    (lambda c: c["spec"]["versions"][0].update(schema=None), 422),
    (lambda c: _root(c).update(default={}), 422),
    (lambda c: c["spec"].update(conversion={"strategy": "Webhook"}), 422),
    (lambda c: _root(c)["properties"]["spec"]["properties"].update(
        t={"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}),
     422),
])
def test_malformed_crds_are_client_errors(cluster, crds, mutate, code):
    assert _post(cluster, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                 _zap(mutate)) == code


@pytest.mark.parametrize("body,code", [
    ([1], 400),
    ({"metadata": "x"}, 400),
    ({"kind": "Pod", "metadata": {"name": "a"}}, 400),
    ({"metadata": {"name": "b"}, "spec": "x"}, 422),
    ({"metadata": {"name": "c"}, "spec": None}, 422),
    ({"metadata": {"name": "d"}, "spec": {"cronSpec": "* * * * *", "replicas": 1.5}}, 422),
    ({"metadata": {"name": "e"}, "spec": {"cronSpec": "* * * * *",
                                          "extra": json.loads("[" * 150 + "]" * 150)}}, 422),
])
def test_malformed_custom_objects_are_client_errors(cluster, crds, body, code):
    assert _post(cluster, f"/apis/{GROUP}/v1/namespaces/crd-work/crontabs", body) == code
